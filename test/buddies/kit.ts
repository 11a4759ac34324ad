// Test kit for server roster tests (XEP-0267): run `comity buddies ...` as a child process against a running
// server's control socket, read a server's roster directly, and wait for asynchronous state.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestServer } from "../kit/server.ts";
import type { BuddyEntry } from "../../src/modules/server-buddies/api.ts";
import type { HostRoster } from "../../src/modules/server-buddies/roster.ts";

const exec = promisify(execFile);

/** Write a config file pointing the CLI at the test server's data dir (and so its control socket). */
export function cliConfig(ts: TestServer, domain: string): string {
  const file = join(ts.dataDir, "cli.yaml");
  writeFileSync(file, `hosts: [{domain: ${domain}}]\ndata_dir: ${ts.dataDir}\n`);
  return file;
}

/**
 * Run the CLI as a child process. ASYNC on purpose: the server runs in this test process, so a synchronous
 * child would deadlock on the control socket. Resolves with stdout, stderr and the exit code.
 */
export async function comity(config: string, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await exec(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args, "--config", config], { encoding: "utf8", timeout: 30_000 });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: typeof e.code === "number" ? e.code : 1 };
  }
}

/** The server-roster API of one host of a running test server. */
export function rosterOf(ts: TestServer, domain: string): HostRoster {
  const r = ts.server.hosts.get(domain)?.provided.get("server-roster") as HostRoster | undefined;
  if (r === undefined) throw new Error(`${domain} has no server roster`);
  return r;
}

/** The entry for `peer` in `domain`'s roster, or undefined. */
export function entryOf(ts: TestServer, domain: string, peer: string): BuddyEntry | undefined {
  return rosterOf(ts, domain).get(peer);
}

/** Poll until `check` returns true (or throw with `what` after the timeout). */
export async function waitUntil(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
