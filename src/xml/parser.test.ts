// Tests for the restricted streaming parser (RFC 6120 §11).
import { test } from "node:test";
import assert from "node:assert/strict";
import { StreamParser, XmlError, parseXml, type ParserLimits } from "./parser.ts";
import type { Element } from "./element.ts";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

function run(chunks: (string | Uint8Array)[], limits: Partial<ParserLimits> = {}) {
  const out: { root?: { name: string; uri: string; attrs: Record<string, string> }; els: Element[]; closed: boolean; error?: XmlError } = { els: [], closed: false };
  const p = new StreamParser({
    rootOpen(name, uri, attrs) { out.root = { name, uri, attrs }; },
    element(el) { out.els.push(el); },
    rootClose() { out.closed = true; },
  }, limits);
  try {
    for (const c of chunks) p.write(typeof c === "string" ? Buffer.from(c) : c);
  } catch (e) {
    assert.ok(e instanceof XmlError, String(e));
    out.error = e;
  }
  return out;
}

test("a stream header, stanzas and the close are reported in order", () => {
  const r = run([HEADER, "<message to='a@b'><body>hi &amp; &lt;bye&gt;</body></message> \n<presence/>", "</stream:stream>"]);
  assert.equal(r.error, undefined);
  assert.equal(r.root?.name, "stream");
  assert.equal(r.root?.uri, "http://etherx.jabber.org/streams");
  assert.equal(r.root?.attrs["to"], "localhost");
  assert.equal(r.els.length, 2);
  assert.equal(r.els[0]!.getChildText("body"), "hi & <bye>");
  assert.equal(r.els[0]!.xmlns, "jabber:client");
  assert.equal(r.closed, true);
});

test("stanzas split across arbitrary chunk boundaries parse the same", () => {
  const text = HEADER + "<message to='a@b' id='x'><body>héllo wörld ✓</body><x xmlns='urn:x'><y a='1'/></x></message>";
  const bytes = Buffer.from(text);
  for (const size of [1, 2, 3, 7]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    const r = run(chunks);
    assert.equal(r.error, undefined);
    assert.equal(r.els[0]!.getChildText("body"), "héllo wörld ✓");
    assert.equal(r.els[0]!.getChild("x", "urn:x")?.getChild("y")?.attr("a"), "1");
  }
});

test("serialisation re-declares namespaces and keeps prefixed attributes bound", () => {
  const el = parseXml("<iq type='get' id='1'><q:query xmlns:q='urn:q' xmlns:z='urn:z' z:attr='v' xml:lang='en'><q:item/></q:query></iq>");
  const q = el.getChild("query", "urn:q")!;
  assert.equal(q.getChild("item", "urn:q")?.name, "item");
  const again = parseXml(el.toString());
  assert.equal(again.getChild("query", "urn:q")?.attr("z:attr"), "v");
  assert.equal(again.getChild("query", "urn:q")?.attr("xml:lang"), "en");
});

const restricted: [string, string, string][] = [
  ["DOCTYPE", "<?xml version='1.0'?><!DOCTYPE foo><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", "restricted-xml"],
  ["entity declaration", "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY a 'aaaa'>]><foo/>", "restricted-xml"],
  ["comment", HEADER + "<!-- hi -->", "restricted-xml"],
  ["processing instruction", HEADER + "<?foo bar?>", "restricted-xml"],
  ["undefined entity", HEADER + "<message><body>&foo;</body></message>", "not-well-formed"],
  ["forbidden character reference", HEADER + "<message><body>&#0;</body></message>", "not-well-formed"],
  ["mismatched end tag", HEADER + "<message></presence>", "not-well-formed"],
  ["duplicate attribute", HEADER + "<message a='1' a='2'/>", "not-well-formed"],
  ["unbound prefix", HEADER + "<foo:bar/>", "not-well-formed"],
  ["non-UTF-8 declaration", "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", "unsupported-encoding"],
  ["XML 1.1", "<?xml version='1.1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", "restricted-xml"],
  ["text between stanzas", HEADER + "hello<presence/>", "bad-format"],
];
for (const [what, input, condition] of restricted) {
  test(`${what} is refused with ${condition}`, () => {
    assert.equal(run([input]).error?.condition, condition);
  });
}

test("invalid UTF-8 bytes are not-well-formed", () => {
  const r = run([Buffer.from(HEADER), Buffer.from([0x3c, 0x61, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x61, 0x3e])]);
  assert.equal(r.error?.condition, "not-well-formed");
});

test("UTF-16 input is unsupported-encoding", () => {
  const r = run([Buffer.from([0xff, 0xfe, 0x3c, 0x00])]);
  assert.equal(r.error?.condition, "unsupported-encoding");
});

test("a multibyte character split across chunks is accepted", () => {
  const b = Buffer.from(HEADER + "<m>✓</m>");
  const cut = b.length - 5;
  const r = run([b.subarray(0, cut), b.subarray(cut)]);
  assert.equal(r.error, undefined);
  assert.equal(r.els[0]!.text(), "✓");
});

test("limits: stanza size, depth, children and attributes give policy-violation", () => {
  assert.equal(run([HEADER, "<m>" + "a".repeat(2000) + "</m>"], { maxStanzaSize: 1000 }).error?.condition, "policy-violation");
  assert.equal(run([HEADER, "<m>" + "a".repeat(500) + "</m><m>" + "b".repeat(500) + "</m>"], { maxStanzaSize: 1000 }).error, undefined);
  assert.equal(run([HEADER, "<a>".repeat(40)], { maxDepth: 32 }).error?.condition, "policy-violation");
  assert.equal(run([HEADER, "<a>" + "<b/>".repeat(20) + "</a>"], { maxChildren: 10 }).error?.condition, "policy-violation");
  const attrs = Array.from({ length: 10 }, (_, i) => `a${i}='1'`).join(" ");
  assert.equal(run([HEADER, `<a ${attrs}/>`], { maxAttributes: 5 }).error?.condition, "policy-violation");
});

test("an unterminated stanza growing past the limit in many small chunks is stopped", () => {
  const chunks = [HEADER, "<message><body>"];
  for (let i = 0; i < 100; i++) chunks.push("x".repeat(100));
  assert.equal(run(chunks, { maxStanzaSize: 5000 }).error?.condition, "policy-violation");
});

test("after an error the parser stays failed until reset", () => {
  const p = new StreamParser({ rootOpen() {}, element() {}, rootClose() {} });
  assert.throws(() => p.write(HEADER + "<!-- x -->"), XmlError);
  assert.throws(() => p.write("<presence/>"), XmlError);
  p.reset();
  p.write(HEADER + "<presence/>");
});
