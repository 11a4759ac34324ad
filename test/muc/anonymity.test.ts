// XEP-0045 room anonymity over real sockets: new rooms are semi-anonymous (§7.2.3: real JIDs in <item jid/> for
// moderators only, no status 100, disco#info muc_semianonymous), an occupant who becomes or stops being a moderator
// gets everyone's presence again with or without the JIDs, an owner may still make a room non-anonymous (§7.2.4, 172,
// 173), and hosts[].muc.default_whois: anyone keeps new rooms non-anonymous.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { Element } from "../../src/xml/element.ts";
import { MUC, MUC_ADMIN, MUC_OWNER, Peer, codes, isPresenceFrom, item } from "./kit.ts";

const SERVICE = "conference.localhost";
const OLD_SERVICE = "conference.old.localhost";
const PW = "secret";
let ts: TestServer;

before(async () => {
  ts = await createTestServer(
    {
      hosts: [
        { domain: "localhost", muc: { domain: SERVICE } },
        { domain: "old.localhost", muc: { domain: OLD_SERVICE, default_whois: "anyone" } },
      ],
    },
    { users: { "alice@localhost": PW, "bob@localhost": PW, "carol@localhost": PW, "dave@localhost": PW, "erin@old.localhost": PW, "fred@old.localhost": PW } },
  );
});
after(async () => {
  await ts.stop();
});

const login = (user: string, resource: string, domain = "localhost") => Peer.login(ts.c2sPort, user, PW, resource, domain);

/** Enter `room` as `nick` and wait for the subject (the end of §7.2's sequence); returns the self-presence. */
async function enter(p: Peer, room: string, nick: string): Promise<Element> {
  p.send(`<presence to='${room}/${nick}'><x xmlns='${MUC}'/></presence>`);
  const self = await p.next((e) => e.name === "presence" && codes(e).includes(110), `${nick}'s self-presence`);
  await p.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  return self;
}

async function createRoom(owner: Peer, room: string, nick: string): Promise<Element> {
  const self = await enter(owner, room, nick);
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", room);
  assert.equal(r.attrs["type"], "result", r.toString());
  return self;
}

async function admin(p: Peer, room: string, items: string): Promise<void> {
  const r = await p.iq(`<query xmlns='${MUC_ADMIN}'>${items}</query>`, "set", room);
  assert.equal(r.attrs["type"], "result", r.toString());
}

const features = async (p: Peer, room: string) =>
  (await p.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", room)).getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);

test("a new room is semi-anonymous: participants see no real JIDs and no 100, moderators see every JID", async () => {
  const room = `masks@${SERVICE}`;
  const alice = await login("alice", "masks");
  const bob = await login("bob", "masks");
  const carol = await login("carol", "masks");
  const created = await createRoom(alice, room, "Alice");
  assert.deepEqual(codes(created), [110, 201], "no 100: any occupant may not see the creator's JID");
  assert.equal(item(created)["jid"], alice.jid, "an occupant always sees its own JID");
  const f = await features(bob, room);
  assert.ok(f.includes("muc_semianonymous") && !f.includes("muc_nonanonymous"), f.join(" "));

  bob.send(`<presence to='${room}/Bob'><x xmlns='${MUC}'/></presence>`);
  const aliceSeen = await bob.next(isPresenceFrom(`${room}/Alice`), "Alice's presence");
  assert.deepEqual(item(aliceSeen), { affiliation: "owner", role: "moderator" });
  const self = await bob.next(isPresenceFrom(`${room}/Bob`), "self-presence");
  assert.deepEqual(codes(self), [110]);
  assert.deepEqual(item(self), { affiliation: "none", role: "participant", jid: bob.jid });
  const bobSeen = await alice.next(isPresenceFrom(`${room}/Bob`), "Bob's arrival seen by the moderator");
  assert.equal(item(bobSeen)["jid"], bob.jid);

  await enter(carol, room, "Carol");
  const carolSeen = await bob.next(isPresenceFrom(`${room}/Carol`), "Carol's arrival seen by Bob");
  assert.equal(item(carolSeen)["jid"], undefined, "a participant does not see a participant's JID");
  assert.equal(item(await alice.next(isPresenceFrom(`${room}/Carol`), "Carol's arrival seen by Alice"))["jid"], carol.jid);
  for (const p of [alice, bob, carol]) p.close();
});

test("an occupant made moderator gets everyone's presence again with real JIDs, and without them when demoted", async () => {
  const room = `promo@${SERVICE}`;
  const alice = await login("alice", "promo");
  const bob = await login("bob", "promo");
  const carol = await login("carol", "promo");
  await createRoom(alice, room, "Alice");
  await enter(bob, room, "Bob");
  await enter(carol, room, "Carol");
  bob.skip();

  // §9.6 (granting moderator by role): the change is broadcast, then Bob sees who everyone is.
  await admin(alice, room, "<item nick='Bob' role='moderator'/>");
  const promoted = await bob.next((e) => isPresenceFrom(`${room}/Bob`)(e) && item(e)["role"] === "moderator", "Bob's promotion");
  assert.deepEqual(codes(promoted), [110]);
  assert.equal(item(await bob.next(isPresenceFrom(`${room}/Alice`), "Alice again"))["jid"], alice.jid);
  assert.equal(item(await bob.next(isPresenceFrom(`${room}/Carol`), "Carol again"))["jid"], carol.jid);

  await admin(alice, room, "<item nick='Bob' role='participant'/>");
  await bob.next((e) => isPresenceFrom(`${room}/Bob`)(e) && item(e)["role"] === "participant", "Bob's demotion");
  assert.equal(item(await bob.next(isPresenceFrom(`${room}/Alice`), "Alice again"))["jid"], undefined);
  assert.equal(item(await bob.next(isPresenceFrom(`${room}/Carol`), "Carol again"))["jid"], undefined);

  // An affiliation that brings the moderator role (admin, §5.1.3) does the same.
  carol.skip();
  await admin(alice, room, "<item jid='carol@localhost' affiliation='admin'/>");
  await carol.next((e) => isPresenceFrom(`${room}/Carol`)(e) && item(e)["role"] === "moderator", "Carol's promotion");
  assert.equal(item(await carol.next(isPresenceFrom(`${room}/Bob`), "Bob again"))["jid"], bob.jid);
  for (const p of [alice, bob, carol]) p.close();
});

test("an owner may make the room non-anonymous (172): participants get the JIDs and newcomers 100; and back (173)", async () => {
  const room = `open-book@${SERVICE}`;
  const alice = await login("alice", "book");
  const bob = await login("bob", "book");
  const dave = await login("dave", "book");
  await createRoom(alice, room, "Alice");
  await enter(bob, room, "Bob");
  bob.skip();
  const whois = async (value: string) => {
    const form = `<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>${value}</value></field></x>`;
    const r = await alice.iq(`<query xmlns='${MUC_OWNER}'>${form}</query>`, "set", room);
    assert.equal(r.attrs["type"], "result", r.toString());
  };
  await whois("anyone");
  const notice = await bob.next((e) => e.name === "message" && codes(e).length > 0, "the configuration notice");
  assert.deepEqual(codes(notice), [104, 172]);
  assert.equal(item(await bob.next(isPresenceFrom(`${room}/Alice`), "Alice again"))["jid"], alice.jid);
  assert.ok((await features(dave, room)).includes("muc_nonanonymous"));
  assert.deepEqual(codes(await enter(dave, room, "Dave")), [100, 110]);

  await whois("moderators");
  assert.deepEqual(codes(await bob.next((e) => e.name === "message" && codes(e).length > 0, "the second notice")), [104, 173]);
  assert.ok((await features(dave, room)).includes("muc_semianonymous"));
  for (const p of [alice, bob, dave]) p.close();
});

test("hosts[].muc.default_whois: anyone keeps new rooms non-anonymous", async () => {
  const room = `kitchen@${OLD_SERVICE}`;
  const erin = await login("erin", "old", "old.localhost");
  const fred = await login("fred", "old", "old.localhost");
  assert.deepEqual(codes(await createRoom(erin, room, "Erin")), [100, 110, 201]);
  assert.ok((await features(fred, room)).includes("muc_nonanonymous"));
  fred.send(`<presence to='${room}/Fred'><x xmlns='${MUC}'/></presence>`);
  assert.equal(item(await fred.next(isPresenceFrom(`${room}/Erin`), "Erin's presence"))["jid"], erin.jid);
  assert.deepEqual(codes(await fred.next(isPresenceFrom(`${room}/Fred`), "self-presence")), [100, 110]);
  erin.close();
  fred.close();
});
