// Compiled by `tsc --noEmit` (npm test), never run: checks that the
// hand-written src/index.d.ts fits the OpenFeature web SDK and describes
// the usage README.md shows.

import { OpenFeature, type Hook } from "@openfeature/web-sdk";
import { FlagsReporter, ReportError, type FlagsEvent } from "@flags/openfeature-web";

const reporter = new FlagsReporter({
  url: "https://flags.example.com",
  token: "a client token",
  flushInterval: 5000,
  batchSize: 50,
  maxQueue: 1000,
  retryDelay: 1000,
  maxRetryDelay: 60_000,
  onError(error: ReportError) {
    const events: readonly unknown[] = error.events;
    if (error.kind === "rejected") {
      for (const problem of error.problems ?? []) {
        const event: FlagsEvent = problem.event;
        console.log(event.id, problem.status, problem.reason, events.length);
      }
    }
  },
  fetch: globalThis.fetch,
});

const hook: Hook = reporter;
OpenFeature.addHooks(hook);
OpenFeature.getClient().addHooks(reporter);

const queued: boolean = reporter.track("revenue", { unit: "user-42", value: 39.9 });
const flushed: Promise<void> = reporter.flush();
const closed: Promise<void> = reporter.close();
void [queued, flushed, closed];
