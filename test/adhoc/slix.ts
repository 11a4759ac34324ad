// Test helper: run test/interop/slixmpp_adhoc.py (slixmpp 1.8.3's XEP-0050 client) and collect its JSON lines.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("../interop/slixmpp_adhoc.py", import.meta.url));

const live = new Set<ChildProcess>();

/** Kill every script still running (for `after`: a failed test must not leave one that keeps the file alive). */
export function killSlix(): void {
  for (const c of live) c.kill("SIGKILL");
  live.clear();
}

/** One JSON line printed by the script. */
export interface SlixEvent {
  event: string;
  [key: string]: unknown;
}

/** A running script: its events so far, a way to wait for one, and its end. */
export interface SlixRun {
  events: SlixEvent[];
  waitFor(event: string): Promise<SlixEvent>;
  done: Promise<{ code: number | null; events: SlixEvent[]; stderr: string }>;
}

/** Why slixmpp cannot be used here, or undefined when it can. */
export function slixmppProblem(): string | undefined {
  const probe = spawnSync(PYTHON, ["-c", "import slixmpp.plugins.xep_0050"], { encoding: "utf8", timeout: 60_000 });
  if (probe.error || probe.status !== 0) {
    return `slixmpp is not importable by ${PYTHON}: install Debian's python3-slixmpp; ${probe.error?.message ?? probe.stderr}`;
  }
  return undefined;
}

/** Start the script as `jid` against 127.0.0.1:`port` with these steps (see the script's docstring). */
export function startSlix(opts: { port: number; jid: string; password: string; steps: unknown[]; timeoutS?: number }): SlixRun {
  const timeoutS = opts.timeoutS ?? 45; // generous for a loaded machine; a run that works ends when done
  const child = spawn(PYTHON, [SCRIPT, "--port", String(opts.port), "--jid", opts.jid, "--password", opts.password, "--timeout", String(timeoutS), "--steps", JSON.stringify(opts.steps)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), (timeoutS + 10) * 1000);
  live.add(child);
  const events: SlixEvent[] = [];
  const waiters: { name: string; resolve: (e: SlixEvent) => void; reject: (e: Error) => void }[] = [];
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  createInterface({ input: child.stdout }).on("line", (line) => {
    let ev: SlixEvent;
    try {
      ev = JSON.parse(line) as SlixEvent;
    } catch {
      ev = { event: "unparsed", line };
    }
    events.push(ev);
    for (const w of waiters.filter((x) => x.name === ev.event)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(ev);
    }
  });
  const done = new Promise<{ code: number | null; events: SlixEvent[]; stderr: string }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      live.delete(child);
      for (const w of waiters.splice(0)) w.reject(new Error(`slixmpp ended without "${w.name}": ${JSON.stringify(events)}\n${stderr}`));
      resolve({ code, events, stderr });
    });
  });
  return {
    events,
    done,
    waitFor(name) {
      const seen = events.find((e) => e.event === name);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ name, resolve, reject }));
    },
  };
}

/** Run the script to its end. */
export function runSlix(opts: Parameters<typeof startSlix>[0]) {
  return startSlix(opts).done;
}
