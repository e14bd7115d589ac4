// Exposure and conversion reporting for the OpenFeature web SDK against a
// `flags` server's `POST /v1/events`.
//
// What it is for: a browser that prefetches every flag in bulk (the OFREP
// web provider does) records no exposure on the server, so the page reports
// the flags it actually reads. `FlagsReporter` is an OpenFeature hook whose
// `after` stage queues one exposure per (flag, unit, arm) and page session
// when the answer says the unit is enrolled (`flagMetadata.enrolled`), and
// whose `track()` queues conversions; both go out in batches on a timer, at
// a size limit and when the page is hidden, retried with the same event ids
// (the server answers a resent id as a `duplicate`, so nothing counts twice).
//
// What it is not: no evaluation and no flag cache (the provider does that),
// no storage across page loads (a page that closes while the server is
// unreachable loses what it queued), and no unit other than the context's
// targeting key (a flag that buckets by another attribute needs its
// exposures sent by the application).

/** The server accepts at most this many events per request. */
const MAX_EVENTS_PER_REQUEST = 1000;

const DEFAULTS = {
  flushInterval: 5000,
  batchSize: 50,
  maxQueue: 1000,
  retryDelay: 1000,
  maxRetryDelay: 60_000,
};

/** What `onError` receives: `kind` says what happened to `events`. */
export class ReportError extends Error {
  constructor(kind, message, { events = [], status, problems } = {}) {
    super(message);
    this.name = "ReportError";
    this.kind = kind;
    this.events = events;
    if (status !== undefined) this.status = status;
    if (problems !== undefined) this.problems = problems;
  }
}

/**
 * An OpenFeature hook (add it with `OpenFeature.addHooks` or a client's
 * `addHooks`) that reports exposures of enrolled units, plus `track()` for
 * conversions. See README.md for the options.
 */
export class FlagsReporter {
  #url;
  #headers;
  #fetch;
  #options;
  #onError;
  /** Events waiting to be sent, oldest first. */
  #pending = [];
  /** Events sent and not yet answered; they count against `maxQueue`. */
  #inFlight = 0;
  /** `flag \0 arm \0 unit` of every exposure queued in this page session. */
  #exposed = new Set();
  #timer = null;
  #draining = null;
  /** Failed attempts in a row; the next retry waits `retryDelay * 2^attempts`. */
  #attempts = 0;
  #closed = false;
  #detachPageListeners;

  constructor(options) {
    const { url, token, fetch: fetchImpl, onError, ...rest } = options ?? {};
    if (typeof url !== "string" || url === "") {
      throw new TypeError("FlagsReporter: `url` must be the flags server's base URL (e.g. https://flags.example.com)");
    }
    if (token !== undefined && (typeof token !== "string" || token === "")) {
      throw new TypeError("FlagsReporter: `token` must be a non-empty string (a client token) or left out");
    }
    this.#options = { ...DEFAULTS, ...rest };
    checkPositiveInteger("batchSize", this.#options.batchSize, MAX_EVENTS_PER_REQUEST);
    checkPositiveInteger("maxQueue", this.#options.maxQueue, Infinity);
    for (const name of ["flushInterval", "retryDelay", "maxRetryDelay"]) {
      checkPositiveInteger(name, this.#options[name], Infinity);
    }
    this.#url = `${url.replace(/\/+$/, "")}/v1/events`;
    this.#headers = { "Content-Type": "application/json" };
    if (token !== undefined) this.#headers.Authorization = `Bearer ${token}`;
    this.#fetch = fetchImpl ?? ((...args) => globalThis.fetch(...args));
    this.#onError = onError ?? ((error) => console.warn(error));
    this.#detachPageListeners = this.#attachPageListeners();
  }

  /** The hook's `after` stage: queues the exposure of an enrolled unit. */
  after(hookContext, details) {
    const metadata = details.flagMetadata ?? {};
    if (metadata.enrolled !== true) return;
    // An answer may count the unit under another arm than the variant it
    // serves (a unit that fell through a guarded rollout is its control).
    const variant = typeof metadata.arm === "string" ? metadata.arm : details.variant;
    const unit = hookContext.context?.targetingKey;
    const event = { type: "exposure", flag: details.flagKey, variant, key: unit };
    if (typeof unit !== "string" || unit === "" || typeof variant !== "string") {
      this.#report("dropped", `exposure to ${details.flagKey} not sent: the answer has no variant or the context no targetingKey`, [event]);
      return;
    }
    const seen = `${details.flagKey}\0${variant}\0${unit}`;
    if (this.#exposed.has(seen)) return;
    if (this.#enqueue(event)) this.#exposed.add(seen);
  }

  /**
   * Queues a conversion of `metric` by `unit` (the targeting key the flags
   * were evaluated for); `value` is required for mean metrics.
   */
  track(metric, { unit, value } = {}) {
    if (typeof metric !== "string" || metric === "") {
      throw new TypeError("FlagsReporter.track: `metric` must be the name of a metric declared in flags.toml");
    }
    if (typeof unit !== "string" || unit === "") {
      throw new TypeError(`FlagsReporter.track(${JSON.stringify(metric)}): \`unit\` must be the targeting key the flags were evaluated for`);
    }
    if (value !== undefined && !Number.isFinite(value)) {
      throw new TypeError(`FlagsReporter.track(${JSON.stringify(metric)}): \`value\` must be a finite number, got ${String(value)}`);
    }
    const event = { type: "conversion", metric, key: unit };
    if (value !== undefined) event.value = value;
    return this.#enqueue(event);
  }

  /**
   * Sends everything queued now, batch after batch, and resolves once the
   * queue is empty or a batch failed (it is then retried after a backoff).
   */
  flush() {
    this.#clearTimer();
    return this.#drain();
  }

  /** Stops the timers and page listeners, then sends what is queued (once, no retries). */
  close() {
    this.#closed = true;
    this.#detachPageListeners();
    return this.flush();
  }

  /** Queues `event` with its id and time, unless the queue is full. */
  #enqueue(event) {
    if (this.#pending.length + this.#inFlight >= this.#options.maxQueue) {
      this.#report("dropped", `the event queue is full (maxQueue ${this.#options.maxQueue}): the newest event is dropped, the queued ones keep their place`, [event]);
      return false;
    }
    // The id and time are fixed here, so every retry resends the same event.
    this.#pending.push({ ...event, id: newEventId(), time: new Date().toISOString() });
    // While backing off, a full batch waits for the retry timer like the rest.
    if (this.#attempts === 0 && this.#pending.length >= this.#options.batchSize) {
      this.flush();
    } else if (this.#timer === null && !this.#closed) {
      this.#schedule(this.#options.flushInterval);
    }
    return true;
  }

  /** Sends batches one at a time until the queue is empty or a send fails. */
  #drain() {
    this.#draining ??= (async () => {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, this.#options.batchSize);
        if (!(await this.#send(batch, false))) break;
      }
    })().finally(() => {
      this.#draining = null;
    });
    return this.#draining;
  }

  /**
   * POSTs one batch. Returns false when it is to be retried (network error,
   * 429, 5xx): the batch goes back to the front of the queue.
   */
  async #send(batch, keepalive) {
    this.#inFlight += batch.length;
    let outcome;
    try {
      const response = await this.#fetch(this.#url, {
        method: "POST",
        headers: this.#headers,
        body: JSON.stringify({ events: batch }),
        keepalive,
      });
      outcome = await this.#judge(response, batch);
    } catch (error) {
      outcome = { retry: true, message: `sending to ${this.#url} failed: ${error?.message ?? error}` };
    } finally {
      this.#inFlight -= batch.length;
    }
    if (!outcome.retry) {
      this.#attempts = 0;
      return true;
    }
    this.#pending.unshift(...batch);
    const delay = Math.max(
      Math.min(this.#options.retryDelay * 2 ** this.#attempts, this.#options.maxRetryDelay),
      outcome.retryAfter ?? 0,
    );
    this.#attempts += 1;
    const retrying = this.#closed ? "not retried: the reporter is closed" : `retried in ${delay} ms`;
    this.#report("unavailable", `${outcome.message}; ${batch.length} events ${retrying}`, batch, outcome.status);
    if (!this.#closed) this.#schedule(delay);
    return false;
  }

  /** What a response means for its batch; reports what the server refused. */
  async #judge(response, batch) {
    const text = await response.text();
    if (response.status === 429 || response.status >= 500) {
      const seconds = Number(response.headers.get("Retry-After"));
      return {
        retry: true,
        status: response.status,
        message: `${this.#url} answered ${response.status}: ${text}`,
        retryAfter: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined,
      };
    }
    if (!response.ok) {
      // A refused request (a bad token, a body the server cannot read) is
      // refused again however often it is sent.
      this.#report("refused", `${this.#url} refused ${batch.length} events with ${response.status}: ${text}`, batch, response.status);
      return { retry: false };
    }
    const problems = (JSON.parse(text).problems ?? [])
      .filter((problem) => problem.status !== "duplicate")
      .map((problem) => ({ event: batch[problem.index], status: problem.status, reason: problem.reason }));
    if (problems.length > 0) {
      const lines = problems.map((p) => `${p.event?.type} ${p.event?.id}: ${p.status}: ${p.reason}`);
      this.#report("rejected", `${this.#url} did not store ${problems.length} events:\n${lines.join("\n")}`, problems.map((p) => p.event), response.status, problems);
    }
    return { retry: false };
  }

  /**
   * Sends everything queued when the page is hidden (it may never be shown
   * again). `sendBeacon` cannot send an `Authorization` header, and the
   * server takes tokens only in headers (a token in a URL lands in logs), so
   * with a token the batches go with `fetch(..., {keepalive: true})`, which
   * outlives the page the same way; without one, with `sendBeacon`.
   */
  #sendOnHide() {
    this.#clearTimer();
    const navigator = globalThis.navigator;
    const useBeacon = this.#headers.Authorization === undefined && typeof navigator?.sendBeacon === "function";
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.#options.batchSize);
      if (!useBeacon) {
        this.#send(batch, true);
        continue;
      }
      const body = new Blob([JSON.stringify({ events: batch })], { type: "application/json" });
      if (!navigator.sendBeacon(this.#url, body)) {
        // The browser would not queue it (too large, or its beacon quota is
        // spent): keep the events for the next flush.
        this.#pending.unshift(...batch);
        this.#schedule(this.#options.flushInterval);
        break;
      }
    }
  }

  /** Listens for the page being hidden; returns what removes the listeners. */
  #attachPageListeners() {
    const { document, window } = globalThis;
    const onVisibilityChange = () => {
      if (document.visibilityState === "hidden") this.#sendOnHide();
    };
    const onPageHide = () => this.#sendOnHide();
    document?.addEventListener?.("visibilitychange", onVisibilityChange);
    window?.addEventListener?.("pagehide", onPageHide);
    return () => {
      document?.removeEventListener?.("visibilitychange", onVisibilityChange);
      window?.removeEventListener?.("pagehide", onPageHide);
    };
  }

  #schedule(delay) {
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#drain();
    }, delay);
  }

  #clearTimer() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #report(kind, message, events, status, problems) {
    try {
      this.#onError(new ReportError(kind, message, { events, status, problems }));
    } catch (error) {
      // A throwing callback must not break evaluations or the queue.
      console.error("FlagsReporter: onError threw", error);
    }
  }
}

function checkPositiveInteger(name, value, max) {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    const bound = max === Infinity ? "" : ` of at most ${max}`;
    throw new RangeError(`FlagsReporter: \`${name}\` must be a positive integer${bound}, got ${String(value)}`);
  }
}

/**
 * A random 128-bit id in hex. `crypto.getRandomValues` rather than
 * `crypto.randomUUID`, which browsers offer only on secure origins.
 */
function newEventId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
