// XEP-0045 Multi-User Chat over real sockets: discovery, creating an instant room, entering (presence order, 110,
// 201), history with delay stamps and <history/> limits, subject, groupchat and private messages, nickname
// changes and conflicts, leaving by presence and by disconnecting, and the errors of §7.2 and §7.4-7.5.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { Element } from "../../src/xml/element.ts";
import { MUC, MUC_OWNER, MUC_USER, Peer, codes, condition, isMessageFrom, isPresenceFrom, item } from "./kit.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
let ts: TestServer;

before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", admins: ["admin@localhost"], muc: { domain: SERVICE, max_history: 5 } }] },
    { users: { "alice@localhost": PW, "bob@localhost": PW, "carol@localhost": PW, "dave@localhost": PW } },
  );
});
after(async () => {
  await ts.stop();
});

const login = (user: string, resource = "r") => Peer.login(ts.c2sPort, user, PW, resource);

/** Create `room` as `owner` under `nick` and accept the default configuration (an instant room, §10.1.2). */
async function createRoom(owner: Peer, room: string, nick: string): Promise<void> {
  owner.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'/></presence>`);
  const self = await owner.next(isPresenceFrom(`${room}@${SERVICE}/${nick}`), "self-presence");
  assert.deepEqual(codes(self), [110, 201]);
  assert.deepEqual(item(self), { affiliation: "owner", role: "moderator", jid: owner.jid });
  await owner.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
}

/** Enter `room` as `nick`: the self-presence (110), or the error presence. */
async function enter(p: Peer, room: string, nick: string, extra = ""): Promise<Element> {
  p.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'>${extra}</x></presence>`);
  return p.next((e) => e.name === "presence" && (codes(e).includes(110) || e.attrs["type"] === "error"), "self-presence or an error");
}

test("the host lists the chat service, which answers disco#info and lists public rooms", async () => {
  const alice = await login("alice", "disco");
  const items = await alice.iq("<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", "localhost");
  assert.ok(items.getChild("query")!.getChildren("item").some((i) => i.attrs["jid"] === SERVICE && i.attrs["name"] === "Chatrooms"), items.toString());
  const info = await alice.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", SERVICE);
  const q = info.getChild("query")!;
  assert.deepEqual(q.getChild("identity")!.attrs, { category: "conference", type: "text", name: "Chatrooms" });
  assert.ok(q.getChildren("feature").some((f) => f.attrs["var"] === MUC));
  await createRoom(alice, "listed", "Alice");
  const rooms = await alice.iq("<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", SERVICE);
  assert.ok(rooms.getChild("query")!.getChildren("item").some((i) => i.attrs["jid"] === `listed@${SERVICE}`));
  alice.close();
});

test("a locked new room refuses others until its owner accepts the default configuration", async () => {
  const alice = await login("alice", "lock");
  const bob = await login("bob", "lock");
  alice.send(`<presence to='locked@${SERVICE}/Alice'><x xmlns='${MUC}'/></presence>`);
  await alice.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  const refused = await enter(bob, "locked", "Bob");
  assert.equal(refused.attrs["type"], "error");
  assert.equal(condition(refused), "item-not-found");
  assert.ok(refused.getChild("x", MUC), "the error carries the MUC element");
  // A room that is not listed yet: disco#info says it does not exist.
  assert.equal(condition(await bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `locked@${SERVICE}`)), "item-not-found");
  const form = await alice.iq(`<query xmlns='${MUC_OWNER}'/>`, "get", `locked@${SERVICE}`);
  assert.ok(form.getChild("query")!.getChild("x", "jabber:x:data")!.getChildren("field").some((f) => f.attrs["var"] === "muc#roomconfig_membersonly"));
  assert.equal((await alice.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", `locked@${SERVICE}`)).attrs["type"], "result");
  const entered = await enter(bob, "locked", "Bob");
  assert.deepEqual(codes(entered), [110]);
  alice.close();
  bob.close();
});

test("entering: others' presence first, then self-presence, history with delay stamps, then the subject", async () => {
  const alice = await login("alice", "hist");
  const bob = await login("bob", "hist");
  const carol = await login("carol", "hist");
  await createRoom(alice, "coven", "Alice");
  alice.send(`<message to='coven@${SERVICE}' type='groupchat' id='s1'><subject>Cauldron</subject></message>`);
  await alice.next((e) => e.name === "message" && e.getChildText("subject") === "Cauldron", "the subject change");
  for (let i = 1; i <= 7; i++) alice.send(`<message to='coven@${SERVICE}' type='groupchat' id='m${i}'><body>line ${i}</body></message>`);
  // The sender gets its own message back with its id (muc#stable_id).
  const echo = await alice.next((e) => e.name === "message" && e.getChildText("body") === "line 7", "the echo of line 7");
  assert.equal(echo.attrs["id"], "m7");
  assert.equal(echo.attrs["from"], `coven@${SERVICE}/Alice`);

  bob.send(`<presence to='coven@${SERVICE}/Bob'><x xmlns='${MUC}'/></presence>`);
  const first = await bob.next((e) => e.name === "presence", "the first presence");
  assert.equal(first.attrs["from"], `coven@${SERVICE}/Alice`);
  assert.deepEqual(item(first), { affiliation: "owner", role: "moderator" }, "a semi-anonymous room (the default) hides real JIDs from participants");
  const self = await bob.next((e) => e.name === "presence", "self-presence");
  assert.equal(self.attrs["from"], `coven@${SERVICE}/Bob`);
  assert.deepEqual(codes(self), [110]);
  assert.deepEqual(item(self), { affiliation: "none", role: "participant", jid: bob.jid });
  // max_history is 5: lines 3 to 7, oldest first, stamped by the room.
  const history: string[] = [];
  for (let i = 0; i < 5; i++) {
    const m = await bob.next((e) => e.name === "message", "history");
    const delay = m.getChild("delay", "urn:xmpp:delay");
    assert.equal(delay?.attrs["from"], `coven@${SERVICE}`, m.toString());
    assert.match(delay?.attrs["stamp"] ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(m.attrs["type"], "groupchat");
    history.push(m.getChildText("body") ?? "");
  }
  assert.deepEqual(history, ["line 3", "line 4", "line 5", "line 6", "line 7"]);
  const subject = await bob.next((e) => e.name === "message", "the subject");
  assert.equal(subject.getChildText("subject"), "Cauldron");
  assert.equal(subject.getChild("body"), undefined);
  assert.equal(subject.attrs["from"], `coven@${SERVICE}/Alice`);
  // Alice saw Bob arrive.
  const arrival = await alice.next(isPresenceFrom(`coven@${SERVICE}/Bob`), "Bob's arrival");
  assert.deepEqual(codes(arrival), []);

  // <history maxstanzas='2'/> and maxchars='0' (none).
  carol.send(`<presence to='coven@${SERVICE}/Carol'><x xmlns='${MUC}'><history maxstanzas='2'/></x></presence>`);
  await carol.next((e) => e.name === "presence" && codes(e).includes(110), "self-presence");
  const carolHistory = [];
  for (;;) {
    const m = await carol.next((e) => e.name === "message", "history or subject");
    if (m.getChild("subject")) break;
    carolHistory.push(m.getChildText("body"));
  }
  assert.deepEqual(carolHistory, ["line 6", "line 7"]);
  carol.send(`<presence to='coven@${SERVICE}/Carol' type='unavailable'/>`);
  await carol.next((e) => e.name === "presence" && e.attrs["type"] === "unavailable", "left");
  carol.send(`<presence to='coven@${SERVICE}/Carol'><x xmlns='${MUC}'><history maxchars='0'/></x></presence>`);
  await carol.next((e) => e.name === "presence" && codes(e).includes(110), "self-presence");
  const afterSelf = await carol.next((e) => e.name === "message", "the subject");
  assert.ok(afterSelf.getChild("subject"), "no history at all with maxchars='0'");
  for (const p of [alice, bob, carol]) p.close();
});

test("groupchat messages reach every occupant from the sender's occupant JID; private messages reach one", async () => {
  const alice = await login("alice", "chat");
  const bob = await login("bob", "chat");
  const carol = await login("carol", "chat");
  await createRoom(alice, "talk", "Alice");
  await enter(bob, "talk", "Bob");
  await enter(carol, "talk", "Carol");
  bob.send(`<message to='talk@${SERVICE}' type='groupchat' id='g1'><body>hello all</body></message>`);
  for (const p of [alice, bob, carol]) {
    const m = await p.next((e) => e.name === "message" && e.getChildText("body") === "hello all", "the groupchat message");
    assert.equal(m.attrs["from"], `talk@${SERVICE}/Bob`);
    assert.equal(m.attrs["to"], p.jid);
    assert.equal(m.attrs["id"], "g1");
  }
  // §7.5: a private message to an occupant JID, marked with <x xmlns='muc#user'/>.
  bob.send(`<message to='talk@${SERVICE}/Carol' type='chat' id='p1'><body>psst</body></message>`);
  const pm = await carol.next(isMessageFrom(`talk@${SERVICE}/Bob`), "the private message");
  assert.equal(pm.attrs["type"], "chat");
  assert.equal(pm.getChildText("body"), "psst");
  assert.ok(pm.getChild("x", MUC_USER));
  await alice.sync();
  assert.ok(!alice.pending().some((e) => e.getChildText("body") === "psst"), "nobody else sees it");
  // Errors: groupchat to an occupant JID (bad-request), to a missing nick (item-not-found).
  bob.send(`<message to='talk@${SERVICE}/Carol' type='groupchat' id='bad1'><body>x</body></message>`);
  assert.equal(condition(await bob.next((e) => e.attrs["id"] === "bad1", "error")), "bad-request");
  bob.send(`<message to='talk@${SERVICE}/Nobody' type='chat' id='bad2'><body>x</body></message>`);
  assert.equal(condition(await bob.next((e) => e.attrs["id"] === "bad2", "error")), "item-not-found");
  // Non-occupants may neither speak nor whisper (not-acceptable); a missing room is item-not-found.
  const dave = await login("dave", "chat");
  dave.send(`<message to='talk@${SERVICE}' type='groupchat' id='d1'><body>let me in</body></message>`);
  const e1 = await dave.next((e) => e.attrs["id"] === "d1", "error");
  assert.equal(condition(e1), "not-acceptable");
  assert.equal(e1.attrs["from"], `talk@${SERVICE}`);
  dave.send(`<message to='talk@${SERVICE}/Carol' type='chat' id='d2'><body>hi</body></message>`);
  assert.equal(condition(await dave.next((e) => e.attrs["id"] === "d2", "error")), "not-acceptable");
  dave.send(`<message to='nosuchroom@${SERVICE}' type='groupchat' id='d3'><body>anyone?</body></message>`);
  assert.equal(condition(await dave.next((e) => e.attrs["id"] === "d3", "error")), "item-not-found");
  for (const p of [alice, bob, carol, dave]) p.close();
});

test("subject changes are for moderators; joiners get the subject even when none is set", async () => {
  const alice = await login("alice", "subj");
  const bob = await login("bob", "subj");
  await createRoom(alice, "topic", "Alice");
  bob.send(`<presence to='topic@${SERVICE}/Bob'><x xmlns='${MUC}'/></presence>`);
  await bob.next((e) => codes(e).includes(110), "self-presence");
  const empty = await bob.next((e) => e.name === "message", "the empty subject");
  assert.equal(empty.getChildText("subject"), "");
  assert.equal(empty.attrs["from"], `topic@${SERVICE}`);
  bob.send(`<message to='topic@${SERVICE}' type='groupchat' id='t1'><subject>mine now</subject></message>`);
  const refused = await bob.next((e) => e.attrs["id"] === "t1", "the refusal");
  assert.equal(condition(refused), "forbidden");
  alice.send(`<message to='topic@${SERVICE}' type='groupchat' id='t2'><subject>Agenda</subject></message>`);
  const change = await bob.next((e) => e.name === "message" && e.getChildText("subject") === "Agenda", "the subject change");
  assert.equal(change.attrs["from"], `topic@${SERVICE}/Alice`);
  alice.close();
  bob.close();
});

test("nickname conflict (409), nickname change (303) and leaving (unavailable, role none)", async () => {
  const alice = await login("alice", "nick");
  const bob = await login("bob", "nick");
  await createRoom(alice, "names", "Alice");
  const clash = await enter(bob, "names", "Alice");
  assert.equal(clash.attrs["type"], "error");
  assert.equal(condition(clash), "conflict");
  assert.equal(clash.attrs["from"], `names@${SERVICE}/Alice`);
  await enter(bob, "names", "Bob");
  await alice.next(isPresenceFrom(`names@${SERVICE}/Bob`), "Bob's arrival");
  // §7.6: Bob becomes Robert.
  bob.send(`<presence to='names@${SERVICE}/Robert'/>`);
  const gone = await alice.next(isPresenceFrom(`names@${SERVICE}/Bob`), "unavailable from the old nick");
  assert.equal(gone.attrs["type"], "unavailable");
  assert.deepEqual(codes(gone), [303]);
  assert.equal(item(gone)["nick"], "Robert");
  const back = await alice.next(isPresenceFrom(`names@${SERVICE}/Robert`), "available from the new nick");
  assert.equal(back.attrs["type"], undefined);
  const selfGone = await bob.next(isPresenceFrom(`names@${SERVICE}/Bob`), "own unavailable");
  assert.deepEqual(codes(selfGone), [110, 303]);
  const selfBack = await bob.next(isPresenceFrom(`names@${SERVICE}/Robert`), "own new presence");
  assert.deepEqual(codes(selfBack), [110]);
  // Changing to a taken nickname is a conflict.
  bob.send(`<presence to='names@${SERVICE}/Alice'/>`);
  const taken = await bob.next((e) => e.attrs["type"] === "error", "conflict");
  assert.equal(condition(taken), "conflict");
  // A presence update is broadcast with the role and affiliation.
  bob.send(`<presence to='names@${SERVICE}/Robert'><show>away</show><status>brb</status></presence>`);
  const away = await alice.next(isPresenceFrom(`names@${SERVICE}/Robert`), "the update");
  assert.equal(away.getChildText("show"), "away");
  assert.equal(item(away)["role"], "participant");
  // §7.14: leaving with a status message.
  bob.send(`<presence to='names@${SERVICE}/Robert' type='unavailable'><status>bye</status></presence>`);
  const left = await alice.next(isPresenceFrom(`names@${SERVICE}/Robert`), "the leave");
  assert.equal(left.attrs["type"], "unavailable");
  assert.equal(item(left)["role"], "none");
  assert.equal(left.getChildText("status"), "bye");
  const selfLeft = await bob.next(isPresenceFrom(`names@${SERVICE}/Robert`), "own leave");
  assert.deepEqual(codes(selfLeft), [110]);
  alice.close();
  bob.close();
});

test("an occupant whose connection closes leaves the room; the last one out ends a temporary room", async () => {
  const alice = await login("alice", "drop");
  const bob = await login("bob", "drop");
  await createRoom(alice, "brief", "Alice");
  await enter(bob, "brief", "Bob");
  await alice.next(isPresenceFrom(`brief@${SERVICE}/Bob`), "Bob's arrival");
  bob.close();
  const left = await alice.next(isPresenceFrom(`brief@${SERVICE}/Bob`), "Bob leaving");
  assert.equal(left.attrs["type"], "unavailable");
  assert.equal(item(left)["role"], "none");
  // General unavailable presence reaches the room too (the server sends it to every room entered, RFC 6121 §4.6).
  alice.send("<presence type='unavailable'/>");
  await alice.next(isPresenceFrom(`brief@${SERVICE}/Alice`), "own leave");
  const carol = await login("carol", "drop");
  assert.equal(condition(await carol.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `brief@${SERVICE}`)), "item-not-found");
  alice.close();
  carol.close();
});

test("presence without the MUC element from a non-occupant gets a kick (110, 307, 333); a bare room JID is jid-malformed", async () => {
  const alice = await login("alice", "gc");
  const bob = await login("bob", "gc");
  await createRoom(alice, "modern", "Alice");
  bob.send(`<presence to='modern@${SERVICE}/Bob'/>`);
  const kick = await bob.next(isPresenceFrom(`modern@${SERVICE}/Bob`), "the kick");
  assert.equal(kick.attrs["type"], "unavailable");
  assert.deepEqual(codes(kick), [110, 307, 333]);
  bob.send(`<presence to='modern@${SERVICE}'><x xmlns='${MUC}'/></presence>`);
  const bad = await bob.next((e) => e.attrs["type"] === "error", "the error");
  assert.equal(condition(bad), "jid-malformed");
  alice.close();
  bob.close();
});

test("a room's disco#info tells its type; self-ping is answered by the room", async () => {
  const alice = await login("alice", "info");
  const bob = await login("bob", "info");
  await createRoom(alice, "about", "Alice");
  const info = await bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `about@${SERVICE}`);
  const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);
  for (const f of [MUC, "muc_public", "muc_open", "muc_unsecured", "muc_semianonymous", "muc_temporary", "muc_unmoderated"]) assert.ok(features.includes(f), f);
  assert.deepEqual(info.getChild("query")!.getChild("identity")!.attrs, { category: "conference", type: "text", name: "about" });
  // XEP-0410: an occupant's ping to its own occupant JID; a non-occupant gets not-acceptable.
  assert.equal((await alice.iq("<ping xmlns='urn:xmpp:ping'/>", "get", `about@${SERVICE}/Alice`)).attrs["type"], "result");
  assert.equal(condition(await bob.iq("<ping xmlns='urn:xmpp:ping'/>", "get", `about@${SERVICE}/Alice`)), "not-acceptable");
  alice.close();
  bob.close();
});
