"""Finds and loads libflags_ffi, declares the C ABI's signatures for ctypes
and turns its status codes into exceptions.

The only module that knows the C ABI's shapes (include/flags.h is their
source of truth). Not here: the Python API (engine.py, context.py).
"""

import ctypes
import os
import sys
from pathlib import Path

from .errors import ConfigError, ConfigFileError, FlagsError, LibraryError

ABI_VERSION = 2

# FlagsStatus
OK = 0
REJECTED_FLAGS = 1
FLAG_NOT_FOUND = 2
TYPE_MISMATCH = 3
NULL_ARGUMENT = 4
INVALID_UTF8 = 5
INVALID_ARGUMENT = 6
CONFIG = 7
IO = 8
BUFFER_TOO_SMALL = 9
PANIC = 10


class FlagsStr(ctypes.Structure):
    """A pointer + length view (ptr is NULL when absent)."""

    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class FlagsDetail(ctypes.Structure):
    """Mirror of the C struct FlagsDetail, field for field."""

    _fields_ = [
        ("flag", FlagsStr),
        ("variant", FlagsStr),
        ("string_value", FlagsStr),
        ("rule_name", FlagsStr),
        ("unmet_prerequisite", FlagsStr),
        ("metadata_json", FlagsStr),
        ("int_value", ctypes.c_int64),
        ("float_value", ctypes.c_double),
        ("flag_version", ctypes.c_uint64),
        ("value_type", ctypes.c_int),
        ("reason", ctypes.c_int),
        ("error", ctypes.c_int),
        ("rule_index", ctypes.c_int32),
        ("bucket", ctypes.c_int32),
        ("bool_value", ctypes.c_bool),
        ("enrolled", ctypes.c_bool),
        ("stale", ctypes.c_bool),
        ("overridden", ctypes.c_bool),
        ("has_flag_version", ctypes.c_bool),
    ]


def text(view):
    """The str a FlagsStr names, or None when it is absent."""
    if not view.ptr:
        return None
    return ctypes.string_at(view.ptr, view.len).decode("utf-8")


def _library_path():
    """FLAGS_LIB, else the newest build in the cargo target directory."""
    explicit = os.environ.get("FLAGS_LIB")
    if explicit:
        return explicit
    names = {"darwin": "libflags_ffi.dylib", "win32": "flags_ffi.dll"}
    name = names.get(sys.platform, "libflags_ffi.so")
    repo = Path(__file__).resolve().parents[3]
    target = Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
    built = [p for p in (target / "release" / name, target / "debug" / name) if p.exists()]
    if not built:
        raise LibraryError(
            f"{name} not found in {target}/release or {target}/debug: build it with "
            "`cargo build -p flags-ffi --release` or point FLAGS_LIB at it"
        )
    return str(max(built, key=lambda p: p.stat().st_mtime))


def _declare(lib):
    c_char_p, c_size_t, c_void_p = ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p
    c_int, c_bool = ctypes.c_int, ctypes.c_bool
    handle_out = ctypes.POINTER(c_void_p)
    signatures = {
        "flags_abi_version": (ctypes.c_uint32, []),
        "flags_last_error": (c_char_p, []),
        "flags_engine_from_toml": (c_int, [c_char_p, c_size_t, handle_out]),
        "flags_engine_from_file": (c_int, [c_char_p, c_size_t, handle_out]),
        "flags_engine_update": (c_int, [c_void_p, c_char_p, c_size_t]),
        "flags_engine_update_from_file": (c_int, [c_void_p, c_char_p, c_size_t]),
        "flags_engine_free": (None, [c_void_p]),
        "flags_snapshot_acquire": (c_void_p, [c_void_p]),
        "flags_snapshot_release": (None, [c_void_p]),
        "flags_snapshot_flag_count": (c_size_t, [c_void_p]),
        "flags_context_new": (c_void_p, []),
        "flags_context_free": (None, [c_void_p]),
        "flags_context_set_key": (c_int, [c_void_p, c_char_p, c_size_t]),
        "flags_context_set_string": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t]),
        "flags_context_set_number": (c_int, [c_void_p, c_char_p, c_size_t, ctypes.c_double]),
        "flags_context_set_bool": (c_int, [c_void_p, c_char_p, c_size_t, c_bool]),
        "flags_context_set_string_list": (
            c_int,
            [c_void_p, c_char_p, c_size_t, ctypes.POINTER(FlagsStr), c_size_t],
        ),
        "flags_context_remove": (c_int, [c_void_p, c_char_p, c_size_t]),
        "flags_context_clear": (c_int, [c_void_p]),
        "flags_context_set_instant": (c_int, [c_void_p, ctypes.c_int64, ctypes.c_uint32]),
        "flags_context_clear_instant": (c_int, [c_void_p]),
        # The typed getters are the hot path: they are called without
        # argtypes (each declared argument costs a conversion on every
        # call), with arguments already of the right ctypes type; see
        # engine.py, the only caller.
        "flags_eval_bool": (c_bool, None),
        "flags_eval_string": (FlagsStr, None),
        "flags_eval_int": (ctypes.c_int64, None),
        "flags_eval_float": (ctypes.c_double, None),
        "flags_eval_object": (FlagsStr, None),
        "flags_eval_detail": (
            c_int,
            [c_void_p, c_void_p, c_char_p, c_size_t, ctypes.c_uint32, ctypes.POINTER(FlagsDetail)],
        ),
        "flags_eval_all": (
            c_int,
            [c_void_p, c_void_p, ctypes.POINTER(FlagsDetail), c_size_t, ctypes.POINTER(c_size_t)],
        ),
        "flags_bucket": (
            c_int,
            [c_char_p, c_size_t, c_char_p, c_size_t, ctypes.POINTER(ctypes.c_uint32)],
        ),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def _load():
    path = _library_path()
    try:
        # Two views of one library. `lib` keeps the GIL during calls: they
        # take well under a microsecond, re-taking the GIL would cost more,
        # and holding it serialises every use of a Context, which the C ABI
        # requires of writers. `lib_nogil` releases it, for the calls that
        # compile a config or read a file, so other threads run meanwhile;
        # those are thread-safe in the C ABI.
        lib = _declare(ctypes.PyDLL(path))
        lib_nogil = _declare(ctypes.CDLL(path))
    except OSError as e:
        raise LibraryError(f"cannot load {path}: {e}") from e
    version = lib.flags_abi_version()
    if version != ABI_VERSION:
        raise LibraryError(f"{path} has C ABI version {version}, this SDK needs {ABI_VERSION}")
    return lib, lib_nogil


lib, lib_nogil = _load()


class Handle:
    """Owns one native object and frees it when the last reference goes;
    ``ptr`` is a ctypes.c_void_p, ready to pass to any call.

    Code that calls the C ABI keeps a reference to the Handle for the whole
    call, so closing the Python object from another thread (which only
    drops its reference) can never free memory that is in use.
    """

    __slots__ = ("ptr", "_free")

    def __init__(self, ptr, free):
        self.ptr = ctypes.c_void_p(ptr)
        self._free = free

    def __del__(self):
        # At interpreter exit the library may already be unloaded.
        try:
            self._free(self.ptr)
        except Exception:
            pass


def last_error():
    return lib.flags_last_error().decode("utf-8", "replace")


def check(status):
    """Raises the exception for a failed call's status; returns it otherwise."""
    if status in (OK, REJECTED_FLAGS, FLAG_NOT_FOUND, TYPE_MISMATCH):
        return status
    message = last_error()
    if status == CONFIG:
        raise ConfigError(message, status)
    if status == IO:
        raise ConfigFileError(message, status)
    if status == INVALID_UTF8 or status == INVALID_ARGUMENT:
        raise ValueError(message)
    raise FlagsError(message, status)


_KEYS = {}


def key(flag):
    """A flag key as the getters pass it: (UTF-8 bytes, c_size_t length).

    Cached, because encoding the key and boxing its length would cost more
    than the foreign call itself. Bounded, in case keys are made up per call.
    """
    try:
        return _KEYS[flag]
    except KeyError:
        pass
    except TypeError:
        raise TypeError(f"flag must be a str, not {type(flag).__name__}") from None
    data = utf8(flag, "flag")
    if len(_KEYS) >= 4096:
        _KEYS.clear()
    entry = _KEYS[flag] = (data, ctypes.c_size_t(len(data)))
    return entry


def utf8(value, what):
    """`value` as UTF-8 bytes; a TypeError names `what` if it is not a str."""
    try:
        return value.encode("utf-8")
    except AttributeError:
        raise TypeError(f"{what} must be a str, not {type(value).__name__}") from None
