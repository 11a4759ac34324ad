// XEP-0045 from browser-style clients: @xmpp/client over wss:// (/xmpp-websocket), the way Converse.js reaches a
// room: disco#items on the host to find the service, disco#info on the room, entering, the instant-room form,
// groupchat messages both ways and the self-ping (XEP-0410) browser clients use to check they are still in.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { xml, type XmppClient, type XmlElement } from "@xmpp/client";
import { stopXmppClients, xmppClient } from "../kit/xmppjs.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";

(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";

const SERVICE = "conference.localhost";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
let ts: TestServer;
let service: string;

before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: SERVICE } }], http: { tls_listen: ["127.0.0.1:0"] } },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } },
  );
  service = `wss://127.0.0.1:${ts.server.addresses.https[0]!.port}/xmpp-websocket`;
});
after(async () => {
  await stopXmppClients();
  await ts.stop();
});

/** A started client that records every stanza it receives. */
async function online(username: string, password: string): Promise<{ c: XmppClient; seen: XmlElement[]; jid: string }> {
  const c = xmppClient({ service, domain: "localhost", resource: "web", username, password });
  const seen: XmlElement[] = [];
  c.on("stanza", (s: XmlElement) => void seen.push(s));
  const jid = (await c.start()).toString();
  await c.send(xml("presence"));
  return { c, seen, jid };
}

async function waitFor(seen: XmlElement[], pred: (s: XmlElement) => boolean, what: string): Promise<XmlElement> {
  const deadline = Date.now() + 15_000; // generous for a loaded machine; a match returns at once
  for (;;) {
    const found = seen.find(pred);
    if (found) {
      seen.splice(seen.indexOf(found), 1);
      return found;
    }
    if (Date.now() > deadline) throw new Error(`no ${what}; got: ${seen.map(String).join("\n")}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const statusCodes = (s: XmlElement) => (s.getChild("x", MUC_USER)?.getChildren("status") ?? []).map((c) => Number(c.attrs["code"])).sort((a, b) => a - b);

test("two @xmpp/client users over wss:// find the service, enter a room and chat", async () => {
  const alice = await online("alice", "wonderland");
  const bob = await online("bob", "builder");
  const items = await alice.c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items" })));
  assert.ok(items.getChild("query")!.getChildren("item").some((i) => i.attrs["jid"] === SERVICE));

  await alice.c.send(xml("presence", { to: `web@${SERVICE}/alice` }, xml("x", { xmlns: MUC })));
  const created = await waitFor(alice.seen, (s) => s.name === "presence" && statusCodes(s).includes(110), "self-presence");
  assert.deepEqual(statusCodes(created), [110, 201]);
  await alice.c.iqCaller.request(
    xml("iq", { type: "set", to: `web@${SERVICE}` }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))),
  );

  const info = await bob.c.iqCaller.request(xml("iq", { type: "get", to: `web@${SERVICE}` }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
  const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);
  assert.ok(features.includes(MUC) && features.includes("http://jabber.org/protocol/muc#self-ping-optimization"));
  await bob.c.send(xml("presence", { to: `web@${SERVICE}/bob` }, xml("x", { xmlns: MUC }, xml("history", { maxstanzas: "20" }))));
  await waitFor(bob.seen, (s) => s.name === "presence" && s.attrs["from"] === `web@${SERVICE}/alice`, "Alice's presence");
  await waitFor(bob.seen, (s) => s.name === "presence" && statusCodes(s).includes(110), "self-presence");
  await waitFor(bob.seen, (s) => s.name === "message" && s.getChild("subject") !== undefined, "the subject");

  await bob.c.send(xml("message", { to: `web@${SERVICE}`, type: "groupchat", id: "ws-1" }, xml("body", {}, "hi from the browser")));
  const got = await waitFor(alice.seen, (s) => s.name === "message" && s.attrs["id"] === "ws-1", "Bob's message");
  assert.equal(got.attrs["from"], `web@${SERVICE}/bob`);
  assert.equal(got.getChildText("body"), "hi from the browser");
  await alice.c.send(xml("message", { to: `web@${SERVICE}`, type: "groupchat", id: "ws-2" }, xml("body", {}, "welcome")));
  assert.equal((await waitFor(bob.seen, (s) => s.name === "message" && s.attrs["id"] === "ws-2", "Alice's answer")).attrs["from"], `web@${SERVICE}/alice`);

  // XEP-0410: the room itself answers a ping to one's own occupant JID.
  const pong = await bob.c.iqCaller.request(xml("iq", { type: "get", to: `web@${SERVICE}/bob` }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  assert.equal(pong.attrs["type"], "result");
  await bob.c.stop();
  const left = await waitFor(alice.seen, (s) => s.name === "presence" && s.attrs["from"] === `web@${SERVICE}/bob` && s.attrs["type"] === "unavailable", "Bob leaving");
  assert.equal(left.getChild("x", MUC_USER)!.getChild("item")!.attrs["role"], "none");
  await alice.c.stop();
});
