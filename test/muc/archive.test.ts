// XEP-0313 room archives over raw sockets on a real server, on SQLite and on PostgreSQL (where archive ids come from
// the database, so live messages wait for theirs): groupchat messages and subject changes are archived with XEP-0359
// stanza ids that the live messages carry too; occupants (members of members-only rooms) query with RSM paging, `with`,
// `start`/`end`, `before`/`after`; others get forbidden; rooms with archiving switched off have none. After a restart on
// the same storage the archive answers the same and joiners get their discussion history from it.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/core/log.ts";
import { ComityServer } from "../../src/server.ts";
import type { Element } from "../../src/xml/element.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName } from "../../src/storage/postgres/test-db.ts";
import { createTestServer } from "../kit/server.ts";
import { MUC, MUC_OWNER, Peer, codes, condition } from "./kit.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
const MAM = "urn:xmpp:mam:2";
const SID = "urn:xmpp:sid:0";
const RSM = "http://jabber.org/protocol/rsm";
const FORWARD = "urn:xmpp:forward:0";
const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const USERS = ["alice", "bob", "carol", "dave"];

const pgSkip = await postgresSkip();
const schema = testSchemaName();
after(async () => {
  if (!pgSkip) await dropTestSchema(schema);
});

async function createRoom(owner: Peer, room: string, fields: Record<string, string> = {}): Promise<void> {
  owner.send(`<presence to='${room}@${SERVICE}/Alice'><x xmlns='${MUC}'/></presence>`);
  await owner.next((e) => e.name === "presence" && codes(e).includes(201), `the creation of ${room}`);
  await owner.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  const x = Object.entries(fields)
    .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
    .join("");
  const r = await owner.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>${x}</x></query>`, "set", `${room}@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
}

/** Enter as `nick`; resolves the stanzas up to the subject (history included), or the error presence. */
async function enter(p: Peer, room: string, nick: string, history = ""): Promise<Element[]> {
  p.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'>${history}</x></presence>`);
  const first = await p.next((e) => e.name === "presence" && (codes(e).includes(110) || e.attrs["type"] === "error"), `entering ${room}`);
  if (first.attrs["type"] === "error") return [first];
  const out: Element[] = [first];
  for (;;) {
    const m = await p.next((e) => e.name === "message" && e.attrs["from"]?.startsWith(`${room}@${SERVICE}`) === true, "history and subject");
    out.push(m);
    if (m.getChild("subject") && !m.getChild("body")) return out;
  }
}

interface Query {
  items: { id: string; from: string; body: string | undefined; subject: string | undefined; stanzaId: string | undefined; stamp: string }[];
  fin: Element;
  iq: Element;
}

/** Send a MAM query to the room; collect the result messages for its queryid and the answer. */
async function mam(p: Peer, room: string, opts: { fields?: Record<string, string>; rsm?: string } = {}): Promise<Query> {
  const qid = `qid${Math.random().toString(36).slice(2)}`;
  const fields = Object.entries(opts.fields ?? {});
  const form = fields.length
    ? `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${MAM}</value></field>${fields
        .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
        .join("")}</x>`
    : "";
  const rsm = opts.rsm ? `<set xmlns='${RSM}'>${opts.rsm}</set>` : "";
  const iq = await p.iq(`<query xmlns='${MAM}' queryid='${qid}'>${form}${rsm}</query>`, "set", `${room}@${SERVICE}`);
  const items: Query["items"] = [];
  // The results come before the IQ answer (XEP-0313 §4.2), on the same stream: all are here now.
  const isResult = (e: Element) => e.name === "message" && e.getChild("result", MAM)?.attrs["queryid"] === qid;
  while (p.pending().some(isResult)) {
    const m = await p.next(isResult, "a result");
    assert.equal(m.attrs["from"], `${room}@${SERVICE}`, "results come from the room");
    const result = m.getChild("result", MAM)!;
    const fwd = result.getChild("forwarded", FORWARD)!;
    const inner = fwd.getChild("message")!;
    items.push({
      id: result.attrs["id"]!,
      from: inner.attrs["from"]!,
      body: inner.getChildText("body"),
      subject: inner.getChildText("subject"),
      stanzaId: inner.getChild("stanza-id", SID)?.attrs["id"],
      stamp: fwd.getChild("delay", "urn:xmpp:delay")!.attrs["stamp"]!,
    });
  }
  return { items, fin: iq.getChild("fin", MAM) ?? iq, iq };
}

const rsmText = (fin: Element, name: string) => fin.getChild("set", RSM)?.getChildText(name);

async function features(p: Peer, room: string): Promise<string[]> {
  const r = await p.iq(`<query xmlns='${DISCO_INFO}'/>`, "get", `${room}@${SERVICE}`);
  return r.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]!);
}

async function scenario(storage: Record<string, unknown> | undefined): Promise<void> {
  const overrides: Record<string, unknown> = {
    hosts: [{ domain: "localhost", admins: ["admin@localhost"], muc: { domain: SERVICE, max_history: 3 } }],
    ...(storage ? { storage } : {}),
  };
  const first = await createTestServer(overrides, { users: Object.fromEntries(USERS.map((u) => [`${u}@localhost`, PW])) });
  const servers: ComityServer[] = [];
  const peers: Peer[] = [];
  const login = async (port: number, user: string) => {
    const p = await Peer.login(port, user, PW, "r");
    peers.push(p);
    return p;
  };
  try {
    const alice = await login(first.c2sPort, "alice");
    const bob = await login(first.c2sPort, "bob");
    await createRoom(alice, "arch", { "muc#roomconfig_persistentroom": "1" });
    assert.ok((await features(alice, "arch")).includes(MAM), "urn:xmpp:mam:2 on the room's disco#info");
    assert.ok((await features(alice, "arch")).includes(SID));
    await enter(bob, "arch", "Bob");

    // Live messages carry the room's stanza id; a forged one in the room's name is dropped.
    const live: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sender = i % 2 === 0 ? alice : bob;
      const forged = i === 0 ? `<stanza-id xmlns='${SID}' id='forged' by='arch@${SERVICE}'/>` : "";
      sender.send(`<message type='groupchat' to='arch@${SERVICE}' id='m${i}'><body>hello ${i}</body>${forged}</message>`);
      const got = await bob.next((e) => e.name === "message" && e.getChildText("body") === `hello ${i}`, `hello ${i}`);
      const ids = got.getChildren("stanza-id", SID);
      assert.equal(ids.length, 1, got.toString());
      assert.equal(ids[0]!.attrs["by"], `arch@${SERVICE}`);
      assert.notEqual(ids[0]!.attrs["id"], "forged");
      live.push(ids[0]!.attrs["id"]!);
    }
    alice.send(`<message type='groupchat' to='arch@${SERVICE}'><subject>Archived topic</subject></message>`);
    const subj = await bob.next((e) => e.name === "message" && e.getChildText("subject") === "Archived topic", "the subject change");
    const subjectId = subj.getChild("stanza-id", SID)?.attrs["id"];
    assert.ok(subjectId, "a subject change is archived too");

    // The whole archive, oldest first, with the live ids.
    const all = await mam(bob, "arch");
    assert.equal(all.iq.attrs["type"], "result", all.iq.toString());
    assert.deepEqual(all.items.map((m) => m.id), [...live, subjectId]);
    assert.deepEqual(all.items.map((m) => m.body), ["hello 0", "hello 1", "hello 2", "hello 3", "hello 4", undefined]);
    assert.equal(all.items[5]!.subject, "Archived topic");
    assert.equal(all.items[1]!.from, `arch@${SERVICE}/Bob`);
    assert.equal(all.fin.attrs["complete"], "true");
    assert.equal(rsmText(all.fin, "count"), "6");

    // RSM paging forwards and backwards.
    const p1 = await mam(bob, "arch", { rsm: "<max>2</max>" });
    assert.deepEqual(p1.items.map((m) => m.body), ["hello 0", "hello 1"]);
    assert.equal(p1.fin.attrs["complete"], undefined);
    const p2 = await mam(bob, "arch", { rsm: `<max>2</max><after>${rsmText(p1.fin, "last")}</after>` });
    assert.deepEqual(p2.items.map((m) => m.body), ["hello 2", "hello 3"]);
    const last = await mam(bob, "arch", { rsm: "<max>2</max><before/>" });
    assert.deepEqual(last.items.map((m) => m.id), [live[4], subjectId]);
    const prev = await mam(bob, "arch", { rsm: `<max>2</max><before>${live[4]}</before>` });
    assert.deepEqual(prev.items.map((m) => m.body), ["hello 2", "hello 3"]);

    // `with` an occupant JID; start/end.
    const fromBob = await mam(alice, "arch", { fields: { with: `arch@${SERVICE}/Bob` } });
    assert.deepEqual(fromBob.items.map((m) => m.body), ["hello 1", "hello 3"]);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.equal((await mam(alice, "arch", { fields: { start: future } })).items.length, 0);
    assert.equal((await mam(alice, "arch", { fields: { end: future } })).items.length, 6);

    // Bad input gets the XEP's errors.
    assert.equal(condition((await mam(bob, "arch", { fields: { start: "yesterday" } })).iq), "bad-request");
    assert.equal(condition((await mam(bob, "arch", { rsm: "<after>99999999</after>" })).iq), "item-not-found");
    assert.equal(condition((await mam(bob, "arch", { fields: { nonsense: "1" } })).iq), "feature-not-implemented");
    const form = await bob.iq(`<query xmlns='${MAM}'/>`, "get", `arch@${SERVICE}`);
    assert.equal(form.attrs["type"], "result", "the query form");

    // Not an occupant of an open room: forbidden.
    const carol = await login(first.c2sPort, "carol");
    assert.equal(condition((await mam(carol, "arch")).iq), "forbidden");

    // Members-only: members query without being present, others may not.
    await createRoom(alice, "club", { "muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1" });
    const aff = await alice.iq(`<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='dave@localhost'/></query>`, "set", `club@${SERVICE}`);
    assert.equal(aff.attrs["type"], "result");
    alice.send(`<message type='groupchat' to='club@${SERVICE}'><body>members only</body></message>`);
    await alice.next((e) => e.getChildText("body") === "members only", "the club message");
    const dave = await login(first.c2sPort, "dave");
    assert.deepEqual((await mam(dave, "club")).items.map((m) => m.body), ["members only"]);
    assert.equal(condition((await mam(carol, "club")).iq), "forbidden");

    // A room with archiving switched off: no feature, no stanza ids, no archive.
    await createRoom(alice, "quiet", { "muc#roomconfig_enablearchiving": "0" });
    assert.ok(!(await features(alice, "quiet")).includes(MAM));
    alice.send(`<message type='groupchat' to='quiet@${SERVICE}'><body>off the record</body></message>`);
    const quiet = await alice.next((e) => e.getChildText("body") === "off the record", "the unarchived message");
    assert.equal(quiet.getChild("stanza-id", SID), undefined);
    assert.equal(condition((await mam(alice, "quiet")).iq), "service-unavailable");

    // Restart on the same storage: the archive and the history are back.
    await first.server.stop();
    const second = await ComityServer.create(first.config, silentLogger());
    servers.push(second);
    const port = (await second.listen()).c2s[0]!.port;
    const bob2 = await login(port, "bob");
    const joined = await enter(bob2, "arch", "Bob");
    const history = joined.filter((e) => e.getChild("body"));
    assert.deepEqual(history.map((e) => e.getChildText("body")), ["hello 2", "hello 3", "hello 4"], "max_history messages from the archive");
    for (const [i, h] of history.entries()) {
      assert.equal(h.getChild("delay", "urn:xmpp:delay")?.attrs["from"], `arch@${SERVICE}`);
      assert.equal(h.getChild("stanza-id", SID)?.attrs["id"], live[i + 2], "history carries the archive ids");
    }
    assert.equal(joined.at(-1)!.getChildText("subject"), "Archived topic");
    const again = await mam(bob2, "arch");
    assert.deepEqual(again.items.map((m) => m.id), [...live, subjectId]);
    bob2.send(`<message type='groupchat' to='arch@${SERVICE}'><body>after restart</body></message>`);
    const after = await bob2.next((e) => e.getChildText("body") === "after restart", "a message after the restart");
    const newest = await mam(bob2, "arch", { rsm: "<max>1</max><before/>" });
    assert.equal(newest.items[0]!.id, after.getChild("stanza-id", SID)?.attrs["id"]);
    assert.equal(rsmText(newest.fin, "count"), "7");
  } finally {
    for (const p of peers) p.close();
    for (const s of servers) await s.stop();
    await first.stop();
  }
}

test("room archives on SQLite: ids, queries, access, switched off, and across a restart", { timeout: 120_000 }, async () => {
  await scenario(undefined);
});

test("room archives on PostgreSQL: the same, with ids from the database", { skip: pgSkip, timeout: 120_000 }, async () => {
  await scenario({ backend: "postgres", postgres_url: TEST_POSTGRES_URL, postgres_schema: schema, postgres_pool_size: 4 });
});

test("hosts[].muc.archive: false keeps no room archives: no feature, no field, no stanza ids, service-unavailable", { timeout: 60_000 }, async () => {
  const ts = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: SERVICE, archive: false } }] },
    { users: { "alice@localhost": PW } },
  );
  const peers: Peer[] = [];
  try {
    const alice = await Peer.login(ts.c2sPort, "alice", PW, "r");
    peers.push(alice);
    await createRoom(alice, "plain", { "muc#roomconfig_enablearchiving": "1" }); // not offered: ignored
    assert.ok(!(await features(alice, "plain")).includes(MAM));
    const form = await alice.iq(`<query xmlns='${MUC_OWNER}'/>`, "get", `plain@${SERVICE}`);
    const vars = form.getChild("query")!.getChild("x", "jabber:x:data")!.getChildren("field").map((f) => f.attrs["var"]);
    assert.ok(!vars.includes("muc#roomconfig_enablearchiving"), vars.join(" "));
    alice.send(`<message type='groupchat' to='plain@${SERVICE}'><body>not kept</body></message>`);
    const m = await alice.next((e) => e.getChildText("body") === "not kept", "the message");
    assert.equal(m.getChild("stanza-id", SID), undefined);
    assert.equal(condition((await mam(alice, "plain")).iq), "service-unavailable");
    assert.equal((await ts.server.storage.archive.query(SERVICE, "plain", { max: 10 }))?.count ?? 0, 0, "nothing stored");
  } finally {
    for (const p of peers) p.close();
    await ts.stop();
  }
});
