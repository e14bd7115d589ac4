// Starts and stops a real `flags serve` for the Node tests (tests/console,
// sdks/js): the debug binary cargo built ($FLAGS_BIN overrides it), in a
// fresh directory with its own flags.toml and data, on a free loopback port.
// Not here: what each test asks of the server.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.FLAGS_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "debug/flags");

/**
 * Starts `flags serve` over `text` with `env` added to this process's and
 * `args` after the usual ones; resolves once it prints where it listens.
 * Returns `{dir, config, child, base, exited}` (`base`: its URL, `exited`:
 * a promise of its exit code).
 */
export async function startFlagsServe({ text, env = {}, args = [], prefix = "flags-test-" }) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const config = join(dir, "flags.toml");
  writeFileSync(config, text);
  const child = spawn(bin, ["serve", "--config", config, "--addr", "127.0.0.1:0", "--data", join(dir, "data"), ...args], {
    env: { ...process.env, FLAGS_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const base = await new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${bin} exited (${code}) before listening`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const match = /^listening on (http:\/\/\S+)/.exec(line);
      if (match) resolve(match[1]);
    });
  });
  return { dir, config, child, base, exited };
}

/** Stops a server `startFlagsServe` started and removes its directory. */
export async function stopFlagsServe({ child, exited, dir }) {
  child.kill("SIGTERM");
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
