"""Flags (an engine: load, update, evaluate) and Snapshot (a fixed view of
one config for consistent reads), over the C ABI.

Each getter is one foreign call with a prepared Context, so evaluating is
about a microsecond. Not here: building contexts (context.py) or reading
native detail structs (detail.py).
"""

import ctypes
import json
import threading
import warnings

from . import _native
from ._native import Handle, lib, lib_nogil, utf8
from .context import Context
from .detail import TYPE_CODES, Detail
from .errors import ClosedError, ConfigWarning


# Arguments of the typed getters, which are called without argtypes (see
# _native): every argument must already have its C type.
_KEYS = _native._KEYS
_TRUE, _FALSE = ctypes.c_bool(True), ctypes.c_bool(False)
_ZERO = ctypes.c_size_t(0)


def _acquire(engine):
    """The engine's current snapshot, held until the Handle goes."""
    return Handle(lib.flags_snapshot_acquire(engine.ptr), lib.flags_snapshot_release)


def _context_of(guard, ctx):
    """The Handle of ``ctx``, after checking it and ``guard`` are usable.
    Callers keep both in locals until their foreign call returns."""
    if guard is None:
        raise ClosedError("this snapshot or Flags is closed")
    try:
        native = ctx._native
    except AttributeError:
        raise TypeError(f"ctx must be a Context, not {type(ctx).__name__}") from None
    if native is None:
        raise ClosedError("this Context is closed")
    return native


class _Getters:
    """The evaluation methods shared by Flags (current config) and Snapshot
    (a fixed one); subclasses set ``_guard``, the Handle of a snapshot.

    Each takes a prepared ``ctx`` (one foreign call per evaluation), or
    ``key``/``attrs`` to build a throwaway context (convenient, but one more
    foreign call per attribute). Typed getters return ``default`` when the
    flag is unknown, of another type, or disabled without an ``off_variant``
    (it then serves no value); ``detail`` says why.
    """

    __slots__ = ()

    def bool(self, flag, ctx=None, *, key=None, attrs=None, default=False):
        """The value of a boolean flag, or ``default``."""
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.bool(flag, ctx, default=default)
        guard = self._guard
        native = _context_of(guard, ctx)
        data, size = _KEYS.get(flag) or _native.key(flag)
        fallback = _TRUE if default else _FALSE
        return lib.flags_eval_bool(guard.ptr, native.ptr, data, size, fallback, None)

    def int(self, flag, ctx=None, *, key=None, attrs=None, default=0):
        """The value of an integer flag, or ``default``."""
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.int(flag, ctx, default=default)
        guard = self._guard
        native = _context_of(guard, ctx)
        data, size = _KEYS.get(flag) or _native.key(flag)
        fallback = ctypes.c_int64(default)
        return lib.flags_eval_int(guard.ptr, native.ptr, data, size, fallback, None)

    def float(self, flag, ctx=None, *, key=None, attrs=None, default=0.0):
        """The value of a float flag, or ``default``."""
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.float(flag, ctx, default=default)
        guard = self._guard
        native = _context_of(guard, ctx)
        data, size = _KEYS.get(flag) or _native.key(flag)
        fallback = ctypes.c_double(default)
        return lib.flags_eval_float(guard.ptr, native.ptr, data, size, fallback, None)

    def string(self, flag, ctx=None, *, key=None, attrs=None, default=""):
        """The value of a string flag, or ``default``."""
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.string(flag, ctx, default=default)
        guard = self._guard
        native = _context_of(guard, ctx)
        data, size = _KEYS.get(flag) or _native.key(flag)
        # The C default is the absent view: a NULL result means "use ours".
        view = lib.flags_eval_string(guard.ptr, native.ptr, data, size, None, _ZERO, None)
        return default if view.ptr is None else ctypes.string_at(view.ptr, view.len).decode()

    def object(self, flag, ctx=None, *, key=None, attrs=None, default=None):
        """The value of an object flag as a new dict, or ``default``."""
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.object(flag, ctx, default=default)
        guard = self._guard
        native = _context_of(guard, ctx)
        data, size = _KEYS.get(flag) or _native.key(flag)
        view = lib.flags_eval_object(guard.ptr, native.ptr, data, size, None, _ZERO, None)
        return default if view.ptr is None else json.loads(ctypes.string_at(view.ptr, view.len))

    def detail(self, flag, ctx=None, *, key=None, attrs=None, type=None):
        """Everything about one evaluation, as a Detail.

        ``type`` (bool, str, int, float or dict) asks for a value of that
        type: another type gives ``ErrorCode.TYPE_MISMATCH``.
        """
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.detail(flag, ctx, type=type)
        try:
            expected = TYPE_CODES[type]
        except (KeyError, TypeError):
            raise TypeError(
                f"type must be bool, str, int, float, dict or None, not {type!r}"
            ) from None
        guard = self._guard
        native = _context_of(guard, ctx)
        data = utf8(flag, "flag")
        result = _native.FlagsDetail()
        _native.check(
            lib.flags_eval_detail(guard.ptr, native.ptr, data, len(data), expected, result)
        )
        return Detail._from_native(flag, result)

    def all(self, ctx=None, *, key=None, attrs=None):
        """Every flag, in file order, as a dict of key to Detail."""
        if ctx is None:
            with Context(key, attrs) as ctx:
                return self.all(ctx)
        guard = self._guard
        native = _context_of(guard, ctx)
        count = lib.flags_snapshot_flag_count(guard.ptr)
        results = (_native.FlagsDetail * count)()
        written = ctypes.c_size_t()
        _native.check(
            lib.flags_eval_all(guard.ptr, native.ptr, results, count, ctypes.byref(written))
        )
        details = (Detail._from_native(_native.text(d.flag), d) for d in results[: written.value])
        return {detail.flag: detail for detail in details}


class Snapshot(_Getters):
    """One config as it was when taken: every read through it is consistent,
    whatever updates happen meanwhile. From ``Flags.snapshot()``; use it as
    a context manager (or call ``close()``) to release it promptly."""

    __slots__ = ("_guard",)

    def __init__(self, guard):
        self._guard = guard

    def close(self):
        """Releases the snapshot (once no call is using it)."""
        self._guard = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Flags(_Getters):
    """A flags engine: a config, evaluated from any number of threads and
    updated in place with the per-flag last-known-good merge.

    ``FLAGS_OVERRIDE_<FLAG_KEY>=variant`` environment variables are applied
    at every load. ``problems`` lists what the last load rejected.
    """

    __slots__ = ("_engine", "_guard", "_lock", "problems")

    def __init__(self, engine_ptr, problems):
        self._engine = Handle(engine_ptr, lib.flags_engine_free)
        self._guard = _acquire(self._engine)
        self._lock = threading.Lock()
        self.problems = problems

    @classmethod
    def from_file(cls, path):
        """Loads a flags.toml file. Raises ConfigFileError if it cannot be
        read, ConfigError if it cannot be used at all; warns (ConfigWarning)
        if some flags were rejected and are not served."""
        return cls._create(lib_nogil.flags_engine_from_file, utf8(str(path), "path"))

    @classmethod
    def from_toml(cls, text):
        """Loads flags.toml text; errors as for ``from_file``."""
        return cls._create(lib_nogil.flags_engine_from_toml, utf8(text, "text"))

    @classmethod
    def _create(cls, create, data):
        engine = ctypes.c_void_p()
        status = _native.check(create(data, len(data), ctypes.byref(engine)))
        flags = cls(engine.value, _problems(status))
        if flags.problems:
            warnings.warn(
                "some flags were rejected:\n" + "\n".join(flags.problems),
                ConfigWarning,
                stacklevel=3,
            )
        return flags

    def update(self, text):
        """Replaces the config with flags.toml text, atomically; flags whose
        new definition is invalid keep their previous one (served stale).
        Returns the problems (empty when all is valid); raises ConfigError,
        changing nothing, if the text cannot be used at all."""
        return self._update(lib_nogil.flags_engine_update, utf8(text, "text"))

    def update_file(self, path):
        """``update`` with the text of a file."""
        return self._update(lib_nogil.flags_engine_update_from_file, utf8(str(path), "path"))

    def _update(self, update, data):
        # The lock makes "update, then take the new snapshot" one step, so
        # concurrent updates cannot leave an older snapshot current.
        with self._lock:
            engine = self._live_engine()
            status = _native.check(update(engine.ptr, data, len(data)))
            self.problems = _problems(status)
            self._guard = _acquire(engine)
        return self.problems

    def snapshot(self):
        """The current config, fixed: a Snapshot for consistent reads."""
        return Snapshot(_acquire(self._live_engine()))

    def _live_engine(self):
        engine = self._engine
        if engine is None:
            raise ClosedError("this Flags is closed")
        return engine

    def close(self):
        """Frees the engine (once no call is using it). Snapshots taken from
        it stay usable until they are closed."""
        with self._lock:
            self._engine = None
            self._guard = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _problems(status):
    if status != _native.REJECTED_FLAGS:
        return []
    return _native.last_error().splitlines()


def bucket(salt, unit):
    """The bucket in [0, 1 000 000) of ``unit`` under ``salt`` (bucketing v1),
    for checking other implementations against the golden vectors."""
    salt_bytes, unit_bytes = utf8(salt, "salt"), utf8(unit, "unit")
    out = ctypes.c_uint32()
    _native.check(
        lib.flags_bucket(salt_bytes, len(salt_bytes), unit_bytes, len(unit_bytes), ctypes.byref(out))
    )
    return out.value
