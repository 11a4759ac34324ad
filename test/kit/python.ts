// Test kit: run a Python client script (Debian's python3 with its slixmpp, aioxmpp, omemo packages) and collect the JSON
// lines it prints. Every run is bounded, and `killPythonScripts()` in `after` ends any a failed test left running.
import { spawn, type ChildProcess } from "node:child_process";

/** Debian's interpreter: the one that has python3-slixmpp and friends (a pyenv python3 on PATH may not). */
export const PYTHON = "/usr/bin/python3";

const live = new Set<ChildProcess>();

/** Kill every script still running. */
export function killPythonScripts(): void {
  for (const c of live) c.kill("SIGKILL");
  live.clear();
}

/** What a script did: its exit code, each JSON line it printed (others are kept as {line}), its stdout and stderr. */
export interface PythonRun {
  code: number | null;
  events: Record<string, unknown>[];
  stdout: string;
  stderr: string;
}

/** Run `script` with `args`; killed after `killAfterS` seconds (a bound for a hung script only). */
export function runPython(script: string, args: string[], opts: { killAfterS?: number } = {}): Promise<PythonRun> {
  return new Promise((resolve) => {
    const child = spawn(PYTHON, [script, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
    live.add(child);
    const killer = setTimeout(() => child.kill("SIGKILL"), (opts.killAfterS ?? 120) * 1000);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("close", (code) => {
      clearTimeout(killer);
      live.delete(child);
      const events = stdout
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            return { line };
          }
        });
      resolve({ code, events, stdout, stderr });
    });
  });
}
