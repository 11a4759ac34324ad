// XEP-0352 over XMPP-over-WebSocket (RFC 7395): the same c2s session and filter, so a browser or a phone's web client
// gets the csi feature, and while it is inactive presence waits and a message arrives at once after what was held.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import type { CsiApi } from "../../src/modules/csi/mod.ts";

const FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const CSI = "urn:xmpp:csi:0";
let ts: TestServer;
let url: string;
const cleanup: (() => void)[] = [];

before(async () => {
  ts = await createTestServer(
    { http: { listen: ["127.0.0.1:0"] }, c2s: { encryption: "optional" }, auth: { insecure_plain: true } },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } },
  );
  url = `ws://127.0.0.1:${ts.server.addresses.http[0]!.port}/xmpp-websocket`;
  const item = (jid: string) => ({ jid, subscription: "both" as const, ask: false, approved: false, groups: [] });
  await ts.server.storage.rosters.setItem("localhost", "alice", item("bob@localhost"));
  await ts.server.storage.rosters.setItem("localhost", "bob", item("alice@localhost"));
});
after(async () => {
  for (const f of cleanup) f();
  await ts.stop();
});

async function until(f: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("over WebSocket: the csi feature, presence held and squashed, a message at once after it, the rest on <active/>", async () => {
  const ws = new WebSocket(url, ["xmpp"]);
  cleanup.push(() => ws.terminate());
  const messages: string[] = [];
  ws.on("message", (d) => messages.push(d.toString()));
  ws.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const has = (re: RegExp) => messages.some((m) => re.test(m));
  const index = (re: RegExp) => messages.findIndex((m) => re.test(m));
  ws.send(`<open xmlns='${FRAMING}' to='localhost' version='1.0'/>`);
  await until(() => has(/<\/stream:features>/), "features");
  ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0wonderland").toString("base64")}</auth>`);
  await until(() => has(/<success/), "auth");
  messages.length = 0;
  ws.send(`<open xmlns='${FRAMING}' to='localhost' version='1.0'/>`);
  await until(() => has(/<\/stream:features>/), "features after auth");
  assert.ok(has(/<csi xmlns='urn:xmpp:csi:0'\/>/), messages.join(" | "));
  ws.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>`);
  await until(() => has(/<jid>alice@localhost\/web<\/jid>/), "bind");
  ws.send("<presence/>");
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", "builder", "b");
  cleanup.push(() => bob.close());
  bob.send("<presence/>");
  await until(() => has(/<presence[^>]*from='bob@localhost\/b'/), "bob's initial presence");

  const session = ts.server.sessions.get(parseJid("alice@localhost/web")) as C2sSession;
  const csi = ts.server.hosts.get("localhost")!.provided.get("csi") as CsiApi;
  ws.send(`<inactive xmlns='${CSI}'/>`);
  await until(() => csi.isInactive(session), "inactive");
  messages.length = 0;
  bob.send("<presence><show>away</show></presence><presence><show>xa</show></presence>");
  await until(() => csi.held(session) === 1, "bob's presence held, squashed to one");
  assert.equal(messages.length, 0, messages.join(" | "));
  bob.send("<message type='chat' to='alice@localhost/web'><body>ping me</body></message>");
  await until(() => has(/<body>ping me<\/body>/), "the message");
  assert.ok(index(/<show>xa<\/show>/) >= 0 && index(/<show>xa<\/show>/) < index(/<body>ping me/), messages.join(" | "));
  assert.ok(!has(/<show>away<\/show>/));
  bob.send("<presence><show>dnd</show></presence>");
  await until(() => csi.held(session) === 1, "the next presence held");
  ws.send(`<active xmlns='${CSI}'/>`);
  await until(() => has(/<show>dnd<\/show>/), "the held presence on <active/>");
});
