// aioxmpp 0.13 (Debian's python3-aioxmpp), an XMPP library nobody here wrote, as an ordinary user: the server's
// command list offers `ping` to every local user and executing it completes with a note (XEP-0050 §2.2, §3).
// aioxmpp's own end-to-end suite expects this of a server. Without aioxmpp the test is skipped, except under CI=true,
// where that is a failure (scripts/install-test-deps.sh installs it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { killPythonScripts, PYTHON, runPython } from "../kit/python.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";

const SCRIPT = fileURLToPath(new URL("../interop/aioxmpp_adhoc.py", import.meta.url));
const probe = spawnSync(PYTHON, ["-c", "import aioxmpp.adhoc"], { encoding: "utf8", timeout: 60_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "python3-aioxmpp is not installed (scripts/install-test-deps.sh)" : false;

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "juliet@localhost": "balcony" } });
});
after(async () => {
  killPythonScripts();
  await ts.stop();
});

/** The script with these arguments; it stops itself after `timeoutS`, and is killed 10 s later if it hangs. */
function run(args: string[], timeoutS = 60) {
  return runPython(SCRIPT, [...args, "--timeout", String(timeoutS)], { killAfterS: timeoutS + 10 });
}

test("an ordinary user lists the server's commands with aioxmpp, finds ping and executes it", { skip, timeout: 120_000 }, async () => {
  assert.ok(!missing, `aioxmpp is not importable by ${PYTHON}: ${probe.stderr}`);
  const r = await run(["--port", String(ts.c2sPort), "--jid", "juliet@localhost", "--password", "balcony"]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const by = (name: string) => r.events.find((e) => e["event"] === name);
  assert.equal(by("supports")?.["ok"], true);
  assert.deepEqual(by("commands")?.["nodes"], ["ping"]);
  assert.equal(by("ping")?.["status"], "completed", JSON.stringify(by("ping")));
  assert.deepEqual(by("ping")?.["notes"], ["Pong"]);
});
