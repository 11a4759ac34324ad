// XEP-0198 with @xmpp/client (xmpp.js), which enables stream management by itself whenever the server offers it:
// it gets a resumption id, and after its socket dies its reconnect module resumes the same session.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { stopXmppClients, xmppClient } from "../kit/xmppjs.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";

process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } });
});
after(async () => {
  await stopXmppClients();
  await ts.stop();
});

interface Sm {
  enabled: boolean;
  id: string;
  on(event: "resumed", f: () => void): void;
}

test("@xmpp/client enables stream management and resumes after its socket is destroyed", async () => {
  const c = xmppClient({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", resource: "js", username: "alice", password: "wonderland" });
  const bodies: string[] = [];
  c.on("stanza", (st: { name: string; getChildText(n: string): string | null }) => {
    if (st.name === "message") bodies.push(st.getChildText("body") ?? "");
  });
  await c.start();
  const sm = (c as unknown as { streamManagement: Sm }).streamManagement;
  // xmpp.js goes online after binding; <enabled/> may come a moment later.
  for (let i = 0; i < 500 && !sm.enabled; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sm.enabled, true);
  assert.ok(sm.id.length > 0, "resumption was granted");
  const session = ts.server.sessions.get(parseJid("alice@localhost/js")) as C2sSession;
  assert.ok(session.sm);

  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", "builder", "js");
  bob.send(`<message type='chat' to='alice@localhost/js' id='j1'><body>first</body></message>`);
  for (let i = 0; i < 500 && bodies.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(bodies, ["first"]);

  const resumed = new Promise<void>((r) => sm.on("resumed", r));
  // The network drops: the TCP socket under the TLS one goes away without a closing stream.
  const tls = (c as unknown as { socket: { socket: Socket & { _parent?: Socket } } }).socket.socket;
  (tls._parent ?? tls).destroy();
  for (let i = 0; i < 500 && !session.hibernating; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(session.hibernating, "the session hibernates");
  bob.send(`<message type='chat' to='alice@localhost/js' id='j2'><body>second</body></message>`);
  await Promise.race([resumed, new Promise((_, rej) => setTimeout(() => rej(new Error("not resumed")), 10_000))]);
  for (let i = 0; i < 500 && bodies.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(bodies, ["first", "second"]);
  assert.equal(ts.server.sessions.get(parseJid("alice@localhost/js")), session, "the same session continues");
  bob.close();
  await c.stop();
});
