// A real client library (@xmpp/client, the xmpp.js project) logs in over STARTTLS and direct TLS with each
// SASL mechanism it supports, binds, pings and queries disco and version.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml, type XmppClient } from "@xmpp/client";
import { stopXmppClients, xmppClient } from "../kit/xmppjs.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";

// The test server's certificate is self-signed and generated at start.
process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({ hosts: [{ domain: "localhost", admins: ["admin@localhost"], contact: { abuse: ["mailto:abuse@localhost"] } }] }, { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } });
});
after(async () => {
  await stopXmppClients();
  await ts.stop();
});

function connect(opts: { mechanism: string; direct?: boolean; password?: string; resource?: string }): XmppClient {
  const service = opts.direct ? `xmpps://127.0.0.1:${ts.directTlsPort}` : `xmpp://127.0.0.1:${ts.c2sPort}`;
  const c = xmppClient({
    service,
    domain: "localhost",
    resource: opts.resource ?? "xmppjs",
    credentials: async (authenticate: (creds: object, mech: string) => Promise<void>, mechanisms: string[]) => {
      assert.ok(mechanisms.includes(opts.mechanism), `offered: ${mechanisms.join(",")}`);
      await authenticate({ username: "alice", password: opts.password ?? "wonderland" }, opts.mechanism);
    },
  });
  return c;
}

for (const mechanism of ["SCRAM-SHA-1", "PLAIN"]) {
  for (const direct of [false, true]) {
    test(`@xmpp/client logs in with ${mechanism} over ${direct ? "direct TLS" : "STARTTLS"}, binds and pings`, async () => {
      const c = connect({ mechanism, direct, resource: `r-${mechanism}-${direct}` });
      const jid = await c.start();
      assert.equal(jid.toString(), `alice@localhost/r-${mechanism}-${direct}`);
      const pong = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(pong.attrs["type"], "result");
      assert.equal(pong.attrs["from"], "localhost");
      assert.equal(ts.server.status().c2sConnections, 1);
      await c.stop();
      // The server forgets the connection when it ends, also when STARTTLS replaced the socket it was accepted on.
      const deadline = Date.now() + 5000;
      while (ts.server.status().c2sConnections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(ts.server.status().c2sConnections, 0);
    });
  }
}

test("a wrong password is refused with not-authorized", async () => {
  const c = connect({ mechanism: "SCRAM-SHA-1", password: "wrong" });
  await assert.rejects(c.start(), (err: Error & { condition?: string }) => {
    assert.equal(err.condition, "not-authorized");
    return true;
  });
  await c.stop().catch(() => {});
});

test("disco#info on the server lists the server/im identity, features and XEP-0157 addresses", async () => {
  const c = connect({ mechanism: "PLAIN" });
  await c.start();
  const res = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
  const q = res.getChild("query", "http://jabber.org/protocol/disco#info")!;
  const identity = q.getChild("identity")!;
  assert.equal(identity.attrs["category"], "server");
  assert.equal(identity.attrs["type"], "im");
  const features = q.getChildren("feature").map((f) => f.attrs["var"]);
  for (const f of ["http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version"]) assert.ok(features.includes(f), f);
  const form = q.getChild("x", "jabber:x:data")!;
  const abuse = form.getChildren("field").find((f) => f.attrs["var"] === "abuse-addresses")!;
  assert.equal(abuse.getChildText("value"), "mailto:abuse@localhost");
  const version = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "jabber:iq:version" })));
  assert.equal(version.getChild("query")!.getChildText("name"), "Comity");
  await c.stop();
});

test("an unknown IQ namespace gets service-unavailable and a message reaches another user", async () => {
  const a = connect({ mechanism: "PLAIN", resource: "a" });
  await a.start();
  await assert.rejects(
    a.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "urn:example:nothing" }))),
    (err: Error & { condition?: string }) => err.condition === "service-unavailable",
  );
  const b = xmppClient({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username: "bob", password: "builder", resource: "b" });
  await b.start();
  await b.send(xml("presence"));
  const got = new Promise<string>((resolve) => b.on("stanza", (s) => {
    if (s.name === "message") resolve(`${s.attrs["from"]} ${s.getChildText("body")}`);
  }));
  await new Promise((r) => setTimeout(r, 100));
  await a.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hello bob")));
  assert.equal(await got, "alice@localhost/a hello bob");
  await a.stop();
  await b.stop();
});
