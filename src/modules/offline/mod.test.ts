// Unit tests of the offline module (XEP-0160, XEP-0203, XEP-0334): storage decisions, quota, delivery with delay
// stamps, per-user serialisation, driven through the real Host and event table without sockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import { xml } from "../../xml/parser.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { normalizeConfig } from "../../core/config/load.ts";
import { silentLogger } from "../../core/log.ts";
import { Host } from "../../core/host.ts";
import { Events } from "../../core/events.ts";
import { SessionRegistry, type LocalSession } from "../../core/sessions.ts";
import { createMemoryStorage } from "../../storage/memory.ts";
import type { OfflineMessage, OfflineStore, Storage } from "../../storage/types.ts";
import offline, { offlineDecision, storedForm, withDelay, NS_DELAY } from "./mod.ts";

/** A small OfflineStore for these tests (the real ones have their own contract suite). */
function memoryOffline(): OfflineStore & { rows: Map<string, OfflineMessage[]> } {
  const rows = new Map<string, OfflineMessage[]>();
  let next = 1;
  const key = (h: string, u: string) => `${h}\0${u}`;
  return {
    rows,
    async push(host, user, stanza, { stamp, quota }) {
      const list = rows.get(key(host, user)) ?? [];
      if (list.length >= quota) return false;
      list.push({ id: next++, stanza, stamp });
      rows.set(key(host, user), list);
      return true;
    },
    async list(host, user) {
      return [...(rows.get(key(host, user)) ?? [])];
    },
    async delete(host, user, ids) {
      rows.set(key(host, user), (rows.get(key(host, user)) ?? []).filter((m) => !ids.includes(m.id)));
    },
    async count(host, user) {
      return rows.get(key(host, user))?.length ?? 0;
    },
  };
}

class FakeSession implements LocalSession {
  readonly jid;
  priority = 0;
  available = false;
  presence = undefined;
  interested = false;
  readonly directed = new Set<string>();
  readonly got: Element[] = [];
  constructor(jid: string) {
    this.jid = parseJid(jid);
  }
  deliver(stanza: Element): void {
    this.got.push(stanza);
  }
  kick(): void {}
}

async function setup(opts: { maxMessages?: number } = {}) {
  const config = normalizeConfig({ hosts: [{ domain: "localhost" }], data_dir: "/tmp", offline: { max_messages: opts.maxMessages ?? 3 } }, { baseDir: "/tmp" });
  const off = memoryOffline();
  const storage: Storage = { ...createMemoryStorage(), offline: off };
  await storage.accounts.create("localhost", "juliet", { scram: {} });
  const events = new Events();
  const sessions = new SessionRegistry();
  const host = new Host(config.hosts[0]!);
  await host.load(offline, { config, storage, log: silentLogger(), events, sessions, send: () => {} });
  const offlineEvent = (stanza: Element) =>
    events.fire("message/offline", { stanza, from: parseJid(stanza.attrs["from"]!), to: parseJid(stanza.attrs["to"]!), origin: { kind: "local", jid: parseJid("localhost") } });
  const login = async (resource: string, priority = 0) => {
    const s = new FakeSession(`juliet@localhost/${resource}`);
    sessions.add(s);
    s.available = true;
    s.priority = priority;
    await events.fire("session/available", { session: s });
    return s;
  };
  return { host, events, sessions, off, offlineEvent, login };
}

const chat = (body: string, extra = "") => xml`<message from='romeo@localhost/orchard' to='juliet@localhost' type='chat'><body>${body}</body>${extra}</message>`;

test("normal and chat messages with content are stored; groupchat, error and no-store hints bounce", () => {
  assert.equal(offlineDecision(chat("hi")), "store");
  assert.equal(offlineDecision(xml`<message to='juliet@localhost'><body>hi</body></message>`), "store");
  assert.equal(offlineDecision(xml`<message to='juliet@localhost' type='normal'><x xmlns='jabber:x:oob'><url>http://x</url></x></message>`), "store");
  assert.equal(offlineDecision(xml`<message type='groupchat'><body>hi</body></message>`), "bounce");
  assert.equal(offlineDecision(xml`<message type='error'><body>hi</body></message>`), "bounce");
  assert.equal(offlineDecision(xml`<message type='headline'><body>hi</body></message>`), "bounce");
  assert.equal(offlineDecision(chat("hi", "<no-store xmlns='urn:xmpp:hints'/>")), "bounce");
});

test("chat states alone are dropped quietly unless a store hint asks for them", () => {
  assert.equal(offlineDecision(xml`<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`), "drop");
  assert.equal(offlineDecision(xml`<message type='chat'><thread>t1</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>`), "drop");
  assert.equal(offlineDecision(xml`<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>`), "store");
  assert.equal(offlineDecision(xml`<message type='headline'><body>x</body><store xmlns='urn:xmpp:hints'/></message>`), "store");
  assert.equal(offlineDecision(xml`<message type='groupchat'><body>x</body><store xmlns='urn:xmpp:hints'/></message>`), "bounce");
});

test("withDelay adds a XEP-0203 delay from the host with a UTC stamp and leaves the original alone", () => {
  const m = chat("hi");
  const d = withDelay(m, "localhost", Date.UTC(2002, 8, 10, 23, 8, 25));
  const delay = d.getChild("delay", NS_DELAY)!;
  assert.equal(delay.attrs["from"], "localhost");
  assert.equal(delay.attrs["stamp"], "2002-09-10T23:08:25.000Z");
  assert.equal(m.getChild("delay", NS_DELAY), undefined);
});

test("the stored form reads back in jabber:client even for a jabber:server stanza", () => {
  const s = xml`<message xmlns='jabber:server' from='a@b' to='juliet@localhost'><body>x</body></message>`;
  assert.equal(storedForm(s), "<message from='a@b' to='juliet@localhost'><body>x</body></message>");
});

test("a message for an offline user is stored and delivered with a delay on initial presence, then deleted", async () => {
  const { off, offlineEvent, login } = await setup();
  assert.equal(await offlineEvent(chat("one")), true);
  assert.equal(await offlineEvent(chat("two")), true);
  const s = await login("balcony");
  assert.deepEqual(s.got.map((m) => m.getChildText("body")), ["one", "two"]);
  assert.equal(s.got[0]!.getChild("delay", NS_DELAY)!.attrs["from"], "localhost");
  assert.equal(await off.count("localhost", "juliet"), 0);
});

test("a session with negative priority gets nothing until it raises its priority", async () => {
  const { events, off, offlineEvent, login } = await setup();
  await offlineEvent(chat("later"));
  const s = await login("hidden", -1);
  assert.equal(s.got.length, 0);
  assert.equal(await off.count("localhost", "juliet"), 1);
  s.priority = 5;
  await events.fire("pre-presence/self", { stanza: xml`<presence><priority>5</priority></presence>`, from: s.jid, to: undefined, origin: { kind: "c2s", jid: s.jid } });
  assert.deepEqual(s.got.map((m) => m.getChildText("body")), ["later"]);
  assert.equal(await off.count("localhost", "juliet"), 0);
});

test("over quota the message is not taken, so the router bounces it", async () => {
  const { offlineEvent, off } = await setup({ maxMessages: 2 });
  assert.equal(await offlineEvent(chat("1")), true);
  assert.equal(await offlineEvent(chat("2")), true);
  assert.equal(await offlineEvent(chat("3")), false);
  assert.equal(await off.count("localhost", "juliet"), 2);
});

test("messages for unknown accounts are not stored", async () => {
  const { offlineEvent, off } = await setup();
  assert.equal(await offlineEvent(xml`<message from='romeo@localhost/o' to='nobody@localhost' type='chat'><body>x</body></message>`), false);
  assert.equal(await off.count("localhost", "nobody"), 0);
});

test("chat states alone are swallowed without storing; max_messages 0 disables storage", async () => {
  const a = await setup();
  assert.equal(await a.offlineEvent(xml`<message from='romeo@localhost/o' to='juliet@localhost' type='chat'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>`), true);
  assert.equal(await a.off.count("localhost", "juliet"), 0);
  const b = await setup({ maxMessages: 0 });
  assert.equal(await b.offlineEvent(chat("x")), false);
  assert.equal(b.host.features.host.has("msgoffline"), false);
  assert.equal(a.host.features.host.has("msgoffline"), true);
});

test("two resources coming online at once receive each stored message once in total", async () => {
  const { offlineEvent, sessions, events, off } = await setup();
  await offlineEvent(chat("only once"));
  const a = new FakeSession("juliet@localhost/a");
  const b = new FakeSession("juliet@localhost/b");
  for (const s of [a, b]) {
    sessions.add(s);
    s.available = true;
  }
  await Promise.all([events.fire("session/available", { session: a }), events.fire("session/available", { session: b })]);
  assert.equal(a.got.length + b.got.length, 1);
  assert.equal(await off.count("localhost", "juliet"), 0);
});

test("an unreadable stored row is dropped and the rest is delivered", async () => {
  const { off, login } = await setup();
  await off.push("localhost", "juliet", "<message><body>broken", { stamp: 0, quota: 10 });
  await off.push("localhost", "juliet", "<message><body>fine</body></message>", { stamp: 0, quota: 10 });
  const s = await login("r");
  assert.deepEqual(s.got.map((m) => m.getChildText("body")), ["fine"]);
  assert.equal(await off.count("localhost", "juliet"), 0);
});
