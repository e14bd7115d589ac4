/*
 * abi_test.c: exercises every entry point of flags.h from C, the way a host
 * program would: engines from text and files, updates with last-known-good
 * merges, contexts, every getter, details, evaluate-all, bucketing,
 * environment overrides, string lifetimes across updates, bad arguments
 * next to good ones, and evaluation on several threads during updates.
 *
 * It is not the conformance suite (tests/conformance/ checks exact answers
 * across languages); here the point is the ABI contract. Built and run,
 * under valgrind memcheck, by flags-ffi/tests/c_abi.rs:
 *     abi_test PATH_TO_FLAGS_TOML
 * Prints one line per failed check and "N passed, M failed" at the end;
 * exits non-zero if any check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"

static int passed, failed;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            passed++;                                                        \
        } else {                                                             \
            failed++;                                                        \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n",    \
                    __FILE__, __LINE__, #cond, flags_last_error());          \
        }                                                                    \
    } while (0)

/* Whether a view holds exactly the NUL-terminated text `expected`. */
static bool str_is(FlagsStr view, const char *expected) {
    size_t len = strlen(expected);
    return view.ptr != NULL && view.len == len && memcmp(view.ptr, expected, len) == 0;
}

static bool last_error_mentions(const char *needle) {
    return strstr(flags_last_error(), needle) != NULL;
}

/* Every value type, a rule with a name, a rollout, an experiment, a killed
 * flag and a prerequisite: enough to see every field of a detail filled. */
static const char CONFIG[] =
    "version = 1\n"
    "[layers.checkout]\n"
    "[flags.beta]\n"
    "[[flags.beta.rules]]\n"
    "name = \"staff\"\n"
    "when = [{ attr = \"email\", op = \"ends_with\", value = \"@corp.example\" }]\n"
    "serve = \"on\"\n"
    "[flags.color]\n"
    "metadata = { team = \"growth\", ticket = 7 }\n"
    "variants = { red = \"red\", blue = \"blue\" }\n"
    "default = \"red\"\n"
    "[flags.limit]\n"
    "variants = { small = 10, large = 100 }\n"
    "default = \"small\"\n"
    "[[flags.limit.rules]]\n"
    "when = [{ attr = \"plan\", op = \"in\", values = [\"pro\", \"enterprise\"] }]\n"
    "serve = \"large\"\n"
    "[flags.rate]\n"
    "variants = { none = 0.0, some = 0.25 }\n"
    "default = \"some\"\n"
    "[flags.settings]\n"
    "variants = { standard = { steps = 3, express = false } }\n"
    "default = \"standard\"\n"
    "[flags.everyone]\n"
    "[[flags.everyone.rules]]\n"
    "serve = \"on\"\n"
    "rollout = 100\n"
    "[flags.experiment]\n"
    "variants = { control = \"a\", treatment = \"b\" }\n"
    "default = \"control\"\n"
    "[[flags.experiment.rules]]\n"
    "split = { control = 50, treatment = 50 }\n"
    "experiment = { layer = \"checkout\", range = [0, 100] }\n"
    "[flags.killed]\n"
    "enabled = false\n"
    "[flags.child]\n"
    "requires = [{ flag = \"killed\", variant = \"on\" }]\n"
    "[[flags.child.rules]]\n"
    "serve = \"on\"\n"
    "[flags.roles]\n"
    "[[flags.roles.rules]]\n"
    "when = [{ attr = \"roles\", op = \"contains\", value = \"buyer\" }, { attr = \"age\", op = \"gte\", value = 18 }, { attr = \"admin\", op = \"eq\", value = true }]\n"
    "serve = \"on\"\n"
    "[flags.schedule]\n"
    "[[flags.schedule.rules]]\n"
    "serve = \"on\"\n"
    "schedule = [{ at = 2026-12-01T10:00:00Z, rollout = 100 }]\n"
    "[flags.this-century]\n"
    "[[flags.this-century.rules]]\n"
    "when = [{ attr = \"now\", op = \"after\", value = 2000-01-01T00:00:00Z }]\n"
    "serve = \"on\"\n";

/* CONFIG with `color` broken (an unknown key) and a new, broken flag. */
static const char BROKEN[] =
    "version = 1\n"
    "[flags.color]\n"
    "variants = { red = \"red\", blue = \"blue\" }\n"
    "default = \"blue\"\n"
    "colour = \"typo\"\n"
    "[flags.fresh]\n"
    "default = \"missing\"\n"
    "[flags.beta]\n";

static FlagsEngine *new_engine(const char *toml, size_t len) {
    FlagsEngine *engine = (FlagsEngine *)1; /* must be overwritten */
    FlagsStatus status = flags_engine_from_toml(toml, len, &engine);
    CHECK(status == FLAGS_STATUS_OK);
    CHECK(engine != NULL);
    return engine;
}

static void test_version(void) {
    CHECK(flags_abi_version() == FLAGS_ABI_VERSION);
}

static void test_creation(const char *flags_toml) {
    FlagsEngine *engine = NULL;

    CHECK(flags_engine_from_file(flags_toml, strlen(flags_toml), &engine) == FLAGS_STATUS_OK);
    CHECK(engine != NULL);
    const FlagsSnapshot *snapshot = flags_snapshot_acquire(engine);
    CHECK(snapshot != NULL);
    CHECK(flags_snapshot_flag_count(snapshot) == 10);
    flags_snapshot_release(snapshot);
    flags_engine_free(engine);

    engine = (FlagsEngine *)1;
    CHECK(flags_engine_from_file(FLAGS_LIT("/no/such/flags.toml"), &engine) == FLAGS_STATUS_IO);
    CHECK(engine == NULL);
    CHECK(last_error_mentions("/no/such/flags.toml"));

    engine = (FlagsEngine *)1;
    CHECK(flags_engine_from_toml(FLAGS_LIT("version = 2\n"), &engine) == FLAGS_STATUS_CONFIG);
    CHECK(engine == NULL);
    CHECK(last_error_mentions("version"));
    CHECK(flags_engine_from_toml(FLAGS_LIT("[[[ not toml"), &engine) == FLAGS_STATUS_CONFIG);
    CHECK(engine == NULL);

    /* Invalid flags are dropped, the rest is served, and the engine exists. */
    CHECK(flags_engine_from_toml(BROKEN, sizeof BROKEN - 1, &engine) == FLAGS_STATUS_REJECTED_FLAGS);
    CHECK(engine != NULL);
    CHECK(last_error_mentions("flags.color") && last_error_mentions("flags.fresh"));
    snapshot = flags_snapshot_acquire(engine);
    CHECK(flags_snapshot_flag_count(snapshot) == 1);
    flags_snapshot_release(snapshot);
    flags_engine_free(engine);

    /* Bad arguments. */
    CHECK(flags_engine_from_toml(NULL, 0, &engine) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(last_error_mentions("`toml` is NULL"));
    CHECK(flags_engine_from_toml(CONFIG, sizeof CONFIG - 1, NULL) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_engine_from_toml("version = 1\xff", 12, &engine) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(engine == NULL);
    CHECK(flags_engine_from_file(NULL, 3, &engine) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_engine_from_file("\xc3(", 2, &engine) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(flags_snapshot_acquire(NULL) == NULL);
    CHECK(last_error_mentions("`engine` is NULL"));
    CHECK(flags_snapshot_flag_count(NULL) == 0);
    flags_engine_free(NULL);
    flags_snapshot_release(NULL);
}

static void test_context_setters(void) {
    FlagsContext *ctx = flags_context_new();
    CHECK(ctx != NULL);
    FlagsStr roles[] = {{FLAGS_LIT("viewer")}, {FLAGS_LIT("buyer")}};

    CHECK(flags_context_set_key(ctx, FLAGS_LIT("user-1")) == FLAGS_STATUS_OK);
    CHECK(flags_context_set_string(ctx, FLAGS_LIT("email"), FLAGS_LIT("a@corp.example")) == FLAGS_STATUS_OK);
    CHECK(flags_context_set_number(ctx, FLAGS_LIT("age"), 30) == FLAGS_STATUS_OK);
    CHECK(flags_context_set_bool(ctx, FLAGS_LIT("admin"), true) == FLAGS_STATUS_OK);
    CHECK(flags_context_set_string_list(ctx, FLAGS_LIT("roles"), roles, 2) == FLAGS_STATUS_OK);
    CHECK(flags_context_set_string_list(ctx, FLAGS_LIT("empty"), NULL, 0) == FLAGS_STATUS_OK);
    CHECK(flags_context_remove(ctx, FLAGS_LIT("not-set")) == FLAGS_STATUS_OK);
    CHECK(flags_context_set_instant(ctx, 1796119200, 0) == FLAGS_STATUS_OK);
    CHECK(flags_context_clear_instant(ctx) == FLAGS_STATUS_OK);

    /* Bad arguments: each fails with its own code and leaves ctx usable. */
    FlagsStr bad_roles[] = {{FLAGS_LIT("ok")}, {"\xff", 1}};
    FlagsStr null_role[] = {{NULL, 3}};
    CHECK(flags_context_set_key(NULL, FLAGS_LIT("k")) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(last_error_mentions("`ctx` is NULL"));
    CHECK(flags_context_set_key(ctx, NULL, 1) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_set_key(ctx, "\xfe", 1) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(flags_context_set_string(ctx, NULL, 0, FLAGS_LIT("v")) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_set_string(ctx, FLAGS_LIT("n"), NULL, 0) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_set_string(ctx, FLAGS_LIT("n"), "\xc0\x80", 2) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(flags_context_set_number(ctx, "\x80", 1, 1.0) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(flags_context_set_bool(NULL, FLAGS_LIT("b"), true) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_set_string_list(ctx, FLAGS_LIT("l"), NULL, 2) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_set_string_list(ctx, FLAGS_LIT("roles"), bad_roles, 2) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(last_error_mentions("items[]"));
    CHECK(flags_context_set_string_list(ctx, FLAGS_LIT("roles"), null_role, 1) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_remove(ctx, NULL, 0) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_set_instant(ctx, 0, 1000000000u) == FLAGS_STATUS_INVALID_ARGUMENT);
    CHECK(flags_context_set_instant(NULL, 0, 0) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_clear_instant(NULL) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_context_clear(NULL) == FLAGS_STATUS_NULL_ARGUMENT);
    flags_context_free(NULL);
    flags_context_free(ctx);
}

static void test_getters(FlagsEngine *engine) {
    const FlagsSnapshot *snap = flags_snapshot_acquire(engine);
    FlagsContext *ctx = flags_context_new();
    FlagsStatus status = FLAGS_STATUS_PANIC;
    flags_context_set_key(ctx, FLAGS_LIT("user-1"));
    flags_context_set_string(ctx, FLAGS_LIT("email"), FLAGS_LIT("a@corp.example"));
    flags_context_set_string(ctx, FLAGS_LIT("plan"), FLAGS_LIT("pro"));

    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("beta"), false, &status) == true);
    CHECK(status == FLAGS_STATUS_OK);
    /* Killed without an off_variant: the caller's default. */
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("killed"), true, NULL) == true);
    CHECK(str_is(flags_eval_string(snap, ctx, FLAGS_LIT("color"), FLAGS_LIT("x"), &status), "red"));
    CHECK(status == FLAGS_STATUS_OK);
    CHECK(flags_eval_int(snap, ctx, FLAGS_LIT("limit"), -1, &status) == 100);
    CHECK(status == FLAGS_STATUS_OK);
    CHECK(flags_eval_float(snap, ctx, FLAGS_LIT("rate"), -1.0, &status) == 0.25);
    CHECK(status == FLAGS_STATUS_OK);
    CHECK(str_is(flags_eval_object(snap, ctx, FLAGS_LIT("settings"), FLAGS_LIT("{}"), &status),
                 "{\"steps\":3,\"express\":false}"));
    CHECK(status == FLAGS_STATUS_OK);

    /* The context changes and the same handle is evaluated again. */
    flags_context_set_string(ctx, FLAGS_LIT("plan"), FLAGS_LIT("free"));
    CHECK(flags_eval_int(snap, ctx, FLAGS_LIT("limit"), -1, NULL) == 10);
    flags_context_remove(ctx, FLAGS_LIT("email"));
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("beta"), true, &status) == false);
    CHECK(status == FLAGS_STATUS_OK);

    /* Evaluation outcomes: the default comes back with the code. */
    const char *dflt = "fallback";
    FlagsStr s = flags_eval_string(snap, ctx, FLAGS_LIT("no-such-flag"), dflt, 8, &status);
    CHECK(status == FLAGS_STATUS_FLAG_NOT_FOUND && s.ptr == dflt && s.len == 8);
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("color"), true, &status) == true);
    CHECK(status == FLAGS_STATUS_TYPE_MISMATCH);
    CHECK(flags_eval_int(snap, ctx, FLAGS_LIT("rate"), 7, &status) == 7);
    CHECK(status == FLAGS_STATUS_TYPE_MISMATCH);
    CHECK(flags_eval_float(snap, ctx, FLAGS_LIT("limit"), 1.5, &status) == 1.5);
    CHECK(status == FLAGS_STATUS_TYPE_MISMATCH);
    s = flags_eval_object(snap, ctx, FLAGS_LIT("color"), FLAGS_LIT("{}"), &status);
    CHECK(status == FLAGS_STATUS_TYPE_MISMATCH && str_is(s, "{}"));

    /* Bad arguments: the default, the code, and a message. */
    CHECK(flags_eval_bool(NULL, ctx, FLAGS_LIT("beta"), true, &status) == true);
    CHECK(status == FLAGS_STATUS_NULL_ARGUMENT && last_error_mentions("`snapshot` is NULL"));
    CHECK(flags_eval_int(snap, NULL, FLAGS_LIT("limit"), 3, &status) == 3);
    CHECK(status == FLAGS_STATUS_NULL_ARGUMENT && last_error_mentions("`ctx` is NULL"));
    CHECK(flags_eval_float(snap, ctx, NULL, 4, 2.5, &status) == 2.5);
    CHECK(status == FLAGS_STATUS_NULL_ARGUMENT && last_error_mentions("`flag` is NULL"));
    s = flags_eval_string(snap, ctx, "col\xffor", 6, dflt, 8, &status);
    CHECK(status == FLAGS_STATUS_INVALID_UTF8 && s.ptr == dflt);
    CHECK(flags_eval_bool(snap, ctx, NULL, 0, true, NULL) == true);

    flags_context_free(ctx);
    flags_snapshot_release(snap);
}

static void test_detail_and_all(FlagsEngine *engine) {
    const FlagsSnapshot *snap = flags_snapshot_acquire(engine);
    FlagsContext *ctx = flags_context_new();
    FlagsDetail d;
    FlagsStr roles[] = {{FLAGS_LIT("buyer")}};
    flags_context_set_key(ctx, FLAGS_LIT("user-1"));
    flags_context_set_string(ctx, FLAGS_LIT("email"), FLAGS_LIT("a@corp.example"));
    flags_context_set_string_list(ctx, FLAGS_LIT("roles"), roles, 1);
    flags_context_set_number(ctx, FLAGS_LIT("age"), 18);
    flags_context_set_bool(ctx, FLAGS_LIT("admin"), true);

    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("beta"), FLAGS_TYPE_BOOL, &d) == FLAGS_STATUS_OK);
    CHECK(d.value_type == FLAGS_TYPE_BOOL && d.bool_value && str_is(d.variant, "on"));
    CHECK(d.reason == FLAGS_REASON_TARGETING_MATCH && d.error == FLAGS_STATUS_OK);
    CHECK(d.rule_index == 0 && str_is(d.rule_name, "staff") && d.bucket == -1);
    CHECK(d.has_flag_version && !d.enrolled && !d.stale && !d.overridden);
    CHECK(d.flag.ptr == NULL && d.unmet_prerequisite.ptr == NULL);
    CHECK(str_is(d.metadata_json, "{}"));

    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("everyone"), FLAGS_TYPE_ANY, &d) == FLAGS_STATUS_OK);
    CHECK(d.reason == FLAGS_REASON_SPLIT && d.bucket >= 0 && d.bucket < 1000000);
    CHECK(d.rule_index == 0 && d.rule_name.ptr == NULL);

    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("experiment"), FLAGS_TYPE_STRING, &d) == FLAGS_STATUS_OK);
    CHECK(d.enrolled && d.reason == FLAGS_REASON_SPLIT && d.value_type == FLAGS_TYPE_STRING);
    CHECK(str_is(d.string_value, str_is(d.variant, "control") ? "a" : "b"));

    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("child"), FLAGS_TYPE_BOOL, &d) == FLAGS_STATUS_OK);
    CHECK(d.reason == FLAGS_REASON_DEFAULT && str_is(d.unmet_prerequisite, "killed"));
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("killed"), FLAGS_TYPE_BOOL, &d) == FLAGS_STATUS_OK);
    /* Killed without an off_variant: no value served, so the caller's default. */
    CHECK(d.reason == FLAGS_REASON_DISABLED && d.value_type == FLAGS_TYPE_ANY);
    CHECK(d.variant.ptr == NULL && d.error == FLAGS_STATUS_OK && d.has_flag_version);
    FlagsStatus killed_status = FLAGS_STATUS_PANIC;
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("killed"), true, &killed_status) == true);
    CHECK(killed_status == FLAGS_STATUS_OK);
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("killed"), false, NULL) == false);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("color"), FLAGS_TYPE_ANY, &d) == FLAGS_STATUS_OK);
    CHECK(d.reason == FLAGS_REASON_STATIC && d.rule_index == -1);
    CHECK(str_is(d.metadata_json, "{\"team\":\"growth\",\"ticket\":7}"));
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("limit"), FLAGS_TYPE_INT, &d) == FLAGS_STATUS_OK);
    CHECK(d.value_type == FLAGS_TYPE_INT && d.int_value == 10 && d.reason == FLAGS_REASON_DEFAULT);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("rate"), FLAGS_TYPE_FLOAT, &d) == FLAGS_STATUS_OK);
    CHECK(d.value_type == FLAGS_TYPE_FLOAT && d.float_value == 0.25);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("settings"), FLAGS_TYPE_OBJECT, &d) == FLAGS_STATUS_OK);
    CHECK(d.value_type == FLAGS_TYPE_OBJECT && str_is(d.string_value, "{\"steps\":3,\"express\":false}"));
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("roles"), FLAGS_TYPE_BOOL, &d) == FLAGS_STATUS_OK);
    CHECK(d.bool_value && d.reason == FLAGS_REASON_TARGETING_MATCH);

    /* Schedules read the context's instant: before and after the step. */
    flags_context_set_instant(ctx, 1796119199, 999999999); /* 2026-12-01T09:59:59.999999999Z */
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("schedule"), true, NULL) == false);
    flags_context_set_instant(ctx, 1796119200, 0); /* 2026-12-01T10:00:00Z */
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("schedule"), false, NULL) == true);
    /* Without an instant, the clock decides. */
    flags_context_set_instant(ctx, 0, 0); /* 1970 */
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("this-century"), true, NULL) == false);
    CHECK(flags_context_clear_instant(ctx) == FLAGS_STATUS_OK);
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("this-century"), false, NULL) == true);

    /* Errors are outcomes written to the detail. */
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("nope"), FLAGS_TYPE_ANY, &d) == FLAGS_STATUS_FLAG_NOT_FOUND);
    CHECK(d.reason == FLAGS_REASON_ERROR && d.error == FLAGS_STATUS_FLAG_NOT_FOUND);
    CHECK(d.value_type == FLAGS_TYPE_ANY && d.variant.ptr == NULL && !d.has_flag_version);
    CHECK(d.metadata_json.ptr == NULL);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("color"), FLAGS_TYPE_INT, &d) == FLAGS_STATUS_TYPE_MISMATCH);
    CHECK(d.error == FLAGS_STATUS_TYPE_MISMATCH && d.has_flag_version && d.variant.ptr == NULL);
    CHECK(str_is(d.metadata_json, "{\"team\":\"growth\",\"ticket\":7}"));

    /* Bad arguments leave the detail alone. */
    d.rule_index = 12345;
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("color"), 99, &d) == FLAGS_STATUS_INVALID_ARGUMENT);
    CHECK(last_error_mentions("`expected` is 99"));
    CHECK(flags_eval_detail(NULL, ctx, FLAGS_LIT("color"), 0, &d) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_eval_detail(snap, NULL, FLAGS_LIT("color"), 0, &d) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_eval_detail(snap, ctx, "\xff", 1, 0, &d) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(d.rule_index == 12345);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("color"), 0, NULL) == FLAGS_STATUS_NULL_ARGUMENT);

    /* Evaluate-all: size query, too small, exact (at the schedule's start). */
    flags_context_set_instant(ctx, 1796119200, 0);
    size_t count = 0, n = flags_snapshot_flag_count(snap);
    CHECK(n == 12);
    CHECK(flags_eval_all(snap, ctx, NULL, 0, &count) == FLAGS_STATUS_BUFFER_TOO_SMALL && count == n);
    FlagsDetail *all = calloc(n, sizeof *all);
    CHECK(flags_eval_all(snap, ctx, all, n - 1, &count) == FLAGS_STATUS_BUFFER_TOO_SMALL);
    CHECK(all[0].flag.ptr == NULL);
    CHECK(flags_eval_all(snap, ctx, all, n, &count) == FLAGS_STATUS_OK && count == n);
    CHECK(str_is(all[0].flag, "beta") && all[0].bool_value && str_is(all[0].rule_name, "staff"));
    CHECK(str_is(all[1].flag, "color") && str_is(all[1].string_value, "red"));
    CHECK(str_is(all[1].metadata_json, "{\"team\":\"growth\",\"ticket\":7}"));
    CHECK(str_is(all[0].metadata_json, "{}"));
    CHECK(str_is(all[n - 2].flag, "schedule") && all[n - 2].bool_value);
    CHECK(str_is(all[n - 1].flag, "this-century") && all[n - 1].bool_value);
    CHECK(flags_eval_all(snap, ctx, all, n, NULL) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_eval_all(snap, ctx, NULL, 5, &count) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_eval_all(NULL, ctx, all, n, &count) == FLAGS_STATUS_NULL_ARGUMENT);
    free(all);

    /* clear() forgets key, attributes and instant. */
    CHECK(flags_context_clear(ctx) == FLAGS_STATUS_OK);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("everyone"), 0, &d) == FLAGS_STATUS_OK);
    CHECK(d.reason == FLAGS_REASON_DEFAULT && !d.bool_value); /* no unit, no rollout */
    CHECK(flags_eval_bool(snap, ctx, FLAGS_LIT("beta"), true, NULL) == false);

    flags_context_free(ctx);
    flags_snapshot_release(snap);
}

static void test_bucket(void) {
    /* From tests/vectors/bucketing.json (computed with Python xxhash). */
    uint32_t bucket = 0;
    CHECK(flags_bucket(FLAGS_LIT("new-checkout"), FLAGS_LIT("user-1"), &bucket) == FLAGS_STATUS_OK);
    CHECK(bucket == 950051);
    CHECK(flags_bucket(FLAGS_LIT("new-checkout"), FLAGS_LIT("alice"), &bucket) == FLAGS_STATUS_OK);
    CHECK(bucket == 424140);
    CHECK(flags_bucket(FLAGS_LIT("new-checkout"), "", 0, &bucket) == FLAGS_STATUS_OK);
    CHECK(bucket == 716997);
    CHECK(flags_bucket(NULL, 0, FLAGS_LIT("u"), &bucket) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_bucket(FLAGS_LIT("s"), "\xff", 1, &bucket) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(flags_bucket(FLAGS_LIT("s"), FLAGS_LIT("u"), NULL) == FLAGS_STATUS_NULL_ARGUMENT);
}

static void test_updates_and_lifetimes(const char *flags_toml) {
    FlagsEngine *engine = new_engine(CONFIG, sizeof CONFIG - 1);
    FlagsContext *ctx = flags_context_new();
    FlagsDetail d;

    const FlagsSnapshot *before = flags_snapshot_acquire(engine);
    FlagsStr red = flags_eval_string(before, ctx, FLAGS_LIT("color"), FLAGS_LIT(""), NULL);
    CHECK(str_is(red, "red"));

    /* `color` is broken in the update: its previous version stays, stale;
     * `fresh` is new and broken: not served; the rest are replaced. */
    CHECK(flags_engine_update(engine, BROKEN, sizeof BROKEN - 1) == FLAGS_STATUS_REJECTED_FLAGS);
    CHECK(last_error_mentions("flags.color") && last_error_mentions("flags.fresh"));
    const FlagsSnapshot *after = flags_snapshot_acquire(engine);
    CHECK(flags_snapshot_flag_count(after) == 2);
    CHECK(flags_eval_detail(after, ctx, FLAGS_LIT("color"), FLAGS_TYPE_STRING, &d) == FLAGS_STATUS_OK);
    CHECK(d.stale && str_is(d.string_value, "red"));
    CHECK(flags_eval_detail(after, ctx, FLAGS_LIT("fresh"), 0, &d) == FLAGS_STATUS_FLAG_NOT_FOUND);

    /* The old snapshot is untouched, and its views stay valid even after
     * the engine is gone (valgrind checks the reads). */
    CHECK(flags_snapshot_flag_count(before) == 12);
    CHECK(flags_eval_detail(before, ctx, FLAGS_LIT("color"), 0, &d) == FLAGS_STATUS_OK && !d.stale);

    /* A config that cannot be used at all changes nothing. */
    CHECK(flags_engine_update(engine, FLAGS_LIT("version = 1\nbogus = 1\n")) == FLAGS_STATUS_CONFIG);
    const FlagsSnapshot *same = flags_snapshot_acquire(engine);
    CHECK(flags_snapshot_flag_count(same) == 2);
    flags_snapshot_release(same);

    CHECK(flags_engine_update_from_file(engine, flags_toml, strlen(flags_toml)) == FLAGS_STATUS_OK);
    CHECK(flags_engine_update_from_file(engine, FLAGS_LIT("/no/such/file")) == FLAGS_STATUS_IO);
    CHECK(flags_engine_update(NULL, FLAGS_LIT("version = 1\n")) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_engine_update(engine, NULL, 0) == FLAGS_STATUS_NULL_ARGUMENT);
    CHECK(flags_engine_update(engine, "\xff", 1) == FLAGS_STATUS_INVALID_UTF8);
    CHECK(flags_engine_update_from_file(engine, NULL, 0) == FLAGS_STATUS_NULL_ARGUMENT);
    const FlagsSnapshot *file = flags_snapshot_acquire(engine);
    CHECK(flags_snapshot_flag_count(file) == 10);

    flags_engine_free(engine);
    CHECK(str_is(red, "red"));
    CHECK(str_is(flags_eval_string(file, ctx, FLAGS_LIT("button-color"), FLAGS_LIT(""), NULL), "blue"));
    flags_snapshot_release(file);
    flags_snapshot_release(after);
    flags_snapshot_release(before);
    flags_context_free(ctx);
}

static void test_overrides(void) {
    FlagsContext *ctx = flags_context_new();
    FlagsDetail d;
    setenv("FLAGS_OVERRIDE_COLOR", "blue", 1);
    setenv("FLAGS_OVERRIDE_LIMIT", "no-such-variant", 1);
    FlagsEngine *engine = new_engine(CONFIG, sizeof CONFIG - 1);
    const FlagsSnapshot *snap = flags_snapshot_acquire(engine);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("color"), 0, &d) == FLAGS_STATUS_OK);
    CHECK(d.overridden && d.reason == FLAGS_REASON_STATIC && str_is(d.string_value, "blue"));
    /* An override naming an unknown variant is ignored. */
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("limit"), 0, &d) == FLAGS_STATUS_OK);
    CHECK(!d.overridden && d.int_value == 10);
    flags_snapshot_release(snap);

    /* Updates read the environment again. */
    unsetenv("FLAGS_OVERRIDE_COLOR");
    unsetenv("FLAGS_OVERRIDE_LIMIT");
    CHECK(flags_engine_update(engine, CONFIG, sizeof CONFIG - 1) == FLAGS_STATUS_OK);
    snap = flags_snapshot_acquire(engine);
    CHECK(flags_eval_detail(snap, ctx, FLAGS_LIT("color"), 0, &d) == FLAGS_STATUS_OK);
    CHECK(!d.overridden && str_is(d.string_value, "red"));
    flags_snapshot_release(snap);
    flags_engine_free(engine);
    flags_context_free(ctx);
}

/* --- Evaluation on several threads while the engine is updated ---------- */

enum { THREADS = 4, ROUNDS = 400, UPDATES = 40 };

static const char RED[] =
    "version = 1\n[flags.color]\nvariants = { red = \"red\", blue = \"blue\" }\ndefault = \"red\"\n"
    "[flags.on]\n[[flags.on.rules]]\nserve = \"on\"\n";
static const char BLUE[] =
    "version = 1\n[flags.color]\nvariants = { red = \"red\", blue = \"blue\" }\ndefault = \"blue\"\n"
    "[flags.on]\n[[flags.on.rules]]\nserve = \"on\"\n";

struct worker {
    FlagsEngine *engine;
    const FlagsContext *shared; /* read by every thread at once */
    int errors;
    int seen_red, seen_blue;
};

static void *evaluate_during_updates(void *arg) {
    struct worker *w = arg;
    FlagsContext *own = flags_context_new();
    flags_context_set_key(own, FLAGS_LIT("thread-user"));
    FlagsDetail all[2];
    size_t count;
    for (int i = 0; i < ROUNDS; i++) {
        const FlagsSnapshot *snap = flags_snapshot_acquire(w->engine);
        const FlagsContext *ctx = (i % 2) ? w->shared : own;
        FlagsStr first = flags_eval_string(snap, ctx, FLAGS_LIT("color"), FLAGS_LIT("?"), NULL);
        /* One snapshot gives one answer, whatever updates happen meanwhile. */
        if (flags_eval_all(snap, ctx, all, 2, &count) != FLAGS_STATUS_OK || count != 2 ||
            all[0].string_value.len != first.len ||
            memcmp(all[0].string_value.ptr, first.ptr, first.len) != 0 ||
            !flags_eval_bool(snap, ctx, FLAGS_LIT("on"), false, NULL)) {
            w->errors++;
        }
        if (str_is(first, "red")) {
            w->seen_red++;
        } else if (str_is(first, "blue")) {
            w->seen_blue++;
        } else {
            w->errors++;
        }
        flags_snapshot_release(snap);
    }
    flags_context_free(own);
    return NULL;
}

static void test_threads(void) {
    FlagsEngine *engine = new_engine(RED, sizeof RED - 1);
    FlagsContext *shared = flags_context_new();
    flags_context_set_key(shared, FLAGS_LIT("shared-user"));
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){engine, shared, 0, 0, 0};
        CHECK(pthread_create(&threads[t], NULL, evaluate_during_updates, &workers[t]) == 0);
    }
    int update_errors = 0;
    for (int u = 0; u < UPDATES; u++) {
        const char *text = (u % 2) ? RED : BLUE;
        if (flags_engine_update(engine, text, strlen(text)) != FLAGS_STATUS_OK) {
            update_errors++;
        }
    }
    int errors = 0, evaluations = 0;
    for (int t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        errors += workers[t].errors;
        evaluations += workers[t].seen_red + workers[t].seen_blue;
    }
    CHECK(update_errors == 0);
    CHECK(errors == 0);
    CHECK(evaluations == THREADS * ROUNDS);
    flags_context_free(shared);
    flags_engine_free(engine);
}

/* Copies the thread's last error: the pointer dies with the thread. */
static void *read_last_error(void *out) {
    snprintf(out, 64, "%s", flags_last_error());
    return NULL;
}

static void test_last_error_is_per_thread(void) {
    CHECK(flags_context_set_key(NULL, FLAGS_LIT("k")) == FLAGS_STATUS_NULL_ARGUMENT);
    char other[64] = "unset";
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, read_last_error, other) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(other[0] == '\0');
    CHECK(last_error_mentions("`ctx` is NULL"));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_FLAGS_TOML\n", argv[0]);
        return 2;
    }
    test_version();
    test_creation(argv[1]);
    test_context_setters();
    FlagsEngine *engine = new_engine(CONFIG, sizeof CONFIG - 1);
    test_getters(engine);
    test_detail_and_all(engine);
    flags_engine_free(engine);
    test_bucket();
    test_updates_and_lifetimes(argv[1]);
    test_overrides();
    test_threads();
    test_last_error_is_per_thread();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
