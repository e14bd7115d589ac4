"""The Python SDK's API: loading, every getter, details, evaluate-all,
updates with last-known-good, snapshots, contexts, overrides, threads, and
bad input next to good input.

Not here: exact evaluation semantics (test_conformance.py runs the shared
cases; the Rust tests cover the engine).
"""

import datetime
import json
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

import flags
from flags import (
    ClosedError,
    ConfigError,
    ConfigFileError,
    ConfigWarning,
    Context,
    ErrorCode,
    Flags,
    Reason,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "flags.toml"

CONFIG = """
version = 1
[flags.beta]
[[flags.beta.rules]]
name = "staff"
when = [{ attr = "email", op = "ends_with", value = "@corp.example" }]
serve = "on"
[flags.color]
variants = { red = "red", blue = "blue" }
default = "red"
[flags.limit]
variants = { small = 10, large = 100 }
default = "small"
[[flags.limit.rules]]
when = [{ attr = "plan", op = "in", values = ["pro"] }]
serve = "large"
[flags.rate]
variants = { some = 0.25 }
default = "some"
[flags.settings]
variants = { standard = { steps = 3, express = false } }
default = "standard"
[flags.roles]
[[flags.roles.rules]]
when = [{ attr = "roles", op = "contains", value = "buyer" }, { attr = "age", op = "gte", value = 18 }, { attr = "admin", op = "eq", value = true }]
serve = "on"
[flags.everyone]
[[flags.everyone.rules]]
serve = "on"
rollout = 100
[flags.holidays]
[[flags.holidays.rules]]
when = [{ attr = "now", op = "after", value = 2026-12-20T00:00:00Z }]
serve = "on"
"""


@pytest.fixture
def engine():
    with Flags.from_toml(CONFIG) as engine:
        yield engine


@pytest.fixture
def ctx():
    with Context("user-1", {"email": "a@corp.example", "plan": "pro"}) as ctx:
        yield ctx


def test_loads_the_example_file_and_evaluates_with_a_throwaway_context():
    with Flags.from_file(EXAMPLE) as example:
        assert example.problems == []
        assert example.bool("new-checkout", key="alice", attrs={"country": "US"}) is True
        assert example.string("button-color", key="carol") == "green"
        assert example.int("max-upload-mb", attrs={"plan": "enterprise"}) == 100


def test_every_typed_getter(engine, ctx):
    assert engine.bool("beta", ctx) is True
    assert engine.string("color", ctx) == "red"
    assert engine.int("limit", ctx) == 100
    assert engine.float("rate", ctx) == 0.25
    assert engine.object("settings", ctx) == {"steps": 3, "express": False}


def test_getters_return_the_default_for_unknown_flags_and_other_types(engine, ctx):
    assert engine.bool("nope", ctx, default=True) is True
    assert engine.bool("color", ctx, default=True) is True
    assert engine.string("limit", ctx, default="fallback") == "fallback"
    assert engine.string("nope", ctx, default=None) is None
    assert engine.int("rate", ctx, default=2**40) == 2**40
    assert engine.float("limit", ctx, default=1.5) == 1.5
    assert engine.object("color", ctx) is None


def test_detail_explains_the_answer(engine, ctx):
    detail = engine.detail("beta", ctx, type=bool)
    assert (detail.value, detail.variant, detail.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert (detail.rule_index, detail.rule_name, detail.bucket) == (0, "staff", None)
    assert detail.error is None and not detail.stale and not detail.enrolled
    assert len(detail.flag_version) == 16
    rollout = engine.detail("everyone", ctx)
    assert rollout.reason == Reason.SPLIT and 0 <= rollout.bucket < 1_000_000
    missing = engine.detail("nope", ctx)
    assert (missing.reason, missing.error, missing.value) == (Reason.ERROR, ErrorCode.FLAG_NOT_FOUND, None)
    assert missing.flag_version is None
    mismatch = engine.detail("color", ctx, type=int)
    assert mismatch.error == ErrorCode.TYPE_MISMATCH and mismatch.flag_version is not None


def test_a_disabled_flag_without_off_variant_gives_the_callers_default(ctx):
    text = CONFIG + """
[flags.dark]
enabled = false
variants = { lit = "L", unlit = "U" }
default = "unlit"
metadata = { team = "web", ticket = 7 }
[flags.dimmed]
enabled = false
variants = { lit = "L", unlit = "U" }
default = "lit"
off_variant = "unlit"
"""
    with Flags.from_toml(text) as engine:
        assert engine.string("dark", ctx, default="mine") == "mine"
        assert engine.string("dimmed", ctx, default="mine") == "U"
        dark = engine.detail("dark", ctx, type=str)
        assert (dark.value, dark.variant, dark.reason, dark.error) == (None, None, Reason.DISABLED, None)
        assert dark.metadata == {"team": "web", "ticket": 7}
        assert engine.detail("color", ctx).metadata == {}
        # OFREP's flag metadata: the engine's keys that apply, then the flag's own.
        assert dark.flag_metadata == {"flagVersion": dark.flag_version, "killedBy": "file", "team": "web", "ticket": 7}
        assert engine.detail("color", ctx).flag_metadata == {"flagVersion": engine.detail("color", ctx).flag_version}


def test_flag_metadata_is_a_read_only_mapping(ctx):
    text = CONFIG + '\n[flags.dark]\nenabled = false\nvariants = { lit = "L" }\ndefault = "lit"\nmetadata = { team = "web", ratio = 0.5 }\n'
    with Flags.from_toml(text) as engine:
        dark = engine.detail("dark", ctx)
        metadata = dark.flag_metadata
        expected = {"flagVersion": dark.flag_version, "killedBy": "file", "team": "web", "ratio": 0.5}
        assert isinstance(metadata, Mapping)
        assert dict(metadata) == expected == metadata.copy()
        assert metadata == expected and metadata == dark.flag_metadata and metadata != {}
        assert (len(metadata), list(metadata), metadata.keys()) == (4, list(expected), list(expected))
        assert (metadata.values(), metadata.items()) == (list(expected.values()), list(expected.items()))
        assert ("team" in metadata, "bucket" in metadata, 7 in metadata) == (True, False, False)
        assert (metadata.get("team"), metadata.get("bucket"), metadata.get("bucket", 0)) == ("web", None, 0)
        with pytest.raises(KeyError, match="bucket"):
            metadata["bucket"]
        with pytest.raises(TypeError):
            metadata["team"] = "other"
        assert repr(metadata).startswith("FlagMetadata({'flagVersion': ")


def test_details_compare_by_content_and_show_it(engine, ctx):
    assert engine.detail("beta", ctx) == engine.detail("beta", ctx)
    assert engine.detail("beta", ctx) != engine.detail("beta", {"email": "x@example.com"})
    assert engine.detail("beta", ctx) != engine.detail("nope", ctx)
    assert engine.detail("beta", ctx) != "beta"
    assert repr(engine.detail("beta", ctx)) == "Detail(flag='beta', value=True, variant='on', reason=TARGETING_MATCH)"


def test_detail_rejects_an_unknown_type(engine, ctx):
    with pytest.raises(TypeError, match="type must be"):
        engine.detail("beta", ctx, type=list)


def test_all_evaluates_every_flag_in_file_order(engine, ctx):
    results = engine.all(ctx)
    assert list(results) == ["beta", "color", "limit", "rate", "settings", "roles", "everyone", "holidays"]
    assert results["limit"].value == 100 and results["settings"].value["steps"] == 3
    assert all(d.flag == key for key, d in results.items())


def test_context_attribute_types_and_removal(engine):
    with Context("u", {"roles": ["viewer", "buyer"], "age": 18, "admin": True}) as ctx:
        assert engine.bool("roles", ctx) is True
        ctx.set("age", 17.5)
        assert engine.bool("roles", ctx) is False
        ctx.set("age", 30).set("admin", None)
        assert engine.bool("roles", ctx) is False
        ctx.update({"admin": True, "roles": ("buyer",)})
        assert engine.bool("roles", ctx) is True
        ctx.clear()
        assert engine.bool("roles", ctx) is False
        assert engine.detail("everyone", ctx).reason == Reason.DEFAULT  # no key, no unit


def test_a_dict_is_a_context(engine):
    unit = {"targeting_key": "u", "roles": ["viewer", "buyer"], "age": 18, "admin": True}
    assert engine.bool("roles", unit) is True
    assert engine.bool("roles", dict(unit, age=17.5)) is False
    assert engine.bool("roles", dict(unit, admin=None)) is False  # None: absent
    assert engine.bool("roles", dict(unit, roles=("buyer",))) is True
    assert engine.int("limit", {"plan": "pro"}) == 100
    assert engine.string("color", {"email": "a@corp.example"}) == "red"
    with Context("u", {"roles": ["buyer"], "age": 18, "admin": True}) as prepared:
        assert engine.detail("everyone", {"targeting_key": "u"}).bucket == engine.detail("everyone", prepared).bucket
    # No targeting key, no unit: the rollout cannot draw a bucket.
    assert engine.detail("everyone", {"key": "u"}).reason == Reason.DEFAULT
    results = engine.all({"targeting_key": "u", "plan": "pro"})
    assert results["limit"].value == 100 and results["everyone"].reason == Reason.SPLIT


def test_bad_dict_contexts_raise_clear_errors(engine):
    with pytest.raises(TypeError, match="attribute 'x' must be"):
        engine.bool("beta", {"x": {"nested": 1}})
    with pytest.raises(TypeError, match="element of attribute 'roles'"):
        engine.bool("beta", {"roles": ["ok", 3]})
    with pytest.raises(TypeError, match="targeting_key must be a str, not int"):
        engine.bool("beta", {"targeting_key": 42})
    with pytest.raises(TypeError, match="attribute name must be a str"):
        engine.bool("beta", {b"name": "v"})
    with pytest.raises(UnicodeEncodeError):
        engine.bool("beta", {"targeting_key": "\ud800"})


def test_context_instant_fixes_now(engine):
    with Context("u") as ctx:
        ctx.set_instant(datetime.datetime(2026, 12, 24, tzinfo=datetime.timezone.utc))
        assert engine.bool("holidays", ctx) is True
        ctx.set_instant(datetime.datetime(2026, 12, 19, 23, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-2))))
        assert engine.bool("holidays", ctx) is True  # 2026-12-20T01:00Z
        ctx.set_instant(datetime.datetime(2026, 12, 19, tzinfo=datetime.timezone.utc))
        assert engine.bool("holidays", ctx) is False


def test_bad_context_input_raises_clear_errors():
    with Context() as ctx:
        with pytest.raises(TypeError, match="attribute 'x' must be"):
            ctx.set("x", {"nested": 1})
        with pytest.raises(TypeError, match="element of attribute 'roles'"):
            ctx.set("roles", ["ok", 3])
        with pytest.raises(TypeError, match="key must be a str"):
            ctx.set_key(42)
        with pytest.raises(TypeError, match="attribute name must be a str"):
            ctx.set(b"name", "v")
        with pytest.raises(ValueError, match="timezone-aware"):
            ctx.set_instant(datetime.datetime(2026, 1, 1))
        with pytest.raises(TypeError, match="must be a datetime"):
            ctx.set_instant("2026-01-01T00:00:00Z")
        with pytest.raises(UnicodeEncodeError):
            ctx.set_key("\ud800")


def test_bad_evaluation_input_raises_clear_errors(engine, ctx):
    with pytest.raises(TypeError, match="flag must be a str"):
        engine.bool(42, ctx)
    with pytest.raises(TypeError, match="ctx must be a Context or a dict, not list"):
        engine.bool("beta", ["email"])
    with pytest.raises(TypeError):
        engine.int("limit", ctx, default="ten")


def test_closed_objects_raise_closed_error(ctx):
    engine = Flags.from_toml(CONFIG)
    snapshot = engine.snapshot()
    engine.close()
    with pytest.raises(ClosedError):
        engine.bool("beta", ctx)
    with pytest.raises(ClosedError):
        engine.update(CONFIG)
    # A snapshot outlives the engine it came from.
    assert snapshot.string("color", ctx) == "red"
    snapshot.close()
    with pytest.raises(ClosedError):
        snapshot.string("color", ctx)
    ctx.close()
    with pytest.raises(ClosedError):
        Flags.from_toml(CONFIG).bool("beta", ctx)
    with pytest.raises(ClosedError):
        ctx.set("a", "b")


def test_configs_that_cannot_be_used_raise(tmp_path):
    with pytest.raises(ConfigError, match="version"):
        Flags.from_toml("version = 2\n")
    with pytest.raises(ConfigError):
        Flags.from_toml("[[[ not toml")
    with pytest.raises(ConfigFileError, match="no-such.toml"):
        Flags.from_file(tmp_path / "no-such.toml")
    with pytest.raises(TypeError, match="text must be a str"):
        Flags.from_toml(b"version = 1")


def test_rejected_flags_warn_and_are_listed():
    with pytest.warns(ConfigWarning, match="flags.bad"):
        loaded = Flags.from_toml(CONFIG + '\n[flags.bad]\ndefault = "missing"\n')
    assert any("flags.bad" in problem for problem in loaded.problems)
    assert loaded.detail("bad", key="u").error == ErrorCode.FLAG_NOT_FOUND
    loaded.close()


def test_update_keeps_the_last_good_version_of_broken_flags(engine, ctx, tmp_path):
    broken = CONFIG.replace('default = "red"', 'default = "green"').replace("default = \"small\"", "default = \"large\"")
    problems = engine.update(broken)
    assert problems and all("flags.color" in p for p in problems)
    color = engine.detail("color", ctx)
    assert (color.value, color.stale) == ("red", True)
    assert engine.int("limit", key="u") == 100  # valid: replaced
    with pytest.raises(ConfigError):
        engine.update("version = 1\nbogus = true\n")
    assert engine.detail("color", ctx).stale  # nothing changed
    path = tmp_path / "flags.toml"
    path.write_text(CONFIG.replace('default = "red"', 'default = "blue"'))
    assert engine.update_file(path) == []
    assert engine.string("color", ctx) == "blue"
    with pytest.raises(ConfigFileError):
        engine.update_file(tmp_path / "missing.toml")


def test_a_snapshot_is_a_consistent_view_across_updates(engine, ctx):
    with engine.snapshot() as before:
        engine.update(CONFIG.replace('default = "red"', 'default = "blue"'))
        assert before.string("color", ctx) == "red"
        assert engine.string("color", ctx) == "blue"


def test_environment_overrides_apply_at_every_load(monkeypatch, ctx):
    monkeypatch.setenv("FLAGS_OVERRIDE_COLOR", "blue")
    with Flags.from_toml(CONFIG) as overridden:
        detail = overridden.detail("color", ctx)
        assert (detail.value, detail.overridden, detail.reason) == ("blue", True, Reason.STATIC)
        monkeypatch.delenv("FLAGS_OVERRIDE_COLOR")
        overridden.update(CONFIG)
        assert overridden.string("color", ctx) == "red"


def test_threads_evaluate_while_another_updates(engine):
    blue = CONFIG.replace('default = "red"', 'default = "blue"')
    errors = []
    stop = threading.Event()

    def evaluate():
        with Context("user", {"plan": "pro"}) as ctx:
            while not stop.is_set():
                if engine.string("color", ctx) not in ("red", "blue") or engine.int("limit", ctx) != 100:
                    errors.append("unexpected value")

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        engine.update(blue if i % 2 else CONFIG)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []


def test_golden_bucketing_vectors_through_the_sdk():
    vectors = json.loads((REPO / "tests" / "vectors" / "bucketing.json").read_text(encoding="utf-8"))
    assert len(vectors["vectors"]) > 100
    for v in vectors["vectors"]:
        assert flags.bucket(v["salt"], v["unit"]) == v["bucket"], (v["salt"], v["unit"])
    with pytest.raises(TypeError):
        flags.bucket("salt", None)
