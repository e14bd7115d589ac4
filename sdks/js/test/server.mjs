// A real `flags serve` for the tests (the debug binary cargo built;
// $FLAGS_BIN overrides it) in a fresh directory, and what the tests ask of
// it (its experiments' readouts), and a wait on a condition.

import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { startFlagsServe, stopFlagsServe } from "../../../tests/support/flags-serve.mjs";

export const CLIENT_TOKEN = "client-token-for-tests";
const ADMIN_TOKEN = "admin-token-for-tests";
/** Between two reads of a readout that is not there yet. */
const POLL_INTERVAL_MS = 25;

/**
 * Two experiments (one the tests never read) and a flag that is not one.
 * Every unit is enrolled in `checkout-button` (no `traffic` limit).
 */
const CONFIG = `version = 1

[metrics.purchase]
kind = "conversion"

[flags.checkout-button]
variants = { control = "blue", green = "green", red = "red" }
default = "control"
[[flags.checkout-button.rules]]
name = "colour test"
split = { control = 34, green = 33, red = 33 }
experiment = { metrics = ["purchase"] }

[flags.unread-experiment]
variants = { control = "a", treatment = "b" }
default = "control"
[[flags.unread-experiment.rules]]
split = { control = 50, treatment = 50 }
experiment = { metrics = ["purchase"] }

[flags.new-api]
[[flags.new-api.rules]]
serve = "on"
rollout = 50
`;

export class FlagsServer {
  /** Starts a server; with `tokens`, a client and an admin token are configured. */
  static async start({ tokens = true } = {}) {
    const env = tokens ? { FLAGS_CLIENT_TOKENS: CLIENT_TOKEN, FLAGS_ADMIN_TOKENS: ADMIN_TOKEN } : {};
    const started = await startFlagsServe({ text: CONFIG, env, prefix: "flags-js-" });
    return Object.assign(new FlagsServer(), started, { tokens });
  }

  /** The units per arm of `flag`'s readout, as `{variant: units}`. */
  async unitsPerArm(flag) {
    const readout = await this.results(flag);
    return Object.fromEntries(readout.arms.map((arm) => [arm.variant, arm.units]));
  }

  /** The units per arm that converted on `metric` in `flag`'s readout. */
  async conversions(flag, metric) {
    const readout = await this.results(flag);
    const inputs = readout.metrics.find((m) => m.metric === metric).inputs;
    return Object.fromEntries(inputs.map((arm) => [arm.name, arm.conversions]));
  }

  /** `GET /v1/experiments/{flag}/results`, with the admin token if tokens are on. */
  async results(flag) {
    const headers = this.tokens ? { Authorization: `Bearer ${ADMIN_TOKEN}` } : {};
    const response = await fetch(`${this.base}/v1/experiments/${flag}/results`, { headers });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    return body;
  }

  async stop() {
    await stopFlagsServe(this);
  }
}

/**
 * Polls `read` until its answer deep-equals `expected` (a timer or a beacon
 * sends events when it likes), then asserts it; fails with the last answer
 * after `timeout` ms.
 */
export async function waitFor(read, expected, { timeout = 10_000 } = {}) {
  const deadline = Date.now() + timeout;
  let actual = await read();
  while (!isDeepEqual(actual, expected) && Date.now() < deadline) {
    await delay(POLL_INTERVAL_MS);
    actual = await read();
  }
  assert.deepEqual(actual, expected);
}

function isDeepEqual(a, b) {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Arms with no unit left out, so expectations list only the units a test caused. */
export function nonZero(arms) {
  return Object.fromEntries(Object.entries(arms).filter(([, units]) => units > 0));
}
