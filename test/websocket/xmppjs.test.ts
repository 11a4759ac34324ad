// A real browser-style client library (@xmpp/client with its @xmpp/websocket transport) over /xmpp-websocket:
// login over ws:// and wss://, messages with a TCP client both ways, the roster with its pushes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { xml, type XmppClient, type XmlElement } from "@xmpp/client";
import { stopXmppClients, xmppClient } from "../kit/xmppjs.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

// @xmpp/websocket uses the global WebSocket, which Node 20 lacks: lend it the ws client. The server's certificate
// is self-signed and generated at start.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";

let ts: TestServer;
let wsService: string;
let wssService: string;
before(async () => {
  // Plaintext ws:// is allowed here (c2s.encryption: optional) so that both schemes can be tested on one server.
  ts = await createTestServer(
    { http: { listen: ["127.0.0.1:0"], tls_listen: ["127.0.0.1:0"] }, c2s: { encryption: "optional" } },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } },
  );
  wsService = `ws://127.0.0.1:${ts.server.addresses.http[0]!.port}/xmpp-websocket`;
  wssService = `wss://127.0.0.1:${ts.server.addresses.https[0]!.port}/xmpp-websocket`;
});
after(async () => {
  await stopXmppClients();
  await ts.stop();
});

function connect(service: string, opts: { mechanism?: string; resource: string; username?: string; password?: string }): XmppClient {
  const c = xmppClient({
    service,
    domain: "localhost",
    resource: opts.resource,
    credentials: async (authenticate: (creds: object, mech: string) => Promise<void>, mechanisms: string[]) => {
      const mechanism = opts.mechanism ?? "SCRAM-SHA-1";
      assert.ok(mechanisms.includes(mechanism), `offered: ${mechanisms.join(",")}`);
      await authenticate({ username: opts.username ?? "alice", password: opts.password ?? "wonderland" }, mechanism);
    },
  });
  return c;
}

/** The next stanza the client receives that satisfies `pred`. */
function nextStanza(c: XmppClient, pred: (s: XmlElement) => boolean, timeoutMs = 15_000): Promise<XmlElement> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no matching stanza")), timeoutMs);
    const on = (s: XmlElement) => {
      if (!pred(s)) return;
      clearTimeout(t);
      c.removeListener("stanza", on);
      resolve(s);
    };
    c.on("stanza", on);
  });
}

for (const [scheme, service] of [["ws://", () => wsService], ["wss://", () => wssService]] as const) {
  test(`@xmpp/client logs in with SCRAM-SHA-1 over ${scheme}, binds and pings`, async () => {
    const c = connect(service(), { resource: `scram-${scheme.length}` });
    const jid = await c.start();
    assert.equal(jid.toString(), `alice@localhost/scram-${scheme.length}`);
    const pong = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs["type"], "result");
    await c.stop();
  });
}

test("@xmpp/client over wss:// may use PLAIN (the stream is encrypted)", async () => {
  const c = connect(wssService, { mechanism: "PLAIN", resource: "plain" });
  assert.equal((await c.start()).toString(), "alice@localhost/plain");
  await c.stop();
});

test("a wrong password over WebSocket is refused with not-authorized", async () => {
  const c = connect(wsService, { resource: "bad", password: "nope" });
  await assert.rejects(c.start(), (err: Error & { condition?: string }) => err.condition === "not-authorized");
  await c.stop().catch(() => {});
});

test("messages go both ways between a WebSocket client and a TCP client", async () => {
  const web = connect(wsService, { resource: "web" });
  await web.start();
  await web.send(xml("presence"));
  const { client: tcp } = await RawClient.login(ts.c2sPort, "bob", "builder", "tcp");
  try {
    await web.send(xml("message", { to: "bob@localhost/tcp", type: "chat", id: "m1" }, xml("body", {}, "hello from the browser")));
    const got = await tcp.waitFor(/<message[^>]*id='m1'[^>]*>[\s\S]*?<\/message>/);
    assert.match(got[0], /from='alice@localhost\/web'/);
    assert.match(got[0], /hello from the browser/);

    const reply = nextStanza(web, (s) => s.name === "message");
    tcp.send("<message to='alice@localhost/web' type='chat' id='m2'><body>hello from tcp</body></message>");
    const m = await reply;
    assert.equal(m.attrs["from"], "bob@localhost/tcp");
    assert.equal(m.getChildText("body"), "hello from tcp");
  } finally {
    tcp.close();
    await web.stop();
  }
});

test("the roster works over WebSocket: get, set, push, get", async () => {
  const c = connect(wssService, { resource: "roster" });
  await c.start();
  try {
    // Pushes go to resources that asked for the roster (RFC 6121 §2.1.6).
    const empty = await c.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    assert.equal(empty.getChild("query", "jabber:iq:roster")!.getChildren("item").length, 0);
    const push = nextStanza(c, (s) => s.name === "iq" && s.attrs["type"] === "set" && s.getChild("query", "jabber:iq:roster") !== undefined);
    await c.iqCaller.request(
      xml("iq", { type: "set" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "bob@localhost", name: "Bob" }, xml("group", {}, "Friends")))),
    );
    const pushed = (await push).getChild("query", "jabber:iq:roster")!.getChild("item")!;
    assert.equal(pushed.attrs["jid"], "bob@localhost");
    const res = await c.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    const items = res.getChild("query", "jabber:iq:roster")!.getChildren("item");
    const bob = items.find((i) => i.attrs["jid"] === "bob@localhost");
    assert.ok(bob, "bob is in the roster");
    assert.equal(bob.attrs["name"], "Bob");
    assert.equal(bob.getChildText("group"), "Friends");
  } finally {
    await c.stop();
  }
});
