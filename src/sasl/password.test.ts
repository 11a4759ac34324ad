// Tests for the PRECIS OpaqueString profile (RFC 8265 §4.2) used for passwords.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { preparePassword } from "./credentials.ts";
import { PasswordError, prepareOpaqueString } from "./password.ts";

function refuses(input: string, code: "empty" | "disallowed"): void {
  assert.throws(() => prepareOpaqueString(input), (err: unknown) => err instanceof PasswordError && err.code === code);
}

describe("prepareOpaqueString", () => {
  it("keeps ASCII, letters, symbols, punctuation and spaces", () => {
    for (const s of ["pencil", "correct horse battery staple", "Juliet!@#$%^&*()", "ÐÞß€ 你好 ∑", "πßå", "☃ 🎉"]) {
      assert.equal(prepareOpaqueString(s), s);
    }
  });

  it("maps non-ASCII spaces to U+0020", () => {
    assert.equal(prepareOpaqueString("a\u00a0b\u3000c\u2009d"), "a b c d");
  });

  it("normalises to NFC without case or width mapping", () => {
    assert.equal(prepareOpaqueString("e\u0301"), "\u00e9");
    assert.equal(prepareOpaqueString("ＡＢ"), "ＡＢ"); // fullwidth kept (HasCompat is allowed)
    assert.equal(prepareOpaqueString("Pencil"), "Pencil");
  });

  it("refuses the empty string", () => {
    refuses("", "empty");
  });

  it("refuses controls, format characters, private use, unassigned and old Hangul jamo", () => {
    for (const s of ["pass\u0000", "tab\tbed", "line\nfeed", "del\u007f", "soft\u00adhyphen", "zero\u200bwidth", "rtl\u202emark", "private\ue000", "nonchar\ufffe", "unassigned\u0378", "jamo\u1100", "sep\u2028", "lone\ud800"]) {
      refuses(s, "disallowed");
    }
  });

  it("applies contextual rules", () => {
    assert.equal(prepareOpaqueString("col·lecció"), "col·lecció");
    refuses("a·b", "disallowed");
    assert.equal(prepareOpaqueString("\u05d0\u05f3"), "\u05d0\u05f3");
    refuses("a\u05f3", "disallowed");
    assert.equal(prepareOpaqueString("\u30ab\u30fb\u30ab"), "\u30ab\u30fb\u30ab");
    refuses("a\u30fbb", "disallowed");
    refuses("\u0661\u06f1", "disallowed");
    assert.equal(prepareOpaqueString("\u0915\u094d\u200d"), "\u0915\u094d\u200d"); // ZWJ after a virama
    refuses("ab\u200d", "disallowed");
  });

  it("is what preparePassword applies", () => {
    assert.equal(preparePassword("a\u00a0b"), "a b");
    assert.throws(() => preparePassword(""), PasswordError);
  });
});
