// Tests for XMPP address parsing and preparation (RFC 7622 §3, vectors modelled on the §3.5 example lists).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Jid,
  JidError,
  createJid,
  parseJid,
  prepareDomain,
  prepareLocal,
  prepareResource,
  tryParseJid,
  type JidPart,
} from "./jid.ts";

function malformedPart(fn: () => unknown): JidPart | "no error" {
  try {
    fn();
    return "no error";
  } catch (err) {
    assert.ok(err instanceof JidError, `expected JidError, got ${String(err)}`);
    assert.equal(err.condition, "jid-malformed");
    return err.part;
  }
}

test("valid addresses parse into their canonical parts", () => {
  // [input, local, domain, resource]
  const cases: Array<[string, string, string, string]> = [
    ["juliet@example.com", "juliet", "example.com", ""],
    ["juliet@example.com/foo", "juliet", "example.com", "foo"],
    ["juliet@example.com/foo bar", "juliet", "example.com", "foo bar"],
    ["juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"],
    ["juliet@example.com/foo/bar", "juliet", "example.com", "foo/bar"],
    ["foo\\20bar@example.com", "foo\\20bar", "example.com", ""],
    ["fussball@example.com", "fussball", "example.com", ""],
    ["fu\u00dfball@example.com", "fu\u00dfball", "example.com", ""],
    ["\u03c0@example.com", "\u03c0", "example.com", ""],
    ["\u03a3@example.com/foo", "\u03c3", "example.com", "foo"],
    ["\u03c3@example.com/foo", "\u03c3", "example.com", "foo"],
    ["\u03c2@example.com/foo", "\u03c2", "example.com", "foo"],
    ["king@example.com/\u265a", "king", "example.com", "\u265a"],
    ["example.com", "", "example.com", ""],
    ["example.com/foobar", "", "example.com", "foobar"],
    ["a.example.com/b@example.net", "", "a.example.com", "b@example.net"],
    ["romeo@[2001:DB8::1]/orchard", "romeo", "[2001:db8::1]", "orchard"],
    ["romeo@192.0.2.10", "romeo", "192.0.2.10", ""],
    ["!#$%*+-.=?^_`{|}~@example.com", "!#$%*+-.=?^_`{|}~", "example.com", ""],
  ];
  for (const [input, local, domain, resource] of cases) {
    const jid = parseJid(input);
    assert.deepEqual([jid.local, jid.domain, jid.resource], [local, domain, resource], input);
  }
});

test("malformed addresses are refused with the failing part", () => {
  const cases: Array<[string, JidPart]> = [
    ["", "domain"],
    ["juliet@@example.com", "domain"],
    ["@example.com", "local"],
    ["juliet@example.com/", "resource"],
    ["juliet@", "domain"],
    ["/foobar", "domain"],
    ["@", "local"],
    ["\"juliet\"@example.com", "local"],
    ["foo bar@example.com", "local"],
    ["henry\u2163@example.com", "local"],
    ["\u265a@example.com", "local"],
    ["a&b@example.com", "local"],
    ["a'b@example.com", "local"],
    ["a:b@example.com", "local"],
    ["a<b@example.com", "local"],
    ["a>b@example.com", "local"],
    ["juliet@example.com/foo\u0000", "resource"],
    ["juliet@example.com/\u200b", "resource"],
    ["juliet@exa mple.com", "domain"],
    ["juliet@example.com:5222", "domain"],
  ];
  for (const [input, part] of cases) assert.equal(malformedPart(() => parseJid(input)), part, JSON.stringify(input));
});

test("localparts are case-folded, width-mapped and NFC-normalized", () => {
  const cases: Array<[string, string]> = [
    ["Juliet", "juliet"],
    ["JULIET", "juliet"],
    ["\uff2a\uff55\uff4c\uff49\uff45\uff54", "juliet"], // fullwidth
    ["\u00c9mile", "\u00e9mile"],
    ["E\u0301mile", "\u00e9mile"], // decomposed input
    ["\u03a3\u0391\u03a3", "\u03c3\u03b1\u03c2"], // final sigma
  ];
  for (const [input, expected] of cases) assert.equal(prepareLocal(input), expected, input);
});

test("resourceparts keep case and width but map spaces and normalize", () => {
  const cases: Array<[string, string]> = [
    ["Balcony", "Balcony"],
    ["\uff22alcony", "\uff22alcony"],
    ["a\u00a0b", "a b"],
    ["e\u0301", "\u00e9"],
    ["Tab Client 1.0 (x86_64)", "Tab Client 1.0 (x86_64)"],
  ];
  for (const [input, expected] of cases) assert.equal(prepareResource(input), expected, input);
});

test("domainparts become lowercase U-labels without a trailing dot", () => {
  const cases: Array<[string, string]> = [
    ["EXAMPLE.com.", "example.com"],
    ["example.com", "example.com"],
    ["\u00dcnicode.example", "\u00fcnicode.example"],
    ["xn--nicode-2ya.example", "\u00fcnicode.example"],
    ["XN--NICODE-2YA.EXAMPLE", "\u00fcnicode.example"],
    ["\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"], // fullwidth
    ["example\u3002com", "example.com"], // ideographic full stop
    ["example.com\u3002", "example.com"],
    ["fa\u00df.de", "fa\u00df.de"], // IDNA2008 keeps sharp s
    ["localhost", "localhost"],
    ["a-b.example", "a-b.example"],
    ["192.0.2.1", "192.0.2.1"],
    ["[::1]", "[::1]"],
    ["[2001:DB8::1]", "[2001:db8::1]"],
    ["[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]"],
  ];
  for (const [input, expected] of cases) assert.equal(prepareDomain(input), expected, input);
});

test("invalid domainparts are refused", () => {
  const cases = [
    "", ".", "..", "example..com", ".example.com", "example.com..", "-example.com", "example-.com",
    "exa_mple.com", "exa mple.com", "exa%41mple.com", "ex!ample.com", "a".repeat(64) + ".com",
    "xn--zz.example", "\u00fc#x.com", "\u00fc?x.com", "\u00fc\\x.com", "\u00fc%41.com", "\u00fc\uff0fx.com",
    "1.2.3", "256.1.1.1", "01.2.3.4", "example.123", "[::1", "::1", "[example.com]", "[fe80::1%eth0]",
    "[]", "exa\u200dmple.com",
  ];
  for (const input of cases) assert.equal(malformedPart(() => prepareDomain(input)), "domain", JSON.stringify(input));
});

test("each part is limited to 1023 octets of UTF-8 after preparation", () => {
  assert.equal(prepareLocal("a".repeat(1023)).length, 1023);
  assert.equal(malformedPart(() => prepareLocal("a".repeat(1024))), "local");
  assert.equal(prepareLocal("\u00e9".repeat(511)).length, 511); // 1022 octets
  assert.equal(malformedPart(() => prepareLocal("\u00e9".repeat(512))), "local"); // 1024 octets
  assert.equal(malformedPart(() => prepareLocal("E\u0301".repeat(512))), "local"); // composes to 1024 octets
  assert.equal(prepareResource("r".repeat(1023)).length, 1023);
  assert.equal(malformedPart(() => prepareResource("r".repeat(1024))), "resource");
  assert.equal(malformedPart(() => prepareResource("\u20ac".repeat(342))), "resource"); // 1026 octets
  const labels = Array.from({ length: 16 }, () => "a".repeat(63)).join("."); // 16*63 + 15 = 1023
  assert.equal(prepareDomain(labels), labels);
  assert.equal(malformedPart(() => prepareDomain(labels.slice(0, -1) + ".b")), "domain"); // 1024
  const full = `${"l".repeat(1023)}@${labels}/${"r".repeat(1023)}`;
  assert.equal(parseJid(full).toString(), full);
  assert.equal(malformedPart(() => parseJid("x".repeat(100_000))), "jid");
});

test("differently written equivalent addresses are equal", () => {
  const groups: string[][] = [
    ["juliet@example.com/Balcony", "Juliet@EXAMPLE.COM/Balcony", "JULIET@example.com./Balcony",
      "\uff2a\uff55\uff4c\uff49\uff45\uff54@example.com/Balcony"],
    ["\u00e9mile@\u00fcnicode.example", "E\u0301MILE@xn--nicode-2ya.example", "\u00c9mile@\u00dcNICODE.example."],
    ["example.com", "EXAMPLE.com.", "example\u3002com"],
  ];
  for (const group of groups) {
    const first = parseJid(group[0]!);
    for (const other of group) {
      const jid = parseJid(other);
      assert.ok(first.equals(jid), `${group[0]} == ${other}`);
      assert.equal(jid.toString(), first.toString());
    }
  }
  assert.ok(!parseJid("a@example.com/Balcony").equals(parseJid("a@example.com/balcony")), "resources are case-sensitive");
  assert.ok(!parseJid("a@example.com").equals(parseJid("a@example.com/r")));
  assert.ok(!parseJid("example.com").equals(parseJid("a@example.com")));
});

test("bare, full and domain helpers", () => {
  const full = parseJid("Romeo@Montague.lit/Orchard");
  assert.equal(full.toString(), "romeo@montague.lit/Orchard");
  assert.equal(full.bareString(), "romeo@montague.lit");
  assert.equal(full.isBare, false);
  assert.equal(full.isDomain, false);
  const bare = full.bare;
  assert.equal(bare.toString(), "romeo@montague.lit");
  assert.equal(bare.isBare, true);
  assert.equal(bare.resource, "");
  assert.equal(bare.bare, bare);
  assert.ok(bare.withResource("Orchard").equals(full));
  assert.equal(bare.withResource("Ba\u00a0lcony").resource, "Ba lcony");
  assert.equal(malformedPart(() => bare.withResource("")), "resource");

  const domain = parseJid("montague.lit");
  assert.equal(domain.isDomain, true);
  assert.equal(domain.isBare, true);
  assert.equal(domain.local, "");
  assert.equal(domain.bareString(), "montague.lit");
  const domainFull = parseJid("montague.lit/admin");
  assert.equal(domainFull.isDomain, false);
  assert.equal(domainFull.bare.isDomain, true);

  assert.ok(full instanceof Jid);
  assert.equal(JSON.stringify({ to: full }), '{"to":"romeo@montague.lit/Orchard"}');
  assert.equal(`${full}`, "romeo@montague.lit/Orchard");
});

test("createJid prepares separate parts", () => {
  assert.equal(createJid({ local: "Romeo", domain: "Montague.LIT.", resource: "x" }).toString(), "romeo@montague.lit/x");
  assert.equal(createJid({ domain: "montague.lit" }).toString(), "montague.lit");
  assert.equal(createJid({ local: "", domain: "montague.lit", resource: "" }).isDomain, true);
  assert.equal(malformedPart(() => createJid({ local: "a@b", domain: "montague.lit" })), "local");
  assert.equal(malformedPart(() => createJid({ domain: "" })), "domain");
});

test("tryParseJid returns undefined instead of throwing", () => {
  assert.equal(tryParseJid("@example.com"), undefined);
  assert.equal(tryParseJid("juliet@example.com")?.toString(), "juliet@example.com");
});

test("parsing a canonical address gives back the same string", () => {
  for (const s of ["juliet@example.com/Balcony", "\u00e9mile@\u00fcnicode.example/\u265a", "[::1]/x", "example.com"]) {
    const once = parseJid(s).toString();
    assert.equal(parseJid(once).toString(), once);
  }
});

test("the ASCII fast path agrees with full preparation", () => {
  // createJid always takes the full path, so split by hand as RFC 7622 §3.1 does and compare.
  const slow = (s: string): string => {
    const slash = s.indexOf("/");
    const head = slash === -1 ? s : s.slice(0, slash);
    const at = head.indexOf("@");
    const parts = {
      local: at === -1 ? undefined : head.slice(0, at),
      domain: at === -1 ? head : head.slice(at + 1),
      resource: slash === -1 ? undefined : s.slice(slash + 1),
    };
    if (parts.local === "" || parts.resource === "") return "error";
    try {
      return createJid(parts).toString();
    } catch {
      return "error";
    }
  };
  const fast = (s: string): string => tryParseJid(s)?.toString() ?? "error";
  const alphabet = "ab1-.@/ A_\\:xn-";
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 5000; i++) {
    let s = "";
    const length = 1 + random(12);
    for (let j = 0; j < length; j++) s += alphabet[random(alphabet.length)];
    assert.equal(fast(s), slow(s), JSON.stringify(s));
  }
});
