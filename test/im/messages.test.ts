// Message routing (RFC 6121 §8.5) and per-user documents over real sockets: bare and full JIDs with priorities,
// offline storage with XEP-0203 delay (XEP-0160) across a restart, quota, vcard-temp (XEP-0054), private XML (XEP-0049).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../src/xml/element.ts";
import { parseXml } from "../../src/xml/parser.ts";
import { silentLogger } from "../../src/core/log.ts";
import { ComityServer } from "../../src/server.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const PASSWORD = "secret";
const USERS = ["types", "sender", "prio", "neg", "nopres", "full", "ghostres", "off1", "off2", "quota", "gc", "err", "card1", "card2", "priv1", "priv2"];

let ts: TestServer;
before(async () => {
  ts = await createTestServer({ offline: { max_messages: 3 } }, { users: Object.fromEntries(USERS.map((u) => [`${u}@localhost`, PASSWORD])) });
});
after(async () => {
  await ts.stop();
});

let seq = 0;

/** Round trip a ping: every stanza this client sent before has been fully processed by the server. */
async function sync(c: RawClient): Promise<void> {
  const id = `sync${++seq}`;
  c.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.waitFor(new RegExp(`<iq[^>]*id='${id}'`));
}

/** Log in and bind; send initial presence with this priority unless `priority` is null. */
async function online(user: string, resource: string, priority: number | null = 0, port = ts.c2sPort): Promise<RawClient> {
  const { client } = await RawClient.login(port, user, PASSWORD, resource);
  if (priority !== null) client.send(`<presence><priority>${priority}</priority></presence>`);
  await sync(client);
  return client;
}

const MESSAGE = /<message\b[^>]*?(?:\/>|>[\s\S]*?<\/message>)/g;

/** Messages received so far, parsed. */
function messages(c: RawClient): Element[] {
  return [...c.buffer.matchAll(MESSAGE)].map((m) => parseXml(m[0]));
}

/** Wait for a message whose body is `body`. */
async function received(c: RawClient, body: string): Promise<Element> {
  await c.waitFor(new RegExp(`<body>${body}</body>`));
  return messages(c).find((m) => m.getChildText("body") === body)!;
}

const bodies = (c: RawClient) => messages(c).map((m) => m.getChildText("body"));

/** Send a marker to each full JID and wait for it, so everything sent earlier by `from` has been routed. */
async function barrier(from: RawClient, to: Record<string, RawClient>): Promise<void> {
  const mark = `mark${++seq}`;
  for (const jid of Object.keys(to)) from.send(`<message to='${jid}' type='chat'><body>${mark}</body></message>`);
  for (const c of Object.values(to)) await received(c, mark);
}

function closeAll(...cs: RawClient[]): void {
  for (const c of cs) c.close();
}

/** Wait until the server has no session for this bare JID (closed sockets are noticed asynchronously). */
async function gone(server: ComityServer, bare: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (server.sessions.ofBare(bare).size > 0) {
    if (Date.now() > deadline) throw new Error(`${bare} still has sessions`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("a message to a bare JID reaches every resource with the highest priority, and only those", async () => {
  const s = await online("sender", "s1");
  const a = await online("prio", "a", 5);
  const b = await online("prio", "b", 1);
  const c = await online("prio", "c", 5);
  s.send("<message to='prio@localhost' type='chat'><body>to the best</body></message>");
  await received(a, "to the best");
  await received(c, "to the best");
  await barrier(s, { "prio@localhost/b": b });
  assert.ok(!bodies(b).includes("to the best"));
  closeAll(s, a, b, c);
});

test("negative-priority resources and resources without initial presence never get bare-JID messages", async () => {
  const s = await online("sender", "s2");
  const neg = await online("neg", "neg", -1);
  const silent = await online("neg", "silent", null);
  const pos = await online("neg", "pos", 0);
  s.send("<message to='neg@localhost' type='chat'><body>positive only</body></message>");
  await received(pos, "positive only");
  await barrier(s, { "neg@localhost/neg": neg, "neg@localhost/silent": silent });
  assert.ok(!bodies(neg).includes("positive only"));
  assert.ok(!bodies(silent).includes("positive only"));
  closeAll(s, neg, silent, pos);
});

test("with only negative-priority or presence-less sessions the message is stored, and delivered when the priority turns non-negative", async () => {
  const s = await online("sender", "s3");
  const silent = await online("nopres", "silent", null);
  const neg = await online("nopres", "neg", -5);
  s.send("<message to='nopres@localhost' type='chat'><body>wait for me</body></message>");
  await sync(s);
  assert.equal(await ts.server.storage.offline.count("localhost", "nopres"), 1);
  await barrier(s, { "nopres@localhost/neg": neg, "nopres@localhost/silent": silent });
  assert.ok(!bodies(neg).includes("wait for me"));
  neg.send("<presence><priority>2</priority></presence>");
  const m = await received(neg, "wait for me");
  assert.equal(m.getChild("delay", "urn:xmpp:delay")!.attrs["from"], "localhost");
  assert.equal(await ts.server.storage.offline.count("localhost", "nopres"), 0);
  assert.ok(!bodies(silent).includes("wait for me"));
  closeAll(s, silent, neg);
});

test("a message to an existing full JID goes to that resource only, whatever its priority", async () => {
  const s = await online("sender", "s4");
  const low = await online("full", "low", -1);
  const high = await online("full", "high", 10);
  s.send("<message to='full@localhost/low' type='chat'><body>just you</body></message>");
  await received(low, "just you");
  await barrier(s, { "full@localhost/high": high });
  assert.ok(!bodies(high).includes("just you"));
  closeAll(s, low, high);
});

test("a message to a full JID with no such resource is handled as if sent to the bare JID", async () => {
  const s = await online("sender", "s5");
  const a = await online("ghostres", "a", 3);
  const b = await online("ghostres", "b", 1);
  s.send("<message to='ghostres@localhost/nowhere' type='chat'><body>rerouted</body></message>");
  const m = await received(a, "rerouted");
  assert.equal(m.attrs["to"], "ghostres@localhost/nowhere");
  await barrier(s, { "ghostres@localhost/b": b });
  assert.ok(!bodies(b).includes("rerouted"));
  closeAll(s, a, b);
});

test("a message to an unknown user is answered with service-unavailable from that address", async () => {
  const s = await online("sender", "s6");
  s.send("<message to='nobody@localhost' id='u1' type='chat'><body>anyone?</body></message>");
  const m = await s.waitFor(/<message[^>]*type='error'[^>]*>[\s\S]*?<\/message>/);
  const err = parseXml(m[0]);
  assert.equal(err.attrs["from"], "nobody@localhost");
  assert.equal(err.attrs["id"], "u1");
  assert.ok(err.getChild("error")!.getChild("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
  closeAll(s);
});

test("a message to an offline user is stored and delivered at the next login with a delay stamp, to that resource", async () => {
  const s = await online("sender", "s7");
  const before = Date.now();
  s.send("<message to='off1@localhost' type='chat' id='o1'><body>while you were out</body></message>");
  s.send("<message to='off1@localhost/gone'><subject>second</subject><body>and another</body></message>");
  await sync(s);
  assert.ok(!/type='error'/.test(s.buffer), s.buffer);
  assert.equal(await ts.server.storage.offline.count("localhost", "off1"), 2);
  const silent = await online("off1", "silent", null);
  const r = await online("off1", "phone", 0);
  const m = await received(r, "while you were out");
  assert.equal(m.attrs["from"], "sender@localhost/s7");
  assert.equal(m.attrs["id"], "o1");
  const delay = m.getChild("delay", "urn:xmpp:delay")!;
  assert.equal(delay.attrs["from"], "localhost");
  assert.match(delay.attrs["stamp"]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const stamp = Date.parse(delay.attrs["stamp"]!);
  assert.ok(stamp >= before - 1000 && stamp <= Date.now(), delay.attrs["stamp"]);
  assert.deepEqual(bodies(r).slice(0, 2), ["while you were out", "and another"]);
  assert.equal(await ts.server.storage.offline.count("localhost", "off1"), 0);
  await sync(silent);
  assert.equal(bodies(silent).length, 0);
  // Delivered once: a second resource coming online later gets nothing.
  const later = await online("off1", "laptop", 0);
  assert.equal(bodies(later).length, 0);
  closeAll(s, silent, r, later);
});

test("stored messages survive a server restart on the same data directory", async () => {
  const first = await createTestServer({}, { users: { "romeo@localhost": PASSWORD, "juliet@localhost": PASSWORD } });
  let second: ComityServer | undefined;
  try {
    const s = await online("romeo", "orchard", 0, first.c2sPort);
    s.send("<message to='juliet@localhost' type='normal'><body>meet me at dawn</body></message>");
    await sync(s);
    s.close();
    await first.server.stop();
    second = await ComityServer.create(first.config, silentLogger());
    const addrs = await second.listen();
    const j = await online("juliet", "balcony", 1, addrs.c2s[0]!.port);
    const m = await received(j, "meet me at dawn");
    assert.equal(m.attrs["from"], "romeo@localhost/orchard");
    assert.ok(m.getChild("delay", "urn:xmpp:delay"));
    j.close();
  } finally {
    await second?.stop();
    await first.stop();
  }
});

test("over the offline quota the sender gets service-unavailable", async () => {
  const s = await online("sender", "s8");
  for (let i = 1; i <= 4; i++) s.send(`<message to='quota@localhost' id='q${i}' type='chat'><body>n${i}</body></message>`);
  const m = await s.waitFor(/<message[^>]*type='error'[^>]*>[\s\S]*?<\/message>/);
  const err = parseXml(m[0]);
  assert.equal(err.attrs["id"], "q4");
  assert.ok(err.getChild("error")!.getChild("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
  assert.equal(await ts.server.storage.offline.count("localhost", "quota"), 3);
  const r = await online("quota", "r", 0);
  await received(r, "n3");
  assert.deepEqual(bodies(r), ["n1", "n2", "n3"]);
  closeAll(s, r);
});

test("groupchat and headline messages to an offline user are dropped silently; chat states alone are not stored", async () => {
  const s = await online("sender", "s9");
  s.send("<message to='gc@localhost' type='groupchat' id='g1'><body>room talk</body></message>");
  s.send("<message to='gc@localhost' type='headline' id='h1'><body>news</body></message>");
  s.send("<message to='gc@localhost' type='chat' id='c1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
  s.send("<message to='gc@localhost' type='chat' id='c2'><body>nope</body><no-store xmlns='urn:xmpp:hints'/></message>");
  await sync(s);
  assert.equal(await ts.server.storage.offline.count("localhost", "gc"), 0);
  const errors = [...s.buffer.matchAll(/<message[^>]*type='error'[^>]*id='(\w+)'|<message[^>]*id='(\w+)'[^>]*type='error'/g)].map((m) => m[1] ?? m[2]);
  // RFC 6121 §8.5.2.1.1: no error for groupchat or headline; a no-store hint means the message was not delivered.
  assert.deepEqual(errors, ["c2"]);
  closeAll(s);
});

test("a message of type error is never answered with an error", async () => {
  const s = await online("sender", "s10");
  s.send("<message to='err@localhost' type='error' id='e1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
  s.send("<message to='nobody@localhost' type='error' id='e2'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
  await sync(s);
  assert.equal(messages(s).length, 0, s.buffer);
  assert.equal(await ts.server.storage.offline.count("localhost", "err"), 0);
  closeAll(s);
});

test("the server advertises msgoffline, vcard-temp and jabber:iq:private, and the account vcard-temp and jabber:iq:private", async () => {
  const c = await online("card1", "disco", 0);
  c.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  const host = parseXml((await c.waitFor(/<iq[^>]*id='d1'[\s\S]*?<\/iq>/))[0]);
  const hostFeatures = host.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);
  // jabber:iq:private on the server too: poezio looks there before it uses bookmarks in private storage.
  for (const f of ["msgoffline", "vcard-temp", "jabber:iq:private"]) assert.ok(hostFeatures.includes(f), f);
  c.send("<iq type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  const acct = parseXml((await c.waitFor(/<iq[^>]*id='d2'[\s\S]*?<\/iq>/))[0]);
  const acctFeatures = acct.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);
  for (const f of ["vcard-temp", "jabber:iq:private"]) assert.ok(acctFeatures.includes(f), f);
  closeAll(c);
});

test("a vCard set by its owner reads back, another user reads it, and nobody else may set it", async () => {
  const owner = await online("card1", "r", 0);
  owner.send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Card One</FN><NICKNAME>c1</NICKNAME></vCard></iq>");
  await owner.waitFor(/<iq[^>]*id='v1'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='v1'/);
  owner.send("<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>");
  const own = parseXml((await owner.waitFor(/<iq[^>]*id='v2'[\s\S]*?<\/iq>/))[0]);
  assert.equal(own.getChild("vCard", "vcard-temp")!.getChildText("FN"), "Card One");
  owner.close();
  await gone(ts.server, "card1@localhost");

  // The owner is offline: the server answers for the account (XEP-0054 §3.3).
  const other = await online("card2", "r", 0);
  other.send("<iq type='get' id='v3' to='card1@localhost'><vCard xmlns='vcard-temp'/></iq>");
  const theirs = parseXml((await other.waitFor(/<iq[^>]*id='v3'[\s\S]*?<\/iq>/))[0]);
  assert.equal(theirs.attrs["type"], "result");
  assert.equal(theirs.attrs["from"], "card1@localhost");
  assert.equal(theirs.getChild("vCard", "vcard-temp")!.getChildText("NICKNAME"), "c1");

  other.send("<iq type='set' id='v4' to='card1@localhost'><vCard xmlns='vcard-temp'><FN>Impostor</FN></vCard></iq>");
  const denied = parseXml((await other.waitFor(/<iq[^>]*id='v4'[\s\S]*?<\/iq>/))[0]);
  assert.equal(denied.attrs["type"], "error");
  assert.ok(denied.getChild("error")!.getChild("forbidden", "urn:ietf:params:xml:ns:xmpp-stanzas"));

  // card2 has no vCard: its owner gets an empty one.
  other.send("<iq type='get' id='v5'><vCard xmlns='vcard-temp'/></iq>");
  const empty = parseXml((await other.waitFor(/<iq[^>]*id='v5'[\s\S]*?<\/iq>|<iq[^>]*id='v5'[^>]*\/>/))[0]);
  assert.equal(empty.attrs["type"], "result");
  assert.equal(empty.getChild("vCard", "vcard-temp")!.elements.length, 0);
  // So does anyone else asking for it (XEP-0054 §3.3; slixmpp's itests asked and got service-unavailable), while an
  // account that does not exist still answers service-unavailable.
  const third = await online("card1", "r2", 0);
  third.send("<iq type='get' id='v6' to='card2@localhost'><vCard xmlns='vcard-temp'/></iq>");
  const theirsEmpty = parseXml((await third.waitFor(/<iq[^>]*id='v6'[\s\S]*?<\/iq>|<iq[^>]*id='v6'[^>]*\/>/))[0]);
  assert.equal(theirsEmpty.attrs["type"], "result");
  assert.equal(theirsEmpty.getChild("vCard", "vcard-temp")!.elements.length, 0);
  third.send("<iq type='get' id='v7' to='nobody-here@localhost'><vCard xmlns='vcard-temp'/></iq>");
  assert.match((await third.waitFor(/<iq[^>]*id='v7'[\s\S]*?<\/iq>/))[0], /type='error'[\s\S]*<service-unavailable/);
  closeAll(third);
  closeAll(other);
});

test("private XML storage round-trips for its owner and is invisible to and untouchable by others", async () => {
  const one = await online("priv1", "r", 0);
  const two = await online("priv2", "r", 0);
  one.send("<iq type='set' id='p1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' autojoin='true'/></storage></query></iq>");
  await one.waitFor(/<iq[^>]*id='p1'/);
  one.send("<iq type='get' id='p2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>");
  const got = parseXml((await one.waitFor(/<iq[^>]*id='p2'[\s\S]*?<\/iq>/))[0]);
  assert.equal(got.getChild("query", "jabber:iq:private")!.getChild("storage", "storage:bookmarks")!.getChild("conference")!.attrs["jid"], "room@muc.localhost");

  two.send("<iq type='get' id='p3'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>");
  const mine = parseXml((await two.waitFor(/<iq[^>]*id='p3'[\s\S]*?<\/iq>/))[0]);
  assert.equal(mine.getChild("query")!.getChild("storage", "storage:bookmarks")!.elements.length, 0);

  two.send("<iq type='get' id='p4' to='priv1@localhost'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>");
  const denied = parseXml((await two.waitFor(/<iq[^>]*id='p4'[\s\S]*?<\/iq>/))[0]);
  assert.equal(denied.attrs["type"], "error");
  assert.ok(denied.getChild("error")!.getChild("forbidden", "urn:ietf:params:xml:ns:xmpp-stanzas"));
  closeAll(one, two);
});

test("message types to bare and full JIDs follow RFC 6121 §8.5 (headline to all, groupchat refused, errors ignored)", async () => {
  const s = await online("sender", "types");
  const hi = await online("types", "hi", 5);
  const lo = await online("types", "lo", 1);
  const neg = await online("types", "neg", -1);
  s.send("<message to='types@localhost' type='headline'><body>news</body></message>");
  await received(hi, "news");
  await received(lo, "news");
  s.send("<message to='types@localhost' type='groupchat' id='gc-bare'><body>room</body></message>");
  await s.waitFor(/id='gc-bare'[\s\S]*?<service-unavailable/);
  s.send("<message to='types@localhost/nope' type='groupchat' id='gc-full'><body>room</body></message>");
  await s.waitFor(/id='gc-full'[\s\S]*?<service-unavailable/);
  s.send("<message to='types@localhost/nope' type='headline'><body>lost-headline</body></message>");
  s.send("<message to='types@localhost' type='error'><body>err-bare</body></message>");
  await barrier(s, { "types@localhost/hi": hi, "types@localhost/lo": lo });
  for (const c of [hi, lo, neg]) {
    assert.ok(!bodies(c).includes("lost-headline"));
    assert.ok(!bodies(c).includes("err-bare"));
    assert.ok(!bodies(c).includes("room"));
  }
  assert.ok(!bodies(neg).includes("news"), "negative priority never gets bare-JID messages");
  closeAll(s, hi, lo, neg);
});
