// Unit tests of vcard-temp (XEP-0054 §3): own get/set, another user's get, authorisation and the size limit,
// calling the handlers the module registers on a real Host.
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
import vcard, { NS_VCARD } from "./mod.ts";

async function setup() {
  const config = normalizeConfig({ hosts: [{ domain: "localhost" }], data_dir: "/tmp", vcard: { max_size: 1024 } }, { baseDir: "/tmp" });
  const host = new Host(config.hosts[0]!);
  const storage = createMemoryStorage();
  await host.load(vcard, { config, storage, log: silentLogger(), events: new Events(), sessions: new SessionRegistry(), send: () => {} });
  /** Run an IQ as the router would: `to` defaults to the sender's bare JID. */
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

test("one's own vCard is empty at first, then reads back what was set", async () => {
  const iq = await setup();
  const empty = await iq("juliet@localhost/balcony", xml`<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(empty!.name, "vCard");
  assert.equal(empty!.xmlns, NS_VCARD);
  assert.equal(empty!.elements.length, 0);
  await iq("juliet@localhost/balcony", xml`<iq type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><N><GIVEN>Juliet</GIVEN></N></vCard></iq>`);
  const got = await iq("juliet@localhost/other", xml`<iq type='get' id='v3' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(got!.getChildText("FN"), "Juliet Capulet");
  assert.equal(got!.getChild("N")!.getChildText("GIVEN"), "Juliet");
});

test("another user reads the vCard; without one the answer is an empty vCard", async () => {
  const iq = await setup();
  const none = await iq("romeo@localhost/orchard", xml`<iq type='get' id='a' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(none!.name, "vCard");
  assert.equal(none!.elements.length, 0);
  await iq("juliet@localhost/balcony", xml`<iq type='set' id='b'><vCard xmlns='vcard-temp'><NICKNAME>jul</NICKNAME></vCard></iq>`);
  const got = await iq("romeo@localhost/orchard", xml`<iq type='get' id='c' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(got!.getChildText("NICKNAME"), "jul");
});

test("setting someone else's vCard is forbidden", async () => {
  const iq = await setup();
  await assert.rejects(iq("romeo@localhost/orchard", xml`<iq type='set' id='x' to='juliet@localhost'><vCard xmlns='vcard-temp'><FN>Romeo</FN></vCard></iq>`), condition("forbidden"));
});

test("a vCard over vcard.max_size is refused with not-acceptable and the old one stays", async () => {
  const iq = await setup();
  await iq("juliet@localhost/b", xml`<iq type='set' id='1'><vCard xmlns='vcard-temp'><FN>small</FN></vCard></iq>`);
  const big = "x".repeat(2000);
  await assert.rejects(iq("juliet@localhost/b", xml`<iq type='set' id='2'><vCard xmlns='vcard-temp'><DESC>${big}</DESC></vCard></iq>`), condition("not-acceptable"));
  const got = await iq("juliet@localhost/b", xml`<iq type='get' id='3'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(got!.getChildText("FN"), "small");
});

test("setting an empty vCard removes the stored one", async () => {
  const iq = await setup();
  await iq("juliet@localhost/b", xml`<iq type='set' id='1'><vCard xmlns='vcard-temp'><FN>J</FN></vCard></iq>`);
  await iq("juliet@localhost/b", xml`<iq type='set' id='2'><vCard xmlns='vcard-temp'/></iq>`);
  const after = await iq("romeo@localhost/o", xml`<iq type='get' id='3' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(after!.elements.length, 0);
});

test("a PHOTO with binary data and nested namespaces round-trips unchanged", async () => {
  const iq = await setup();
  const set = xml`<iq type='set' id='1'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO><x xmlns='urn:example:ext' a='&amp;'>t &lt; u</x></vCard></iq>`;
  await iq("juliet@localhost/b", set);
  const got = await iq("juliet@localhost/b", xml`<iq type='get' id='2'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(got!.toString(), set.elements[0]!.toString());
});
