"""The OpenFeature provider's mapping (flags.openfeature): every reason and
error code, strict types (each bad case beside its good one), flag
metadata, the evaluation context, reloading and the provider's life cycle.

Not here: the shared conformance cases (test_openfeature_conformance.py) and
OpenFeature's Gherkin suite (test_openfeature_spec.py).
"""

import asyncio
import datetime

import pytest

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode, InvalidContextError
from openfeature.flag_evaluation import Reason

from flags import ClosedError, ConfigError, ConfigWarning, Context, Flags
from flags.openfeature import FlagsProvider, flags_context

CONFIG = """
version = 1
[flags.static]
variants = { on = true, off = false }
default = "on"
metadata = { team = "web", ticket = 7, ratio = 0.5, public = true }
[flags.staff]
[[flags.staff.rules]]
name = "corp"
when = [{ attr = "email", op = "ends_with", value = "@corp.example" }]
serve = "on"
[flags.rollout]
[[flags.rollout.rules]]
serve = "on"
rollout = 100
[flags.killed]
enabled = false
variants = { lit = "L", unlit = "U" }
default = "lit"
[flags.dimmed]
enabled = false
variants = { lit = "L", unlit = "U" }
default = "lit"
off_variant = "unlit"
[flags.limit]
variants = { small = 10, large = 100 }
default = "small"
[flags.rate]
variants = { some = 0.25 }
default = "some"
[flags.settings]
variants = { standard = { steps = 3, express = false } }
default = "standard"
[flags.buyers]
[[flags.buyers.rules]]
when = [{ attr = "roles", op = "contains", value = "buyer" }, { attr = "age", op = "gte", value = 18 }, { attr = "admin", op = "eq", value = true }]
serve = "on"
[flags.holidays]
[[flags.holidays.rules]]
when = [{ attr = "now", op = "after", value = 2026-12-20T00:00:00Z }]
serve = "on"
[flags.signed-up-at]
[[flags.signed-up-at.rules]]
when = [{ attr = "signed_up", op = "in", values = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.600Z", "2026-01-01T00:00:00.500001Z"] }]
serve = "on"
[flags.signed-up-early]
[[flags.signed-up-early.rules]]
when = [{ attr = "signed_up", op = "before", value = 2026-01-01T00:00:00.5Z }]
serve = "on"
"""

USER = EvaluationContext("user-1", {"email": "a@corp.example"})


@pytest.fixture
def engine():
    with Flags.from_toml(CONFIG) as engine:
        yield engine


@pytest.fixture
def provider(engine):
    return FlagsProvider(engine)


@pytest.fixture
def client(provider):
    api.set_provider(provider, "unit")
    yield api.get_client("unit")
    api.clear_providers()


def test_the_provider_is_named_flags(provider):
    assert provider.get_metadata().name == "flags"


def test_every_reason(provider):
    resolve = provider.resolve_boolean_details
    assert resolve("static", False, USER).reason == Reason.STATIC
    staff = resolve("staff", False, USER)
    assert (staff.value, staff.variant, staff.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert resolve("staff", True, EvaluationContext("user-2")).reason == Reason.DEFAULT
    assert resolve("rollout", False, USER).reason == Reason.SPLIT
    dimmed = provider.resolve_string_details("dimmed", "mine", USER)
    assert (dimmed.value, dimmed.variant, dimmed.reason, dimmed.error_code) == ("U", "unlit", Reason.DISABLED, None)
    missing = resolve("nope", True, USER)
    assert (missing.value, missing.reason, missing.error_code) == (True, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)


def test_a_disabled_flag_without_off_variant_serves_the_callers_default(client):
    killed = client.get_string_details("killed", "mine", USER)
    assert (killed.value, killed.variant, killed.reason, killed.error_code) == ("mine", None, Reason.DISABLED, None)
    assert client.get_string_value("dimmed", "mine", USER) == "U"


@pytest.mark.parametrize(
    ("method", "flag", "default", "served"),
    [
        ("get_boolean_details", "static", False, True),
        ("get_string_details", "dimmed", "x", "U"),
        ("get_integer_details", "limit", 1, 10),
        ("get_float_details", "rate", 1.5, 0.25),
        ("get_object_details", "settings", {}, {"steps": 3, "express": False}),
    ],
)
def test_each_type_reads_its_own_flags(client, method, flag, default, served):
    details = getattr(client, method)(flag, default, USER)
    assert (details.value, details.error_code) == (served, None)
    assert type(details.value) is type(served)


@pytest.mark.parametrize(
    ("method", "flag", "default"),
    [
        # Python's bool is an int, but a boolean flag is not an integer flag.
        ("get_integer_details", "static", 3),
        ("get_float_details", "static", 1.5),
        # Integers and floats are different types, as in the format.
        ("get_float_details", "limit", 1.5),
        ("get_integer_details", "rate", 3),
        ("get_boolean_details", "limit", False),
        ("get_string_details", "settings", "x"),
        ("get_object_details", "dimmed", {"a": 1}),
    ],
)
def test_types_are_strict(client, method, flag, default):
    details = getattr(client, method)(flag, default, USER)
    assert (details.value, details.reason, details.error_code) == (default, Reason.ERROR, ErrorCode.TYPE_MISMATCH)
    assert flag in details.error_message


def test_a_flag_defined_with_errors_is_a_parse_error(client):
    with pytest.warns(ConfigWarning, match="flags.broken"):
        broken = Flags.from_toml(CONFIG + '[flags.broken]\ndefault = "missing"\n')
    api.set_provider(FlagsProvider(broken), "unit")
    details = client.get_boolean_details("broken", True, USER)
    assert (details.value, details.error_code) == (True, ErrorCode.PARSE_ERROR)
    assert "unknown variant `missing`" in details.error_message
    # A key that merely starts like it is not that flag.
    assert client.get_boolean_details("broke", True, USER).error_code == ErrorCode.FLAG_NOT_FOUND
    broken.close()


def test_flag_metadata_has_the_engines_keys_then_the_flags_own(client):
    static = client.get_boolean_details("static", False, USER).flag_metadata
    assert set(static) == {"flagVersion", "team", "ticket", "ratio", "public"}
    assert (static["team"], static["ticket"], static["ratio"], static["public"]) == ("web", 7, 0.5, True)
    assert len(static["flagVersion"]) == 16
    staff = client.get_boolean_details("staff", False, USER).flag_metadata
    assert (staff["ruleIndex"], staff["ruleName"]) == (0, "corp")
    rollout = client.get_boolean_details("rollout", False, USER).flag_metadata
    assert 0 <= rollout["bucket"] < 1_000_000 and "ruleName" not in rollout
    mismatch = client.get_integer_details("static", 0, USER).flag_metadata
    assert mismatch["team"] == "web", "a type mismatch still names the flag's metadata"
    assert client.get_boolean_details("nope", False, USER).flag_metadata == {}
    for disabled in ("killed", "dimmed"):
        assert client.get_string_details(disabled, "x", USER).flag_metadata["killedBy"] == "file"
    assert "killedBy" not in static
    with pytest.raises(TypeError):  # read-only, as OpenFeature requires (spec 1.4.15.1)
        static["team"] = "other"


def test_stale_and_overridden_are_in_the_metadata(engine, client, monkeypatch):
    engine.update(CONFIG.replace('default = "small"', 'default = "huge"'))
    limit = client.get_integer_details("limit", 0, USER)
    assert (limit.value, limit.flag_metadata["stale"]) == (10, True)
    assert "stale" not in client.get_boolean_details("static", False, USER).flag_metadata
    monkeypatch.setenv("FLAGS_OVERRIDE_LIMIT", "large")
    engine.update(CONFIG)
    limit = client.get_integer_details("limit", 0, USER)
    assert (limit.value, limit.reason, limit.flag_metadata["overridden"]) == (100, Reason.STATIC, True)


def test_the_context_maps_every_attribute_type(provider):
    buyer = {"roles": ["viewer", "buyer"], "age": 18, "admin": True}
    assert provider.resolve_boolean_details("buyers", False, EvaluationContext("u", buyer)).value is True
    assert provider.resolve_boolean_details("buyers", False, EvaluationContext("u", {**buyer, "age": 17.5})).value is False
    assert provider.resolve_boolean_details("buyers", False, EvaluationContext("u", {**buyer, "roles": ("buyer",)})).value is True
    assert provider.resolve_boolean_details("buyers", False, EvaluationContext("u", {**buyer, "roles": {"buyer"}})).value is True
    assert provider.resolve_boolean_details("buyers", False, EvaluationContext("u", {**buyer, "admin": None})).value is False
    early = datetime.datetime(2025, 12, 31, 20, tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))  # 01:00Z
    assert provider.resolve_boolean_details("signed-up-early", False, EvaluationContext("u", {"signed_up": early})).value is False
    # Fractions of a second are kept, as .mmm or .uuuuuu.
    for micros, before in ((499_000, True), (600_000, False), (499_999, True), (500_001, False)):
        at = datetime.datetime(2026, 1, 1, 0, 0, 0, micros, tzinfo=datetime.timezone.utc)
        assert provider.resolve_boolean_details("signed-up-early", not before, EvaluationContext("u", {"signed_up": at})).value is before, at
    earlier = early.replace(hour=18)  # 23:00Z on 2025-12-31
    assert provider.resolve_boolean_details("signed-up-early", False, EvaluationContext("u", {"signed_up": earlier})).value is True


def test_datetimes_are_written_as_the_rust_provider_writes_them(provider):
    # A rule may compare the text: whole seconds, then .mmm, then .uuuuuu.
    for micros, served in ((0, True), (600_000, True), (500_001, True), (600_001, False), (500_000, False)):
        at = datetime.datetime(2026, 1, 1, 1, 0, 0, micros, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
        assert provider.resolve_boolean_details("signed-up-at", not served, EvaluationContext("u", {"signed_up": at})).value is served, at


def test_values_the_format_cannot_test_are_left_out(provider, engine):
    ctx = EvaluationContext("u", {"nested": {"a": 1}, "numbers": [1, 2], "email": "a@corp.example"})
    mapped = flags_context(ctx)
    assert mapped == {"targeting_key": "u", "email": "a@corp.example"}
    assert engine.bool("staff", mapped) is True
    with Context("u", {"email": "a@corp.example"}) as same:
        assert engine.detail("staff", same) == engine.detail("staff", mapped)


def test_an_attribute_named_targeting_key_is_not_taken_for_the_key(engine):
    ctx = EvaluationContext("u", {"targeting_key": "someone-else", "email": "a@corp.example"})
    mapped = flags_context(ctx)
    assert isinstance(mapped, Context)
    # The rollout buckets by the targeting key: "u", not the attribute.
    bucket = engine.detail("rollout", mapped).bucket
    assert bucket == engine.detail("rollout", {"targeting_key": "u"}).bucket
    assert bucket != engine.detail("rollout", {"targeting_key": "someone-else"}).bucket


def test_an_unusable_context_is_invalid_context(client):
    naive = EvaluationContext("u", {"signed_up": datetime.datetime(2026, 1, 1)})
    details = client.get_boolean_details("signed-up-early", True, naive)
    assert (details.value, details.error_code) == (True, ErrorCode.INVALID_CONTEXT)
    assert "naive datetime" in details.error_message
    details = client.get_boolean_details("static", False, EvaluationContext(42))
    assert (details.value, details.error_code) == (False, ErrorCode.INVALID_CONTEXT)
    assert "key must be a str" in details.error_message
    with pytest.raises(InvalidContextError):
        flags_context(naive)


def test_at_fixes_the_evaluation_instant(engine):
    before = FlagsProvider(engine, at=datetime.datetime(2026, 12, 19, tzinfo=datetime.timezone.utc))
    after = FlagsProvider(engine, at=datetime.datetime(2026, 12, 21, tzinfo=datetime.timezone.utc))
    assert before.resolve_boolean_details("holidays", True, USER).value is False
    assert after.resolve_boolean_details("holidays", False, USER).value is True


def test_without_a_context_there_is_no_unit(provider):
    details = provider.resolve_boolean_details("rollout", True)
    assert (details.value, details.reason) == (False, Reason.DEFAULT)


def test_async_resolution_gives_the_same_answer(provider):
    details = asyncio.run(provider.resolve_integer_details_async("limit", 0, USER))
    assert (details.value, details.variant) == (10, "small")


def test_reload_reads_the_file_again_and_tells_openfeature(tmp_path):
    path = tmp_path / "flags.toml"
    path.write_text(CONFIG)
    provider = FlagsProvider.from_file(path)
    changed = []
    api.set_provider(provider, "reload")
    api.get_client("reload").add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed.append)
    client = api.get_client("reload")
    try:
        path.write_text(CONFIG.replace('default = "small"', 'default = "large"'))
        assert provider.reload() == []
        assert client.get_integer_value("limit", 0, USER) == 100
        assert len(changed) == 1
        path.write_text(CONFIG.replace('default = "small"', 'default = "huge"'))
        assert any("flags.limit" in problem for problem in provider.reload())
        assert client.get_integer_details("limit", 0, USER).flag_metadata["stale"] is True
        path.write_text("[[[ not toml")
        with pytest.raises(ConfigError):
            provider.reload()
        assert client.get_integer_value("limit", 0, USER) == 100, "the previous config is still served"
        assert len(changed) == 2
    finally:
        api.clear_providers()


def test_reload_needs_a_file(provider):
    with pytest.raises(ValueError, match="update the engine itself"):
        provider.reload()


def test_shutdown_closes_only_an_engine_the_provider_loaded(engine, tmp_path):
    FlagsProvider(engine).shutdown()
    assert engine.bool("static", key="u") is True
    path = tmp_path / "flags.toml"
    path.write_text(CONFIG)
    owned = FlagsProvider.from_file(path)
    owned.shutdown()
    with pytest.raises(ClosedError):
        owned.flags.bool("static", key="u")


def test_the_provider_needs_an_engine():
    with pytest.raises(TypeError, match="flags must be a flags.Flags"):
        FlagsProvider("flags.toml")
