// Unit tests of persistent rooms without sockets: the document format and its validation (damaged documents are
// skipped, never fatal), the index, writes serialised per room (an older state never overwrites a newer one), and a
// service that stores its persistent rooms and a second service on the same store that brings them back.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { createMemoryStorage } from "../../storage/memory.ts";
import type { KeyValueStore } from "../../storage/types.ts";
import { defaultConfig } from "./config.ts";
import { DamagedRoomError, MUC_STORE, RoomStore, decodeRoom, encodeRoom, type RoomState, type StoreLog } from "./persistence.ts";
import { MucService } from "./service.ts";
import { NS_MUC_USER } from "./ns.ts";

const DOMAIN = "muc.test";
const LIMITS = { maxOccupants: 10, maxHistory: 10 };

function logs(): StoreLog & { lines: { level: string; msg: string; details: object }[] } {
  const lines: { level: string; msg: string; details: object }[] = [];
  return {
    lines,
    warn: (details, msg) => void lines.push({ level: "warn", msg, details }),
    error: (details, msg) => void lines.push({ level: "error", msg, details }),
  };
}

function state(over: Partial<RoomState> = {}): RoomState {
  return { config: { ...defaultConfig(LIMITS), persistent: true, name: "Room" }, affiliations: [["owner@test", "owner"]], ...over };
}

test("a room document round-trips: configuration, affiliations (domain bans too) and subject", () => {
  const s = state({
    config: { ...defaultConfig(LIMITS), persistent: true, membersOnly: true, password: "pw", whois: "moderators", allowPm: "none", maxUsers: 7, maxHistory: 3 },
    affiliations: [
      ["owner@test", "owner"],
      ["m@test", "member"],
      ["evil.example", "outcast"],
    ],
    subject: { text: "Topic", nick: "Owner", stamp: 1_700_000_000_000 },
  });
  assert.deepEqual(decodeRoom("r", encodeRoom("r", s), LIMITS), s);
});

test("damaged room documents are refused with a reason; missing fields take defaults; sizes follow lowered limits", () => {
  const bad = [
    "{",
    "[]",
    JSON.stringify({ v: 2, room: "r", config: {}, affiliations: [] }),
    JSON.stringify({ v: 1, room: "other", config: {}, affiliations: [] }),
    JSON.stringify({ v: 1, room: "r", config: { persistent: "yes" }, affiliations: [] }),
    JSON.stringify({ v: 1, room: "r", config: { whois: "everyone" }, affiliations: [] }),
    JSON.stringify({ v: 1, room: "r", config: { maxUsers: 0 }, affiliations: [] }),
    JSON.stringify({ v: 1, room: "r", config: {}, affiliations: [{ jid: "a@test/res", affiliation: "owner" }] }),
    JSON.stringify({ v: 1, room: "r", config: {}, affiliations: [{ jid: "a@test", affiliation: "king" }] }),
    JSON.stringify({ v: 1, room: "r", config: {}, affiliations: {} }),
    JSON.stringify({ v: 1, room: "r", config: {}, affiliations: [], subject: { text: 1 } }),
  ];
  for (const doc of bad) assert.throws(() => decodeRoom("r", doc, LIMITS), DamagedRoomError, doc);
  const partial = decodeRoom("r", JSON.stringify({ v: 1, room: "r", config: { name: "N", maxUsers: 500 }, affiliations: [] }), LIMITS);
  assert.equal(partial.config.name, "N");
  assert.equal(partial.config.maxUsers, LIMITS.maxOccupants, "clamped to the service's limit");
  assert.equal(partial.config.public, true, "a missing field takes its default");
});

test("a room stored non-anonymous stays non-anonymous although new rooms are semi-anonymous by default", () => {
  assert.equal(defaultConfig(LIMITS).whois, "moderators");
  // What a persistent room created before semi-anonymous became the default has in storage.
  const stored = JSON.stringify({ v: 1, room: "r", config: { ...defaultConfig(LIMITS), persistent: true, whois: "anyone" }, affiliations: [] });
  assert.equal(decodeRoom("r", stored, LIMITS).config.whois, "anyone");
  const moderators = JSON.stringify({ v: 1, room: "r", config: { persistent: true, whois: "moderators" }, affiliations: [] });
  assert.equal(decodeRoom("r", moderators, LIMITS).config.whois, "moderators");
});

/** A key/value store whose writes finish in the order a test releases them. */
function slowKv(): KeyValueStore & { release(): void; writes: (string | undefined)[]; docs: Map<string, string> } {
  const docs = new Map<string, string>();
  const waiting: (() => void)[] = [];
  const writes: (string | undefined)[] = [];
  return {
    docs,
    writes,
    async get(host, user, key) {
      return docs.get(`${host}|${user}|${key}`);
    },
    async set(host, user, key, value) {
      await new Promise<void>((r) => waiting.push(r));
      if (user !== "") writes.push(value);
      if (value === undefined) docs.delete(`${host}|${user}|${key}`);
      else docs.set(`${host}|${user}|${key}`, value);
    },
    release() {
      for (const r of waiting.splice(0)) r();
    },
  };
}

async function settle(kv: { release(): void }, store: RoomStore): Promise<void> {
  const done = store.flush();
  for (let i = 0; i < 50; i++) {
    kv.release();
    await new Promise((r) => setImmediate(r));
  }
  await done;
}

test("writes for one room are serialised: the newest state is the last written, intermediate ones are skipped", async () => {
  const kv = slowKv();
  const store = new RoomStore(kv, DOMAIN, logs());
  store.save("r", state({ subject: { text: "one", nick: "", stamp: 1 } }));
  await new Promise((r) => setImmediate(r)); // the first write is under way
  store.save("r", state({ subject: { text: "two", nick: "", stamp: 2 } }));
  store.save("r", state({ subject: { text: "three", nick: "", stamp: 3 } }));
  await settle(kv, store);
  assert.equal(kv.writes.length, 2, "one write in flight, then only the newest");
  assert.equal(decodeRoom("r", kv.docs.get(`${DOMAIN}|r|room`)!, LIMITS).subject?.text, "three");
  store.remove("r");
  store.save("r", state({ subject: { text: "four", nick: "", stamp: 4 } }));
  store.remove("r");
  await settle(kv, store);
  assert.equal(kv.docs.get(`${DOMAIN}|r|room`), undefined, "removed last, so gone");
  assert.deepEqual(JSON.parse(kv.docs.get(`${DOMAIN}||rooms`)!), { v: 1, rooms: [] });
});

test("loading skips a damaged room and a listed room without document, and keeps a damaged index aside", async () => {
  const kv = createMemoryStorage().keyval(MUC_STORE);
  const log = logs();
  await kv.set(DOMAIN, "", "rooms", JSON.stringify({ v: 1, rooms: ["good", "broken", "lost", "Bad Name"] }));
  await kv.set(DOMAIN, "good", "room", encodeRoom("good", state()));
  await kv.set(DOMAIN, "broken", "room", "{not json");
  const store = new RoomStore(kv, DOMAIN, log);
  const rooms = await store.load(LIMITS);
  assert.deepEqual(rooms.map((r) => r.name), ["good"]);
  assert.ok(log.lines.some((l) => l.level === "error" && (l.details as { room?: string }).room === "broken"));
  assert.ok(log.lines.some((l) => (l.details as { room?: string }).room === "lost"));
  await store.flush();
  assert.deepEqual(JSON.parse((await kv.get(DOMAIN, "", "rooms"))!).rooms, ["broken", "good"], "the damaged one stays listed for repair");

  await kv.set(DOMAIN, "", "rooms", "garbage");
  const again = new RoomStore(kv, DOMAIN, logs());
  assert.deepEqual(await again.load(LIMITS), []);
  assert.equal(await kv.get(DOMAIN, "", "rooms.damaged"), "garbage");
  assert.equal(await kv.get(DOMAIN, "", "rooms"), undefined);
});

function service(kv: KeyValueStore) {
  const sent: Element[] = [];
  const svc = new MucService({
    domain: DOMAIN,
    host: "test",
    name: "Chat",
    create: "users",
    maxRooms: 10,
    limits: LIMITS,
    send: (s) => void sent.push(s),
    isHostAdmin: () => false,
    store: new RoomStore(kv, DOMAIN, logs()),
  });
  const from = (jid: string, xml: string) => {
    const el = parseXml(xml.replace(/^<(\w+)/, `<$1 xmlns='jabber:client' from='${jid}'`));
    svc.handle(el, parseJid(jid), parseJid(el.attrs["to"]!));
  };
  const join = (jid: string, nick: string, room: string) => from(jid, `<presence to='${room}@${DOMAIN}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const configure = (jid: string, room: string, fields: Record<string, string>) =>
    from(
      jid,
      `<iq type='set' id='c' to='${room}@${DOMAIN}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>${Object.entries(fields)
        .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
        .join("")}</x></query></iq>`,
    );
  return { svc, sent, from, join, configure };
}

test("a service stores persistent rooms only, and a new service on the same store brings them back", async () => {
  const kv = createMemoryStorage().keyval(MUC_STORE);
  const a = service(kv);
  a.join("owner@test/a", "Owner", "keep");
  a.configure("owner@test/a", "keep", { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_membersonly": "1", "muc#roomconfig_roomname": "Kept" });
  a.from("owner@test/a", `<iq type='set' id='b' to='keep@${DOMAIN}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='evil.example'/><item affiliation='member' jid='m@test'/></query></iq>`);
  a.from("owner@test/a", `<message type='groupchat' to='keep@${DOMAIN}'><subject>Plans</subject></message>`);
  a.join("owner@test/a", "Owner", "temp");
  a.configure("owner@test/a", "temp", {});
  a.join("owner@test/a", "Owner", "flip");
  a.configure("owner@test/a", "flip", { "muc#roomconfig_persistentroom": "1" });
  a.configure("owner@test/a", "flip", { "muc#roomconfig_persistentroom": "0" });
  a.svc.shutdown();
  await a.svc.flush();

  const b = service(kv);
  assert.equal(await b.svc.load(), 1);
  assert.deepEqual([...b.svc.rooms.keys()], ["keep"]);
  const room = b.svc.rooms.get("keep")!;
  assert.equal(room.locked, false);
  assert.equal(room.config.name, "Kept");
  assert.equal(room.config.membersOnly, true);
  assert.equal(room.affiliationOf(parseJid("anyone@evil.example")), "outcast");
  assert.equal(room.affiliationOf(parseJid("m@test")), "member");
  assert.equal(room.affiliationOf(parseJid("owner@test")), "owner");
  assert.equal(room.snapshot().subject?.text, "Plans");
  // The owner comes back: the stored subject follows the self-presence.
  b.join("owner@test/b", "Owner", "keep");
  const subject = b.sent.find((s) => s.name === "message" && s.getChild("subject") !== undefined);
  assert.equal(subject?.getChildText("subject"), "Plans");
  assert.ok(b.sent.some((s) => s.name === "presence" && s.getChild("x", NS_MUC_USER)?.getChild("item")?.attrs["affiliation"] === "owner"));

  // Destroyed: gone from storage too.
  b.from("owner@test/b", `<iq type='set' id='d' to='keep@${DOMAIN}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`);
  await b.svc.flush();
  assert.equal(await kv.get(DOMAIN, "keep", "room"), undefined);
  const c = service(kv);
  assert.equal(await c.svc.load(), 0);
});
