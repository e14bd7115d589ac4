// Types of src/index.js (hand-written; `tsc --noEmit` in the test checks
// them against the OpenFeature web SDK's `Hook` and the test's own usage).

import type { EvaluationDetails, FlagValue, Hook, HookContext } from "@openfeature/web-sdk";

/** An exposure as sent to `POST /v1/events`. */
export interface ExposureEvent {
  type: "exposure";
  /** Random, fixed when queued: every retry resends it, so the server counts it once. */
  id: string;
  flag: string;
  /** The arm the unit counts under (`flagMetadata.arm`, else the variant served). */
  variant: string;
  /** The unit: the evaluation context's targeting key. */
  key: string;
  /** When it was queued (RFC 3339). */
  time: string;
}

/** A conversion as sent to `POST /v1/events`. */
export interface ConversionEvent {
  type: "conversion";
  id: string;
  metric: string;
  key: string;
  value?: number;
  time: string;
}

export type FlagsEvent = ExposureEvent | ConversionEvent;

/**
 * - `dropped`: not queued (the queue was full, or an enrolled answer had no
 *   targeting key or variant); `events` are the ones lost (without id/time).
 * - `rejected`: the server did not store some events of a batch (`conflict`
 *   or `rejected`, with its reason in `problems`); they are not resent.
 * - `refused`: the server refused a whole batch with a 4xx other than 429
 *   (a bad or missing token, say); it is not resent.
 * - `unavailable`: a network error, 429 or 5xx; the batch is resent with the
 *   same ids after a backoff.
 */
export type ReportErrorKind = "dropped" | "rejected" | "refused" | "unavailable";

export interface EventProblem {
  event: FlagsEvent;
  status: "conflict" | "rejected";
  reason: string;
}

export class ReportError extends Error {
  readonly name: "ReportError";
  readonly kind: ReportErrorKind;
  readonly events: Array<FlagsEvent | Omit<FlagsEvent, "id" | "time">>;
  /** The HTTP status, when a response said it. */
  readonly status?: number;
  /** For `rejected`: each event the server did not store and why. */
  readonly problems?: EventProblem[];
}

export interface FlagsReporterOptions {
  /** The flags server's base URL (the OFREP provider's `baseUrl`); events go to `${url}/v1/events`. */
  url: string;
  /** A client token, sent as `Authorization: Bearer`. */
  token?: string;
  /** Milliseconds a queued event waits at most before its batch is sent (default 5000). */
  flushInterval?: number;
  /** Events per request; a queue this long is sent at once (default 50, at most 1000). */
  batchSize?: number;
  /** Events queued or in flight at most; beyond, new events are dropped and reported (default 1000). */
  maxQueue?: number;
  /** First retry delay in milliseconds, doubled per failure in a row (default 1000). */
  retryDelay?: number;
  /** Longest retry delay in milliseconds (default 60000); a longer `Retry-After` wins. */
  maxRetryDelay?: number;
  /** What went wrong with which events (default: `console.warn`). */
  onError?: (error: ReportError) => void;
  /** The `fetch` to send with (default: the global one). */
  fetch?: typeof fetch;
}

export interface TrackOptions {
  /** The unit: the targeting key the flags were evaluated for. */
  unit: string;
  /** The value (required for `mean` metrics). */
  value?: number;
}

export class FlagsReporter implements Hook {
  constructor(options: FlagsReporterOptions);
  after(hookContext: Readonly<HookContext<FlagValue>>, details: EvaluationDetails<FlagValue>): void;
  /** Queues a conversion; false if the queue was full (reported to `onError`). */
  track(metric: string, options: TrackOptions): boolean;
  /** Sends everything queued now; resolves when the queue is empty or a batch failed (and will be retried). */
  flush(): Promise<void>;
  /** Removes the timers and page listeners, then sends what is queued once. */
  close(): Promise<void>;
}
