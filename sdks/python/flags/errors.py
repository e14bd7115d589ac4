"""The exceptions the SDK raises, one per kind of caller mistake or failure.

Not raised for evaluation outcomes: an unknown flag or a value of another
type gives the default from the typed getters, and an error in a Detail.
Wrong argument types raise TypeError, as everywhere in Python.
"""


class FlagsError(Exception):
    """Base class of every error the SDK raises."""


class ConfigError(FlagsError, ValueError):
    """The config cannot be used at all (not TOML, wrong version, ...);
    nothing was created or changed. The message lists every problem."""


class ConfigFileError(FlagsError, OSError):
    """A config file could not be read."""


class ClosedError(FlagsError, ValueError):
    """A closed Flags, Snapshot or Context was used."""


class ConfigWarning(UserWarning):
    """A config loaded, but some flags in it were rejected (see `problems`)."""
