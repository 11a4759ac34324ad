// XEP-0357 with a real client library as a phone uses it: slixmpp 1.8.3 (Debian's python3-slixmpp) enables XEP-0198
// with resumption and registers for push (the enable IQ built by the client: slixmpp has no xep_0357 plugin), then its
// TCP connection dies; a message for it is published to the app server (a second Comity's pubsub service over s2s),
// and when the client resumes it gets the message. Without slixmpp the test fails under CI=true and is skipped
// otherwise (scripts/install-test-deps.sh installs it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import { event, iq, online, PASSWORD, PUBSUB } from "../pep/kit.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./slixmpp_push.py", import.meta.url));
const probe = spawnSync(PYTHON, ["-c", "import slixmpp.plugins.xep_0198"], { encoding: "utf8", timeout: 60_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "python3-slixmpp is not installed (scripts/install-test-deps.sh)" : false;

const A = "a.localhost";
const B = "b.localhost";
const SVC = "pubsub.b.localhost";

interface Ev {
  event: string;
  [key: string]: unknown;
}

let a: TestServer;
let b: TestServer;
let child: ChildProcessWithoutNullStreams | undefined;
const clients: RawClient[] = [];

before(async () => {
  b = await createTestServer({ hosts: [{ domain: B, pubsub: { domain: SVC } }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } }, { users: { [`app@${B}`]: PASSWORD } });
  a = await createTestServer(
    { hosts: [{ domain: A }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } },
    { users: { [`henry@${A}`]: PASSWORD, [`bob@${A}`]: PASSWORD } },
  );
  a.config.s2s.routes[B] = `127.0.0.1:${b.s2sPort}`;
  a.config.s2s.routes[SVC] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes[A] = `127.0.0.1:${a.s2sPort}`;
});
after(async () => {
  child?.kill("SIGKILL");
  for (const c of clients) c.close();
  await a?.stop();
  await b?.stop();
});

async function until(f: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("slixmpp registers for push, loses its connection, is woken through the app server, and resumes", { skip, timeout: 120_000 }, async () => {
  assert.ok(!missing, `slixmpp's xep_0198 is not importable by ${PYTHON}: ${probe.stderr}`);
  const app = await online(b, "app", "server", { domain: B });
  clients.push(app);
  const node = "slix-phone";
  const form = `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#publish_model'><value>open</value></field></x>`;
  assert.equal((await iq(app, `<pubsub xmlns='${PUBSUB}'><create node='${node}'/><configure>${form}</configure></pubsub>`, "set", SVC)).attrs["type"], "result");
  assert.equal((await iq(app, `<pubsub xmlns='${PUBSUB}'><subscribe node='${node}' jid='app@${B}'/></pubsub>`, "set", SVC)).attrs["type"], "result");
  const bob = await online(a, "bob", "desk", { domain: A });
  clients.push(bob);

  const c = spawn(PYTHON, [SCRIPT, "--port", String(a.c2sPort), "--jid", `henry@${A}/slix`, "--password", PASSWORD, "--app-server", SVC, "--node", node, "--timeout", "90"], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  child = c;
  let stderr = "";
  c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const events: Ev[] = [];
  createInterface({ input: c.stdout }).on("line", (line) => {
    try {
      events.push(JSON.parse(line) as Ev);
    } catch {
      events.push({ event: "unparsed", line });
    }
  });
  const waitEvent = async (f: (e: Ev) => boolean, what: string): Promise<Ev> => {
    await until(() => events.some(f) || c.exitCode !== null, what, 60_000);
    const found = events.find(f);
    assert.ok(found, `${what}: ${JSON.stringify(events)}\n${stderr}`);
    return found;
  };

  const enabled = await waitEvent((e) => e.event === "push_enabled", "push enabled");
  assert.equal(enabled["type"], "result");
  c.stdin.write("cut\n");
  await waitEvent((e) => e.event === "cut", "the connection cut");
  const session = () => a.server.sessions.get(parseJid(`henry@${A}/slix`)) as C2sSession | undefined;
  await until(() => session()?.hibernating === true, "hibernation");

  bob.send(`<message type='chat' to='henry@${A}' id='w1'><body>wake up</body></message>`);
  const ev = await event(app, node);
  assert.match(ev.toString(), new RegExp(`bob@${A}/desk`));
  assert.doesNotMatch(ev.toString(), /wake up/, "no body: neither asked for nor allowed by default");

  c.stdin.write("go\n");
  await waitEvent((e) => e.event === "resumed", "resumption");
  await waitEvent((e) => e.event === "message" && e["body"] === "wake up", "the message after resuming");
  c.stdin.write("bye\n");
  await waitEvent((e) => e.event === "done", "done");
});
