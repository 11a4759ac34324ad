// XEP-0421 occupant ids over raw sockets on a real server: the room adds <occupant-id/> to every presence and message
// it sends about an occupant, the same for one real bare JID (both sessions, any nickname, after a restart of a
// persistent room), different for another user and in another room; an occupant id a client sends is replaced.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/core/log.ts";
import { ComityServer } from "../../src/server.ts";
import type { Element } from "../../src/xml/element.ts";
import { createTestServer } from "../kit/server.ts";
import { MUC, MUC_OWNER, Peer, codes } from "./kit.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
const OID = "urn:xmpp:occupant-id:0";
const DISCO_INFO = "http://jabber.org/protocol/disco#info";

const oid = (e: Element): string[] => e.getChildren("occupant-id", OID).map((c) => c.attrs["id"]!);

async function createRoom(owner: Peer, room: string, nick: string, fields: Record<string, string>): Promise<Element> {
  owner.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'/><occupant-id xmlns='${OID}' id='forged'/></presence>`);
  const self = await owner.next((e) => e.name === "presence" && codes(e).includes(201), `the creation of ${room}`);
  await owner.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  const x = Object.entries(fields)
    .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
    .join("");
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>${x}</x></query>`, "set", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
  return self;
}

async function enter(p: Peer, room: string, nick: string): Promise<Element> {
  p.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'><history maxstanzas='0'/></x></presence>`);
  const self = await p.next((e) => e.name === "presence" && codes(e).includes(110), `entering ${room}`);
  await p.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  return self;
}

test("occupant ids are stable per user and room, replace forged ones, and survive a restart", { timeout: 120_000 }, async () => {
  const first = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: SERVICE } }] },
    { users: { "alice@localhost": PW, "bob@localhost": PW } },
  );
  const peers: Peer[] = [];
  const servers: ComityServer[] = [];
  const login = async (port: number, user: string, resource = "r") => {
    const p = await Peer.login(port, user, PW, resource);
    peers.push(p);
    return p;
  };
  try {
    const alice = await login(first.c2sPort, "alice");
    const aliceSelf = await createRoom(alice, "ids", "Alice", { "muc#roomconfig_persistentroom": "1" });
    const [aliceId] = oid(aliceSelf);
    assert.ok(aliceId && aliceId !== "forged", aliceSelf.toString());
    assert.equal(oid(aliceSelf).length, 1, "the client's occupant id is dropped");
    const info = await alice.iq(`<query xmlns='${DISCO_INFO}'/>`, "get", `ids@${SERVICE}`);
    assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs["var"] === OID), "the room advertises XEP-0421");

    const bob = await login(first.c2sPort, "bob");
    const bobSelf = await enter(bob, "ids", "Bob");
    const [bobId] = oid(bobSelf);
    assert.ok(bobId && bobId !== aliceId, "another user has another id");
    const aliceSeenByBob = await bob.next((e) => e.name === "presence" && e.attrs["from"] === `ids@${SERVICE}/Alice`, "alice's presence");
    assert.deepEqual(oid(aliceSeenByBob), [aliceId], "others see the same id");
    const bobSeenByAlice = await alice.next((e) => e.name === "presence" && e.attrs["from"] === `ids@${SERVICE}/Bob`, "bob's presence");
    assert.deepEqual(oid(bobSeenByAlice), [bobId]);

    // Messages: groupchat and private, a forged id replaced.
    alice.send(`<message type='groupchat' to='ids@${SERVICE}'><body>hi</body><occupant-id xmlns='${OID}' id='${bobId}'/></message>`);
    const gc = await bob.next((e) => e.name === "message" && e.getChildText("body") === "hi", "the groupchat message");
    assert.deepEqual(oid(gc), [aliceId]);
    alice.send(`<message type='chat' to='ids@${SERVICE}/Bob'><body>psst</body></message>`);
    const pm = await bob.next((e) => e.name === "message" && e.getChildText("body") === "psst", "the private message");
    assert.deepEqual(oid(pm), [aliceId]);

    // A nickname change keeps the id.
    alice.send(`<presence to='ids@${SERVICE}/Alicia'/>`);
    const renamed = await bob.next((e) => e.name === "presence" && e.attrs["from"] === `ids@${SERVICE}/Alicia`, "the new nickname");
    assert.deepEqual(oid(renamed), [aliceId], "the id outlives a nickname change");

    // Another room: another id for the same user.
    const other = await createRoom(alice, "other", "Alice", {});
    assert.notEqual(oid(other)[0], aliceId);

    await first.server.stop();
    const second = await ComityServer.create(first.config, silentLogger());
    servers.push(second);
    const port = (await second.listen()).c2s[0]!.port;
    const alice2 = await login(port, "alice", "phone");
    assert.deepEqual(oid(await enter(alice2, "ids", "Alice")), [aliceId], "the same id after a restart");
  } finally {
    for (const p of peers) p.close();
    for (const s of servers) await s.stop();
    await first.stop();
  }
});
