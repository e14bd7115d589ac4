// End-to-end test of the web console (`/ui/`): headless Chromium (Debian's
// `chromium`) driven by playwright-core against a real `flags serve` (the
// debug binary cargo built; $FLAGS_BIN overrides it), with experiments
// that have events. Run by scripts/test.sh (`node --test` here).
//
// Every wait is on a condition (Playwright's waitFor, or polling the API),
// never a fixed sleep. With FLAGS_UPDATE_SCREENSHOTS=1 it also writes
// docs/console-flags.png and docs/console-readout.png.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startFlagsServe, stopFlagsServe } from "../support/flags-serve.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const screenshots = process.env.FLAGS_UPDATE_SCREENSHOTS === "1";

const CONFIG = `version = 1

[metrics.purchase]
description = "Completed a purchase"
kind = "conversion"

[metrics.revenue]
description = "Revenue per user in USD"
kind = "mean"

[flags.checkout-button]
description = "Checkout button colour experiment"
variants = { control = "blue", green = "green", red = "red" }
default = "control"
[[flags.checkout-button.rules]]
name = "colour test"
split = { control = 34, green = 33, red = 33 }
experiment = { metrics = ["purchase", "revenue"], mde = 30 }

[flags.skewed]
description = "An experiment whose exposure logging is broken"
variants = { control = "a", treatment = "b" }
default = "control"
[[flags.skewed.rules]]
split = { control = 50, treatment = 50 }
experiment = { metrics = ["purchase"] }

[flags.new-api]
description = "Serve requests from the v2 API"
[[flags.new-api.rules]]
name = "half of everyone"
serve = "on"
rollout = 50
[[flags.new-api.guardrails]]
metric = "purchase"
max_rate = 50
window = "1h"
min_units = 100000

[flags.search-ranking]
description = "Ranking model for modern clients"
variants = { v1 = "bm25", v2 = "learned-v2" }
default = "v1"
[[flags.search-ranking.rules]]
name = "paying users"
when = [{ attr = "plan", op = "ne", value = "free" }]
serve = "v2"
`;

/** A running `flags serve` in a fresh directory. */
class Server {
  static async start({ env = {}, text = CONFIG, args = [] } = {}) {
    const started = await startFlagsServe({ text, env, args, prefix: "flags-console-" });
    return Object.assign(new Server(), started, { token: env.FLAGS_ADMIN_TOKENS });
  }

  async call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch(this.base + path, { method, headers, body: body && JSON.stringify(body) });
    const data = await response.json();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
    return data;
  }

  /** Replaces the config the way editors save: a new file renamed over it. */
  rewrite(text) {
    const next = `${this.config}.next`;
    writeFileSync(next, text);
    renameSync(next, this.config);
  }

  async stop() {
    await stopFlagsServe(this);
  }
}

/** Exposures and conversions: `checkout-button` balanced with effects, `skewed` 2:1 on a 50/50 split. */
async function sendEvents(server) {
  const events = [];
  const arms = ["control", "green", "red"];
  for (let i = 0; i < 450; i++) {
    const arm = arms[i % 3];
    const key = `user-${i}`;
    events.push({ type: "exposure", id: `x-${i}`, flag: "checkout-button", variant: arm, key });
    const converts = { control: i % 10 === 0, green: i % 5 === 1, red: i % 12 === 2 }[arm];
    if (converts) events.push({ type: "conversion", id: `p-${i}`, metric: "purchase", key });
    events.push({ type: "conversion", id: `r-${i}`, metric: "revenue", key, value: 20 + (i % 7) * (arm === "green" ? 4 : 3) });
  }
  for (let i = 0; i < 450; i++) {
    const arm = i % 3 === 0 ? "treatment" : "control";
    events.push({ type: "exposure", id: `s-${i}`, flag: "skewed", variant: arm, key: `visitor-${i}` });
  }
  for (let start = 0; start < events.length; start += 1000) {
    const receipt = await server.call("POST", "/v1/events", { events: events.slice(start, start + 1000) });
    assert.equal(receipt.rejected, 0, JSON.stringify(receipt.problems));
  }
  for (let i = 0; i < 20; i++) {
    await server.call("POST", "/ofrep/v1/evaluate/flags/new-api", { context: { targetingKey: `u-${i}` } });
  }
}

let browser;
let server;

before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  server = await Server.start();
  await sendEvents(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * A page in a fresh browser context (its own sessionStorage), recording
 * console errors and uncaught exceptions; `allowed` lists console errors
 * expected (the 401 a tokened server answers before the token is given).
 */
async function open(target, path, { width = 1280, height = 800, allowed = [] } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error" && !allowed.some((pattern) => pattern.test(message.text()))) {
      errors.push(message.text());
    }
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  await page.goto(target.base + path);
  return { page, errors, close: () => context.close() };
}

/** Waits until the page has rendered and its heading reads `heading`. */
async function shown(page, heading) {
  await page.locator("main h1", { hasText: heading }).first().waitFor();
  await page.locator('main[aria-busy="false"]').waitFor();
}

test("every page loads with no console error, at desktop and at phone width", async () => {
  const pages = [
    ["/ui/#/flags", "Flags"],
    ["/ui/#/flags/search-ranking", "search-ranking"],
    ["/ui/#/experiments", "Experiments"],
    ["/ui/#/experiments/checkout-button", "Experiment on"],
    ["/ui/#/experiments/skewed", "Experiment on"],
    ["/ui/#/guardrails", "Guardrails"],
    ["/ui/#/status", "Status"],
  ];
  for (const width of [1280, 390]) {
    for (const [path, heading] of pages) {
      const { page, errors, close } = await open(server, path, { width, height: 800 });
      await shown(page, heading);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} at ${width}px is ${overflow}px wider than the window`);
      assert.deepEqual(errors, [], `${path} at ${width}px`);
      if (screenshots && width === 1280 && path === "/ui/#/flags") {
        await page.screenshot({ path: join(root, "docs/console-flags.png") });
      }
      await close();
    }
  }
  const { page, close } = await open(server, "/");
  await page.waitForURL(`${server.base}/ui/`);
  await close();
});

test("the flags page shows rules with their lines and the evaluation counts the API gives", async () => {
  const { page, errors, close } = await open(server, "/ui/#/flags");
  await shown(page, "Flags");
  const { flags } = await server.call("GET", "/v1/flags");
  const api = flags.find((f) => f.key === "new-api");
  const row = page.locator('tr[data-flag="new-api"]');
  for (const [variant, evaluations] of Object.entries(api.evaluations)) {
    assert.equal(await row.locator(`li[data-variant="${variant}"]`).getAttribute("data-evaluations"), String(evaluations));
  }
  assert.equal(api.evaluations.on + api.evaluations.off, 20);
  assert.match(await row.locator("ol.rules li").innerText(), /^line 30 #0 “half of everyone”: everyone → serve on to 50%$/);

  await page.getByLabel("Name contains").fill("search");
  await page.locator("#flags-table caption", { hasText: "1 of 4 flags" }).waitFor();
  await page.getByLabel("State").selectOption("killed");
  await page.locator("#flags-table caption", { hasText: "0 of 4 flags" }).waitFor();
  assert.deepEqual(errors, []);
  await close();
});

test("the try-it form shows the value, reason, rule and the trace with lines, and records no exposure", async () => {
  const { page, errors, close } = await open(server, "/ui/#/flags/search-ranking");
  await shown(page, "search-ranking");
  await page.getByLabel("Targeting key").fill("someone");
  await page.getByLabel("Attributes, one per line").fill("plan=pro\nage=42");
  await page.getByRole("button", { name: "Evaluate" }).click();
  const result = page.locator("#try-result");
  await result.waitFor();
  assert.equal(await result.getAttribute("data-variant"), "v2");
  assert.equal(await result.getAttribute("data-reason"), "TARGETING_MATCH");
  assert.match(await result.innerText(), /#0 “paying users”/);
  const trace = await page.locator(".try-output tbody").innerText();
  assert.match(trace, /^46\t#0\tplan ne "free"\theld$/m);

  // An experiment's flag: the evaluation enrols the unit, but records no exposure.
  const units = async () => {
    await server.call("POST", "/v1/events", { events: [] }); // after every exposure queued before it
    return (await server.call("GET", "/v1/experiments/checkout-button/results")).units;
  };
  const before = await units();
  await page.goto(`${server.base}/ui/#/flags/checkout-button`);
  await shown(page, "checkout-button");
  await page.getByLabel("Targeting key").fill("tried-in-the-console");
  await page.getByRole("button", { name: "Evaluate" }).click();
  await page.locator("#try-result", { hasText: "yes, as" }).waitFor();
  assert.equal(await units(), before);

  await page.getByLabel("Attributes, one per line").fill("plan");
  await page.getByRole("button", { name: "Evaluate" }).click();
  await page.locator(".try-output .error", { hasText: "line 1: expected name=value" }).waitFor();
  assert.deepEqual(errors, []);
  await close();
});

test("the readout shows one interval per arm per metric, equal to the API's, and no SRM banner", async () => {
  const { page, errors, close } = await open(server, "/ui/#/experiments/checkout-button");
  await shown(page, "Experiment on");
  await page.locator("section.metric").first().waitFor();
  const results = await server.call("GET", "/v1/experiments/checkout-button/results");
  assert.equal(results.sample_ratio_mismatch.mismatch, false);
  assert.equal(await page.locator("#srm-banner").count(), 0);
  const raw = (x) => (x === null || x === undefined ? "none" : String(x));
  assert.equal(results.metrics.length, 2);
  for (const metric of results.metrics) {
    const comparisons = metric.analysis.comparisons;
    assert.equal(comparisons.length, 2, metric.metric);
    const chart = page.locator(`svg.lift-chart[data-metric="${metric.metric}"]`);
    assert.equal(await chart.locator('line.ci[data-kind="fixed"][data-arm]').count(), comparisons.length);
    assert.equal(await chart.locator('line.ci[data-kind="sequential"][data-arm]').count(), comparisons.length);
    for (const c of comparisons) {
      const fixed = chart.locator(`line[data-kind="fixed"][data-arm="${c.arm}"]`);
      assert.equal(await fixed.getAttribute("data-lower"), raw(c.relative_lift_ci.lower), `${metric.metric} ${c.arm}`);
      assert.equal(await fixed.getAttribute("data-upper"), raw(c.relative_lift_ci.upper), `${metric.metric} ${c.arm}`);
      // The always-valid interval of the relative lift, wider than the fixed-horizon one.
      const always = c.sequential_relative_lift.ci;
      assert.ok(always, `${metric.metric} ${c.arm}: ${c.sequential_relative_lift.undefined_because}`);
      assert.ok(always.lower < c.relative_lift_ci.lower && always.upper > c.relative_lift_ci.upper, `${metric.metric} ${c.arm}`);
      const sequential = chart.locator(`line[data-kind="sequential"][data-arm="${c.arm}"]`);
      assert.equal(await sequential.getAttribute("data-lower"), raw(always.lower), `${metric.metric} ${c.arm}`);
      assert.equal(await sequential.getAttribute("data-upper"), raw(always.upper), `${metric.metric} ${c.arm}`);
      const row = page.locator(`tr.comparison[data-metric="${metric.metric}"][data-arm="${c.arm}"]`);
      assert.equal(await row.count(), 1);
      assert.equal(await row.getAttribute("data-lift"), raw(c.relative_lift));
      assert.equal(await row.getAttribute("data-lift-lower"), raw(c.relative_lift_ci.lower));
      assert.equal(await row.getAttribute("data-lift-upper"), raw(c.relative_lift_ci.upper));
      assert.equal(await row.getAttribute("data-sequential-p"), raw(c.sequential.p_value));
      assert.equal(await row.getAttribute("data-sequential-lift-lower"), raw(always.lower));
      assert.equal(await row.getAttribute("data-sequential-lift-upper"), raw(always.upper));
      // The always-valid p-value over looks: the last point is this look's,
      // the API's running minimum, and no point is below a later one.
      const points = page.locator(`svg.p-value-chart[data-metric="${metric.metric}"] circle.p-point[data-arm="${c.arm}"]`);
      const ps = (await points.evaluateAll((all) => all.map((point) => Number(point.getAttribute("data-p")))));
      assert.ok(ps.length >= 1, `${metric.metric} ${c.arm}: no p-value point`);
      assert.equal(ps[ps.length - 1], c.sequential.p_value, `${metric.metric} ${c.arm}`);
      ps.slice(1).forEach((p, i) => assert.ok(p <= ps[i], `${metric.metric} ${c.arm}: ${ps}`));
      const text = await row.innerText();
      const pct = (x) => `${(x * 100).toFixed(2)}%`;
      assert.ok(text.includes(`[${pct(c.relative_lift_ci.lower)}, ${pct(c.relative_lift_ci.upper)}]`), text);
      assert.ok(text.includes(`[${pct(always.lower)}, ${pct(always.upper)}]`), text);
    }
  }
  for (const arm of results.arms) {
    assert.equal(await page.locator(`tr[data-arm="${arm.variant}"][data-units]`).getAttribute("data-units"), String(arm.units));
  }
  if (screenshots) await page.screenshot({ path: join(root, "docs/console-readout.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await close();
});

/** Waits until `condition` (async) holds, polling, at most `limit` ms. */
async function until(what, condition, limit = 20000) {
  const deadline = Date.now() + limit;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `not within ${limit} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A 50% rollout killed once more than 10% of its treatment errs for a whole second. */
const GUARDED = `version = 1
[metrics.errors]
kind = "conversion"

[flags.risky]
[[flags.risky.rules]]
rollout = 50
serve = "on"
[[flags.risky.guardrails]]
metric = "errors"
max_rate = 10
window = "1s"
min_units = 5
`;

test("the guardrails page shows the trip history the API gives: when, the figures at the trip, and the revive that ended it", async () => {
  const guarded = await Server.start({ text: GUARDED, args: ["--guardrail-interval", "100ms"] });
  try {
    const treated = [];
    for (let i = 0; i < 40; i++) {
      const answer = await guarded.call("POST", "/ofrep/v1/evaluate/flags/risky", { context: { targetingKey: `u-${i}` } });
      if (answer.variant === "on") treated.push(`u-${i}`);
    }
    assert.ok(treated.length >= 10, `${treated.length} treated units`);
    // Every treated unit errs again before each check, until the guardrail kills the flag.
    let trips = [];
    for (let round = 0; trips.length === 0; round++) {
      assert.ok(round < 100, `not tripped after ${round} checks`);
      const events = treated.map((key) => ({ type: "conversion", id: `e-${round}-${key}`, metric: "errors", key }));
      await guarded.call("POST", "/v1/events", { events });
      const sent = new Date().toISOString();
      await until("the next check", async () => {
        const overview = await guarded.call("GET", "/v1/guardrails");
        trips = overview.trips;
        return overview.last_check !== null && overview.last_check > sent;
      });
    }
    assert.equal(trips.length, 1, JSON.stringify(trips));
    const [trip] = trips;
    assert.equal(trip.flag, "risky");
    assert.equal(trip.action, "kill");
    assert.equal(trip.revived_at, null);

    const { page, errors, close } = await open(guarded, "/ui/#/guardrails");
    await shown(page, "Guardrails");
    const row = page.locator('#trips tr.trip[data-flag="risky"]');
    assert.equal(await row.count(), 1);
    let text = await row.innerText();
    for (const shown of [trip.tripped_at, trip.metric, "pooled treatment", "kill", trip.reason, "in force"]) {
      assert.ok(text.includes(shown), `${shown} in ${text}`);
    }

    await guarded.call("POST", "/v1/admin/flags/risky/revive");
    const [revived] = (await guarded.call("GET", "/v1/guardrails")).trips;
    assert.equal(revived.revived_by, "admin");
    await page.reload();
    await shown(page, "Guardrails");
    assert.equal(await row.getAttribute("data-revived"), "yes");
    text = await row.innerText();
    assert.ok(text.includes(`revived by admin at ${revived.revived_at}`), text);
    assert.deepEqual(errors, []);
    await close();
  } finally {
    await guarded.stop();
  }
});

test("the SRM banner appears for the experiment with a seeded mismatch", async () => {
  const results = await server.call("GET", "/v1/experiments/skewed/results");
  assert.equal(results.sample_ratio_mismatch.mismatch, true);
  const { page, errors, close } = await open(server, "/ui/#/experiments/skewed");
  const banner = page.getByRole("alert").filter({ hasText: "Sample ratio mismatch" });
  await banner.waitFor();
  assert.equal(await page.locator("#srm-state").innerText(), `MISMATCH (p = ${results.sample_ratio_mismatch.p_value.toExponential(2)})`);
  assert.deepEqual(errors, []);
  await close();
});

/** Polls OFREP until `flag`'s reason passes `wanted`; the milliseconds it took from `since`. */
async function untilReason(target, flag, wanted, since) {
  for (;;) {
    const response = await fetch(`${target.base}/ofrep/v1/evaluate/flags/${flag}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: '{"context":{"targetingKey":"probe"}}',
    });
    if (wanted((await response.json()).reason)) return performance.now() - since;
    assert.ok(performance.now() - since < 5000, `${flag} never answered as wanted`);
  }
}

test("a kill from the console, once confirmed, turns the flag DISABLED for the API within 1 s; revive undoes it", async () => {
  const { page, errors, close } = await open(server, "/ui/#/flags");
  await shown(page, "Flags");
  const row = page.locator('tr[data-flag="new-api"]');
  await row.getByRole("button", { name: "Kill new-api" }).click();
  const dialog = page.getByRole("dialog", { name: "Kill new-api?" });
  await dialog.waitFor();
  // Cancelling does nothing.
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await page.locator("#notice", { hasText: "Nothing done: new-api is as it was." }).waitFor();
  assert.equal((await server.call("GET", "/v1/flags")).flags.find((f) => f.key === "new-api").killed, false);

  await row.getByRole("button", { name: "Kill new-api" }).click();
  await dialog.waitFor();
  await dialog.getByLabel("Reason").fill("console test");
  const confirmed = performance.now();
  await dialog.getByRole("button", { name: "Kill new-api" }).click();
  const took = await untilReason(server, "new-api", (reason) => reason === "DISABLED", confirmed);
  assert.ok(took < 1000, `DISABLED after ${took} ms`);
  await row.locator(".badge", { hasText: "killed by admin" }).waitFor();
  const status = await server.call("GET", "/v1/status");
  assert.equal(status.killed_flags.find((k) => k.flag === "new-api").runtime_kill.reason, "console test");

  await row.getByRole("button", { name: "Revive new-api" }).click();
  await page.getByRole("dialog", { name: "Revive new-api?" }).getByRole("button", { name: "Revive new-api" }).click();
  await untilReason(server, "new-api", (reason) => reason !== "DISABLED", performance.now());
  await row.locator(".badge", { hasText: "enabled" }).waitFor();
  assert.deepEqual(errors, []);
  await close();
});

test("the try-it form says when a killed flag without off_variant serves no value", async () => {
  await server.call("POST", "/v1/admin/flags/new-api/kill", {});
  try {
    const { page, errors, close } = await open(server, "/ui/#/flags/new-api");
    await shown(page, "new-api");
    await page.getByLabel("Targeting key").fill("someone");
    await page.getByRole("button", { name: "Evaluate" }).click();
    const result = page.locator("#try-result", { hasText: "none: the caller's default applies" });
    await result.waitFor();
    assert.equal(await result.getAttribute("data-reason"), "DISABLED");
    assert.deepEqual(errors, []);
    await close();
  } finally {
    await server.call("POST", "/v1/admin/flags/new-api/revive");
  }
});

test("a config change appears on the open page without a reload", async () => {
  const { page, errors, close } = await open(server, "/ui/#/flags");
  await shown(page, "Flags");
  await page.evaluate(() => {
    window.loadedOnce = true;
  });
  server.rewrite(`${CONFIG}
[flags.added-live]
description = "Added while the console was open"
`);
  await page.locator('tr[data-flag="added-live"]').waitFor();
  assert.equal(await page.evaluate(() => window.loadedOnce), true, "the page was reloaded");
  await page.locator("#notice", { hasText: "this page shows it" }).waitFor();

  // A broken save (the flag keeps its last good version, so a new version
  // is served) shows on the open status page with file:line:column.
  await page.goto(`${server.base}/ui/#/status`);
  await shown(page, "Status");
  server.rewrite(`${CONFIG}
[flags.added-live]
default = "nope"
`);
  const problem = page.locator('#reloads tbody tr[data-outcome="partial"] .problems li').first();
  await problem.waitFor();
  assert.match(await problem.innerText(), /flags\.toml:\d+:\d+: flags\.added-live: unknown variant `nope`$/);
  assert.equal(await page.evaluate(() => window.loadedOnce), true, "the page was reloaded");
  assert.deepEqual(errors, []);
  await close();
});

test("with tokens configured the console asks for the admin token, refuses a client token, and works once given it", async () => {
  const guarded = await Server.start({ env: { FLAGS_ADMIN_TOKENS: "admin-secret", FLAGS_CLIENT_TOKENS: "client-secret" } });
  try {
    const refusals = [/status of 401/, /status of 403/];
    const { page, errors, close } = await open(guarded, "/ui/", { allowed: refusals });
    const dialog = page.getByRole("dialog", { name: "Admin token" });
    await dialog.waitFor();
    await dialog.getByLabel("Admin token").fill("client-secret");
    await dialog.getByRole("button", { name: "Use this token" }).click();
    await page.locator("#token-why", { hasText: "not an admin token" }).waitFor();
    await dialog.getByLabel("Admin token").fill("admin-secret");
    await dialog.getByRole("button", { name: "Use this token" }).click();
    await shown(page, "Flags");
    await page.locator('tr[data-flag="checkout-button"]').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("flags-admin-token")), "admin-secret");
    assert.ok(!page.url().includes("secret"), page.url());
    // The token is kept for the session: another page needs no prompt.
    await page.goto(`${guarded.base}/ui/#/status`);
    await shown(page, "Status");
    assert.deepEqual(errors, []);
    await close();
  } finally {
    await guarded.stop();
  }
});
