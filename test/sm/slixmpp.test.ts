// XEP-0198 with a real client: slixmpp 1.8.3's xep_0198 plugin (Debian's python3-slixmpp) enables stream management
// with resumption, loses its TCP connection, and resumes; a message sent meanwhile arrives on the resumed stream.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./slixmpp_sm.py", import.meta.url));

interface Ev {
  event: string;
  [key: string]: unknown;
}

let ts: TestServer;
let problem: string | undefined;

before(async () => {
  const probe = spawnSync(PYTHON, ["-c", "import slixmpp.plugins.xep_0198"], { encoding: "utf8", timeout: 15_000 });
  if (probe.error || probe.status !== 0) problem = `slixmpp is not importable by ${PYTHON} (apt-get install python3-slixmpp): ${probe.error?.message ?? probe.stderr}`;
  ts = await createTestServer({}, { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } });
});
after(async () => {
  await ts.stop();
});

async function until(f: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("slixmpp enables stream management, loses its connection and resumes without losing a message", async () => {
  if (problem) throw new Error(problem);
  const child = spawn(PYTHON, [SCRIPT, "--port", String(ts.c2sPort), "--jid", "alice@localhost/slix", "--password", "wonderland", "--timeout", "20"], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const events: Ev[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    try {
      events.push(JSON.parse(line) as Ev);
    } catch {
      events.push({ event: "unparsed", line });
    }
    for (const w of waiters.splice(0)) w();
  });
  let exited = false;
  const exit = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      exited = true;
      clearTimeout(killer);
      for (const w of waiters.splice(0)) w();
      resolve(code);
    }),
  );
  const waitEvent = async (name: string, pred: (e: Ev) => boolean = () => true): Promise<Ev> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const e = events.find((x) => x.event === name && pred(x));
      if (e) return e;
      if (exited || Date.now() > deadline) throw new Error(`no ${name}; events: ${JSON.stringify(events)}; stderr: ${stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };

  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", "builder", "desk");
  try {
    const enabled = await waitEvent("enabled");
    assert.equal(enabled["resume"], "True");
    assert.equal(enabled["max"], "300");
    await waitEvent("session_start");
    const jid = parseJid("alice@localhost/slix");
    const s = ts.server.sessions.get(jid) as C2sSession;
    assert.ok(s.sm, "stream management is on for the session");

    bob.send(`<message type='chat' to='alice@localhost/slix' id='b1'><body>before the cut</body></message>`);
    await waitEvent("message", (e) => e["body"] === "before the cut");
    child.stdin.write("cut\n");
    await waitEvent("cut");
    await until(() => s.hibernating, "the session to hibernate");
    bob.send(`<message type='chat' to='alice@localhost/slix' id='b2'><body>while away</body></message>`);
    child.stdin.write("go\n");
    await waitEvent("resumed");
    await waitEvent("message", (e) => e["body"] === "while away");
    assert.equal(ts.server.sessions.get(jid), s, "the same session continues");
    child.stdin.write("bye\n");
    await waitEvent("done");
    assert.equal(await exit, 0, stderr);
    const bodies = events.filter((e) => e.event === "message").map((e) => e["body"]);
    assert.deepEqual(bodies, ["before the cut", "while away"], "each message exactly once");
  } finally {
    bob.close();
    if (!exited) child.kill("SIGKILL");
  }
});
