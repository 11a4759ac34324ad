// XEP-0198 Stream Management over real sockets with a raw client: the feature, enabling (§3), acks both ways (§4),
// handled-count-too-high, resumption after the TCP connection is cut (§5), refusals (§6), and what happens to
// unacknowledged stanzas when a session ends (offline storage, then delivery at the next login).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { HEADER, RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import type { SmState } from "../../src/modules/stream-management/mod.ts";

const SM = "urn:xmpp:sm:3";
const PW = "secret";
let ts: TestServer;

before(async () => {
  ts = await createTestServer({}, {
    users: Object.fromEntries(["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"].map((u) => [`${u}@localhost`, PW])),
  });
});
after(async () => {
  await ts.stop();
});

/** Poll until `f` is true (bounded). */
async function until(f: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function session(jid: string): C2sSession | undefined {
  return ts.server.sessions.get(parseJid(jid)) as C2sSession | undefined;
}

/** TLS + SASL PLAIN + restart: the client sits at the post-authentication features (their text stays in the buffer). */
async function authenticated(user: string): Promise<RawClient> {
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  await c.starttls();
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  if (!(await c.authPlain(user, PW))) throw new Error("auth failed");
  return c;
}

async function bind(c: RawClient, resource: string): Promise<string> {
  c.buffer = "";
  c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  const m = await c.waitFor(/<jid>([^<]+)<\/jid>/);
  c.buffer = "";
  return m[1]!;
}

/** A bound client with stream management enabled; `id` when resumption was granted. */
async function smLogin(user: string, resource: string, enable = `<enable xmlns='${SM}' resume='true'/>`): Promise<{ c: RawClient; jid: string; id: string | undefined }> {
  const c = await authenticated(user);
  const jid = await bind(c, resource);
  c.send(enable);
  const m = await c.waitFor(/<enabled [^>]*\/>/);
  const id = /\bid='([^']+)'/.exec(m[0])?.[1];
  c.buffer = "";
  return { c, jid, id };
}

/** Send `n` chat messages from a plain client to `to`, bodies `${prefix}1`…. */
async function sendMessages(from: RawClient, to: string, prefix: string, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) from.send(`<message type='chat' to='${to}' id='${prefix}${i}'><body>${prefix}${i}</body></message>`);
}

test("the sm feature is offered after authentication, never before", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER());
  const pre = (await c.waitFor(/<stream:features>[\s\S]*?<\/stream:features>/))[0];
  assert.doesNotMatch(pre, /urn:xmpp:sm:3/);
  c.close();
  const a = await authenticated("alice");
  const post = (await a.waitFor(/<stream:features>[\s\S]*?<\/stream:features>/))[0];
  assert.match(post, /<sm xmlns='urn:xmpp:sm:3'\/>/);
  a.close();
});

test("enable before bind fails with unexpected-request and the stream can still bind", async () => {
  const c = await authenticated("alice");
  c.buffer = "";
  c.send(`<enable xmlns='${SM}'/>`);
  await c.waitFor(/<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><\/failed>/);
  assert.equal(await bind(c, "early"), "alice@localhost/early");
  c.close();
});

test("enable grants resumption, a second enable fails, <r/> is answered with the count of stanzas received", async () => {
  const { c, jid, id } = await smLogin("alice", "count");
  assert.ok(id && id.length >= 16, "a resumption id");
  const s = session(jid)!;
  assert.ok(s.sm, "the session has stream management state");
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  await c.waitFor(/<failed xmlns='urn:xmpp:sm:3'><unexpected-request/);
  c.buffer = "";
  c.send(`<r xmlns='${SM}'/>`);
  await c.waitFor(/<a xmlns='urn:xmpp:sm:3' h='0'\/>/);
  c.buffer = "";
  c.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  c.send(`<r xmlns='${SM}'/>`);
  await c.waitFor(/<a xmlns='urn:xmpp:sm:3' h='2'\/>/);
  // The two results were counted and wait for the client's ack.
  await c.waitFor(/id='p2'/);
  assert.equal((s.sm as SmState).unacked, 2);
  c.send(`<a xmlns='${SM}' h='2'/>`);
  await until(() => (s.sm as SmState).unacked === 0, "the queue to empty");
  c.close();
});

test("enabled without resume: no id, and the session ends with the connection", async () => {
  const { c, jid, id } = await smLogin("alice", "noresume", `<enable xmlns='${SM}'/>`);
  assert.equal(id, undefined);
  c.close();
  await until(() => session(jid) === undefined, "the session to end");
});

test("the server asks for an ack after ack_every stanzas and an <a/> frees its queue", async () => {
  const { c, jid } = await smLogin("alice", "acks");
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", PW, "acks");
  await sendMessages(bob, jid, "m", 5);
  await c.waitFor(/m5<\/body>(?:(?!<message)[\s\S])*<\/message><r xmlns='urn:xmpp:sm:3'\/>/);
  assert.equal(c.buffer.match(/<r xmlns=/g)?.length, 1, "one request for five stanzas");
  const sm = session(jid)!.sm as SmState;
  assert.equal(sm.unacked, 5);
  c.send(`<a xmlns='${SM}' h='3'/>`);
  await until(() => sm.unacked === 2, "three stanzas to be freed");
  c.send(`<a xmlns='${SM}' h='5'/>`);
  await until(() => sm.unacked === 0, "the queue to empty");
  c.close();
  bob.close();
});

test("an ack beyond what was sent is an undefined-condition stream error with handled-count-too-high", async () => {
  const { c, jid } = await smLogin("carol", "high");
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", PW, "high");
  await sendMessages(bob, jid, "hi", 1);
  await c.waitFor(/hi1<\/body>/);
  c.send(`<a xmlns='${SM}' h='7'/>`);
  const err = (await c.waitFor(/<stream:error>[\s\S]*?<\/stream:error>/))[0];
  assert.match(err, /<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  assert.match(err, /<handled-count-too-high xmlns='urn:xmpp:sm:3' h='7' send-count='1'\/>/);
  await c.waitClosed();
  // The message the client never acknowledged was not lost: it waits in offline storage.
  await until(() => session(jid) === undefined, "the session to end");
  let stored: { stanza: string }[] = [];
  for (let i = 0; i < 100 && stored.length === 0; i++) {
    stored = await ts.server.storage.offline.list("localhost", "carol");
    if (stored.length === 0) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(stored.length, 1);
  assert.match(stored[0]!.stanza, /hi1/);
  await ts.server.storage.offline.delete("localhost", "carol", (await ts.server.storage.offline.list("localhost", "carol")).map((m) => (m as { id: number }).id));
  bob.close();
});

test("a session whose socket is cut hibernates and resumes: unacked and newer messages arrive after <resumed/>", async () => {
  const { c, jid, id } = await smLogin("alice", "phone");
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", PW, "resume");
  // The client sends one stanza after enabling, so the server's h is 1.
  c.send(`<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.waitFor(/id='ping1'/);
  await sendMessages(bob, jid, "r", 2);
  await c.waitFor(/r2<\/body>/);
  // The client saw the ping result and r1 only (h=2): r2 must come again.
  c.close();
  const s = session(jid)!;
  await until(() => s.hibernating, "hibernation");
  assert.equal(session(jid), s, "still bound while hibernating");
  await sendMessages(bob, jid, "late", 2);
  const n = await authenticated("alice");
  n.buffer = "";
  n.send(`<resume xmlns='${SM}' previd='${id}' h='2'/>`);
  const resumed = (await n.waitFor(/<resumed [^>]*\/>/))[0];
  assert.match(resumed, /h='1'/);
  assert.match(resumed, new RegExp(`previd='${id}'`));
  await n.waitFor(/late2<\/body>/);
  const after = n.buffer.slice(n.buffer.indexOf("<resumed"));
  assert.doesNotMatch(after, /r1<\/body>/);
  assert.ok(after.indexOf("r2</body>") < after.indexOf("late1</body>") && after.indexOf("late1</body>") < after.indexOf("late2</body>"), after);
  assert.equal(session(jid), s, "the same session continues");
  assert.equal(s.hibernating, false);
  // It keeps working on the new stream, counting on from where it was.
  n.buffer = "";
  n.send(`<r xmlns='${SM}'/>`);
  await n.waitFor(/<a xmlns='urn:xmpp:sm:3' h='1'\/>/);
  n.send(`<a xmlns='${SM}' h='5'/>`);
  await until(() => (s.sm as SmState).unacked === 0, "the queue to empty");
  await sendMessages(bob, jid, "again", 1);
  await n.waitFor(/again1<\/body>/);
  n.close();
  bob.close();
});

test("another account cannot resume a session, and an unknown id gets item-not-found; both may bind after", async () => {
  const { c, jid, id } = await smLogin("alice", "victim");
  c.close();
  const s = session(jid)!;
  await until(() => s.hibernating, "hibernation");
  const mallory = await authenticated("bob");
  mallory.buffer = "";
  mallory.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
  await mallory.waitFor(/<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><\/failed>/);
  assert.ok(s.hibernating, "the victim's session is untouched");
  assert.equal(await bind(mallory, "m"), "bob@localhost/m");
  const lost = await authenticated("alice");
  lost.buffer = "";
  lost.send(`<resume xmlns='${SM}' previd='no-such-session' h='0'/>`);
  await lost.waitFor(/<failed xmlns='urn:xmpp:sm:3'><item-not-found/);
  assert.equal(await bind(lost, "fresh"), "alice@localhost/fresh");
  mallory.close();
  lost.close();
  await s.end("test done");
});

test("resuming while the old connection is still open closes it with a conflict stream error", async () => {
  const { c, jid, id } = await smLogin("alice", "twice");
  const n = await authenticated("alice");
  n.buffer = "";
  n.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
  await n.waitFor(/<resumed [^>]*h='0'/);
  const err = (await c.waitFor(/<stream:error>[\s\S]*?<\/stream:error>/))[0];
  assert.match(err, /<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await c.waitClosed();
  const s = session(jid)!;
  assert.equal(s.hibernating, false, "the old connection's end does not touch the resumed session");
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", PW, "twice");
  await sendMessages(bob, jid, "new", 1);
  await n.waitFor(/new1<\/body>/);
  n.close();
  bob.close();
});

test("when resumption times out, unacked and queued messages go to offline storage and arrive at the next login", async () => {
  const { c, jid, id } = await smLogin("dave", "gone", `<enable xmlns='${SM}' resume='true' max='1'/>`);
  assert.ok(id);
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", PW, "expiry");
  await sendMessages(bob, jid, "x", 1);
  await c.waitFor(/x1<\/body>/);
  c.close();
  const s = session(jid)!;
  await until(() => s.hibernating, "hibernation");
  await sendMessages(bob, jid, "y", 1);
  await until(() => session(jid) === undefined, "the resumption timeout", 5000);
  const again = await authenticated("dave");
  again.buffer = "";
  again.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
  await again.waitFor(/<failed xmlns='urn:xmpp:sm:3'><item-not-found/);
  await bind(again, "back");
  again.send("<presence/>");
  await again.waitFor(/y1<\/body>/);
  assert.match(again.buffer, /x1<\/body>/);
  assert.match(again.buffer, /<delay xmlns='urn:xmpp:delay'/);
  again.close();
  bob.close();
});

test("a stream closed cleanly with unacked messages stores them offline", async () => {
  const { c, jid } = await smLogin("erin", "clean");
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", PW, "clean");
  await sendMessages(bob, jid, "c", 2);
  await c.waitFor(/c2<\/body>/);
  c.send(`<a xmlns='${SM}' h='1'/></stream:stream>`);
  await c.waitClosed();
  await until(() => session(jid) === undefined, "the session to end");
  const { client: back } = await RawClient.login(ts.c2sPort, "erin", PW, "back");
  back.send("<presence/>");
  await back.waitFor(/c2<\/body>/);
  assert.doesNotMatch(back.buffer, /c1<\/body>/, "the acknowledged message is not delivered twice");
  back.close();
  bob.close();
});

test("an IQ request the client never acknowledged is answered for it with an error", async () => {
  const { c, jid } = await smLogin("frank", "iq", `<enable xmlns='${SM}'/>`);
  const { client: bob, jid: bobJid } = await RawClient.login(ts.c2sPort, "bob", PW, "iq");
  // Bob may not query frank's resource directly (no presence subscription is needed for an IQ to a full JID).
  bob.send(`<iq type='get' id='v1' to='${jid}'><query xmlns='jabber:iq:version'/></iq>`);
  await c.waitFor(/id='v1'/);
  c.close();
  const err = (await bob.waitFor(/<iq [^>]*type='error'[^>]*>[\s\S]*?<\/iq>/))[0];
  assert.match(err, /id='v1'/);
  assert.match(err, /service-unavailable/);
  assert.match(err, new RegExp(`to='${bobJid}'`));
  bob.close();
});

test("resume before authentication is refused, and sm elements are ignored until enabled", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  c.buffer = "";
  c.send(`<resume xmlns='${SM}' previd='x' h='0'/>`);
  await c.waitFor(/<failed xmlns='urn:xmpp:sm:3'><unexpected-request/);
  c.close();
  const { client } = await RawClient.login(ts.c2sPort, "grace", PW, "plain");
  client.send(`<a xmlns='${SM}' h='3'/><r xmlns='${SM}'/><iq type='get' id='ok' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await client.waitFor(/id='ok'/);
  assert.doesNotMatch(client.buffer, /<a xmlns/);
  client.close();
});
