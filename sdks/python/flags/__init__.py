"""flags: the Python SDK of the flags feature-flag engine.

A thin, idiomatic layer over the engine itself, compiled into this package
as the extension module ``flags._flags`` (pyo3 over the Rust crate), so
Python gets the same answers as the Rust crate and the server. Not a
reimplementation of the engine.

    from flags import Flags

    flags = Flags.from_file("flags.toml")
    if flags.bool("new-checkout", {"targeting_key": "user-1", "country": "US"}):
        ...

sdks/python/README.md has the whole guide.
"""

from collections.abc import Mapping

from ._flags import Context, Detail, FlagMetadata, Flags, Snapshot, bucket
from .detail import ErrorCode, Reason
from .errors import ClosedError, ConfigError, ConfigFileError, ConfigWarning, FlagsError

__all__ = [
    "ClosedError",
    "ConfigError",
    "ConfigFileError",
    "ConfigWarning",
    "Context",
    "Detail",
    "ErrorCode",
    "FlagMetadata",
    "Flags",
    "FlagsError",
    "Reason",
    "Snapshot",
    "bucket",
]

# A Detail's flag_metadata is read-only and made lazily in Rust; it is a
# Mapping like any other for isinstance checks (OpenFeature's FlagMetadata).
Mapping.register(FlagMetadata)
