// Unit tests of private XML storage (XEP-0049 §2-§3): round trip keyed by qualified name, own account only,
// the error conditions and the size limit, calling the handlers the module registers on a real Host.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import { xml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { normalizeConfig } from "../../core/config/load.ts";
import { silentLogger } from "../../core/log.ts";
import { Host } from "../../core/host.ts";
import { Events } from "../../core/events.ts";
import { SessionRegistry } from "../../core/sessions.ts";
import { createMemoryStorage } from "../../storage/memory.ts";
import privateStorage, { fragmentKey, NS_PRIVATE } from "./mod.ts";

async function setup() {
  const config = normalizeConfig({ hosts: [{ domain: "localhost" }], data_dir: "/tmp", vcard: { max_size: 1024 } }, { baseDir: "/tmp" });
  const host = new Host(config.hosts[0]!);
  const storage = createMemoryStorage();
  await host.load(privateStorage, { config, storage, log: silentLogger(), events: new Events(), sessions: new SessionRegistry(), send: () => {} });
  return async (from: string, iq: Element): Promise<Element | undefined> => {
    const payload = iq.elements[0]!;
    const handler = host.iqHandler(iq.attrs["type"]!, "account", payload.xmlns, payload.name);
    assert.ok(handler, "handler registered");
    const f = parseJid(from);
    const to = iq.attrs["to"] ? parseJid(iq.attrs["to"]) : f.bare;
    return (await handler(iq, { from: f, to, origin: { kind: "c2s", jid: f }, payload })) ?? undefined;
  };
}

const condition = (c: string) => (err: unknown) => err instanceof StanzaError && err.condition === c;

test("stored data comes back; unknown data comes back as the empty element", async () => {
  const iq = await setup();
  await iq("hamlet@localhost/denmark", xml`<iq type='set' id='1001'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query></iq>`);
  const got = await iq("hamlet@localhost/elsinore", xml`<iq type='get' id='1002'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`);
  assert.equal(got!.xmlns, NS_PRIVATE);
  assert.equal(got!.getChild("exodus", "exodus:prefs")!.getChildText("defaultnick"), "Hamlet");
  const none = await iq("hamlet@localhost/denmark", xml`<iq type='get' id='1003'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`);
  assert.equal(none!.toString(), "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>");
});

test("the key is namespace and element name: two names in one namespace are separate", async () => {
  const iq = await setup();
  await iq("h@localhost/r", xml`<iq type='set' id='1'><query xmlns='jabber:iq:private'><a xmlns='urn:x'>1</a><b xmlns='urn:x'>2</b></query></iq>`);
  const got = await iq("h@localhost/r", xml`<iq type='get' id='2'><query xmlns='jabber:iq:private'><b xmlns='urn:x'/></query></iq>`);
  assert.equal(got!.getChildText("b", "urn:x"), "2");
  assert.equal(fragmentKey(xml`<storage xmlns='storage:bookmarks'/>`), "{storage:bookmarks}storage");
});

test("each user has their own data, and touching another user's is forbidden", async () => {
  const iq = await setup();
  await iq("hamlet@localhost/d", xml`<iq type='set' id='1'><query xmlns='jabber:iq:private'><n xmlns='urn:x'>hamlet</n></query></iq>`);
  const other = await iq("macbeth@localhost/s", xml`<iq type='get' id='2'><query xmlns='jabber:iq:private'><n xmlns='urn:x'/></query></iq>`);
  assert.equal(other!.getChildText("n", "urn:x"), "");
  await assert.rejects(iq("macbeth@localhost/s", xml`<iq type='set' id='1003' to='hamlet@localhost'><query xmlns='jabber:iq:private'><n xmlns='urn:x'>Macbeth</n></query></iq>`), condition("forbidden"));
  await assert.rejects(iq("macbeth@localhost/s", xml`<iq type='get' id='4' to='hamlet@localhost'><query xmlns='jabber:iq:private'><n xmlns='urn:x'/></query></iq>`), condition("forbidden"));
});

test("an empty query or a child in jabber:iq:private is not-acceptable", async () => {
  const iq = await setup();
  await assert.rejects(iq("h@localhost/r", xml`<iq type='get' id='1004'><query xmlns='jabber:iq:private'/></iq>`), condition("not-acceptable"));
  await assert.rejects(iq("h@localhost/r", xml`<iq type='set' id='5'><query xmlns='jabber:iq:private'><plain>x</plain></query></iq>`), condition("not-acceptable"));
});

test("a fragment over the size limit is refused and nothing of that set is written", async () => {
  const iq = await setup();
  const big = "x".repeat(2000);
  await assert.rejects(iq("h@localhost/r", xml`<iq type='set' id='1'><query xmlns='jabber:iq:private'><a xmlns='urn:x'>ok</a><b xmlns='urn:x'>${big}</b></query></iq>`), condition("not-acceptable"));
  const got = await iq("h@localhost/r", xml`<iq type='get' id='2'><query xmlns='jabber:iq:private'><a xmlns='urn:x'/></query></iq>`);
  assert.equal(got!.getChild("a", "urn:x")!.children.length, 0);
});

test("setting the empty element clears what was stored", async () => {
  const iq = await setup();
  await iq("h@localhost/r", xml`<iq type='set' id='1'><query xmlns='jabber:iq:private'><a xmlns='urn:x'>v</a></query></iq>`);
  await iq("h@localhost/r", xml`<iq type='set' id='2'><query xmlns='jabber:iq:private'><a xmlns='urn:x'/></query></iq>`);
  const got = await iq("h@localhost/r", xml`<iq type='get' id='3'><query xmlns='jabber:iq:private'><a xmlns='urn:x'/></query></iq>`);
  assert.equal(got!.getChild("a", "urn:x")!.children.length, 0);
});
