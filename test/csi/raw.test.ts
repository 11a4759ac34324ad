// XEP-0352 Client State Indication over real sockets with raw clients: the stream feature, presence and chat states
// held while a session is inactive, a message with a body delivered at once after what was held, only the latest
// presence per contact on <active/> (written before the next answer, §5.1), the nonzas kept out of XEP-0198's count,
// held stanzas kept across hibernation and resumption, and a measurement of what an inactive phone is spared when 50
// contacts change presence and type (docs figure: src/modules/csi/README.md).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { HEADER, RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import type { CsiApi } from "../../src/modules/csi/mod.ts";
import type { SmState } from "../../src/modules/stream-management/mod.ts";

const CSI = "urn:xmpp:csi:0";
const SM = "urn:xmpp:sm:3";
const PW = "pw";
const CONTACTS = Array.from({ length: 50 }, (_, i) => `c${i + 1}`);
let ts: TestServer;
const open: RawClient[] = [];

before(async () => {
  const users = ["watcher", "alice", "bob", "sm", "hib", ...CONTACTS];
  ts = await createTestServer({}, { users: Object.fromEntries(users.map((u) => [`${u}@localhost`, PW])) });
  // Mutual subscriptions, written to storage as if the users had subscribed long ago.
  const rosters = ts.server.storage.rosters;
  const item = (jid: string) => ({ jid, subscription: "both" as const, ask: false, approved: false, groups: [] });
  for (const owner of ["watcher", "sm", "hib"]) {
    for (const c of ["alice", "bob", ...CONTACTS]) {
      await rosters.setItem("localhost", owner, item(`${c}@localhost`));
      await rosters.setItem("localhost", c, item(`${owner}@localhost`));
    }
  }
});
after(async () => {
  for (const c of open) c.close();
  await ts.stop();
});

function session(jid: string): C2sSession {
  const s = ts.server.sessions.get(parseJid(jid));
  assert.ok(s, `${jid} is bound`);
  return s as C2sSession;
}

function csi(): CsiApi {
  const api = ts.server.hosts.get("localhost")!.provided.get("csi") as CsiApi | undefined;
  assert.ok(api, "the csi module is loaded");
  return api;
}

async function until(f: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function login(user: string, resource: string, presence = true): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, PW, resource);
  open.push(client);
  if (presence) {
    client.send("<presence/>");
    await client.sync();
  }
  return client;
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

test("the csi feature is offered after authentication, never before", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  open.push(c);
  c.send(HEADER());
  const pre = (await c.waitFor(/<stream:features>[\s\S]*?<\/stream:features>/))[0];
  assert.doesNotMatch(pre, /urn:xmpp:csi:0/);
  await c.starttls();
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  c.buffer = "";
  assert.ok(await c.authPlain("watcher", PW));
  assert.match(c.buffer, /<csi xmlns='urn:xmpp:csi:0'\/>/);
  c.close();
});

test("an inactive session gets no presence or chat states, a body message at once after them, then the latest presence on <active/>", async () => {
  const w = await login("watcher", "phone");
  const alice = await login("alice", "a");
  const bob = await login("bob", "b");
  await until(() => /from='alice@localhost\/a'/.test(w.buffer) && /from='bob@localhost\/b'/.test(w.buffer), "the contacts' initial presence");
  const ws = session("watcher@localhost/phone");
  w.send(`<inactive xmlns='${CSI}'/>`);
  await w.sync();
  assert.equal(csi().isInactive(ws), true);
  w.buffer = "";

  alice.send("<presence><show>away</show></presence>");
  alice.send("<presence><show>xa</show><status>gone</status></presence>");
  alice.send("<message type='chat' to='watcher@localhost'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
  bob.send("<presence><show>dnd</show></presence>");
  // alice's two presences are squashed into one: three held.
  await until(() => csi().held(ws) === 3, "three stanzas held");
  // Routed and taken by the filter, not written. (No ping here: its answer cannot wait and would flush them.)
  assert.doesNotMatch(w.buffer, /<presence|<message/, "nothing while inactive");

  w.buffer = "";
  alice.send("<message type='chat' to='watcher@localhost' id='m1'><body>call me</body></message>");
  await w.waitFor(/<body>call me<\/body>/);
  const b = w.buffer;
  const iXa = b.indexOf("<show>xa</show>");
  const iComposing = b.indexOf("<composing");
  const iDnd = b.indexOf("<show>dnd</show>");
  const iBody = b.indexOf("<body>call me");
  assert.ok(iXa >= 0 && iComposing > iXa && iBody > iComposing, `held stanzas first, in order: ${b}`);
  assert.ok(iDnd >= 0 && iDnd < iBody);
  assert.doesNotMatch(b, /<show>away<\/show>/, "the superseded presence never went out");
  assert.equal(csi().held(ws), 0);

  // Still inactive: a new presence waits until <active/>, which writes it before the next answer (§5.1).
  w.buffer = "";
  alice.send("<presence><show>chat</show></presence>");
  alice.send("<presence><show>dnd</show></presence>");
  await until(() => csi().held(ws) === 1 && csi().stats.squashed >= 2, "the next presence held");
  w.send(`<active xmlns='${CSI}'/><iq type='get' id='after-active' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await w.waitFor(/id='after-active'/);
  const a = w.buffer;
  assert.ok(a.indexOf("<show>dnd</show>") >= 0 && a.indexOf("<show>dnd</show>") < a.indexOf("after-active"), a);
  assert.doesNotMatch(a, /<show>chat<\/show>/);
  assert.equal(csi().isInactive(ws), false);
  // Active again: presence flows at once.
  w.buffer = "";
  bob.send("<presence><show>chat</show></presence>");
  await w.waitFor(/<show>chat<\/show>/);
  for (const c of [w, alice, bob]) c.close();
});

test("the nonzas are not counted by XEP-0198, held stanzas are counted when written, and survive hibernation", async () => {
  const alice = await login("alice", "a2");
  // A client with stream management and resumption.
  const c = await RawClient.connect(ts.c2sPort);
  open.push(c);
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  await c.starttls();
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  assert.ok(await c.authPlain("hib", PW));
  c.buffer = "";
  c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
  await c.waitFor(/<jid>/);
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  const id = (await c.waitFor(/<enabled [^>]*id='([^']+)'/))[1]!;
  c.send("<presence/>");
  await until(() => session("hib@localhost/phone").available, "initial presence");
  c.send(`<inactive xmlns='${CSI}'/><active xmlns='${CSI}'/><inactive xmlns='${CSI}'/>`);
  c.buffer = "";
  c.send(`<r xmlns='${SM}'/>`);
  await c.waitFor(/<a xmlns='urn:xmpp:sm:3' h='1'\/>/); // the presence only: three nonzas not counted
  const hs = session("hib@localhost/phone");
  const sm = hs.sm as SmState;
  await until(() => csi().isInactive(hs), "inactive");
  // Presence from alice is held: not written, so not counted as sent.
  const sentBefore = sm.sent;
  alice.send("<presence><show>away</show></presence>");
  await until(() => csi().held(hs) >= 1, "alice's presence held");
  assert.equal(sm.sent, sentBefore, "a held stanza is not yet sent for XEP-0198");
  // The TCP connection dies: the session hibernates, and the held presence joins the resumption queue.
  c.socket.destroy();
  await until(() => hs.hibernating, "hibernation");
  assert.equal(sm.sent, sentBefore + 1, "drained into the XEP-0198 queue");
  assert.equal(csi().isInactive(hs), false, "a resumed stream begins active (XEP-0352 §5)");
  // Resume with the h of everything acknowledged before: the held presence arrives on the new stream.
  const r = await RawClient.connect(ts.c2sPort);
  open.push(r);
  r.send(HEADER());
  await r.waitFor(/<\/stream:features>/);
  await r.starttls();
  r.send(HEADER());
  await r.waitFor(/<\/stream:features>/);
  assert.ok(await r.authPlain("hib", PW));
  r.buffer = "";
  r.send(`<resume xmlns='${SM}' previd='${id}' h='${sentBefore}'/>`);
  await r.waitFor(/<resumed /);
  await r.waitFor(/from='alice@localhost\/a2'[^>]*>[\s\S]*?<show>away<\/show>/);
  r.close();
  alice.close();
});

test("measured: an inactive phone is spared superseded presence and chat states of 50 contacts", { timeout: 300_000 }, async (t) => {
  const desk = await login("watcher", "desk");
  const phone = await login("watcher", "phone2");
  const contacts: RawClient[] = [];
  for (const u of CONTACTS) contacts.push(await login(u, "r", false));
  for (const c of contacts) c.send("<presence/>");
  await until(() => count(phone.buffer, /<presence /g) >= CONTACTS.length, "the contacts' initial presence", 60_000);
  phone.send(`<inactive xmlns='${CSI}'/>`);
  await phone.sync();
  const ps = session("watcher@localhost/phone2");
  assert.equal(csi().isInactive(ps), true);
  desk.buffer = "";
  phone.buffer = "";
  // A realistic burst: each contact changes its status four times and types a little (composing, then paused).
  const shows = ["away", "xa", "dnd", "chat"];
  for (const [i, c] of contacts.entries()) {
    for (const s of shows) c.send(`<presence><show>${s}</show><status>status ${s} of contact ${i + 1}</status><priority>5</priority></presence>`);
    c.send("<message type='chat' to='watcher@localhost'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    c.send("<message type='chat' to='watcher@localhost'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>");
  }
  const perContact = shows.length + 2;
  await until(() => count(desk.buffer, /<presence /g) + count(desk.buffer, /<message /g) >= CONTACTS.length * perContact, "the active session to get everything", 120_000);
  await until(() => csi().held(ps) === CONTACTS.length * 2, "the phone to hold one presence and one chat state per contact", 60_000);
  assert.doesNotMatch(phone.buffer, /<presence |<message /, "the inactive phone got nothing yet");
  phone.buffer = "";
  phone.send(`<active xmlns='${CSI}'/>`);
  await phone.sync();
  const phoneXml = phone.buffer.replace(/<iq [\s\S]*?(?:\/>|<\/iq>)$/, "");
  const deskStanzas = count(desk.buffer, /<presence |<message /g);
  const phoneStanzas = count(phoneXml, /<presence |<message /g);
  const deskBytes = Buffer.byteLength(desk.buffer);
  const phoneBytes = Buffer.byteLength(phoneXml);
  assert.equal(deskStanzas, CONTACTS.length * perContact);
  assert.equal(phoneStanzas, CONTACTS.length * 2);
  // Only the latest state of each contact arrived.
  for (let i = 1; i <= CONTACTS.length; i++) assert.match(phoneXml, new RegExp(`status chat of contact ${i}<`));
  assert.doesNotMatch(phoneXml, /<show>(away|xa|dnd)<\/show>|<composing/);
  const figure =
    `CSI, ${CONTACTS.length} contacts × ${shows.length} presence changes + 2 chat states: ` +
    `active session ${deskStanzas} stanzas / ${deskBytes} bytes; inactive session ${phoneStanzas} stanzas / ${phoneBytes} bytes ` +
    `(saved ${deskStanzas - phoneStanzas} stanzas, ${deskBytes - phoneBytes} bytes, ${Math.round((100 * (deskBytes - phoneBytes)) / deskBytes)}%)`;
  t.diagnostic(figure);
  console.log(figure);
  for (const c of [desk, phone, ...contacts]) c.close();
});

test("an unknown element in the csi namespace is a stream error; nothing in it is answered", async () => {
  const c = await login("bob", "bad", false);
  c.buffer = "";
  c.send(`<inactive xmlns='${CSI}'/><active xmlns='${CSI}'/>`);
  await c.sync();
  assert.doesNotMatch(c.buffer, /urn:xmpp:csi:0/, "no reply to <inactive/> or <active/> (§4.2)");
  c.send(`<idle xmlns='${CSI}'/>`);
  await c.waitFor(/<unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await c.waitClosed();
});
