"""The names an evaluation's Detail reports: why it served what it served
(Reason) and why it failed (ErrorCode), as OpenFeature names them.

Not here: Detail itself, which the extension (flags._flags) makes without
copying the evaluation into Python objects until an attribute is read.
"""

import enum


class Reason(str, enum.Enum):
    """Why an evaluation served what it served (OpenFeature's names)."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    DEFAULT = "DEFAULT"
    ERROR = "ERROR"


class ErrorCode(str, enum.Enum):
    """Why an evaluation failed (OpenFeature's names)."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
