// Runs README.md's usage block as written, against a real `flags serve`:
// only its two constants (the server's URL and client token) are replaced,
// and an export line is added so the test can read what it evaluated.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { OpenFeature } from "@openfeature/web-sdk";
import { CLIENT_TOKEN, FlagsServer, nonZero, waitFor } from "./server.mjs";

const here = dirname(fileURLToPath(import.meta.url));

/** The README's first ```js block, with `FLAGS_URL` and `CLIENT_TOKEN` given these values. */
function readmeExample(url, token) {
  const readme = readFileSync(join(here, "../README.md"), "utf8");
  const block = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, "README.md has a ```js block");
  const constants = [
    [/^const FLAGS_URL = .*$/m, `const FLAGS_URL = ${JSON.stringify(url)};`],
    [/^const CLIENT_TOKEN = .*$/m, `const CLIENT_TOKEN = ${JSON.stringify(token)};`],
  ];
  return constants.reduce((code, [pattern, line]) => {
    assert.match(code, pattern, "the README's example declares the constant the test sets");
    return code.replace(pattern, line);
  }, block);
}

test("the README's usage reports user-42's exposure and purchase", async () => {
  const server = await FlagsServer.start();
  // Inside the package, so its imports resolve as an application's would.
  const file = join(here, "readme-example.generated.mjs");
  writeFileSync(file, `${readmeExample(server.base, CLIENT_TOKEN)}\nexport { reporter, colour };\n`);
  let example;
  try {
    example = await import(pathToFileURL(file).href);
    const variant = { blue: "control", green: "green", red: "red" }[example.colour];
    assert.ok(variant, `checkout-button served ${example.colour}`);
    // Sent by the reporter's timer (default flushInterval, 5 s): the example calls no flush.
    await waitFor(async () => nonZero(await server.conversions("checkout-button", "purchase")), { [variant]: 1 }, { timeout: 20_000 });
    assert.deepEqual(nonZero(await server.unitsPerArm("checkout-button")), { [variant]: 1 });
  } finally {
    rmSync(file, { force: true });
    await example?.reporter.close();
    await OpenFeature.close();
    await server.stop();
  }
});
