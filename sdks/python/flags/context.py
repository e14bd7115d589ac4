"""Context: the unit being evaluated (targeting key, attributes, instant),
prepared once in the native library and reused across evaluations.

Building a context costs one foreign call per attribute; evaluating with it
costs nothing extra, which is what makes the getters fast. Not here:
evaluation itself (engine.py).
"""

import ctypes
import datetime

from . import _native
from ._native import Handle, lib, utf8
from .errors import ClosedError

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class Context:
    """A targeting key plus attributes: str, int/float, bool, or a list of str.

    ``Context(key="user-1", attrs={"country": "US", "age": 31})``. Setting a
    name again replaces its value; ``None`` removes it. ``at`` fixes the
    evaluation instant (an aware datetime) instead of reading the clock.
    Use it as a context manager, or call ``close()``, to free it promptly.
    One context may be read by many threads, but not while being changed.
    """

    __slots__ = ("_native",)

    def __init__(self, key=None, attrs=None, *, at=None):
        ptr = lib.flags_context_new()
        if not ptr:
            raise MemoryError("flags_context_new")
        self._native = Handle(ptr, lib.flags_context_free)
        if key is not None:
            self.set_key(key)
        if attrs:
            self.update(attrs)
        if at is not None:
            self.set_instant(at)

    def _handle(self):
        """The native Handle; callers keep it in a local for their call."""
        handle = self._native
        if handle is None:
            raise ClosedError("this Context is closed")
        return handle

    def set_key(self, key):
        """Sets the targeting key (the default bucketing unit)."""
        handle, data = self._handle(), utf8(key, "key")
        _native.check(lib.flags_context_set_key(handle.ptr, data, len(data)))
        return self

    def set(self, name, value):
        """Sets one attribute; ``None`` removes it."""
        handle = self._handle()
        ptr = handle.ptr
        data = utf8(name, "attribute name")
        if value is None:
            status = lib.flags_context_remove(ptr, data, len(data))
        elif isinstance(value, bool):
            status = lib.flags_context_set_bool(ptr, data, len(data), value)
        elif isinstance(value, (int, float)):
            status = lib.flags_context_set_number(ptr, data, len(data), float(value))
        elif isinstance(value, str):
            encoded = value.encode("utf-8")
            status = lib.flags_context_set_string(ptr, data, len(data), encoded, len(encoded))
        elif isinstance(value, (list, tuple, set, frozenset)):
            encoded = [utf8(item, f"element of attribute {name!r}") for item in value]
            items = (_native.FlagsStr * len(encoded))(
                *(_native.FlagsStr(ctypes.cast(e, ctypes.c_void_p), len(e)) for e in encoded)
            )
            status = lib.flags_context_set_string_list(ptr, data, len(data), items, len(encoded))
        else:
            raise TypeError(
                f"attribute {name!r} must be str, int, float, bool, a list of str or None, "
                f"not {type(value).__name__}"
            )
        _native.check(status)
        return self

    def update(self, attrs):
        """Sets every attribute of a mapping."""
        for name, value in attrs.items():
            self.set(name, value)
        return self

    def set_instant(self, at):
        """Evaluates at `at` (an aware datetime); ``None`` goes back to the clock."""
        handle = self._handle()
        ptr = handle.ptr
        if at is None:
            _native.check(lib.flags_context_clear_instant(ptr))
            return self
        if not isinstance(at, datetime.datetime):
            raise TypeError(f"at must be a datetime, not {type(at).__name__}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("at must be timezone-aware: a local time means different instants")
        since = at - _EPOCH
        seconds = since.days * 86400 + since.seconds
        _native.check(lib.flags_context_set_instant(ptr, seconds, since.microseconds * 1000))
        return self

    def clear(self):
        """Removes the key, every attribute and the instant."""
        handle = self._handle()
        _native.check(lib.flags_context_clear(handle.ptr))
        return self

    def close(self):
        """Frees the native context (once no call is using it); using the
        Context afterwards raises ClosedError."""
        self._native = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
