// Unit tests for the trust consumers (docs/trust-uses.md): XEP-0191 item matching, the buddies-only handshake
// exceptions, XEP-0157 abuse address discovery, the forwarded XEP-0377 message, IODEF parsing (XEP-0268), and the
// incident / abuse-report stores on memory and SQLite.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "../../src/xml/parser.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import { itemMatches } from "../../src/modules/blocking/mod.ts";
import { isHandshake } from "../../src/modules/federation-policy/mod.ts";
import { abuseAddressFrom, forwardedReport, reportMessage } from "../../src/modules/abuse-reports/mod.ts";
import { incidentIdOf, iodefOf, parseIodef } from "../../src/modules/incidents/mod.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import { openSqliteStorage } from "../../src/storage/sqlite/store.ts";
import type { Storage } from "../../src/storage/types.ts";

const j = parseJid;

test("blocklist items match as XEP-0016 §2.1 orders them", () => {
  assert.ok(itemMatches(j("romeo@example.net"), j("romeo@example.net/orchard")));
  assert.ok(itemMatches(j("romeo@example.net"), j("romeo@example.net")));
  assert.ok(!itemMatches(j("romeo@example.net/orchard"), j("romeo@example.net/balcony")));
  assert.ok(itemMatches(j("romeo@example.net/orchard"), j("romeo@example.net/orchard")));
  assert.ok(itemMatches(j("example.net"), j("anyone@example.net/x")));
  assert.ok(itemMatches(j("example.net"), j("example.net")));
  assert.ok(!itemMatches(j("example.net"), j("example.org")));
  assert.ok(itemMatches(j("example.net/bot"), j("example.net/bot")));
  assert.ok(!itemMatches(j("example.net/bot"), j("user@example.net/bot")));
  assert.ok(!itemMatches(j("romeo@example.net"), j("juliet@example.net")));
});

test("buddies-only lets the trust handshake through and nothing else", () => {
  const inbound = (s: string) => isHandshake(xml([s] as unknown as TemplateStringsArray), "a.test", "b.test", "in");
  for (const type of ["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "unavailable"]) {
    assert.ok(inbound(`<presence from='b.test' to='a.test' type='${type}'/>`), type);
  }
  assert.ok(inbound("<presence from='b.test' to='a.test'/>"), "server availability");
  assert.ok(!inbound("<presence from='bob@b.test' to='a.test' type='subscribe'/>"), "a user JID is not the handshake");
  assert.ok(!inbound("<presence from='b.test' to='alice@a.test' type='subscribe'/>"));
  assert.ok(!inbound("<message from='b.test' to='a.test'><body>hi</body></message>"));
  assert.ok(inbound("<iq from='b.test' to='a.test' type='get' id='1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
  assert.ok(inbound("<iq from='b.test' to='a.test' type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='x'/></query></iq>"));
  assert.ok(inbound("<iq from='b.test' to='a.test' type='result' id='1'/>"));
  assert.ok(inbound("<iq from='b.test' to='a.test' type='error' id='1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
  assert.ok(!inbound("<iq from='b.test' to='a.test' type='get' id='1'><query xmlns='jabber:iq:version'/></iq>"));
  assert.ok(!inbound("<iq from='b.test' to='a.test' type='set' id='1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
  assert.ok(!inbound("<iq from='b.test' to='a.test' type='result' id='1'><query xmlns='jabber:iq:version'/></iq>"));
  // Outbound is mirrored.
  assert.ok(isHandshake(xml`<presence from='a.test' to='b.test' type='subscribe'/>`, "a.test", "b.test", "out"));
  assert.ok(!isHandshake(xml`<presence from='a.test' to='b.test' type='subscribe'/>`, "a.test", "b.test", "in"));
});

test("the abuse address is the first xmpp: URI of the XEP-0157 form", () => {
  const q = xml`<query xmlns='http://jabber.org/protocol/disco#info'>
    <identity category='server' type='im'/>
    <x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>
      <field var='abuse-addresses' type='list-multi'><value>mailto:abuse@b.test</value><value>xmpp:abuse@b.test?message</value></field>
    </x></query>`;
  assert.equal(abuseAddressFrom(q)?.toString(), "abuse@b.test");
  assert.equal(abuseAddressFrom(xml`<query xmlns='http://jabber.org/protocol/disco#info'/>`), undefined);
  const other = xml`<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'><value>urn:example:other</value></field>
      <field var='abuse-addresses'><value>xmpp:abuse@b.test</value></field></x></query>`;
  assert.equal(abuseAddressFrom(other), undefined);
});

test("a forwarded report keeps reason, text and stanza-ids, and names the reported JID", () => {
  const report = xml`<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>
    <stanza-id xmlns='urn:xmpp:sid:0' by='spam@b.test' id='s1'/><text xml:lang='en'>buy now</text><report-origin/><third-party/></report>`;
  const fwd = forwardedReport(report);
  assert.equal(fwd.getChild("report-origin"), undefined);
  assert.equal(fwd.getChild("third-party"), undefined);
  assert.equal(fwd.getChildText("text", "urn:xmpp:reporting:1"), "buy now");
  assert.ok(fwd.getChild("stanza-id", "urn:xmpp:sid:0"));
  const msg = reportMessage({ from: "a.test", to: "abuse@b.test", reported: j("spam@b.test"), report, id: "r1" });
  assert.equal(msg.attrs["from"], "a.test");
  assert.equal(msg.getChildText("jid", "urn:xmpp:jid:0"), "spam@b.test");
  assert.equal(msg.getChild("report", "urn:xmpp:reporting:1")?.attrs["reason"], "urn:xmpp:reporting:spam");
  assert.doesNotMatch(msg.toString(), /alice|reporter/);
});

const IODEF = `<?xml version='1.0' encoding='UTF-8'?>
<Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0' purpose='reporting'>
  <IncidentID name='a.test'>INC-1</IncidentID>
  <ReportTime>2026-01-01T00:00:00Z</ReportTime>
  <Description>spam run</Description>
</Incident>`;

test("IODEF documents are parsed, checked and their IncidentID found", () => {
  const el = parseIodef(IODEF);
  assert.equal(incidentIdOf(el), "INC-1");
  const doc = parseIodef(`<IODEF-Document xmlns='urn:ietf:params:xml:ns:iodef-1.0' version='1.00'><Incident purpose='reporting'><IncidentID name='x'>D-2</IncidentID></Incident></IODEF-Document>`);
  assert.equal(incidentIdOf(doc), "D-2");
  assert.throws(() => parseIodef("<Incident>"), /well-formed/);
  assert.throws(() => parseIodef("<Incident xmlns='urn:example'/>"), /root must be/);
  const wrapper = xml`<report xmlns='urn:xmpp:incident:2'><Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0'/></report>`;
  assert.equal(iodefOf(wrapper)?.name, "Incident");
  assert.equal(incidentIdOf(iodefOf(wrapper)!), null);
});

async function storeContract(storage: Storage): Promise<void> {
  const base = { host: "a.test", peer: "b.test", direction: "in" as const, kind: "report" as const, incidentId: "INC-1", payload: "<Incident/>", note: null };
  const r1 = await storage.incidents.add({ ...base, status: "accepted", at: 1 });
  const r2 = await storage.incidents.add({ ...base, status: "held", at: 2, peer: "c.test" });
  await storage.incidents.add({ ...base, host: "other.test", status: "accepted", at: 3 });
  assert.ok(r2.id > r1.id);
  assert.deepEqual((await storage.incidents.list("a.test")).map((r) => r.id), [r2.id, r1.id]);
  assert.deepEqual((await storage.incidents.list("a.test", { status: "held" })).map((r) => r.peer), ["c.test"]);
  assert.equal((await storage.incidents.list("a.test", { limit: 1 })).length, 1);
  assert.deepEqual(await storage.incidents.get("a.test", r1.id), r1);
  assert.equal(await storage.incidents.get("other.test", r1.id), undefined);
  assert.ok(await storage.incidents.setStatus("a.test", r2.id, "accepted", "reviewed"));
  assert.equal((await storage.incidents.get("a.test", r2.id))?.note, "reviewed");
  assert.ok(!(await storage.incidents.setStatus("a.test", 9999, "accepted")));

  const rep = { host: "a.test", peer: "b.test", reason: "urn:xmpp:reporting:spam", text: null, payload: "<report/>" };
  await storage.abuseReports.add({ ...rep, account: "eve@a.test", at: 10 });
  await storage.abuseReports.add({ ...rep, account: "eve@a.test", at: 20, text: "again" });
  await storage.abuseReports.add({ ...rep, account: "mallory@a.test", at: 15 });
  assert.deepEqual(await storage.abuseReports.counts("a.test"), [
    { account: "eve@a.test", count: 2, last: 20 },
    { account: "mallory@a.test", count: 1, last: 15 },
  ]);
  const eve = await storage.abuseReports.list("a.test", { account: "eve@a.test" });
  assert.deepEqual(eve.map((r) => r.text), ["again", null]);
  assert.deepEqual(await storage.abuseReports.counts("other.test"), []);
}

test("incident and abuse-report stores behave alike on memory and SQLite", async () => {
  await storeContract(createMemoryStorage());
  const dir = mkdtempSync(join(tmpdir(), "comity-trust-"));
  try {
    const s = openSqliteStorage({ path: join(dir, "t.sqlite") });
    await storeContract(s);
    await s.close();
    // Survives a reopen.
    const again = openSqliteStorage({ path: join(dir, "t.sqlite") });
    assert.equal((await again.incidents.list("a.test")).length, 2);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
