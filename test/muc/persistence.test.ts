// XEP-0045 persistent rooms (muc#roomconfig_persistentroom) across restarts of a real server on the same data
// directory (SQLite, the default backend), over raw sockets: configuration, affiliations (domain bans too) and
// subject come back, public ones are listed in disco#items again; temporary, destroyed and no-longer-persistent
// rooms do not come back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/core/log.ts";
import { ComityServer } from "../../src/server.ts";
import type { Element } from "../../src/xml/element.ts";
import { createTestServer } from "../kit/server.ts";
import { MUC, MUC_ADMIN, MUC_OWNER, Peer, codes, condition, item } from "./kit.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
const USERS = ["alice", "bob", "carol", "dave", "erin"];

/** Create `room` as `owner` (nick Owner) and submit `fields` as its first configuration. */
async function createRoom(owner: Peer, room: string, fields: Record<string, string> = {}): Promise<void> {
  owner.send(`<presence to='${room}@${SERVICE}/Owner'><x xmlns='${MUC}'/></presence>`);
  await owner.next((e) => e.name === "presence" && codes(e).includes(201), `the creation of ${room}`);
  await owner.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  await configure(owner, room, fields);
}

async function configure(owner: Peer, room: string, fields: Record<string, string>): Promise<void> {
  const x = Object.entries(fields)
    .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
    .join("");
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>${x}</x></query>`, "set", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
}

async function affiliate(owner: Peer, room: string, items: [string, string][]): Promise<void> {
  const xml = items.map(([jid, a]) => `<item affiliation='${a}' jid='${jid}'/>`).join("");
  const r = await owner.iq(`<query xmlns='${MUC_ADMIN}'>${xml}</query>`, "set", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
}

async function affiliationList(p: Peer, room: string, affiliation: string): Promise<string[]> {
  const r = await p.iq(`<query xmlns='${MUC_ADMIN}'><item affiliation='${affiliation}'/></query>`, "get", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
  return r.getChild("query")!.getChildren("item").map((i) => i.attrs["jid"]!).sort();
}

/** The values of the room's muc#roomconfig form, by field. */
async function configValues(owner: Peer, room: string): Promise<Record<string, string>> {
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'/>`, "get", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
  const out: Record<string, string> = {};
  for (const f of r.getChild("query")!.getChild("x", "jabber:x:data")!.getChildren("field")) {
    if (f.attrs["var"] !== undefined) out[f.attrs["var"]] = f.getChildren("value").map((v) => v.text()).join("\n");
  }
  return out;
}

async function listed(p: Peer): Promise<Record<string, string>> {
  const r = await p.iq(`<query xmlns='${DISCO_ITEMS}'/>`, "get", SERVICE);
  return Object.fromEntries(r.getChild("query")!.getChildren("item").map((i) => [i.attrs["jid"]!, i.attrs["name"] ?? ""]));
}

async function exists(p: Peer, room: string): Promise<boolean> {
  const r = await p.iq(`<query xmlns='${DISCO_INFO}'/>`, "get", `${room}@${SERVICE}`);
  if (r.attrs["type"] === "result") return true;
  assert.equal(condition(r), "item-not-found", r.toString());
  return false;
}

/** Enter as `nick`: the self-presence (110) or the error presence. */
async function enter(p: Peer, room: string, nick: string, password?: string): Promise<Element> {
  const pw = password === undefined ? "" : `<password>${password}</password>`;
  p.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'>${pw}</x></presence>`);
  return p.next((e) => e.name === "presence" && (codes(e).includes(110) || e.attrs["type"] === "error"), `entering ${room}`);
}

async function restart(config: ComityServer["config"]): Promise<{ server: ComityServer; port: number }> {
  const server = await ComityServer.create(config, silentLogger());
  const port = (await server.listen()).c2s[0]!.port;
  return { server, port };
}

test("persistent rooms come back after a restart with configuration, affiliations and subject; others do not", async () => {
  const first = await createTestServer(
    { hosts: [{ domain: "localhost", admins: ["admin@localhost"], muc: { domain: SERVICE, max_history: 10 } }] },
    { users: Object.fromEntries(USERS.map((u) => [`${u}@localhost`, PW])) },
  );
  const servers: ComityServer[] = [];
  const peers: Peer[] = [];
  const login = async (port: number, user: string) => {
    const p = await Peer.login(port, user, PW, "r");
    peers.push(p);
    return p;
  };
  try {
    const alice = await login(first.c2sPort, "alice");
    await createRoom(alice, "keep", {
      "muc#roomconfig_persistentroom": "1",
      "muc#roomconfig_roomname": "Kept room",
      "muc#roomconfig_roomdesc": "Survives restarts",
      "muc#roomconfig_publicroom": "1",
      "muc#roomconfig_membersonly": "1",
      "muc#roomconfig_moderatedroom": "1",
      "muc#roomconfig_passwordprotectedroom": "1",
      "muc#roomconfig_roomsecret": "s3cret",
      "muc#roomconfig_whois": "moderators",
      "muc#roomconfig_changesubject": "1",
      "muc#roomconfig_allowinvites": "1",
      "muc#roomconfig_allowpm": "moderators",
      "muc#roomconfig_maxusers": "20",
      "muc#maxhistoryfetch": "3",
    });
    await affiliate(alice, "keep", [
      ["bob@localhost", "member"],
      ["dave@localhost", "admin"],
      ["carol@localhost", "outcast"],
      ["evil.example", "outcast"],
    ]);
    alice.send(`<message type='groupchat' to='keep@${SERVICE}'><subject>Plans for the week</subject></message>`);
    await alice.next((e) => e.name === "message" && e.getChildText("subject") === "Plans for the week", "the subject reflected");
    const before = await configValues(alice, "keep");
    await createRoom(alice, "hidden", { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_publicroom": "0" });
    await createRoom(alice, "temp"); // temporary, and alice stays in it until the server stops
    await createRoom(alice, "flipped", { "muc#roomconfig_persistentroom": "1" });
    await configure(alice, "flipped", { "muc#roomconfig_persistentroom": "0" }); // alice stays in it
    await createRoom(alice, "doomed", { "muc#roomconfig_persistentroom": "1" });
    const destroyed = await alice.iq(`<query xmlns='${MUC_OWNER}'><destroy/></query>`, "set", `doomed@${SERVICE}`);
    assert.equal(destroyed.attrs["type"], "result");
    assert.deepEqual(Object.keys(await listed(alice)).sort(), [`flipped@${SERVICE}`, `keep@${SERVICE}`, `temp@${SERVICE}`]);

    await first.server.stop();
    const second = await restart(first.config);
    servers.push(second.server);

    const alice2 = await login(second.port, "alice");
    assert.deepEqual(await listed(alice2), { [`keep@${SERVICE}`]: "Kept room" }, "only the public persistent room is listed");
    assert.equal(await exists(alice2, "hidden"), true, "a hidden persistent room is back, unlisted");
    for (const gone of ["temp", "flipped", "doomed"]) assert.equal(await exists(alice2, gone), false, `${gone} is gone`);

    assert.deepEqual(await configValues(alice2, "keep"), before, "the configuration form shows the same settings");
    const info = await alice2.iq(`<query xmlns='${DISCO_INFO}'/>`, "get", `keep@${SERVICE}`);
    const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);
    for (const f of ["muc_persistent", "muc_public", "muc_membersonly", "muc_passwordprotected", "muc_semianonymous", "muc_moderated"]) {
      assert.ok(features.includes(f), `${f} in ${features.join(" ")}`);
    }
    assert.deepEqual(await affiliationList(alice2, "keep", "owner"), ["alice@localhost"]);
    assert.deepEqual(await affiliationList(alice2, "keep", "admin"), ["dave@localhost"]);
    assert.deepEqual(await affiliationList(alice2, "keep", "member"), ["bob@localhost"]);
    assert.deepEqual(await affiliationList(alice2, "keep", "outcast"), ["carol@localhost", "evil.example"]);

    // The rules come back with the room: the ban, members-only, the password.
    const carol = await login(second.port, "carol");
    assert.equal(condition(await enter(carol, "keep", "Carol", "s3cret")), "forbidden");
    const erin = await login(second.port, "erin");
    assert.equal(condition(await enter(erin, "keep", "Erin", "s3cret")), "registration-required");
    const bob = await login(second.port, "bob");
    assert.equal(condition(await enter(bob, "keep", "Bob")), "not-authorized");
    const inside = await enter(bob, "keep", "Bob", "s3cret");
    assert.deepEqual(item(inside), { affiliation: "member", role: "participant", jid: bob.jid });
    assert.ok(!codes(inside).includes(100), "semi-anonymous: no 100");
    const subject = await bob.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
    assert.equal(subject.getChildText("subject"), "Plans for the week");
    assert.equal(subject.attrs["from"], `keep@${SERVICE}/Owner`);

    // Destroying a room that came back from storage removes it from storage too.
    const d = await alice2.iq(`<query xmlns='${MUC_OWNER}'><destroy><reason>done</reason></destroy></query>`, "set", `keep@${SERVICE}`);
    assert.equal(d.attrs["type"], "result");
    await second.server.stop();
    const third = await restart(first.config);
    servers.push(third.server);
    const alice3 = await login(third.port, "alice");
    assert.equal(await exists(alice3, "keep"), false, "destroyed after the restart: gone for good");
    assert.equal(await exists(alice3, "hidden"), true, "the other persistent room is still there");
    assert.deepEqual(await listed(alice3), {});
  } finally {
    for (const p of peers) p.close();
    for (const s of servers) await s.stop();
    await first.stop();
  }
});
