// Tests for the hand-written streaming parser (RFC 6120 §11, XML 1.0, Namespaces in XML): the StreamParser cases,
// XML details (CDATA, references, characters, normalisation, namespaces), chunking, and a differential run against saxes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FastStreamParser } from "./fast-parser.ts";
import { StreamParser, XmlError, type ParserLimits, type StreamParserHandlers } from "./parser.ts";
import type { Element, Node } from "./element.ts";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

interface Outcome {
  root?: { name: string; uri: string; attrs: Record<string, string>; ns: Record<string, string> };
  els: Element[];
  closed: boolean;
  error?: XmlError;
}

type ParserClass = new (handlers: StreamParserHandlers, limits?: Partial<ParserLimits>) => { write(chunk: Uint8Array | string): void; reset(): void };

function run(chunks: (string | Uint8Array)[], limits: Partial<ParserLimits> = {}, Parser: ParserClass = FastStreamParser): Outcome {
  const out: Outcome = { els: [], closed: false };
  const p = new Parser({
    rootOpen(name, uri, attrs, ns) { out.root = { name, uri, attrs, ns }; },
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

/** Parse one stanza after HEADER; fails the test on any error. */
function stanza(xml: string): Element {
  const r = run([HEADER + xml]);
  assert.equal(r.error, undefined, r.error?.message);
  assert.equal(r.els.length, 1);
  return r.els[0]!;
}

function condition(...chunks: string[]): string | undefined {
  return run(chunks).error?.condition;
}

// ---------------------------------------------------------------------------------------------
// The cases of parser.test.ts, run against FastStreamParser.

test("a stream header, stanzas and the close are reported in order", () => {
  const r = run([HEADER, "<message to='a@b'><body>hi &amp; &lt;bye&gt;</body></message> \n<presence/>", "</stream:stream>"]);
  assert.equal(r.error, undefined);
  assert.equal(r.root?.name, "stream");
  assert.equal(r.root?.uri, "http://etherx.jabber.org/streams");
  assert.equal(r.root?.attrs["to"], "localhost");
  assert.deepEqual(r.root?.ns, { "": "jabber:client", stream: "http://etherx.jabber.org/streams" });
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
  const el = stanza("<iq type='get' id='1'><q:query xmlns:q='urn:q' xmlns:z='urn:z' z:attr='v' xml:lang='en'><q:item/></q:query></iq>");
  const q = el.getChild("query", "urn:q")!;
  assert.equal(q.getChild("item", "urn:q")?.name, "item");
  assert.deepEqual(q.attrs, { "z:attr": "v", "xmlns:z": "urn:z", "xml:lang": "en" });
  const again = stanza(el.toString());
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
  // Stream-level expectations of test/c2s/negative.test.ts.
  ["DOCTYPE inside the root", HEADER + "<!DOCTYPE x [<!ENTITY a 'b'>]>", "not-well-formed"],
  ["PHP processing instruction", HEADER + "<?php echo 1; ?>", "restricted-xml"],
  ["undefined entity &lol;", HEADER + "<message to='bob@localhost'><body>&lol;</body></message>", "not-well-formed"],
  ["mismatched end tag </iq>", HEADER + "<message></iq>", "not-well-formed"],
  ["unbound element prefix", HEADER + "<x:message/>", "not-well-formed"],
  ["DOCTYPE before the header", "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol 'lol'>]>" + HEADER.slice(21), "restricted-xml"],
];
for (const [what, input, cond] of restricted) {
  test(`${what} is refused with ${cond}`, () => {
    assert.equal(run([input]).error?.condition, cond);
    assert.equal(run([input], {}, StreamParser).error?.condition, cond, "StreamParser agrees");
  });
}

test("invalid UTF-8 bytes are not-well-formed", () => {
  const r = run([Buffer.from(HEADER), Buffer.from([0x3c, 0x61, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x61, 0x3e])]);
  assert.equal(r.error?.condition, "not-well-formed");
  assert.equal(run([Buffer.from(HEADER), Buffer.from([0x3c, 0x6d, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x6d, 0x3e])]).error?.condition, "not-well-formed");
});

test("UTF-16 input is unsupported-encoding", () => {
  assert.equal(run([Buffer.from([0xff, 0xfe, 0x3c, 0x00])]).error?.condition, "unsupported-encoding");
  assert.equal(run([Buffer.from([0xfe, 0xff, 0x00, 0x3c])]).error?.condition, "unsupported-encoding");
});

test("a UTF-8 byte order mark is skipped", () => {
  const r = run([Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(HEADER + "<presence/>")])]);
  assert.equal(r.error, undefined);
  assert.equal(r.els.length, 1);
  assert.equal(run(["\ufeff" + HEADER + "<presence/>"]).error, undefined);
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
  assert.equal(run([HEADER, "<a>".repeat(32)], { maxDepth: 32 }).error, undefined);
  assert.equal(run([HEADER, "<a>".repeat(33)], { maxDepth: 32 }).error?.condition, "policy-violation");
  assert.equal(run([HEADER, "<a>" + "<b/>".repeat(20) + "</a>"], { maxChildren: 10 }).error?.condition, "policy-violation");
  assert.equal(run([HEADER, "<a>" + "<b/>x".repeat(5) + "</a>"], { maxChildren: 10 }).error, undefined);
  assert.equal(run([HEADER, "<a>" + "<b/>x".repeat(6) + "</a>"], { maxChildren: 10 }).error?.condition, "policy-violation");
  const attrs = Array.from({ length: 10 }, (_, i) => `a${i}='1'`).join(" ");
  assert.equal(run([HEADER, `<a ${attrs}/>`], { maxAttributes: 5 }).error?.condition, "policy-violation");
  assert.equal(run([HEADER, `<a ${attrs}/>`], { maxAttributes: 10 }).error, undefined);
});

test("limits changed on the live parser apply to the next stanza", () => {
  const p = new FastStreamParser({ rootOpen() {}, element() {}, rootClose() {} }, { maxStanzaSize: 100 });
  p.write(HEADER);
  p.limits.maxStanzaSize = 10_000;
  p.write(`<m>${"x".repeat(1000)}</m>`);
  p.limits.maxStanzaSize = 100;
  assert.throws(() => p.write(`<m>${"x".repeat(1000)}</m>`), (e: unknown) => e instanceof XmlError && e.condition === "policy-violation");
});

test("an unterminated stanza growing past the limit in many small chunks is stopped", () => {
  const chunks = [HEADER, "<message><body>"];
  for (let i = 0; i < 100; i++) chunks.push("x".repeat(100));
  assert.equal(run(chunks, { maxStanzaSize: 5000 }).error?.condition, "policy-violation");
});

test("unterminated constructs streaming in 1500-byte chunks hit the size limit, not memory", () => {
  const cases = [
    `<message to='${"a".repeat(2_000_000)}`, // attribute value
    `<message><body>${"b".repeat(2_000_000)}`, // text
    `<message><body><![CDATA[${"c".repeat(2_000_000)}`, // CDATA section
    `<message ${"d".repeat(2_000_000)}`, // attribute name
  ];
  for (const c of cases) {
    const p = new FastStreamParser({ rootOpen() {}, element() {}, rootClose() {} });
    p.write(HEADER);
    const bytes = Buffer.from(c);
    let error: unknown;
    let fed = 0;
    for (let i = 0; i < bytes.length && error === undefined; i += 1500) {
      try {
        p.write(bytes.subarray(i, i + 1500));
        fed = i + 1500;
      } catch (e) {
        error = e;
      }
    }
    assert.ok(error instanceof XmlError && error.condition === "policy-violation", String(error));
    assert.ok(fed <= 262144 + 1500, `stopped after ${fed} bytes`);
  }
  // The prologue is limited too.
  assert.equal(run(["<?xml version='1.0'?>", " ".repeat(300_000)]).error?.condition, "policy-violation");
  assert.equal(run(["<stream:stream xmlns:stream='x' a='" + "v".repeat(300_000)]).error?.condition, "policy-violation");
});

test("after an error the parser stays failed until reset", () => {
  const p = new FastStreamParser({ rootOpen() {}, element() {}, rootClose() {} });
  assert.throws(() => p.write(HEADER + "<!-- x -->"), XmlError);
  assert.throws(() => p.write("<presence/>"), XmlError);
  p.reset();
  p.write(HEADER + "<presence/>");
});

test("an error thrown by a handler passes through and fails the parser", () => {
  const refused = new Error("host-unknown");
  const p = new FastStreamParser({ rootOpen() { throw refused; }, element() {}, rootClose() {} });
  assert.throws(() => p.write(HEADER), (e) => e === refused);
  assert.throws(() => p.write("<presence/>"), XmlError);
});

test("reset starts a new document: a second XML declaration and header are accepted", () => {
  const roots: string[] = [];
  const p = new FastStreamParser({ rootOpen(name) { roots.push(name); }, element() {}, rootClose() {} });
  p.write(HEADER + "<auth/>");
  p.reset();
  p.write(HEADER + "<presence/>");
  assert.deepEqual(roots, ["stream", "stream"]);
});

test("a reset from inside a handler drops the rest of that chunk; the next write starts the new document", () => {
  const seen: string[] = [];
  const p: FastStreamParser = new FastStreamParser({
    rootOpen(name) { seen.push("root:" + name); },
    element(el) { seen.push(el.name); if (el.name === "success") p.reset(); },
    rootClose() { seen.push("close"); },
  });
  p.write(HEADER + "<success/><stale/>");
  p.write(HEADER + "<presence/>");
  assert.deepEqual(seen, ["root:stream", "success", "root:stream", "presence"]);
});

// ---------------------------------------------------------------------------------------------
// XML details.

test("CDATA sections become text, merged with adjacent text, split anywhere", () => {
  const input = HEADER + "<m><body>a<![CDATA[<b>&amp;]]]]>c<![CDATA[]]></body></m>";
  const el = stanza(input.slice(HEADER.length));
  assert.equal(el.getChildText("body"), "a<b>&amp;]]c");
  assert.equal(el.getChild("body")!.children.length, 1);
  for (let cut = HEADER.length; cut < input.length; cut++) {
    const r = run([input.slice(0, cut), input.slice(cut)]);
    assert.equal(r.error, undefined, `cut at ${cut}`);
    assert.equal(r.els[0]!.getChildText("body"), "a<b>&amp;]]c", `cut at ${cut}`);
  }
  assert.deepEqual(stanza("<m><![CDATA[]]></m>").children, []);
  assert.equal(condition(HEADER, "<![CDATA[x]]>"), "bad-format");
  assert.equal(condition(HEADER, "<![CDATA[ ]]><presence/>"), undefined);
  assert.equal(condition("<![CDATA[x]]>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m><![CDATX[x]]></m>"), "not-well-formed");
});

test('"]]>" in character data is not-well-formed, also across chunks', () => {
  assert.equal(condition(HEADER, "<m>a]]>b</m>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m>a]", "]>b</m>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m>a]]", ">b</m>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m>a]", "]", ">b</m>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m>a]]]", "]>b</m>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m>a]&#93;>b]] >]</m>"), undefined);
  assert.equal(condition(HEADER, "<m>a]", "x]>b</m>"), undefined);
});

test("character references: decimal and hex to any XML Char, nothing else", () => {
  assert.equal(stanza("<m>&#65;&#x42;&#X43;</m>".replace("&#X43;", "&#x43;")).text(), "ABC");
  assert.equal(stanza("<m a='&#9;&#10;&#13;'>&#x1F600;&#0000065;&#xD7FF;&#xE000;&#xFFFD;&#x10FFFF;</m>").text(), "😀A\ud7ff\ue000\ufffd\u{10ffff}");
  assert.equal(stanza("<m a='&#9;&#10;&#13;'/>").attr("a"), "\t\n\r");
  for (const bad of ["&#0;", "&#x1;", "&#8;", "&#xB;", "&#xC;", "&#x1F;", "&#xD800;", "&#xDFFF;", "&#xFFFE;", "&#xFFFF;", "&#x110000;", "&#99999999999;", "&#X41;", "&#;", "&#x;", "&#12a;", "&;", "&ltx;", "&lt x;", "& lt;", "&nbsp;", "&#-1;"]) {
    assert.equal(condition(HEADER, `<m>${bad};</m>`), "not-well-formed", bad);
    assert.equal(condition(HEADER, `<m a='${bad};'/>`), "not-well-formed", bad);
  }
  assert.equal(stanza("<m a='&lt;&gt;&amp;&quot;&apos;'>&lt;&gt;&amp;&quot;&apos;</m>").attr("a"), "<>&\"'");
  assert.equal(stanza("<m>&lt;&gt;&amp;&quot;&apos;</m>").text(), "<>&\"'");
});

test("raw characters outside XML Char are not-well-formed", () => {
  for (const ch of ["\u0000", "\u0001", "\u0008", "\u000b", "\u000c", "\u000e", "\u001f", "\ufffe", "\uffff", "\ud800", "\udc00", "\ud800x", "\ude00\ud83d"]) {
    if (!/[\ud800-\udfff]/.test(ch)) {
      // (Buffer.from would turn a lone surrogate into U+FFFD.)
      assert.equal(condition(HEADER, `<m>a${ch}b</m>`), "not-well-formed", JSON.stringify(ch));
      assert.equal(condition(HEADER, `<m a='a${ch}b'/>`), "not-well-formed", JSON.stringify(ch));
    }
    // Strings bypass the UTF-8 decoder, so lone surrogates reach the parser.
    const p = new FastStreamParser({ rootOpen() {}, element() {}, rootClose() {} });
    p.write(HEADER);
    assert.throws(() => p.write(`<m>a${ch}b</m>`), (e: unknown) => e instanceof XmlError && e.condition === "not-well-formed");
  }
  assert.equal(stanza("<m a='\u{1F600}'>\u{10FFFF}\ue000\ud7ff\t</m>").text(), "\u{10FFFF}\ue000\ud7ff\t");
});

test("a surrogate pair or CR LF split between string chunks is kept together", () => {
  const outs: Element[] = [];
  const p = new FastStreamParser({ rootOpen() {}, element(el) { outs.push(el); }, rootClose() {} });
  p.write(HEADER + "<m a='x\r");
  p.write("\ny'>\ud83d");
  p.write("\ude00\r");
  p.write("\nz\r");
  p.write("w</m>");
  assert.equal(outs[0]!.attr("a"), "x y");
  assert.equal(outs[0]!.text(), "😀\nz\nw");
});

test("end-of-line handling and attribute-value normalisation", () => {
  const el = stanza("<m a='x\ty\nz\r\nw\rv' b=\"q 'r'\">l1\r\nl2\rl3\nl4\t</m>");
  assert.equal(el.attr("a"), "x y z w v");
  assert.equal(el.attr("b"), "q 'r'");
  assert.equal(el.text(), "l1\nl2\nl3\nl4\t");
  assert.equal(condition(HEADER, "<m a='<'/>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m a=x/>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m a/>"), "not-well-formed");
  assert.equal(condition(HEADER, "<m a='1'b='2'/>"), "not-well-formed");
  assert.equal(stanza("<m  a = '1'\n\tb\r\n=\"2\" />").attr("b"), "2");
});

test("names: XML 1.0 5th-edition characters accepted, others refused", () => {
  assert.equal(stanza("<é xmlns='urn:x' ä.b-c_1='1' 中='2'><𐀀/></é>").getChild("𐀀")?.name, "𐀀");
  for (const bad of ["<1a/>", "<-a/>", "<.a/>", "< a/>", "<a\u00d7/>", "<m 1a='1'/>", "<m a\u00d7='1'/>", "<:a/>", "<a:/>", "<p:a:b xmlns:p='u'/>", "<m :a='1'/>"]) {
    assert.equal(condition(HEADER, bad), "not-well-formed", bad);
  }
});

test("end tags: whitespace before '>' allowed, anything else refused", () => {
  assert.equal(stanza("<m><b></b \n></m >").getChild("b")?.name, "b");
  for (const bad of ["<m></m x>", "<m></>", "<m></m/>", "<m></ m>", "</m>"]) assert.equal(condition(HEADER, bad), "not-well-formed", bad);
  assert.equal(condition(HEADER, "<m></M>"), "not-well-formed");
  assert.equal(condition(HEADER, "<p:m xmlns:p='u'></q:m>".replace("q:m", "q:m xmlns:q='u'")), "not-well-formed");
});

test("namespaces: default redeclaration, undeclaration, prefixed elements and attributes", () => {
  const el = stanza(
    "<message><x xmlns='urn:a'><y/><z xmlns=''><w/></z></x><p:q xmlns:p='urn:p' p:a='1' xml:lang='de' b='2'><p:r/><s/></p:q><t/></message>",
  );
  assert.equal(el.xmlns, "jabber:client");
  const x = el.getChild("x")!;
  assert.equal(x.xmlns, "urn:a");
  assert.equal(x.getChild("y")!.xmlns, "urn:a");
  assert.equal(x.getChild("z")!.xmlns, "");
  assert.equal(x.getChild("z")!.getChild("w")!.xmlns, "");
  assert.deepEqual(x.attrs, {});
  const q = el.getChild("q")!;
  assert.equal(q.xmlns, "urn:p");
  assert.deepEqual(q.attrs, { "p:a": "1", "xmlns:p": "urn:p", "xml:lang": "de", b: "2" });
  assert.equal(q.getChild("r")!.xmlns, "urn:p");
  assert.equal(q.getChild("s")!.xmlns, "jabber:client");
  assert.equal(el.getChild("t")!.xmlns, "jabber:client");
  // A declaration after its use in the same tag still applies; xml: is predeclared.
  assert.equal(stanza("<p:m p:a='1' xmlns:p='urn:p'/>").xmlns, "urn:p");
  assert.equal(stanza("<xml:m xmlns:xml='http://www.w3.org/XML/1998/namespace'/>").xmlns, "http://www.w3.org/XML/1998/namespace");
  // Namespace names are trimmed like saxes does.
  assert.equal(stanza("<m xmlns=' urn:t '/>").xmlns, "urn:t");
});

test("namespaces: duplicates after resolution and reserved prefixes are not-well-formed", () => {
  for (const bad of [
    "<m xmlns:p='u' xmlns:q='u' p:a='1' q:a='2'/>",
    "<m xmlns='u' xmlns='v'/>",
    "<m xmlns:p='u' xmlns:p='v'/>",
    "<m xml:lang='a' xml:lang='b'/>",
    "<m p:a='1'/>",
    "<m xmlns:p=''/>",
    "<m xmlns:p=' '/>",
    "<m xmlns:xml='urn:x'/>",
    "<m xmlns:x='http://www.w3.org/XML/1998/namespace'/>",
    "<m xmlns='http://www.w3.org/XML/1998/namespace'/>",
    "<m xmlns:xmlns='http://www.w3.org/2000/xmlns/'/>",
    "<m xmlns:x='http://www.w3.org/2000/xmlns/'/>",
    "<m xmlns='http://www.w3.org/2000/xmlns/'/>",
    "<xmlns:m/>",
    "<m xmlns:='u'/>",
    "<p:m xmlns:p='u'><p:n xmlns:p='v'></p:n><q:x/></p:m>",
  ]) {
    assert.equal(condition(HEADER, bad), "not-well-formed", bad);
    assert.equal(run([HEADER, bad], {}, StreamParser).error?.condition, "not-well-formed", `saxes: ${bad}`);
  }
  // Same local name in different namespaces, or prefixed and unprefixed, is fine.
  assert.deepEqual(stanza("<m xmlns:p='u' xmlns:q='v' p:a='1' q:a='2' a='3'/>").attrs, { "p:a": "1", "xmlns:p": "u", "q:a": "2", "xmlns:q": "v", a: "3" });
});

test("XML declaration: only version 1.0 and UTF-8, only at the very start", () => {
  const root = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
  const ok = ["<?xml version='1.0'?>", '<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0' encoding='utf8' standalone='yes'?>", "<?xml  version = '1.0'  ?>\n", ""];
  for (const d of ok) assert.equal(condition(d + root), undefined, d);
  const cases: [string, string][] = [
    ["<?xml version='1.0' encoding='latin1'?>", "unsupported-encoding"],
    ["<?xml version='1.1' encoding='UTF-16'?>", "unsupported-encoding"],
    ["<?xml version='1.1'?>", "restricted-xml"],
    ["<?xml version='2.0'?>", "not-well-formed"],
    ["<?xml?>", "not-well-formed"],
    ["<?xml encoding='UTF-8'?>", "not-well-formed"],
    ["<?xml version='1.0' standalone='maybe'?>", "not-well-formed"],
    ["<?xml version='1.0'encoding='UTF-8'?>", "not-well-formed"],
    ["<?xml version=1.0?>", "not-well-formed"],
    [" <?xml version='1.0'?>", "not-well-formed"],
    ["<?xml version='1.0'?><?xml version='1.0'?>", "not-well-formed"],
    ["<?XML version='1.0'?>", "not-well-formed"],
    ["<?xml-stylesheet href='a'?>", "restricted-xml"],
    ["<!-- c -->", "restricted-xml"],
    ["<!DOCTYPE stream>", "restricted-xml"],
    ["junk", "bad-format"], // saxes reports the text (refused as bad-format) when a '<' follows it in the same chunk
  ];
  for (const [d, cond] of cases) {
    assert.equal(condition(d + root), cond, d);
    assert.equal(run([d + root], {}, StreamParser).error?.condition, cond, `saxes: ${d}`);
  }
});

test("after the root closes only whitespace may follow", () => {
  const r = run([HEADER, "<presence/></stream:stream>\n "]);
  assert.equal(r.error, undefined);
  assert.equal(r.closed, true);
  assert.equal(condition(HEADER, "</stream:stream><stream:stream>"), "not-well-formed");
  assert.equal(condition(HEADER, "</stream:stream>junk"), "not-well-formed");
  assert.equal(condition(HEADER, "</stream:stream></x>"), "not-well-formed");
  assert.equal(condition(HEADER, "</stream:stream><!-- -->"), "restricted-xml");
  assert.equal(condition(HEADER, "</stream:stream><![CDATA[]]>"), "not-well-formed");
});

test("text inside the root: whitespace allowed, other text bad-format, entities count as text", () => {
  assert.equal(condition(HEADER, " \t\r\n<presence/>\n"), undefined);
  assert.equal(condition(HEADER, "&amp;<presence/>"), "bad-format");
  assert.equal(condition(HEADER, "&#32;<presence/>"), undefined);
  assert.equal(condition(HEADER, "<presence/>x</stream:stream>"), "bad-format");
  assert.equal(condition("x" + HEADER), "bad-format");
  assert.equal(condition("x", HEADER), "not-well-formed");
  assert.equal(condition(HEADER, "</stream:stream>x"), "not-well-formed");
  assert.equal(condition(HEADER, "</stream:stream>x<"), "bad-format");
  assert.equal(condition(HEADER, "</stream:stream>&amp;<"), "not-well-formed");
});

// ---------------------------------------------------------------------------------------------
// Chunking.

const REALISTIC =
  "\ufeff<?xml version='1.0' encoding='UTF-8'?>\n" +
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>\r\n" +
  "<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='m1'><body>Wherefore art thou, Romeo? &amp; &#x1F600; &#233; ✓ 𝄞\r\nline</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>\n" +
  "<iq type=\"result\" id='r1'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='server' type='im' name='C&apos;y'/><feature var='urn:xmpp:ping'/></query></iq> " +
  "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/><x:y xmlns:x='urn:x' x:z='1' xml:lang='de'><![CDATA[<raw> & ]] stuff]]>tail</x:y></presence>" +
  "<message><body>  spaced\ttext  </body><e xmlns=''/></message>" +
  "</stream:stream>";

function dump(n: Node): unknown {
  if (typeof n === "string") return n;
  return [n.name, n.xmlns, Object.entries(n.attrs), n.children.filter((c) => c !== "").map(dump)];
}

function summary(o: Outcome): unknown {
  return { root: o.root, els: o.els.map(dump), closed: o.closed, error: o.error?.condition };
}

test("a realistic stream split at every byte (and at every pair of bytes) parses the same", () => {
  const bytes = Buffer.from(REALISTIC);
  const whole = run([bytes]);
  assert.equal(whole.error, undefined, whole.error?.message);
  assert.equal(whole.els.length, 4);
  assert.deepEqual(summary(whole), summary(run([bytes], {}, StreamParser)), "same as StreamParser");
  const expected = summary(whole);
  const ones: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) ones.push(bytes.subarray(i, i + 1));
  assert.deepEqual(summary(run(ones)), expected);
  for (let a = 1; a < bytes.length; a++) {
    assert.deepEqual(summary(run([bytes.subarray(0, a), bytes.subarray(a)])), expected, `split at ${a}`);
  }
  // Decoded strings split at every UTF-16 unit.
  const units: string[] = [];
  for (let i = 0; i < REALISTIC.length; i++) units.push(REALISTIC[i]!);
  const out: Outcome = { els: [], closed: false };
  const p = new FastStreamParser({ rootOpen(name, uri, attrs, ns) { out.root = { name, uri, attrs, ns }; }, element(el) { out.els.push(el); }, rootClose() { out.closed = true; } });
  for (const u of units) p.write(u);
  assert.deepEqual(summary(out), expected);
});

// ---------------------------------------------------------------------------------------------
// Differential test against the saxes-based StreamParser.

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
}

const NAMES = ["message", "body", "x", "query", "item", "é", "a-b.c_d", "c", "中"];
const PREFIXES = ["p", "q", "xml", "stream"];
const URIS = ["urn:a", "urn:b", "jabber:client", "", " urn:padded ", "http://jabber.org/protocol/caps"];
const TEXTS = ["hi", " ", "\n", "\r\n", "\r", "\t", "a&amp;b", "&lt;&gt;&quot;&apos;", "&#233;&#x1F600;", "é✓𝄞", "]]", "]", ">", "x]]y", "<![CDATA[c<d&]]>", "<![CDATA[]]>", "<![CDATA[]]]]>", "&#13;&#10;&#9;"];
const VALUES = ["v", "", "a b", "a\tb\nc\r\nd", "&amp;&lt;", "&#x41;", "'\"", "é😀", "&#10;"];
const HAZARDS = [
  "&", ";", "<", ">", "'", '"', "]]>", "<!--", "-->", "<?pi x?>", "<!DOCTYPE x>", "<![CDATA[", "]]", "&foo;", "&#0;", "&#xD800;",
  "\u0001", "\ufffe", "</x>", "<x>", "/", "=", "xmlns:p='u'", "xmlns=''", "xmlns:p=''", " p:a='1'", " a='1'", "q:", ":", "&#", "&#x", "&lt",
  "<?xml version='1.0'?>", " ", "\r", "<!", "<![CDATA[x]]>", "\ud83d\ude00", "é",
];

function genAttrs(g: Gen, declared: string[]): string {
  let out = "";
  const used = new Set<string>();
  const n = g.int(4);
  for (let k = 0; k < n; k++) {
    let name: string;
    const r = g.int(6);
    if (r === 0 && declared.length > 0) name = `${g.pick(declared)}:${g.pick(["a", "b", "lang"])}`;
    else if (r === 1) name = "xml:lang";
    else name = g.pick(["to", "from", "id", "type", "a", "b-c", "é"]);
    if (used.has(name)) continue;
    used.add(name);
    const q = g.chance(0.5) ? "'" : '"';
    const v = g.pick(VALUES).replaceAll(q, "");
    out += `${g.pick([" ", "\n", "  ", "\t"])}${name}=${q}${v}${q}`;
  }
  return out;
}

function genElement(g: Gen, depth: number, inScope: string[]): string {
  const declared = [...inScope];
  let decls = "";
  if (g.chance(0.25)) decls += ` xmlns='${g.pick(URIS).trim() === "" && g.chance(0.5) ? "" : g.pick(URIS)}'`;
  if (g.chance(0.2)) {
    const p = g.pick(["p", "q"]);
    decls += ` xmlns:${p}='${g.pick(URIS.filter((u) => u.trim() !== ""))}'`;
    declared.push(p);
  }
  const usable = declared.filter((p) => p !== "xml");
  const prefix = usable.length > 0 && g.chance(0.2) ? g.pick(usable) + ":" : "";
  const name = prefix + g.pick(NAMES);
  const attrs = genAttrs(g, declared);
  if (depth > 4 || g.chance(0.3)) return `<${name}${decls}${attrs}${g.chance(0.3) ? " " : ""}/>`;
  let inner = "";
  const kids = g.int(4);
  for (let k = 0; k < kids; k++) inner += g.chance(0.5) ? g.pick(TEXTS) : genElement(g, depth + 1, declared);
  return `<${name}${decls}${attrs}>${inner}</${name}${g.chance(0.1) ? " " : ""}>`;
}

function genStream(g: Gen): string {
  let s = g.pick(["<?xml version='1.0'?>", "", "<?xml version='1.0' encoding='UTF-8'?>\n", "\n"]);
  s += "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'" + (g.chance(0.3) ? " xmlns:p='urn:p'" : "") + " to='example.com' version='1.0'>";
  const n = 1 + g.int(5);
  for (let k = 0; k < n; k++) {
    s += genElement(g, 1, ["stream", "xml", ...(s.includes("xmlns:p") ? ["p"] : [])]);
    if (g.chance(0.3)) s += g.pick([" ", "\n", "\r\n", "\t "]);
  }
  if (g.chance(0.7)) s += "</stream:stream>";
  return s;
}

function mutate(g: Gen, s: string): string {
  const at = g.int(s.length + 1);
  switch (g.int(5)) {
    case 0:
      return s.slice(0, at) + g.pick(HAZARDS) + s.slice(at);
    case 1:
      return s.slice(0, at) + s.slice(at + 1 + g.int(3));
    case 2: {
      const from = g.int(s.length);
      return s.slice(0, at) + s.slice(from, from + 1 + g.int(8)) + s.slice(at);
    }
    case 3:
      return s.slice(0, at) + g.pick(HAZARDS) + s.slice(at + 1);
    default:
      return s.slice(0, at);
  }
}

function chunked(g: Gen, bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const style = g.int(3);
  for (let i = 0; i < bytes.length; ) {
    const size = style === 0 ? bytes.length : style === 1 ? 1 + g.int(4) : 1 + g.int(64);
    out.push(bytes.subarray(i, i + size));
    i += size;
  }
  return out;
}

/** Characters that end every construct saxes may still be inside of (reference, quote, comment, PI, CDATA, DOCTYPE, tag). */
const TERMINATOR = ";\"'>]]>-->?>" + "<z/>";

test("differential: the same trees and outcomes as the saxes-based StreamParser on generated streams", () => {
  const g = new Gen(6120);
  let compared = 0;
  let errors = 0;
  let earlier = 0;
  const differences: string[] = [];
  for (let iter = 0; iter < 4000; iter++) {
    let input = genStream(g);
    const mutations = iter % 3 === 0 ? 0 : 1 + g.int(2);
    for (let m = 0; m < mutations; m++) input = mutate(g, input);
    const bytes = Buffer.from(input);
    const chunks = chunked(g, bytes);
    const limits: Partial<ParserLimits> = g.chance(0.2)
      ? { maxStanzaSize: 20 + g.int(300), maxDepth: 1 + g.int(5), maxChildren: 1 + g.int(4), maxAttributes: g.int(4) }
      : {};
    const fast = run(chunks, limits, FastStreamParser);
    const slow = run(chunks, limits, StreamParser);
    compared++;
    const fs = summary(fast) as { els: unknown[]; root: unknown; closed: boolean };
    const ss = summary(slow) as { els: unknown[]; root: unknown; closed: boolean };
    const where = `input ${JSON.stringify(input)} limits ${JSON.stringify(limits)} chunks ${chunks.length}`;
    if (!fast.error && !slow.error) {
      assert.deepEqual(fs, ss, where);
      continue;
    }
    errors++;
    if (slow.error?.message.includes("children") && input.includes("<![CDATA[]]>")) {
      // Allowed: saxes adds an empty text child for an empty CDATA section, which counts against maxChildren.
      differences.push("empty CDATA counted as a child by saxes");
      continue;
    }
    if (slow.error && !fast.error) assert.fail(`saxes failed (${slow.error.condition}: ${slow.error.message}), fast did not: ${where}`);
    // Before the error: the same events. saxes reports an element closed by a mismatched end tag before failing on it.
    assert.deepEqual(fs.root, ss.root, where);
    assert.deepEqual(ss.els.slice(0, fs.els.length), fs.els, where);
    if (fast.error && !slow.error) {
      // Fast refuses some constructs at their start where saxes waits for their end: saxes must fail once they end.
      const later = run([...chunks, Buffer.from(TERMINATOR)], limits, StreamParser);
      assert.ok(later.error, `fast failed early (${fast.error.condition}: ${fast.error.message}) on something saxes accepts: ${where}`);
      earlier++;
      continue;
    }
    assert.ok(ss.els.length - fs.els.length <= 1, where);
    if (fast.error!.condition !== slow.error!.condition) {
      differences.push(`${fast.error!.condition} (${fast.error!.message}) vs saxes ${slow.error!.condition} (${slow.error!.message})`);
      // Allowed: a forbidden construct (comment, PI, DOCTYPE) is refused as restricted-xml at its start, where saxes
      // reads on to its end and may first find something malformed inside it or run over the size limit.
      if (fast.error!.condition === "restricted-xml" && /<!--|<\?|<!DOCTYPE/.test(input)) continue;
      // Allowed: fast stops at the first character that cannot continue a reference (or other construct) while saxes
      // reads on and hits the size limit first; without that limit saxes reports what fast reported.
      assert.equal(slow.error!.condition, "policy-violation", `conditions differ: ${differences.at(-1)}: ${where}`);
      const unlimited = run([...chunks, Buffer.from(TERMINATOR)], { ...limits, maxStanzaSize: Number.MAX_SAFE_INTEGER }, StreamParser);
      assert.equal(unlimited.error?.condition, fast.error!.condition, `conditions differ: ${differences.at(-1)}: ${where}`);
    }
  }
  assert.ok(compared === 4000 && errors > 1000 && errors < 3800, `${errors} errors`);
  console.log(`differential: ${compared} streams, ${errors} with errors, ${earlier} refused earlier than saxes, ${differences.length} condition differences`);
});
