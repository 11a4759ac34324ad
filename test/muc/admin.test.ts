// XEP-0045 moderation and administration over real sockets: kick (307) and ban (301) through muc#admin, the ban and
// member lists, members-only (registration-required, 321, 322) and password-protected (not-authorized) rooms set up
// with the muc#owner form, room destruction, who may create rooms, and the limits of hosts[].muc.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { MUC, MUC_ADMIN, MUC_OWNER, Peer, codes, condition, isPresenceFrom, item } from "./kit.ts";
import type { Element } from "../../src/xml/element.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
let ts: TestServer;

before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", admins: ["admin@localhost"], muc: { domain: SERVICE, max_occupants: 3 } }] },
    { users: { "owner@localhost": PW, "mod@localhost": PW, "bob@localhost": PW, "eve@localhost": PW, "admin@localhost": PW } },
  );
});
after(async () => {
  await ts.stop();
});

const login = (user: string, resource = "r") => Peer.login(ts.c2sPort, user, PW, resource);

async function enter(p: Peer, room: string, nick: string, inner = ""): Promise<Element> {
  p.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'>${inner}</x></presence>`);
  const self = await p.next((e) => e.name === "presence" && (codes(e).includes(110) || e.attrs["type"] === "error"), `${nick}'s self-presence or an error`);
  if (self.attrs["type"] !== "error") await p.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  return self;
}

/** Configure with a muc#roomconfig submission (empty: accept the defaults). */
async function configure(owner: Peer, room: string, fields: Record<string, string> = {}): Promise<Element> {
  const f = Object.entries(fields).map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`).join("");
  const form = `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>${f}</x>`;
  return owner.iq(`<query xmlns='${MUC_OWNER}'>${form}</query>`, "set", `${room}@${SERVICE}`);
}

async function createRoom(owner: Peer, room: string, nick: string, fields: Record<string, string> = {}): Promise<void> {
  const self = await enter(owner, room, nick);
  assert.deepEqual(codes(self), [110, 201]);
  assert.equal((await configure(owner, room, fields)).attrs["type"], "result");
}

const admin = (p: Peer, room: string, items: string) => p.iq(`<query xmlns='${MUC_ADMIN}'>${items}</query>`, "set", `${room}@${SERVICE}`);

test("a moderator kicks a participant (307); a participant may not kick; an owner cannot be kicked by an admin", async () => {
  const owner = await login("owner", "kick");
  const bob = await login("bob", "kick");
  const mod = await login("mod", "kick");
  await createRoom(owner, "court", "Owner");
  await enter(bob, "court", "Bob");
  await enter(mod, "court", "Mod");
  assert.equal(condition(await admin(bob, "court", "<item nick='Mod' role='none'/>")), "forbidden");
  // Grant Mod admin: an admin moderates, but cannot kick the owner.
  assert.equal((await admin(owner, "court", "<item jid='mod@localhost' affiliation='admin'/>")).attrs["type"], "result");
  const promoted = await bob.next((e) => isPresenceFrom(`court@${SERVICE}/Mod`)(e) && item(e)["affiliation"] === "admin", "Mod's promotion");
  assert.equal(item(promoted)["role"], "moderator");
  assert.equal(condition(await admin(mod, "court", "<item nick='Owner' role='none'/>")), "not-allowed");
  owner.skip();
  const r = await admin(mod, "court", "<item nick='Bob' role='none'><reason>Avaunt!</reason></item>");
  assert.equal(r.attrs["type"], "result", r.toString());
  const kicked = await bob.next((e) => isPresenceFrom(`court@${SERVICE}/Bob`)(e) && e.attrs["type"] === "unavailable", "the kick");
  assert.deepEqual(codes(kicked), [110, 307]);
  assert.equal(item(kicked)["role"], "none");
  assert.equal(kicked.getChild("x", "http://jabber.org/protocol/muc#user")!.getChild("item")!.getChildText("reason"), "Avaunt!");
  const seen = await owner.next((e) => isPresenceFrom(`court@${SERVICE}/Bob`)(e) && e.attrs["type"] === "unavailable", "the kick seen by others");
  assert.deepEqual(codes(seen), [307]);
  // Kicked, not banned: Bob may come back; a message from him before that is not-acceptable.
  bob.send(`<message to='court@${SERVICE}' type='groupchat' id='after'><body>still here?</body></message>`);
  assert.equal(condition(await bob.next((e) => e.attrs["id"] === "after", "the refusal")), "not-acceptable");
  assert.deepEqual(codes(await enter(bob, "court", "Bob")), [110]);
  for (const p of [owner, bob, mod]) p.close();
});

test("an admin bans a user (301): removed, on the outcast list, refused with forbidden, and unbanned again", async () => {
  const owner = await login("owner", "ban");
  const eve = await login("eve", "ban");
  await createRoom(owner, "castle", "Owner");
  await enter(eve, "castle", "Eve");
  await owner.next(isPresenceFrom(`castle@${SERVICE}/Eve`), "Eve's arrival");
  assert.equal(condition(await admin(owner, "castle", "<item jid='owner@localhost' affiliation='outcast'/>")), "conflict", "nobody bans themselves");
  assert.equal((await admin(owner, "castle", "<item jid='eve@localhost' affiliation='outcast'><reason>spam</reason></item>")).attrs["type"], "result");
  const banned = await eve.next((e) => isPresenceFrom(`castle@${SERVICE}/Eve`)(e) && e.attrs["type"] === "unavailable", "the ban");
  assert.deepEqual(codes(banned), [110, 301]);
  assert.equal(item(banned)["affiliation"], "outcast");
  const seen = await owner.next((e) => isPresenceFrom(`castle@${SERVICE}/Eve`)(e) && e.attrs["type"] === "unavailable", "the ban seen by the owner");
  assert.deepEqual(codes(seen), [301]);
  const list = await owner.iq(`<query xmlns='${MUC_ADMIN}'><item affiliation='outcast'/></query>`, "get", `castle@${SERVICE}`);
  assert.deepEqual(list.getChild("query")!.getChildren("item").map((i) => i.attrs), [{ affiliation: "outcast", jid: "eve@localhost" }]);
  assert.equal(condition(await eve.iq(`<query xmlns='${MUC_ADMIN}'><item affiliation='outcast'/></query>`, "get", `castle@${SERVICE}`)), "forbidden");
  const refused = await enter(eve, "castle", "Eve2");
  assert.equal(condition(refused), "forbidden");
  assert.equal(refused.getChild("error")!.attrs["type"], "auth");
  await admin(owner, "castle", "<item jid='eve@localhost' affiliation='none'/>");
  assert.deepEqual(codes(await enter(eve, "castle", "Eve")), [110]);
  owner.close();
  eve.close();
});

test("members-only rooms: registration-required for others, members get in, non-members are removed (322, 321)", async () => {
  const owner = await login("owner", "members");
  const bob = await login("bob", "members");
  const eve = await login("eve", "members");
  await createRoom(owner, "club", "Owner");
  await enter(eve, "club", "Eve");
  await enter(bob, "club", "Bob");
  await admin(owner, "club", "<item jid='bob@localhost' affiliation='member'/>");
  // §10.2: becoming members-only removes the non-members present (322); the others get a 104 notice.
  assert.equal((await configure(owner, "club", { "muc#roomconfig_membersonly": "1" })).attrs["type"], "result");
  const out = await eve.next((e) => isPresenceFrom(`club@${SERVICE}/Eve`)(e) && e.attrs["type"] === "unavailable", "removal");
  assert.deepEqual(codes(out), [110, 322]);
  const notice = await bob.next((e) => e.name === "message" && codes(e).length > 0, "the configuration notice");
  assert.deepEqual(codes(notice), [104]);
  assert.equal(notice.attrs["from"], `club@${SERVICE}`);
  assert.equal(condition(await enter(eve, "club", "Eve")), "registration-required");
  const info = await eve.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `club@${SERVICE}`);
  assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs["var"] === "muc_membersonly"));
  // The member list; revoking Bob's membership removes him (321).
  const members = await owner.iq(`<query xmlns='${MUC_ADMIN}'><item affiliation='member'/></query>`, "get", `club@${SERVICE}`);
  assert.deepEqual(members.getChild("query")!.getChildren("item").map((i) => i.attrs), [{ affiliation: "member", jid: "bob@localhost", nick: "Bob" }]);
  await admin(owner, "club", "<item jid='bob@localhost' affiliation='none'/>");
  const revoked = await bob.next((e) => isPresenceFrom(`club@${SERVICE}/Bob`)(e) && e.attrs["type"] === "unavailable", "removal");
  assert.deepEqual(codes(revoked), [110, 321]);
  // An invitation by the owner makes the invitee a member (§7.8.2).
  owner.send(`<message to='club@${SERVICE}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='eve@localhost'><reason>come</reason></invite></x></message>`);
  const inv = await eve.next((e) => e.name === "message" && e.attrs["from"] === `club@${SERVICE}`, "the invitation");
  // A semi-anonymous room (the default) names the inviter by its occupant JID, not its real one.
  assert.equal(inv.getChild("x", "http://jabber.org/protocol/muc#user")!.getChild("invite")!.attrs["from"], `club@${SERVICE}/Owner`);
  assert.deepEqual(codes(await enter(eve, "club", "Eve")), [110]);
  for (const p of [owner, bob, eve]) p.close();
});

test("password-protected rooms: not-authorized without the right password", async () => {
  const owner = await login("owner", "pw");
  const bob = await login("bob", "pw");
  await createRoom(owner, "vault", "Owner", { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "cauldronburn" });
  const none = await enter(bob, "vault", "Bob");
  assert.equal(condition(none), "not-authorized");
  assert.equal(none.getChild("error")!.attrs["by"], `vault@${SERVICE}`);
  assert.equal(condition(await enter(bob, "vault", "Bob", "<password>wrong</password>")), "not-authorized");
  assert.deepEqual(codes(await enter(bob, "vault", "Bob", "<password>cauldronburn</password>")), [110]);
  const info = await bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `vault@${SERVICE}`);
  assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs["var"] === "muc_passwordprotected"));
  // A protected room without a password is refused; the form does not leave it half-configured.
  assert.equal(condition(await configure(owner, "vault", { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "" })), "not-acceptable");
  const eve = await login("eve", "pw");
  assert.equal(condition(await enter(eve, "vault", "Eve", "<password>wrong</password>")), "not-authorized", "still protected");
  eve.close();
  owner.close();
  bob.close();
});

test("only owners configure and destroy; destruction removes everyone with the reason and alternate venue", async () => {
  const owner = await login("owner", "destroy");
  const bob = await login("bob", "destroy");
  await createRoom(owner, "doomed", "Owner");
  await enter(bob, "doomed", "Bob");
  assert.equal(condition(await bob.iq(`<query xmlns='${MUC_OWNER}'/>`, "get", `doomed@${SERVICE}`)), "forbidden");
  assert.equal(condition(await bob.iq(`<query xmlns='${MUC_OWNER}'><destroy/></query>`, "set", `doomed@${SERVICE}`)), "forbidden");
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><destroy jid='heath@${SERVICE}'><reason>Macbeth doth come.</reason></destroy></query>`, "set", `doomed@${SERVICE}`);
  assert.equal(r.attrs["type"], "result");
  const gone = await bob.next((e) => e.name === "presence" && e.attrs["type"] === "unavailable", "the destruction");
  const d = gone.getChild("x", "http://jabber.org/protocol/muc#user")!.getChild("destroy")!;
  assert.equal(d.attrs["jid"], `heath@${SERVICE}`);
  assert.equal(d.getChildText("reason"), "Macbeth doth come.");
  assert.deepEqual(item(gone), { affiliation: "none", role: "none", jid: bob.jid });
  assert.equal(condition(await bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `doomed@${SERVICE}`)), "item-not-found");
  owner.close();
  bob.close();
});

test("cancelling the initial configuration destroys the new room", async () => {
  const owner = await login("owner", "cancel");
  await enter(owner, "never", "Owner");
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='cancel'/></query>`, "set", `never@${SERVICE}`);
  assert.equal(r.attrs["type"], "result");
  await owner.next((e) => e.name === "presence" && e.attrs["type"] === "unavailable", "removal");
  assert.equal(condition(await owner.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `never@${SERVICE}`)), "item-not-found");
  owner.close();
});

test("max_occupants: a full room refuses newcomers (service-unavailable), but not its admins", async () => {
  const owner = await login("owner", "full");
  const bob = await login("bob", "full");
  const eve = await login("eve", "full");
  const mod = await login("mod", "full");
  await createRoom(owner, "small", "Owner");
  await admin(owner, "small", "<item jid='mod@localhost' affiliation='admin'/>");
  await enter(bob, "small", "Bob");
  await enter(eve, "small", "Eve");
  const full = await enter(mod, "small", "Mod");
  assert.deepEqual(codes(full), [110], "an admin still gets in");
  const carol = await login("bob", "second");
  const refused = await enter(carol, "small", "Carol");
  assert.equal(condition(refused), "service-unavailable");
  assert.equal(refused.getChild("error")!.attrs["type"], "wait");
  for (const p of [owner, bob, eve, mod, carol]) p.close();
});

test("moderated rooms: visitors may not speak until a moderator gives them voice", async () => {
  const owner = await login("owner", "voice");
  const bob = await login("bob", "voice");
  await createRoom(owner, "stage", "Owner", { "muc#roomconfig_moderatedroom": "1" });
  const self = await enter(bob, "stage", "Bob");
  assert.equal(item(self)["role"], "visitor");
  bob.send(`<message to='stage@${SERVICE}' type='groupchat' id='v1'><body>may I?</body></message>`);
  assert.equal(condition(await bob.next((e) => e.attrs["id"] === "v1", "the refusal")), "forbidden");
  await admin(owner, "stage", "<item nick='Bob' role='participant'/>");
  const voiced = await bob.next((e) => isPresenceFrom(`stage@${SERVICE}/Bob`)(e) && item(e)["role"] === "participant", "voice");
  assert.deepEqual(codes(voiced), [110]);
  bob.send(`<message to='stage@${SERVICE}' type='groupchat' id='v2'><body>thank you</body></message>`);
  await owner.next((e) => e.name === "message" && e.getChildText("body") === "thank you", "the message");
  owner.close();
  bob.close();
});

test("a host admin acts as the owner of every room: reads its configuration, destroys it", async () => {
  const owner = await login("owner", "svc");
  const root = await login("admin", "svc");
  await createRoom(owner, "private-club", "Owner");
  // The host's admin may read the configuration of any room and destroy it.
  const form = await root.iq(`<query xmlns='${MUC_OWNER}'/>`, "get", `private-club@${SERVICE}`);
  assert.equal(form.attrs["type"], "result");
  assert.equal((await root.iq(`<query xmlns='${MUC_OWNER}'><destroy/></query>`, "set", `private-club@${SERVICE}`)).attrs["type"], "result");
  owner.close();
  root.close();
});

test("create: admins refuses room creation to users with not-allowed", async () => {
  const t2 = await createTestServer(
    { hosts: [{ domain: "localhost", admins: ["admin@localhost"], muc: { domain: SERVICE, create: "admins" } }] },
    { users: { "bob@localhost": PW, "admin@localhost": PW } },
  );
  try {
    const bob = await Peer.login(t2.c2sPort, "bob", PW, "r");
    bob.send(`<presence to='new@${SERVICE}/Bob'><x xmlns='${MUC}'/></presence>`);
    const refused = await bob.next((e) => e.attrs["type"] === "error", "the refusal");
    assert.equal(condition(refused), "not-allowed");
    const root = await Peer.login(t2.c2sPort, "admin", PW, "r");
    root.send(`<presence to='new@${SERVICE}/Root'><x xmlns='${MUC}'/></presence>`);
    assert.deepEqual(codes(await root.next((e) => e.name === "presence" && codes(e).includes(110), "creation")), [110, 201]);
    bob.close();
    root.close();
  } finally {
    await t2.stop();
  }
});
