// Unit tests of the chat service without sockets: the service is driven with stanzas and what it sends is
// collected. Covers what the socket tests do not reach easily: several sessions under one nickname (§7.2.9), ghosts
// removed on delivery errors (§18.1.2, 333) and never the sender of what bounced, session ends, IQs forwarded through
// occupant JIDs (§17.4), semi-anonymous rooms and whois changes (172, 173), the service's default_whois, invitations
// and declines (§7.8.2), and the shutdown notice (332).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { MucService } from "./service.ts";
import { NS_MUC_USER } from "./ns.ts";

const ROOM = "room@muc.test";

function service(opts: { create?: "admins" | "users" | "anyone" } = {}) {
  const sent: Element[] = [];
  const svc = new MucService({
    domain: "muc.test",
    host: "test",
    name: "Chat",
    create: opts.create ?? "users",
    maxRooms: 10,
    limits: { maxOccupants: 10, maxHistory: 10 },
    send: (s) => void sent.push(s),
    isHostAdmin: (jid) => jid.bareString() === "root@test",
  });
  const from = (jid: string, xml: string) => {
    const el = parseXml(xml.replace(/^<(\w+)/, `<$1 xmlns='jabber:client' from='${jid}'`));
    svc.handle(el, parseJid(jid), parseJid(el.attrs["to"]!));
  };
  /** Everything sent since the last call, to one address (or all). */
  const take = (to?: string) => {
    const out = sent.filter((s) => to === undefined || s.attrs["to"] === to);
    for (const s of out) sent.splice(sent.indexOf(s), 1);
    return out;
  };
  const join = (jid: string, nick: string, room = ROOM) => from(jid, `<presence to='${room}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  return { svc, from, take, join, sent };
}

const codesOf = (e: Element) => (e.getChild("x", NS_MUC_USER)?.getChildren("status") ?? []).map((s) => Number(s.attrs["code"]));
const itemOf = (e: Element) => e.getChild("x", NS_MUC_USER)?.getChild("item")?.attrs ?? {};

function withRoom(create?: "admins" | "users" | "anyone") {
  const t = service(create ? { create } : {});
  t.join("owner@test/a", "Owner");
  t.from("owner@test/a", `<iq type='set' id='c' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  t.take();
  return t;
}

test("two sessions of one user share a nickname; the others see one occupant, who leaves with the last session", () => {
  const t = withRoom();
  t.join("bob@test/phone", "Bob");
  t.take();
  t.join("bob@test/laptop", "Bob");
  const toLaptop = t.take("bob@test/laptop");
  assert.ok(toLaptop.some((e) => e.name === "presence" && codesOf(e).includes(110)));
  assert.equal(t.take("owner@test/a").length, 0, "no second arrival for the others");
  t.from("owner@test/a", `<message to='${ROOM}' type='groupchat' id='m'><body>hi</body></message>`);
  assert.equal(t.take("bob@test/phone").length, 1);
  assert.equal(t.take("bob@test/laptop").length, 1);
  assert.equal(t.take("owner@test/a").length, 1, "the sender's own copy");
  t.from("bob@test/phone", `<presence to='${ROOM}/Bob' type='unavailable'/>`);
  assert.deepEqual(codesOf(t.take("bob@test/phone")[0]!), [110]);
  assert.deepEqual(t.take("owner@test/a").map(String), [], "still there with the laptop");
  t.from("bob@test/laptop", `<presence to='${ROOM}/Bob' type='unavailable'/>`);
  const gone = t.take("owner@test/a");
  assert.equal(gone[0]?.attrs["type"], "unavailable");
  // A different user cannot share the nickname.
  t.join("eve@test/x", "Owner");
  assert.equal(t.take("eve@test/x")[0]?.getChild("error")?.getChild("conflict")?.name, "conflict");
});

test("a delivery error from an occupant removes it as a ghost (333); other errors do not", () => {
  const t = withRoom();
  t.join("remote@far.test/r", "Far");
  t.take();
  t.from("remote@far.test/r", `<message type='error' to='${ROOM}/Owner'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);
  assert.equal(t.take("owner@test/a").length, 0, "not a delivery error: still there");
  t.from("remote@far.test/r", `<message type='error' to='${ROOM}/Owner'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);
  const out = t.take("owner@test/a")[0]!;
  assert.equal(out.attrs["type"], "unavailable");
  assert.deepEqual(codesOf(out), [333]);
  // Errors are never answered.
  assert.equal(t.take("remote@far.test/r").filter((e) => e.attrs["type"] === "error").length, 0);
});

test("a session that ends leaves every room it was in; the room ends with its last occupant", () => {
  const t = withRoom();
  t.join("owner@test/a", "Owner", "other@muc.test");
  t.join("bob@test/b", "Bob");
  t.take();
  t.svc.sessionEnded(parseJid("owner@test/a"));
  assert.equal(t.take("bob@test/b")[0]?.attrs["type"], "unavailable");
  assert.equal(t.take("owner@test/a").length, 0, "nothing is sent to a session that is gone");
  assert.ok(!t.svc.rooms.has("other"), "the room only the owner was in ended");
  assert.ok(t.svc.rooms.has("room"));
});

test("IQs to an occupant JID go to its real JID and the answer comes back; vCards go to the bare JID", () => {
  const t = withRoom();
  t.join("bob@test/b", "Bob");
  t.take();
  t.from("owner@test/a", `<iq type='get' id='v1' to='${ROOM}/Bob'><vCard xmlns='vcard-temp'/></iq>`);
  const fwd = t.take("bob@test")[0]!;
  assert.equal(fwd.attrs["from"], `${ROOM}/Owner`);
  assert.notEqual(fwd.attrs["id"], "v1");
  // An answer from someone else with the same id is ignored.
  t.from("eve@test/x", `<iq type='result' id='${fwd.attrs["id"]}' to='${ROOM}/Owner'><vCard xmlns='vcard-temp'><FN>Eve</FN></vCard></iq>`);
  assert.equal(t.take("owner@test/a").length, 0);
  t.from("bob@test", `<iq type='result' id='${fwd.attrs["id"]}' to='${ROOM}/Owner'><vCard xmlns='vcard-temp'><FN>Bob</FN></vCard></iq>`);
  const back = t.take("owner@test/a")[0]!;
  assert.deepEqual({ type: back.attrs["type"], id: back.attrs["id"], from: back.attrs["from"] }, { type: "result", id: "v1", from: `${ROOM}/Bob` });
  assert.equal(back.getChild("vCard")?.getChildText("FN"), "Bob");
  t.from("owner@test/a", `<iq type='get' id='t1' to='${ROOM}/Bob'><time xmlns='urn:xmpp:time'/></iq>`);
  assert.equal(t.take("bob@test/b").length, 1, "other IQs go to the session");
});

test("semi-anonymous rooms show real JIDs to moderators only, and invitations come from the occupant JID", () => {
  const t = withRoom(); // semi-anonymous: the default for new rooms
  t.join("bob@test/b", "Bob");
  const toBob = t.take("bob@test/b");
  const ownerSeenByBob = toBob.find((e) => e.attrs["from"] === `${ROOM}/Owner`)!;
  assert.equal(itemOf(ownerSeenByBob)["jid"], undefined);
  const self = toBob.find((e) => codesOf(e).includes(110))!;
  assert.ok(!codesOf(self).includes(100), "no 100: the room is not non-anonymous");
  assert.equal(itemOf(self)["jid"], "bob@test/b", "an occupant always sees its own JID");
  const bobSeenByOwner = t.take("owner@test/a").find((e) => e.attrs["from"] === `${ROOM}/Bob`)!;
  assert.equal(itemOf(bobSeenByOwner)["jid"], "bob@test/b");
  t.from("bob@test/b", `<message to='${ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='carol@test'/></x></message>`);
  const inv = t.take("carol@test")[0]!;
  assert.equal(inv.getChild("x", NS_MUC_USER)?.getChild("invite")?.attrs["from"], `${ROOM}/Bob`);
  t.from("carol@test/c", `<message to='${ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='bob@test/b'><reason>busy</reason></decline></x></message>`);
  const dec = t.take("bob@test/b")[0]!;
  assert.equal(dec.getChild("x", NS_MUC_USER)?.getChild("decline")?.attrs["from"], "carol@test");
});

test("a whois change is announced (172, 173) and everyone but the moderators gets the others' presence again", () => {
  const t = withRoom();
  t.join("bob@test/b", "Bob");
  t.take();
  const whois = (value: string, id: string) =>
    t.from("owner@test/a", `<iq type='set' id='${id}' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>${value}</value></field></x></query></iq>`);
  whois("anyone", "w1");
  const toBob = t.take("bob@test/b");
  assert.deepEqual(codesOf(toBob.find((e) => e.name === "message")!).sort(), [104, 172]);
  assert.equal(itemOf(toBob.find((e) => e.attrs["from"] === `${ROOM}/Owner`)!)["jid"], "owner@test/a", "now non-anonymous: Bob sees the JID");
  assert.equal(t.take("owner@test/a").filter((e) => e.name === "presence").length, 0, "a moderator saw every JID already");
  whois("moderators", "w2");
  const again = t.take("bob@test/b");
  assert.deepEqual(codesOf(again.find((e) => e.name === "message")!).sort(), [104, 173]);
  assert.equal(itemOf(again.find((e) => e.attrs["from"] === `${ROOM}/Owner`)!)["jid"], undefined);
});

test("the service's default_whois decides whether new rooms are non-anonymous (100 on entering)", () => {
  const sent: Element[] = [];
  const svc = new MucService({
    domain: "muc.test",
    host: "test",
    name: "Chat",
    create: "users",
    maxRooms: 10,
    limits: { maxOccupants: 10, maxHistory: 10 },
    defaultWhois: "anyone",
    send: (s) => void sent.push(s),
    isHostAdmin: () => false,
  });
  const join = parseXml(`<presence xmlns='jabber:client' from='owner@test/a' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  svc.handle(join, parseJid("owner@test/a"), parseJid(`${ROOM}/Owner`));
  const self = sent.find((e) => e.name === "presence")!;
  assert.deepEqual(codesOf(self).sort(), [100, 110, 201]);
  assert.equal(svc.rooms.get("room")?.config.whois, "anyone");
});

test("an error the router returns for a session that went away removes that occupant (333), never the sender", () => {
  const t = withRoom();
  t.join("bob@test/b", "Bob");
  t.join("carol@test/c", "Carol");
  t.take();
  // The owner's groupchat message reached Bob's session from room/Owner; the session is gone, so the router answers
  // in its name (RFC 6121 §8.5.3.2.1): service-unavailable from bob@test/b to room/Owner.
  t.from("bob@test/b", `<message type='error' to='${ROOM}/Owner' id='g1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);
  const seen = t.take("carol@test/c").find((e) => e.attrs["from"] === `${ROOM}/Bob`)!;
  assert.equal(seen.attrs["type"], "unavailable");
  assert.deepEqual(codesOf(seen), [333]);
  const self = t.take("bob@test/b").find((e) => e.attrs["from"] === `${ROOM}/Bob`)!;
  assert.deepEqual(codesOf(self).sort(), [110, 333]);
  assert.ok(!t.take("owner@test/a").some((e) => e.attrs["from"] === `${ROOM}/Owner` && e.attrs["type"] === "unavailable"), "the owner stays");
  // An error without a defined condition is malformed: the occupant is gone too (as Prosody treats it).
  t.from("carol@test/c", `<presence type='error' to='${ROOM}/Carol'><error type='cancel'/></presence>`);
  assert.deepEqual(codesOf(t.take("owner@test/a").find((e) => e.attrs["from"] === `${ROOM}/Carol`)!), [333]);
});

test("IQ errors never remove anyone: the answer to a forwarded IQ goes back to the one who asked", () => {
  const t = withRoom();
  t.join("bob@test/b", "Bob");
  t.take();
  t.from("owner@test/a", `<iq type='get' id='p1' to='${ROOM}/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const fwd = t.take("bob@test/b")[0]!;
  t.from("bob@test/b", `<iq type='error' id='${fwd.attrs["id"]}' to='${ROOM}/Owner'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  const back = t.take("owner@test/a");
  assert.equal(back.length, 1, back.map(String).join("\n"));
  assert.deepEqual({ type: back[0]!.attrs["type"], id: back[0]!.attrs["id"], from: back[0]!.attrs["from"] }, { type: "error", id: "p1", from: `${ROOM}/Bob` });
  assert.equal(t.svc.rooms.get("room")?.occupantCount, 2);
});

test("the service answers disco and ping, refuses creation by policy, and says goodbye with 332 on shutdown", () => {
  const t = withRoom("users");
  t.join("stranger@elsewhere.test/x", "Stranger", "new@muc.test");
  assert.equal(t.take("stranger@elsewhere.test/x")[0]?.getChild("error")?.getChild("not-allowed")?.name, "not-allowed");
  t.from("owner@test/a", "<iq type='get' id='p' to='muc.test'><ping xmlns='urn:xmpp:ping'/></iq>");
  assert.equal(t.take("owner@test/a")[0]?.attrs["type"], "result");
  t.from("owner@test/a", "<iq type='get' id='i' to='muc.test'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  assert.deepEqual(t.take("owner@test/a")[0]?.getChild("query")?.getChildren("item").map((i) => i.attrs), [{ jid: ROOM, name: "room" }]);
  t.from("owner@test/a", "<iq type='set' id='u' to='muc.test'><query xmlns='urn:example'/></iq>");
  assert.equal(t.take("owner@test/a")[0]?.getChild("error")?.getChild("service-unavailable")?.name, "service-unavailable");
  t.join("bob@test/b", "Bob");
  t.take();
  t.svc.shutdown();
  for (const to of ["owner@test/a", "bob@test/b"]) {
    const bye = t.take(to)[0]!;
    assert.equal(bye.attrs["type"], "unavailable");
    assert.deepEqual(codesOf(bye).sort(), [110, 332]);
  }
  assert.equal(t.svc.rooms.size, 0);
});
