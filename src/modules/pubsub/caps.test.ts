// XEP-0115 verification strings (§5.2 and §5.3 examples) and the bounded caps tracker PEP uses for +notify interest.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseXml } from "../../xml/parser.ts";
import { CapsTracker, capsVer } from "./caps.ts";

// XEP-0115 §5.2, simple example.
const SIMPLE = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`;

// XEP-0115 §5.3, complex example (two identities with xml:lang, an extended info form).
const COMPLEX = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`;

describe("XEP-0115 verification string", () => {
  it("matches the simple example of §5.2", () => {
    assert.equal(capsVer(parseXml(SIMPLE)), "QgayPKawpkPSDYmwT/WM94uAlu0=");
  });

  it("matches the complex example of §5.3 (languages, forms, multiple values)", () => {
    assert.equal(capsVer(parseXml(COMPLEX)), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
  });

  it("does not depend on the order of elements in the answer", () => {
    const shuffled = SIMPLE.replace("<feature var='http://jabber.org/protocol/muc'/>", "").replace("<identity", "<feature var='http://jabber.org/protocol/muc'/><identity");
    assert.equal(capsVer(parseXml(shuffled)), "QgayPKawpkPSDYmwT/WM94uAlu0=");
  });

  it("refuses answers with duplicate features or identities (§5.4)", () => {
    const dup = SIMPLE.replace("</query>", "<feature var='http://jabber.org/protocol/muc'/></query>");
    assert.equal(capsVer(parseXml(dup)), undefined);
  });

  it("refuses a form with two FORM_TYPE values (§5.4)", () => {
    const bad = COMPLEX.replace("<value>urn:xmpp:dataforms:softwareinfo</value>", "<value>a</value><value>b</value>");
    assert.equal(capsVer(parseXml(bad)), undefined);
  });
});

describe("caps tracker", () => {
  const limits = { maxVers: 3, maxEntities: 4, maxNotifyPerEntity: 10 };

  it("knows which resources of a bare JID want a node, from a verified ver", () => {
    const t = new CapsTracker(limits);
    t.remember("v1", ["urn:xmpp:avatar:metadata+notify", "http://jabber.org/protocol/caps"]);
    assert.equal(t.available("bob@x/a", "bob@x", "v1", "alice"), true);
    assert.equal(t.available("bob@x/b", "bob@x", undefined, "alice"), true);
    assert.deepEqual(t.interested("bob@x", "urn:xmpp:avatar:metadata"), ["bob@x/a"]);
    assert.deepEqual(t.interested("bob@x", "http://jabber.org/protocol/caps"), [], "only +notify features count");
  });

  it("says a presence is news once per owner and again when the ver changes", () => {
    const t = new CapsTracker(limits);
    assert.equal(t.available("bob@x/a", "bob@x", "v1", "alice"), true);
    assert.equal(t.available("bob@x/a", "bob@x", "v1", "alice"), false);
    assert.equal(t.available("bob@x/a", "bob@x", "v1", "carol"), true);
    assert.equal(t.available("bob@x/a", "bob@x", "v2", "alice"), true);
    t.unavailable("bob@x/a");
    assert.equal(t.available("bob@x/a", "bob@x", "v2", "alice"), true);
  });

  it("uses per-entity features for an unverified ver without caching them for others", () => {
    const t = new CapsTracker(limits);
    t.available("bob@x/a", "bob@x", "forged", "alice");
    t.available("eve@x/a", "eve@x", "forged", "alice");
    t.setOwn("bob@x/a", "forged", ["n+notify"]);
    assert.deepEqual(t.interested("bob@x", "n"), ["bob@x/a"]);
    assert.deepEqual(t.interested("eve@x", "n"), []);
    assert.equal(t.known("forged"), undefined);
  });

  it("stays within its bounds, dropping the oldest entries", () => {
    const t = new CapsTracker(limits);
    for (let i = 0; i < 10; i++) t.remember(`v${i}`, [`n${i}+notify`]);
    for (let i = 0; i < 10; i++) t.available(`u${i}@x/r`, `u${i}@x`, "v9", "alice");
    assert.deepEqual(t.size, { entities: 4, vers: 3 });
    assert.equal(t.known("v0"), undefined);
    assert.deepEqual(t.interested("u9@x", "n9"), ["u9@x/r"]);
    assert.deepEqual(t.interested("u0@x", "n9"), []);
  });
});
