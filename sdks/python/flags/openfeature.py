"""flags.openfeature: an in-process OpenFeature provider (for the
``openfeature-sdk`` package) over the flags engine, so an application
written against OpenFeature evaluates flags.toml in its own process, with
no network round trip and the same answers as every other binding.

How an evaluation maps onto OpenFeature (as the Rust provider,
flags-openfeature, maps it):

- value and variant as served; reason ``STATIC``, ``TARGETING_MATCH``,
  ``SPLIT``, ``DISABLED`` (a disabled flag's ``off_variant``) or ``DEFAULT``;
- a disabled flag without ``off_variant`` serves no value: the caller's
  default, reason ``DISABLED``, no error;
- errors: ``FLAG_NOT_FOUND``; ``PARSE_ERROR`` for a flag the file defines
  with errors and no previous version to serve; ``TYPE_MISMATCH`` when the
  flag's values are not of the type asked for: types are strict, so a
  boolean flag is not an integer (though Python's ``bool`` is an ``int``)
  and an integer flag is not a float; ``INVALID_CONTEXT`` for a context
  value the engine cannot take. ``TARGETING_KEY_MISSING`` is never raised:
  a rollout without a unit falls through to the next rule, as everywhere;
- flag metadata: the engine's keys the SDK reports (``Detail.flag_metadata``:
  ``flagVersion``, ``ruleIndex``, ``ruleName``, ``bucket``, ``enrolled``,
  ``stale`` and ``overridden`` when true, ``arm``, ``killedBy``), then the
  flag's declared ``metadata``.

Needs ``pip install flags[openfeature]``. Uses the SDK's API (``Flags``,
``Context``, dict contexts) and ``Flags._resolution``, ``detail()`` in one
call made for this provider. Not here: the engine (the extension,
``flags._flags``), exposure reporting (not offered by this provider).
"""

import datetime

from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode as OpenFeatureErrorCode
from openfeature.exception import InvalidContextError
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.flag_evaluation import Reason as OpenFeatureReason
from openfeature.provider import AbstractProvider, Metadata

# ENGINE_METADATA_KEYS: the flag-metadata keys the engine sets itself
# (OFREP's `metadata` keys); a flag cannot declare them, so every other key
# is the flag's own. This provider sets all but `configVersion`, which the
# SDK's Detail does not carry.
from ._flags import ENGINE_METADATA_KEYS, Context, Flags
from .detail import ErrorCode, Reason

__all__ = ["ENGINE_METADATA_KEYS", "FlagsProvider", "flags_context"]

#: The dict key that holds the targeting key (see ``flags.Flags``).
_TARGETING_KEY = "targeting_key"
#: The attributes of no context (read, never written).
_NO_ATTRIBUTES = {}
_REASONS = {reason: OpenFeatureReason(reason.value) for reason in Reason}
_TYPE_NAMES = {bool: "a boolean", str: "a string", int: "an integer", float: "a float", dict: "an object"}


def flags_context(evaluation_context, at=None):
    """OpenFeature's ``EvaluationContext`` as the engine's context: a plain
    dict (read in place by the engine), or a ``Context`` when ``at`` fixes
    the evaluation instant or an attribute is itself named
    ``targeting_key`` (a dict cannot tell it from the key).

    The targeting key is the unit; attributes map to attributes: str, int,
    float and bool as they are (int and float are both numbers, so ``18``
    equals ``18.0``), a list, tuple or set of str as a list, an aware
    datetime as its RFC 3339 text in UTC. Values the format cannot test
    (mappings, lists of anything but str) and ``None`` are left out, as in
    the Rust provider. A naive datetime (which instant?) or a key that is
    not a str raises ``InvalidContextError``.
    """
    key, attributes, ctx = _unit(evaluation_context, at)
    if ctx is not None:
        return ctx
    return attributes if key is None else {**attributes, _TARGETING_KEY: key}


def _unit(evaluation_context, at):
    """``(key, attributes, None)`` for ``Flags.detail(key=, attrs=)``, the
    cheap form (nothing copied when every attribute is already a value the
    engine takes), or ``(None, None, Context)`` when a dict cannot say it
    (see ``flags_context``)."""
    if evaluation_context is None:
        key, attributes = None, {}
    else:
        key, attributes = evaluation_context.targeting_key, evaluation_context.attributes
    if key is not None and not isinstance(key, str):
        raise InvalidContextError(f"the targeting key must be a str, not {type(key).__name__}")
    if not _plain(attributes):
        attributes = _mapped(attributes)
    if at is None and _TARGETING_KEY not in attributes:
        return key, attributes, None
    try:
        return None, None, Context(key, attributes, at=at)
    except (TypeError, ValueError) as e:
        raise InvalidContextError(str(e)) from None


#: Attribute types the engine takes as they are (None: absent).
_PLAIN_TYPES = frozenset({str, bool, int, float, type(None)})


def _plain(attributes):
    """Whether every value is of a type the engine takes as it is."""
    for value in attributes.values():
        if type(value) not in _PLAIN_TYPES:
            return False
    return True


def _mapped(attributes):
    """The attributes the engine can test, converted (``_attribute``)."""
    mapped = {}
    for name, value in attributes.items():
        value = _attribute(name, value)
        if value is not None:
            mapped[name] = value
    return mapped


def _attribute(name, value):
    """An attribute value as the engine takes it, or None to leave it out."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime.datetime):
        return _rfc3339(name, value)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(item, str) for item in value):
        return value
    return None


def _rfc3339(name, at):
    """``at`` in UTC as the engine prints instants (``2026-12-01T10:00:00Z``,
    with .mmm or .uuuuuu only when there are fractions of a second)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidContextError(
            f"attribute {name!r} is a naive datetime: give it a timezone, a local time means different instants"
        )
    utc = at.astimezone(datetime.timezone.utc)
    micros = utc.microsecond
    fraction = "" if micros == 0 else f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


class FlagsProvider(AbstractProvider):
    """An OpenFeature provider over a ``Flags`` engine.

    ``FlagsProvider(flags)`` serves an engine you made (and keep: updates
    you make to it are served at once, and ``shutdown`` leaves it open);
    ``FlagsProvider.from_file(path)`` loads one it owns, and ``reload()``
    reads the file again. ``at`` (an aware datetime) fixes the evaluation
    instant, for tests and replays.
    """

    def __init__(self, flags, *, at=None):
        super().__init__()
        if not isinstance(flags, Flags):
            raise TypeError(f"flags must be a flags.Flags, not {type(flags).__name__}")
        self._flags = flags
        self._at = at
        self._path = None
        self._metadata = Metadata(name="flags")

    @classmethod
    def from_file(cls, path, *, at=None):
        """Loads a flags.toml (errors and warnings as ``Flags.from_file``)."""
        provider = cls(Flags.from_file(path), at=at)
        provider._path = path
        return provider

    @property
    def flags(self):
        """The engine served: its ``problems`` list what its last load rejected."""
        return self._flags

    def reload(self):
        """Reads the file again, with the engine's per-flag last-known-good
        merge (``Flags.update_file``), and tells OpenFeature the
        configuration changed. Returns the problems (empty when all is
        valid); raises, serving the previous config, if the file cannot be
        read or used at all."""
        if self._path is None:
            raise ValueError("this provider was given an engine, not a file: update the engine itself")
        problems = self._flags.update_file(self._path)
        self.emit_provider_configuration_changed(ProviderEventDetails(message="flags.toml reloaded"))
        return problems

    def shutdown(self):
        """Closes the engine if the provider loaded it."""
        if self._path is not None:
            self._flags.close()

    def get_metadata(self):
        return self._metadata

    def resolve_boolean_details(self, flag_key, default_value, evaluation_context=None):
        return self._resolve(flag_key, default_value, evaluation_context, bool)

    def resolve_string_details(self, flag_key, default_value, evaluation_context=None):
        return self._resolve(flag_key, default_value, evaluation_context, str)

    def resolve_integer_details(self, flag_key, default_value, evaluation_context=None):
        return self._resolve(flag_key, default_value, evaluation_context, int)

    def resolve_float_details(self, flag_key, default_value, evaluation_context=None):
        return self._resolve(flag_key, default_value, evaluation_context, float)

    def resolve_object_details(self, flag_key, default_value, evaluation_context=None):
        return self._resolve(flag_key, default_value, evaluation_context, dict)

    def _resolve(self, flag_key, default_value, evaluation_context, value_type):
        # The metadata is a read-only FlagMetadata, as OpenFeature requires (spec 1.4.15.1).
        value, variant, reason, error, metadata = self._resolution(flag_key, evaluation_context, value_type)
        if error is not None:
            return self._error(flag_key, default_value, error, metadata, value_type)
        if variant is None:
            # Disabled without an off_variant: the caller's default, as the kill intends.
            return FlagResolutionDetails(
                value=default_value, reason=OpenFeatureReason.DISABLED, flag_metadata=metadata
            )
        return FlagResolutionDetails(value=value, variant=variant, reason=_REASONS[reason], flag_metadata=metadata)

    def _resolution(self, flag_key, evaluation_context, value_type):
        """The extension's ``Flags._resolution`` (what ``detail()`` and five of
        its attributes would give, in one call) for this context. OpenFeature's
        attributes are handed over as they are, for the engine to read in
        place; only when it refuses one (a datetime, a mapping, a list of
        numbers), when the instant is fixed, or when an attribute is named
        like the key, are they mapped first (``_unit``)."""
        if evaluation_context is None:
            key, attributes = None, _NO_ATTRIBUTES
        else:
            key, attributes = evaluation_context.targeting_key, evaluation_context.attributes
        if self._at is None and _TARGETING_KEY not in attributes:
            try:
                return self._flags._resolution(flag_key, None, key=key, attrs=attributes, type=value_type)
            except TypeError:
                pass  # a value the engine does not take as it is: mapped below
        key, attributes, ctx = _unit(evaluation_context, self._at)
        return self._flags._resolution(flag_key, ctx, key=key, attrs=attributes, type=value_type)

    def _error(self, flag_key, default_value, error, metadata, value_type):
        if error == ErrorCode.TYPE_MISMATCH:
            code = OpenFeatureErrorCode.TYPE_MISMATCH
            message = f"flag {flag_key!r} is not {_TYPE_NAMES[value_type]} flag"
        else:
            problem = self._problem(flag_key)
            if problem is None:
                code, message = OpenFeatureErrorCode.FLAG_NOT_FOUND, f"no flag {flag_key!r}"
            else:
                code = OpenFeatureErrorCode.PARSE_ERROR
                message = f"flag {flag_key!r} has errors and no previous version to serve: {problem}"
        return FlagResolutionDetails(
            value=default_value,
            reason=OpenFeatureReason.ERROR,
            error_code=code,
            error_message=message,
            flag_metadata=metadata,
        )

    def _problem(self, flag_key):
        """The engine's problem with ``flag_key`` (a line ``[file:]line:column:
        flags.KEY: message``), or None when the file does not define it."""
        section = f"flags.{flag_key}: "
        for problem in self._flags.problems:
            if problem.startswith(section) or f": {section}" in problem:
                return problem
        return None
