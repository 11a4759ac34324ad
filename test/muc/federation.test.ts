// XEP-0045 over federation between two Comity servers: a user of b.localhost enters a room on
// conference.a.localhost. The chat service's domain is reached over s2s (dialback for the component's own domain in
// both directions), the room's stanzas leave with that domain as sender, and a remote user who disconnects leaves.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { MUC, MUC_OWNER, Peer, codes, condition, isPresenceFrom, item } from "./kit.ts";

const SERVICE = "conference.a.localhost";
let a: TestServer;
let b: TestServer;

before(async () => {
  const s2s = { listen: ["127.0.0.1:0"], verify_certificates: false };
  a = await createTestServer({ hosts: [{ domain: "a.localhost", muc: { domain: SERVICE } }], s2s }, { users: { "alice@a.localhost": "pw-a" } });
  b = await createTestServer({ hosts: [{ domain: "b.localhost" }], s2s }, { users: { "bob@b.localhost": "pw-b" } });
  a.config.s2s.routes["b.localhost"] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes["a.localhost"] = `127.0.0.1:${a.s2sPort}`;
  // What an SRV record for the chat service's domain does in real life.
  b.config.s2s.routes[SERVICE] = `127.0.0.1:${a.s2sPort}`;
});
after(async () => {
  await a?.stop();
  await b?.stop();
});

test("a remote user enters a room over s2s, chats, is seen with its real JID by the moderator, and leaves by disconnecting", { timeout: 60_000 }, async () => {
  const alice = await Peer.login(a.c2sPort, "alice", "pw-a", "desk", "a.localhost");
  alice.send(`<presence to='fed@${SERVICE}/Alice'><x xmlns='${MUC}'/></presence>`);
  assert.deepEqual(codes(await alice.next((e) => e.name === "presence" && codes(e).includes(110), "creation")), [110, 201]);
  assert.equal((await alice.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", `fed@${SERVICE}`)).attrs["type"], "result");
  alice.send(`<message to='fed@${SERVICE}' type='groupchat' id='h1'><body>before bob</body></message>`);
  await alice.next((e) => e.name === "message" && e.attrs["id"] === "h1", "the echo");

  const bob = await Peer.login(b.c2sPort, "bob", "pw-b", "phone", "b.localhost");
  // Service discovery across servers first: the remote service answers as a chat service.
  const info = await bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", SERVICE);
  assert.equal(info.attrs["type"], "result", info.toString());
  assert.equal(info.getChild("query")!.getChild("identity")!.attrs["category"], "conference");

  bob.send(`<presence to='fed@${SERVICE}/Bob'><x xmlns='${MUC}'/></presence>`);
  const aliceSeen = await bob.next(isPresenceFrom(`fed@${SERVICE}/Alice`), "Alice's presence", 15_000);
  assert.deepEqual(item(aliceSeen), { affiliation: "owner", role: "moderator" }, "semi-anonymous: a participant sees no real JID");
  const self = await bob.next(isPresenceFrom(`fed@${SERVICE}/Bob`), "self-presence");
  assert.deepEqual(codes(self), [110]);
  const history = await bob.next((e) => e.name === "message" && e.getChild("body") !== undefined, "history");
  assert.equal(history.getChildText("body"), "before bob");
  assert.equal(history.getChild("delay", "urn:xmpp:delay")?.attrs["from"], `fed@${SERVICE}`);
  await bob.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  const bobSeen = await alice.next(isPresenceFrom(`fed@${SERVICE}/Bob`), "Bob's arrival");
  assert.equal(item(bobSeen)["jid"], "bob@b.localhost/phone");

  bob.send(`<message to='fed@${SERVICE}' type='groupchat' id='fb1'><body>hello from b</body></message>`);
  const got = await alice.next((e) => e.name === "message" && e.attrs["id"] === "fb1", "Bob's message");
  assert.equal(got.attrs["from"], `fed@${SERVICE}/Bob`);
  await bob.next((e) => e.name === "message" && e.attrs["id"] === "fb1", "Bob's own echo");
  alice.send(`<message to='fed@${SERVICE}/Bob' type='chat' id='pm1'><body>private hello</body></message>`);
  const pm = await bob.next((e) => e.name === "message" && e.attrs["id"] === "pm1", "the private message");
  assert.equal(pm.attrs["from"], `fed@${SERVICE}/Alice`);

  // The room's stanzas travel on a link whose local side is the service's own domain (dialback for it).
  const out = a.server.s2s.list().find((l) => l.direction === "out" && l.local === SERVICE && l.peers.includes("b.localhost"));
  assert.equal(out?.state, "established");
  assert.equal(out?.auth, "dialback");
  assert.ok(b.server.s2s.list().some((l) => l.direction === "in" && l.peers.includes(SERVICE)), "b authenticated the service's domain");

  // Bob's server tells the room when his session ends (unavailable to every directed-presence recipient).
  bob.close();
  const left = await alice.next((e) => isPresenceFrom(`fed@${SERVICE}/Bob`)(e) && e.attrs["type"] === "unavailable", "Bob leaving", 15_000);
  assert.equal(item(left)["role"], "none");
  alice.close();
});

test("a remote user may not create rooms when create is users (not-allowed), and a missing room says so", { timeout: 30_000 }, async () => {
  const bob = await Peer.login(b.c2sPort, "bob", "pw-b", "create", "b.localhost");
  bob.send(`<presence to='bobs-room@${SERVICE}/Bob'><x xmlns='${MUC}'/></presence>`);
  const refused = await bob.next((e) => e.name === "presence" && e.attrs["type"] === "error", "the refusal", 15_000);
  assert.equal(condition(refused), "not-allowed");
  assert.equal(refused.attrs["from"], `bobs-room@${SERVICE}/Bob`);
  bob.send(`<message to='nowhere@${SERVICE}' type='groupchat' id='nw'><body>hello?</body></message>`);
  assert.equal(condition(await bob.next((e) => e.attrs["id"] === "nw", "the error", 15_000)), "item-not-found");
  bob.close();
});
