"""flags: the Python SDK of the flags feature-flag engine.

A thin, idiomatic layer over the engine's C ABI (libflags_ffi, loaded with
ctypes from FLAGS_LIB or the cargo target directory), so Python gets the
same answers as the Rust crate and the server. Not a reimplementation of
the engine, and no compiled extension to build.

    from flags import Flags, Context

    flags = Flags.from_file("flags.toml")
    ctx = Context(key="user-1", attrs={"country": "US"})
    if flags.bool("new-checkout", ctx, default=False):
        ...
"""

from .context import Context
from .detail import Detail, ErrorCode, Reason
from .engine import Flags, Snapshot, bucket
from .errors import (
    ClosedError,
    ConfigError,
    ConfigFileError,
    ConfigWarning,
    FlagsError,
    LibraryError,
)

__all__ = [
    "ClosedError",
    "ConfigError",
    "ConfigFileError",
    "ConfigWarning",
    "Context",
    "Detail",
    "ErrorCode",
    "Flags",
    "FlagsError",
    "LibraryError",
    "Reason",
    "Snapshot",
    "bucket",
]
