// End-to-end tests of FlagsReporter: the OpenFeature web SDK with the OFREP
// web provider evaluates against a real `flags serve` (bulk prefetches,
// which record no exposure), the reporter sends what the test reads, and
// the server's readout must count exactly those units. Each test has its
// own server, so readouts never mix. Every wait is on a condition.

import { test } from "node:test";
import assert from "node:assert/strict";
import { OpenFeature } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { FlagsReporter, ReportError } from "@flags/openfeature-web";
import { CLIENT_TOKEN, FlagsServer, nonZero, waitFor } from "./server.mjs";

const HOUR = 3_600_000;
let domains = 0;

/**
 * An OpenFeature client of its own domain, served by the OFREP web provider
 * from `server`, with `reporter` as its hook. `read(unit, ...flags)` sets
 * the domain's context to that unit (the provider prefetches every flag
 * again) and evaluates `flags`, returning their details.
 */
async function openFeature(server, reporter) {
  const domain = `test-${++domains}`;
  const headers = server.tokens ? [["Authorization", `Bearer ${CLIENT_TOKEN}`]] : [];
  const provider = new OFREPWebProvider({
    baseUrl: server.base,
    headers,
    changeDetection: "none",
    cacheMode: "disabled",
    disableVisibilityRefresh: true,
  });
  await OpenFeature.setProviderAndWait(domain, provider, { targetingKey: "nobody" });
  const client = OpenFeature.getClient(domain);
  client.addHooks(reporter);
  return {
    async read(unit, ...flags) {
      await OpenFeature.setContext(domain, { targetingKey: unit });
      return flags.map((flag) => client.getStringDetails(flag, "default"));
    },
    prefetch: (unit) => OpenFeature.setContext(domain, { targetingKey: unit }),
  };
}

/** A `fetch` that records each request's events, options and the server's receipt. */
function recordingFetch(respond = (url, init) => fetch(url, init)) {
  const posts = [];
  return {
    posts,
    async fetch(url, init) {
      const post = { events: JSON.parse(init.body).events, init };
      posts.push(post);
      const response = await respond(url, init);
      post.status = response.status;
      return response;
    },
  };
}

/** Adds one unit to `arms` for the arm `details` (an enrolled answer) counts under. */
function countArm(arms, details) {
  assert.equal(details.flagMetadata.enrolled, true, JSON.stringify(details));
  arms[details.variant] = (arms[details.variant] ?? 0) + 1;
}

function newReporter(server, options = {}) {
  const errors = [];
  const reporter = new FlagsReporter({
    url: server.base,
    token: server.tokens ? CLIENT_TOKEN : undefined,
    flushInterval: HOUR,
    batchSize: 1000,
    onError: (error) => errors.push(error),
    ...options,
  });
  return { reporter, errors };
}

test("the readout counts exactly the units whose flags were read, once each, and no prefetch", async () => {
  const server = await FlagsServer.start();
  const recorder = recordingFetch();
  const { reporter, errors } = newReporter(server, { fetch: recorder.fetch });
  try {
    const features = await openFeature(server, reporter);
    const expected = {};
    for (let i = 0; i < 6; i++) {
      const [first, again, other] = await features.read(`read-${i}`, "checkout-button", "checkout-button", "new-api");
      countArm(expected, first);
      assert.equal(again.variant, first.variant);
      assert.notEqual(other.flagMetadata.enrolled, true, "new-api runs no experiment");
    }
    // Prefetched for these units (every flag, both experiments) but never read.
    for (let i = 0; i < 4; i++) await features.prefetch(`prefetch-${i}`);
    assert.equal(recorder.posts.length, 0, "nothing is sent before the flush");

    await reporter.flush();

    const sent = recorder.posts.flatMap((post) => post.events);
    assert.deepEqual(
      sent.map((event) => [event.type, event.flag, event.key]),
      Array.from({ length: 6 }, (_, i) => ["exposure", "checkout-button", `read-${i}`]),
    );
    assert.equal(new Set(sent.map((event) => event.id)).size, sent.length, "every exposure has its own id");
    await waitFor(async () => nonZero(await server.unitsPerArm("checkout-button")), expected);
    assert.deepEqual(await server.unitsPerArm("unread-experiment"), { control: 0, treatment: 0 });
    assert.deepEqual(errors, []);
  } finally {
    await reporter.close();
    await server.stop();
  }
});

test("track() sends conversions the readout counts for the unit's arm", async () => {
  const server = await FlagsServer.start();
  const { reporter, errors } = newReporter(server);
  try {
    const features = await openFeature(server, reporter);
    const [details] = await features.read("buyer", "checkout-button");
    await features.read("window-shopper", "checkout-button");
    assert.equal(reporter.track("purchase", { unit: "buyer" }), true);
    await reporter.flush();
    const converted = nonZero(await server.conversions("checkout-button", "purchase"));
    assert.deepEqual(converted, { [details.variant]: 1 });
    assert.deepEqual(errors, []);
  } finally {
    await reporter.close();
    await server.stop();
  }
});

test("a timer sends what is queued after flushInterval, with no flush() call", async () => {
  const server = await FlagsServer.start();
  const { reporter, errors } = newReporter(server, { flushInterval: 50 });
  try {
    const features = await openFeature(server, reporter);
    const expected = {};
    for (const unit of ["t-1", "t-2", "t-3"]) countArm(expected, (await features.read(unit, "checkout-button"))[0]);
    await waitFor(async () => nonZero(await server.unitsPerArm("checkout-button")), expected);
    assert.deepEqual(errors, []);
  } finally {
    await reporter.close();
    await server.stop();
  }
});

test("a queue of batchSize events is sent at once, before the timer", async () => {
  const server = await FlagsServer.start();
  const recorder = recordingFetch();
  const { reporter, errors } = newReporter(server, { batchSize: 3, fetch: recorder.fetch });
  try {
    const features = await openFeature(server, reporter);
    const expected = {};
    for (const unit of ["s-1", "s-2"]) countArm(expected, (await features.read(unit, "checkout-button"))[0]);
    assert.equal(recorder.posts.length, 0, "two events wait for the timer");
    countArm(expected, (await features.read("s-3", "checkout-button"))[0]);
    await waitFor(async () => nonZero(await server.unitsPerArm("checkout-button")), expected);
    assert.deepEqual(
      recorder.posts.map((post) => post.events.map((event) => event.key)),
      [["s-1", "s-2", "s-3"]],
    );
    assert.deepEqual(errors, []);
  } finally {
    await reporter.close();
    await server.stop();
  }
});

/** Sets `globalThis[name]` for the duration of `body` (Node has no `document`, `window` or `sendBeacon`). */
async function withGlobal(name, value, body) {
  const previous = Object.getOwnPropertyDescriptor(globalThis, name);
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  try {
    return await body();
  } finally {
    if (previous) Object.defineProperty(globalThis, name, previous);
    else delete globalThis[name];
  }
}

test("with a token, a hidden page sends the queue with fetch keepalive (sendBeacon cannot authenticate)", async () => {
  const server = await FlagsServer.start();
  const document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  const beacons = [];
  const navigator = { sendBeacon: (...args) => beacons.push(args) };
  try {
    await withGlobal("document", document, () =>
      withGlobal("navigator", navigator, async () => {
        const recorder = recordingFetch();
        const { reporter, errors } = newReporter(server, { fetch: recorder.fetch });
        try {
          const features = await openFeature(server, reporter);
          const expected = {};
          for (const unit of ["h-1", "h-2"]) countArm(expected, (await features.read(unit, "checkout-button"))[0]);
          document.dispatchEvent(new Event("visibilitychange")); // still visible: nothing is sent
          assert.equal(recorder.posts.length, 0);
          document.visibilityState = "hidden";
          document.dispatchEvent(new Event("visibilitychange"));
          await waitFor(async () => nonZero(await server.unitsPerArm("checkout-button")), expected);
          assert.deepEqual(recorder.posts.map((post) => post.init.keepalive), [true]);
          assert.equal(recorder.posts[0].init.headers.Authorization, `Bearer ${CLIENT_TOKEN}`);
          assert.deepEqual(beacons, []);
          assert.deepEqual(errors, []);
        } finally {
          await reporter.close();
        }
      }),
    );
  } finally {
    await server.stop();
  }
});

test("without a token, pagehide sends the queue with navigator.sendBeacon", async () => {
  const server = await FlagsServer.start({ tokens: false });
  const window = new EventTarget();
  const beacons = [];
  // The browser sends a beacon on its own; here it is a POST whose answer nobody reads.
  const navigator = {
    sendBeacon(url, blob) {
      beacons.push({ url, type: blob.type });
      fetch(url, { method: "POST", headers: { "Content-Type": blob.type }, body: blob }).catch(() => {});
      return true;
    },
  };
  try {
    await withGlobal("window", window, () =>
      withGlobal("navigator", navigator, async () => {
        const recorder = recordingFetch();
        const { reporter, errors } = newReporter(server, { fetch: recorder.fetch });
        try {
          const features = await openFeature(server, reporter);
          const expected = {};
          for (const unit of ["b-1", "b-2", "b-3"]) countArm(expected, (await features.read(unit, "checkout-button"))[0]);
          window.dispatchEvent(new Event("pagehide"));
          await waitFor(async () => nonZero(await server.unitsPerArm("checkout-button")), expected);
          assert.deepEqual(beacons, [{ url: `${server.base}/v1/events`, type: "application/json" }]);
          assert.equal(recorder.posts.length, 0, "fetch is not used");
          assert.deepEqual(errors, []);
        } finally {
          await reporter.close();
        }
      }),
    );
  } finally {
    await server.stop();
  }
});

test("a batch whose answer was a 503 is resent with the same ids, and counted once", async () => {
  const server = await FlagsServer.start();
  const receipts = [];
  // The first request reaches the server, but its answer is lost to a 503.
  const recorder = recordingFetch(async (url, init) => {
    const response = await fetch(url, init);
    receipts.push(await response.json());
    return receipts.length === 1 ? new Response('{"errorDetails":"overloaded"}', { status: 503 }) : Response.json(receipts.at(-1));
  });
  const { reporter, errors } = newReporter(server, { fetch: recorder.fetch, retryDelay: 10 });
  try {
    const features = await openFeature(server, reporter);
    const expected = {};
    for (const unit of ["r-1", "r-2", "r-3"]) countArm(expected, (await features.read(unit, "checkout-button"))[0]);
    await reporter.flush();
    await waitFor(() => receipts.length, 2);
    assert.deepEqual(recorder.posts[1].events, recorder.posts[0].events, "the retry resends the same events");
    assert.deepEqual([receipts[0].stored, receipts[1].stored, receipts[1].duplicates], [3, 0, 3]);
    assert.deepEqual(nonZero(await server.unitsPerArm("checkout-button")), expected);
    assert.deepEqual(
      errors.map((error) => [error.kind, error.status, error.events.length]),
      [["unavailable", 503, 3]],
    );
    assert.match(errors[0].message, /overloaded.*retried in 10 ms/s);
  } finally {
    await reporter.close();
    await server.stop();
  }
});

test("events the server rejects and batches it refuses are reported to onError, not resent", async () => {
  const server = await FlagsServer.start();
  const recorder = recordingFetch();
  const { reporter, errors } = newReporter(server, { fetch: recorder.fetch });
  const outsider = newReporter(server, { token: "not-a-token", fetch: recorder.fetch });
  try {
    reporter.track("purchase", { unit: "u-1" });
    reporter.track("no-such-metric", { unit: "u-1" });
    await reporter.flush();
    assert.equal(errors.length, 1);
    const [rejected] = errors;
    assert.ok(rejected instanceof ReportError);
    assert.equal(rejected.kind, "rejected");
    assert.deepEqual(
      rejected.problems.map((p) => [p.event.metric, p.status]),
      [["no-such-metric", "rejected"]],
    );
    assert.match(rejected.problems[0].reason, /no-such-metric/);
    assert.match(rejected.message, /no-such-metric/);

    outsider.reporter.track("purchase", { unit: "u-2" });
    await outsider.reporter.flush();
    assert.deepEqual(outsider.errors.map((e) => [e.kind, e.status, e.events.length]), [["refused", 401, 1]]);

    await reporter.flush();
    await outsider.reporter.flush();
    assert.equal(recorder.posts.length, 2, "neither is sent again");
  } finally {
    await reporter.close();
    await outsider.reporter.close();
    await server.stop();
  }
});

test("a full queue drops the newest event and says so; the queued ones are kept for the retry", async () => {
  const errors = [];
  const recorder = recordingFetch(async () => {
    throw new TypeError("fetch failed");
  });
  const reporter = new FlagsReporter({
    url: "http://127.0.0.1:9/",
    maxQueue: 2,
    flushInterval: HOUR,
    onError: (error) => errors.push(error),
    fetch: recorder.fetch,
  });
  assert.equal(reporter.track("purchase", { unit: "q-1" }), true);
  assert.equal(reporter.track("purchase", { unit: "q-2" }), true);
  assert.equal(reporter.track("purchase", { unit: "q-3" }), false);
  await reporter.flush();
  assert.deepEqual(
    errors.map((error) => [error.kind, error.events.map((event) => event.key)]),
    [
      ["dropped", ["q-3"]],
      ["unavailable", ["q-1", "q-2"]],
    ],
  );
  assert.match(errors[1].message, /http:\/\/127\.0\.0\.1:9\/v1\/events failed: fetch failed/);
  assert.equal(reporter.track("purchase", { unit: "q-4" }), false, "the failed batch still holds the queue");
  await reporter.close();
  assert.deepEqual(
    recorder.posts.map((post) => post.events.map((event) => event.key)),
    [
      ["q-1", "q-2"],
      ["q-1", "q-2"],
    ],
  );
});

test("events queued after a beacon emptied a backing-off queue are still sent by the timer", async () => {
  let failures = 1;
  const recorder = recordingFetch(async () => {
    if (failures-- > 0) throw new TypeError("fetch failed");
    return Response.json({ received: 1, problems: [] });
  });
  const window = new EventTarget();
  const navigator = { sendBeacon: () => true };
  await withGlobal("window", window, () =>
    withGlobal("navigator", navigator, async () => {
      const reporter = new FlagsReporter({
        url: "http://127.0.0.1:9",
        flushInterval: 20,
        retryDelay: HOUR,
        onError: () => {},
        fetch: recorder.fetch,
      });
      try {
        reporter.track("purchase", { unit: "before" });
        await reporter.flush(); // fails: the retry waits an hour
        window.dispatchEvent(new Event("pagehide")); // the beacon takes the queue
        reporter.track("purchase", { unit: "after" });
        const sentKeys = () => recorder.posts.flatMap((post) => (post.status === 200 ? post.events.map((e) => e.key) : []));
        await waitFor(sentKeys, ["after"]);
      } finally {
        await reporter.close();
      }
    }),
  );
});

test("an answer that counts the unit under another arm reports that arm", async () => {
  const recorder = recordingFetch(async () => Response.json({ received: 1, problems: [] }));
  const reporter = new FlagsReporter({ url: "http://127.0.0.1:9", fetch: recorder.fetch, flushInterval: HOUR });
  const hookContext = { context: { targetingKey: "u-1" } };
  reporter.after(hookContext, { flagKey: "rollout", variant: "on", flagMetadata: { enrolled: true, arm: "off" } });
  reporter.after(hookContext, { flagKey: "rollout", variant: "on", flagMetadata: { enrolled: false } });
  await reporter.close();
  assert.deepEqual(
    recorder.posts.flatMap((post) => post.events.map((e) => [e.flag, e.variant, e.key])),
    [["rollout", "off", "u-1"]],
  );
});

test("bad options are refused with what is wrong", () => {
  assert.throws(() => new FlagsReporter({}), { name: "TypeError", message: /`url` must be the flags server's base URL/ });
  assert.throws(() => new FlagsReporter({ url: "http://x", batchSize: 1001 }), {
    name: "RangeError",
    message: "FlagsReporter: `batchSize` must be a positive integer of at most 1000, got 1001",
  });
  assert.throws(() => new FlagsReporter({ url: "http://x", flushInterval: 0 }), { name: "RangeError", message: /`flushInterval`/ });
  assert.throws(() => new FlagsReporter({ url: "http://x", token: "" }), { name: "TypeError", message: /`token`/ });
  const reporter = new FlagsReporter({ url: "http://x", onError: () => {} });
  assert.throws(() => reporter.track("revenue", { unit: "u", value: NaN }), { name: "TypeError", message: /`value` must be a finite number, got NaN/ });
  assert.throws(() => reporter.track("purchase", {}), { name: "TypeError", message: /`unit`/ });
});
