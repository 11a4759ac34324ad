// RFC 6121 with a second real client library (slixmpp 1.8.3): two users subscribe to each other, see each
// other's presence, chat; a message sent while the recipient is offline arrives on login with a delay stamp.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createTestServer, type TestServer } from "../kit/server.ts";

const PY = "/usr/bin/python3";
const SCRIPT = "test/interop/slixmpp_im.py";
/** The scripts' own limit: Python, slixmpp's imports, TLS and SCRAM take seconds on a loaded machine. */
const LIMIT_S = "45";
/** Scripts still running, killed in `after` so a failed test leaves none behind. */
const live = new Set<ChildProcess>();

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "sam@localhost": "pw-sam", "tess@localhost": "pw-tess" } });
});
after(async () => {
  for (const p of live) p.kill("SIGKILL");
  await ts?.stop();
});

/** Run one slixmpp role to completion; returns its JSON events. `onLine` sees each chunk of output as it comes. */
function role(jid: string, password: string, r: string, extra: string[] = [], onOutput?: (out: string) => void): Promise<{ code: number | null; events: Record<string, string>[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PY, [SCRIPT, "--port", String(ts.c2sPort), "--jid", jid, "--password", password, "--role", r, "--timeout", LIMIT_S, ...extra]);
    live.add(p);
    p.on("exit", () => live.delete(p));
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      onOutput?.(out);
    });
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("exit", (code) => {
      if (/No module named 'slixmpp'/.test(err)) reject(new Error("python3-slixmpp is not installed: run scripts/install-test-deps.sh"));
      resolve({ code, events: out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>) });
    });
  });
}

test("two slixmpp users subscribe to each other, see presence and chat", { timeout: 120_000 }, async () => {
  let online!: () => void;
  const started = new Promise<void>((r) => (online = r));
  const responder = role("tess@localhost/r", "pw-tess", "responder", [], (out) => out.includes('"session_start"') && online());
  // The responder is logged in and available before the requester starts (no guess at how long that takes).
  await Promise.race([started, responder.then((r) => assert.fail(`the responder ended early: ${JSON.stringify(r.events)}`))]);
  const requester = await role("sam@localhost/q", "pw-sam", "requester", ["--contact", "tess@localhost"]);
  const resp = await responder;
  assert.equal(requester.code, 0, JSON.stringify(requester.events));
  assert.ok(requester.events.some((e) => e["event"] === "contact_available" && e["full"] === "tess@localhost/r"));
  assert.deepEqual(requester.events.find((e) => e["event"] === "roster"), { event: "roster", contact: "tess@localhost", subscription: "both" });
  assert.deepEqual(requester.events.find((e) => e["event"] === "message"), { event: "message", frm: "tess@localhost/r", body: "hi back" });
  assert.ok(resp.events.some((e) => e["event"] === "message" && e["body"] === "hello tess@localhost"));
});

test("a message to an offline slixmpp user is delivered at login with a delay stamp", { timeout: 120_000 }, async () => {
  const { RawClient } = await import("../kit/raw-client.ts");
  const { client } = await RawClient.login(ts.c2sPort, "sam", "pw-sam", "raw");
  client.send("<message to='tess@localhost' type='chat' id='off1'><body>while you were away</body></message>");
  client.send("<iq type='get' to='localhost' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  await client.waitFor(/id='sync'/);
  client.close();
  const reader = await role("tess@localhost/later", "pw-tess", "reader", ["--count", "1"]);
  assert.equal(reader.code, 0, JSON.stringify(reader.events));
  const msg = reader.events.find((e) => e["event"] === "message");
  assert.equal(msg?.["body"], "while you were away");
  assert.equal(msg?.["frm"], "sam@localhost/raw");
  assert.ok(msg?.["delay"], "the offline message carries a XEP-0203 delay stamp");
});

test("slixmpp's carbons plugin enables XEP-0280 and receives both kinds of copies", { timeout: 120_000 }, async () => {
  const { RawClient } = await import("../kit/raw-client.ts");
  const watcher = new Promise<{ code: number | null; events: Record<string, string>[] }>((resolve, reject) => {
    const p = spawn(PY, [SCRIPT, "--port", String(ts.c2sPort), "--jid", "sam@localhost/watch", "--password", "pw-sam", "--role", "carbons", "--count", "2", "--timeout", LIMIT_S]);
    live.add(p);
    p.on("exit", () => live.delete(p));
    let out = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"ready"')) readyResolve();
    });
    p.on("error", reject);
    p.on("exit", (code) => resolve({ code, events: out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>) }));
  });
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  await Promise.race([ready, watcher.then((w) => assert.fail(`slixmpp ended early: ${JSON.stringify(w.events)}`))]);
  const { client: sam } = await RawClient.login(ts.c2sPort, "sam", "pw-sam", "desk");
  const { client: tess } = await RawClient.login(ts.c2sPort, "tess", "pw-tess", "t");
  sam.send("<presence/>");
  tess.send("<presence/>");
  tess.send("<message to='sam@localhost/desk' type='chat'><body>to your desk</body></message>");
  await sam.waitFor(/to your desk/);
  sam.send("<message to='tess@localhost/t' type='chat'><body>from my desk</body></message>");
  const w = await watcher;
  assert.equal(w.code, 0, JSON.stringify(w.events));
  const copies = w.events.filter((e) => e["event"] === "carbon");
  assert.deepEqual(copies, [
    { event: "carbon", kind: "received", frm: "tess@localhost/t", to: "sam@localhost/desk", body: "to your desk" },
    { event: "carbon", kind: "sent", frm: "sam@localhost/desk", to: "tess@localhost/t", body: "from my desk" },
  ]);
  sam.close();
  tess.close();
});
