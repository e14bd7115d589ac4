"""Detail: everything about one evaluation, as a plain Python value copied
out of the native FlagsDetail (so it outlives the snapshot it came from).

Not here: evaluating (engine.py).
"""

import dataclasses
import enum
import json
from typing import Any, Optional

from . import _native


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


# Index = the C enum's value.
_REASONS = list(Reason)
_ERRORS = {
    _native.FLAG_NOT_FOUND: ErrorCode.FLAG_NOT_FOUND,
    _native.TYPE_MISMATCH: ErrorCode.TYPE_MISMATCH,
}

# FlagsType codes, and how to read each value out of a FlagsDetail.
TYPE_CODES = {None: 0, bool: 1, str: 2, int: 3, float: 4, dict: 5}
_VALUE_READERS = {
    0: lambda d: None,
    1: lambda d: d.bool_value,
    2: lambda d: _native.text(d.string_value),
    3: lambda d: d.int_value,
    4: lambda d: d.float_value,
    5: lambda d: json.loads(_native.text(d.string_value)),
}


@dataclasses.dataclass(frozen=True)
class Detail:
    """One evaluation: the value and variant served, and why.

    ``error`` is set when ``reason`` is ``Reason.ERROR`` (value and variant
    are then None); ``rule_index``/``rule_name`` name the deciding rule,
    ``bucket`` is the bucket it drew, ``enrolled`` means log an exposure.
    ``metadata`` is the flag's declared metadata (empty when it declares
    none, or is unknown).
    """

    flag: str
    value: Any
    variant: Optional[str]
    reason: Reason
    error: Optional[ErrorCode]
    rule_index: Optional[int]
    rule_name: Optional[str]
    bucket: Optional[int]
    enrolled: bool
    stale: bool
    overridden: bool
    flag_version: Optional[str]
    unmet_prerequisite: Optional[str]
    metadata: dict

    @classmethod
    def _from_native(cls, flag, d):
        return cls(
            flag=flag,
            value=_VALUE_READERS[d.value_type](d),
            variant=_native.text(d.variant),
            reason=_REASONS[d.reason],
            error=_ERRORS.get(d.error),
            rule_index=None if d.rule_index < 0 else d.rule_index,
            rule_name=_native.text(d.rule_name),
            bucket=None if d.bucket < 0 else d.bucket,
            enrolled=d.enrolled,
            stale=d.stale,
            overridden=d.overridden,
            # The same 16-hex-digit form the Rust crate and the server print.
            flag_version=f"{d.flag_version:016x}" if d.has_flag_version else None,
            unmet_prerequisite=_native.text(d.unmet_prerequisite),
            metadata=json.loads(_native.text(d.metadata_json) or "{}"),
        )
