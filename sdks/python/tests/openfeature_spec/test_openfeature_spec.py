"""OpenFeature's own Gherkin features (tests/openfeature/*.feature at the
repository root, copied from the specification repository, the same copies
the Rust provider runs) through the Python provider and OpenFeature's
Python SDK, with pytest-bdd, against tests/openfeature/flags.toml.

Scenarios about an SDK's provider state machine and the CACHED reason are
skipped (conftest.py, and tests/openfeature/README.md says why). Unlike
Rust's, the Python SDK has default values and error codes in its details,
so the steps read what the features name directly.

Not here: the provider's own tests (../test_openfeature.py).
"""

import asyncio
import copy
import itertools
import json
from pathlib import Path

import pytest

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationOptions
from openfeature.hook import Hook
from pytest_bdd import given, parsers, scenarios, then, when

from flags.openfeature import ENGINE_METADATA_KEYS, FlagsProvider

SPEC = Path(__file__).resolve().parents[4] / "tests" / "openfeature"

scenarios(str(SPEC))

# Each scenario's provider gets a domain of its own.
DOMAINS = itertools.count()

# The client's method for each type the features name.
METHODS = {
    "boolean": "get_boolean_details",
    "string": "get_string_details",
    "integer": "get_integer_details",
    "float": "get_float_details",
    "object": "get_object_details",
}


def typed(flag_type, text):
    """``text`` as a value of the features' ``flag_type`` (Boolean, ...)."""
    flag_type = flag_type.lower()
    if flag_type == "boolean":
        return text == "true"
    if flag_type == "integer":
        return int(text)
    if flag_type == "float":
        return float(text)
    if flag_type == "object":
        return json.loads(text.replace('\\"', '"'))
    return text


def assert_same(value, expected):
    # == alone would take True for 1 and 0 for 0.0.
    assert (value, type(value)) == (expected, type(expected))


class Spec:
    """One scenario's state: the client, the flag under test, the context,
    the outcome and the hooks' calls."""

    def __init__(self):
        self.client = None
        self.flag = None  # (type, key, fallback as a value)
        self.context = EvaluationContext()
        self.original = None
        self.options = None
        self.details = None
        self.calls = []

    def evaluate(self):
        flag_type, key, fallback = self.flag
        method = getattr(self.client, METHODS[flag_type])
        self.details = method(key, fallback, self.context, self.options)

    def called(self, hook, stage):
        return [details for name, at, details in self.calls if (name, at) == (hook, stage)]


class Recorder(Hook):
    """Records each stage it sees, with the details it was given."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def before(self, hook_context, hints):
        self.calls.append((self.name, "before", None))

    def after(self, hook_context, details, hints):
        self.calls.append((self.name, "after", details))

    def error(self, hook_context, exception, hints):
        self.calls.append((self.name, "error", exception))

    def finally_after(self, hook_context, details, hints):
        self.calls.append((self.name, "finally", details))


@pytest.fixture
def spec():
    yield Spec()
    api.clear_providers()


# --- Providers, flags and contexts --------------------------------------------


@given("a stable provider")
def stable_provider(spec):
    provider = FlagsProvider.from_file(SPEC / "flags.toml")
    assert provider.flags.problems == []
    domain = f"spec-{next(DOMAINS)}"
    api.set_provider(provider, domain)
    spec.client = api.get_client(domain)


@given(parsers.re(r'an? (?P<flag_type>[A-Za-z]+)-flag with key "(?P<key>.*)" and a fallback value "(?P<fallback>.*)"'))
def a_flag(spec, flag_type, key, fallback):
    spec.flag = (flag_type.lower(), key, typed(flag_type, fallback))


@given(parsers.re(r'a context containing a key "(?P<key>.*)", with type "(?P<attr_type>.*)" and with value "(?P<value>.*)"'))
def context_attribute(spec, key, attr_type, value):
    spec.context.attributes[key] = typed(attr_type, value)


@given(parsers.re(r'a context containing a key "(?P<key>.*)" with null value'))
def null_attribute(spec, key):
    spec.context.attributes[key] = None


@given("an evaluation context with modifiable data")
def modifiable_context(spec):
    spec.context = EvaluationContext("user-1", {"email": "ballmer@macrosoft.com"})
    spec.original = copy.deepcopy(spec.context)


@given("evaluation options containing specific hooks")
def option_hooks(spec):
    spec.options = FlagEvaluationOptions(hooks=[Recorder("A", spec.calls), Recorder("B", spec.calls)])


@given("a client with added hook")
def client_hook(spec):
    spec.client.add_hooks([Recorder("client", spec.calls)])


# --- Evaluating ------------------------------------------------------------------


@when("the flag was evaluated with details")
@when("the flag was evaluated with details using the evaluation options")
def evaluated(spec):
    spec.evaluate()


@when("the flag was evaluated with details asynchronously")
def evaluated_asynchronously(spec):
    flag_type, key, fallback = spec.flag
    method = getattr(spec.client, METHODS[flag_type] + "_async")
    spec.details = asyncio.run(method(key, fallback, spec.context))


@then("the evaluation should complete without blocking")
def completed(spec):
    assert spec.details is not None


# --- Results ----------------------------------------------------------------------


@then(parsers.re(r'the resolved details value should be "(?P<value>.*)"'))
def resolved_value(spec, value):
    assert_same(spec.details.value, typed(spec.flag[0], value))


@then(parsers.re(r'the reason should be "(?P<reason>.*)"'))
def reason(spec, reason):
    assert spec.details.reason == reason, spec.details


@then(parsers.re(r'the error-code should be "(?P<code>.*)"'))
def error_code(spec, code):
    assert spec.details.error_code == code, spec.details


@then(parsers.re(r'the variant should be "(?P<variant>[^"]*)"'))
def variant(spec, variant):
    assert spec.details.variant == variant


@then(parsers.re(r'the flag key should be "(?P<key>.*)"'))
def flag_key(spec, key):
    assert spec.details.flag_key == key


@then("the resolved metadata should contain")
def metadata_contains(spec, datatable):
    header, *rows = datatable
    assert header == ["key", "metadata_type", "value"]
    for key, metadata_type, value in rows:
        assert_same(spec.details.flag_metadata[key], typed(metadata_type, value))


@then("the resolved metadata is empty")
def metadata_empty(spec):
    # The engine's own keys (flagVersion, ...) describe the evaluation, not
    # the flag: "empty" is read as "the flag declares no metadata".
    declared = {k: v for k, v in spec.details.flag_metadata.items() if k not in ENGINE_METADATA_KEYS}
    assert declared == {}


@then("the original evaluation context should remain unmodified")
def context_unmodified(spec):
    assert spec.context == spec.original


@then("the evaluation details should be immutable")
def details_immutable(spec):
    with pytest.raises(TypeError):
        spec.details.flag_metadata["flagVersion"] = "changed"
    assert (spec.details.value, spec.details.variant) == (True, "on")


# --- Hooks -------------------------------------------------------------------------


@then(parsers.re(r'the "(?P<stage>[a-z]+)" hook should have been executed'))
def hook_executed(spec, stage):
    assert len(spec.called("client", stage)) == 1, spec.calls


@then(parsers.re(r'the "(?P<stages>.*)" hooks should be called with evaluation details'))
def hooks_called_with(spec, stages, datatable):
    header, *rows = datatable
    assert header == ["data_type", "key", "value"]
    for stage in stages.split(", "):
        (details,) = spec.called("client", stage)
        for data_type, key, value in rows:
            expected = None if value == "null" else typed(data_type, value)
            if key == "value":
                expected = typed(spec.flag[0], value)
            assert getattr(details, key) == expected, (stage, key, details)


@then("the specified hooks should execute during evaluation")
def option_hooks_ran(spec):
    for hook in ("A", "B"):
        for stage in ("before", "after", "finally"):
            assert len(spec.called(hook, stage)) == 1, (hook, stage)


@then("the hook order should be maintained")
def hook_order(spec):
    order = [(hook, stage) for hook, stage, _ in spec.calls]
    # before in the order given; after and finally reversed.
    assert order == [
        ("A", "before"),
        ("B", "before"),
        ("B", "after"),
        ("A", "after"),
        ("B", "finally"),
        ("A", "finally"),
    ]


# --- evaluation.feature (the deprecated wording) --------------------------------


@when(
    parsers.re(
        r'an? (?P<flag_type>boolean|string|integer|float) flag with key "(?P<key>.*)" is evaluated'
        r' with (?:details and )?default value "?(?P<fallback>[^"]*)"?'
    )
)
def old_evaluation(spec, flag_type, key, fallback):
    spec.flag = (flag_type, key, typed(flag_type, fallback))
    spec.evaluate()


@when(parsers.re(r'an object flag with key "(?P<key>.*)" is evaluated with (?:details and )?a null default value'))
def old_object(spec, key):
    spec.flag = ("object", key, None)
    spec.evaluate()


@then(parsers.re(r'the resolved (?P<flag_type>boolean|string|integer|float) value should be "?(?P<value>[^"]*)"?'))
def old_value(spec, flag_type, value):
    assert_same(spec.details.value, typed(flag_type, value))


@then(
    parsers.re(
        r'the resolved (?P<flag_type>boolean|string|integer|float) details value should be "?(?P<value>[^",]*)"?,'
        r' the variant should be "(?P<variant>.*)", and the reason should be "(?P<reason>.*)"'
    )
)
def old_details(spec, flag_type, value, variant, reason):
    assert_same(spec.details.value, typed(flag_type, value))
    assert (spec.details.variant, spec.details.reason) == (variant, reason)


@then(
    parsers.re(
        r'the resolved object (?:details )?value should be contain fields "(?P<a>.*)", "(?P<b>.*)", and "(?P<c>.*)",'
        r' with values "(?P<x>.*)", "(?P<y>.*)" and (?P<z>\d+), respectively'
    )
)
def old_object_value(spec, a, b, c, x, y, z):
    value = spec.details.value
    assert_same(value[a], x == "true")
    assert_same(value[b], y)
    assert_same(value[c], int(z))


@then(parsers.re(r'the variant should be "(?P<variant>.*)", and the reason should be "(?P<reason>.*)"'))
def old_variant_reason(spec, variant, reason):
    assert (spec.details.variant, spec.details.reason) == (variant, reason)


@when(parsers.re(r"context contains keys (?P<keys>.*) with values (?P<values>.*)"))
def old_context(spec, keys, values):
    # `"fn", "ln", ...` and `"Sulisław", "Świętopełk", 29, "false"`: quoted
    # text is a string (`"true"`/`"false"` a boolean: flagd's test bed has
    # `customer` as a boolean), bare digits an integer.
    def value(text):
        if not text.startswith('"'):
            return int(text)
        text = text.strip('"')
        return {"true": True, "false": False}.get(text, text)

    names = [key.strip('"') for key in keys.split(", ")]
    spec.context = EvaluationContext(attributes=dict(zip(names, map(value, values.split(", ")))))


@when(parsers.re(r'a flag with key "(?P<key>.*)" is evaluated with default value "(?P<fallback>.*)"'))
def old_string_flag(spec, key, fallback):
    spec.flag = ("string", key, fallback)
    spec.evaluate()


@then(parsers.re(r'the resolved string response should be "(?P<value>.*)"'))
def old_string_response(spec, value):
    assert spec.details.value == value


@then(parsers.re(r'the resolved flag value is "(?P<value>.*)" when the context is empty'))
def old_empty_context(spec, value):
    spec.context = EvaluationContext()
    spec.evaluate()
    assert spec.details.value == value


@when(
    parsers.re(
        r'a non-existent string flag with key "(?P<key>.*)" is evaluated with details and a fallback value "(?P<fallback>.*)"'
    )
)
def old_missing(spec, key, fallback):
    spec.flag = ("string", key, fallback)
    spec.evaluate()


@when(
    parsers.re(
        r'a string flag with key "(?P<key>.*)" is evaluated as an integer, with details and a fallback value (?P<fallback>\d+)'
    )
)
def old_mismatch(spec, key, fallback):
    spec.flag = ("integer", key, int(fallback))
    spec.evaluate()


@then(parsers.re(r"the default (?P<flag_type>string|integer) value should be returned"))
def old_default_returned(spec, flag_type):
    assert_same(spec.details.value, spec.flag[2])


@then(
    parsers.re(
        r"the reason should indicate an error and the error code should indicate an? (?:missing flag|type mismatch)"
        r' with "(?P<code>.*)"'
    )
)
def old_error(spec, code):
    assert (spec.details.reason, spec.details.error_code) == ("ERROR", code)
