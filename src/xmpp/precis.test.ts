// Tests for PRECIS preparation: RFC 8264 derived properties and the RFC 8265 UsernameCaseMapped and OpaqueString profiles.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PrecisError,
  checkBidiRule,
  derivedProperty,
  prepareOpaqueString,
  prepareUsernameCaseMapped,
  type PrecisFailure,
} from "./precis.ts";

function failure(fn: () => unknown): PrecisFailure | "no error" {
  try {
    fn();
    return "no error";
  } catch (err) {
    assert.ok(err instanceof PrecisError, `expected PrecisError, got ${String(err)}`);
    return err.reason;
  }
}

test("derived properties follow RFC 8264 §9 for both classes", () => {
  const cases: Array<[number, string, string]> = [
    // [code point, identifier class, freeform class]
    [0x61, "PVALID", "PVALID"], // ASCII7
    [0x20, "DISALLOWED", "PVALID"], // Spaces
    [0x00df, "PVALID", "PVALID"], // exception: sharp s
    [0x0640, "DISALLOWED", "DISALLOWED"], // exception: Arabic tatweel
    [0x00b7, "CONTEXTO", "CONTEXTO"], // exception: middle dot
    [0x0663, "CONTEXTO", "CONTEXTO"], // Arabic-Indic digit
    [0x200d, "CONTEXTJ", "CONTEXTJ"], // JoinControl
    [0x1100, "DISALLOWED", "DISALLOWED"], // OldHangulJamo
    [0x00ad, "DISALLOWED", "DISALLOWED"], // Default_Ignorable
    [0xfdd0, "DISALLOWED", "DISALLOWED"], // noncharacter
    [0x0007, "DISALLOWED", "DISALLOWED"], // control
    [0xfb01, "DISALLOWED", "PVALID"], // HasCompat: ligature fi
    [0x2163, "DISALLOWED", "PVALID"], // HasCompat: Roman numeral four
    [0x03c0, "PVALID", "PVALID"], // letter
    [0x0301, "PVALID", "PVALID"], // Mn
    [0x265a, "DISALLOWED", "PVALID"], // symbol
    [0x00bf, "DISALLOWED", "PVALID"], // punctuation
    [0x0378, "UNASSIGNED", "UNASSIGNED"],
    [0xe000, "DISALLOWED", "DISALLOWED"], // private use
    [0x2028, "DISALLOWED", "DISALLOWED"], // line separator
  ];
  for (const [cp, identifier, freeform] of cases) {
    assert.equal(derivedProperty(cp, "identifier"), identifier, `identifier U+${cp.toString(16)}`);
    assert.equal(derivedProperty(cp, "freeform"), freeform, `freeform U+${cp.toString(16)}`);
  }
});

test("UsernameCaseMapped maps width and case and composes to NFC", () => {
  const cases: Array<[string, string]> = [
    ["Juliet", "juliet"],
    ["ＪＵＬＩＥＴ", "juliet"], // fullwidth
    ["ｶ", "カ"], // halfwidth katakana
    ["ΣΑΣ", "σας"], // final sigma
    ["fo\u0301o", "f\u00f3o"], // NFC
    ["Fußball", "fußball"], // sharp s is kept, not folded to ss
    ["\u1100\u1161", "\uac00"], // conjoining jamo compose to a syllable
    ["foo\\20bar", "foo\\20bar"], // XEP-0106 escapes are plain ASCII
  ];
  for (const [input, expected] of cases) assert.equal(prepareUsernameCaseMapped(input), expected, input);
});

test("UsernameCaseMapped refuses what the IdentifierClass disallows", () => {
  const cases: Array<[string, PrecisFailure]> = [
    ["", "empty"],
    ["foo bar", "disallowed"], // U+0020
    ["foo\u00a0bar", "disallowed"], // HasCompat space
    ["henry\u2163", "disallowed"],
    ["\u265a", "disallowed"],
    ["\ufb01x", "disallowed"],
    ["a\u0007", "disallowed"],
    ["a\u00adb", "disallowed"],
    ["a\u0378", "unassigned"],
    ["\u1100", "disallowed"], // lone old Hangul jamo
    ["a\u200db", "context"], // ZWJ not after a virama
    ["a\u00b7b", "context"], // middle dot outside l·l
    ["\u0375a", "context"], // Greek keraia before a non-Greek letter
    ["a\u05f3", "context"], // Hebrew geresh after a non-Hebrew letter
    ["\u30fbx", "context"], // katakana middle dot without kana or Han
    ["\u0661\u06f1", "context"], // mixed Arabic-Indic digit sets
    ["a\u05d0", "bidi"],
    ["1\u05d0", "bidi"],
    ["\u05d0a", "bidi"],
  ];
  for (const [input, reason] of cases) assert.equal(failure(() => prepareUsernameCaseMapped(input)), reason, JSON.stringify(input));
});

test("contextual rules accept the contexts RFC 5892 allows", () => {
  for (const input of ["l\u00b7l", "\u0375\u03b1", "\u05d0\u05f3", "\u30ab\u30fb\u30ab", "\u0915\u094d\u200d\u0937", "\u0644\u200c\u0628", "\u0628\u0661\u0662"]) {
    assert.equal(prepareUsernameCaseMapped(input), input.normalize("NFC"), JSON.stringify(input));
  }
});

test("the Bidi Rule leaves left-to-right strings alone and accepts clean right-to-left ones", () => {
  for (const s of ["abc", "a-", "-1", "\u05d0\u05d1", "\u05d0\u05d1 1", "\u0627\u0644\u0661"]) {
    assert.doesNotThrow(() => checkBidiRule(s), JSON.stringify(s));
  }
  assert.throws(() => checkBidiRule("\u05d0-"), PrecisError); // rule 3: must end strongly
  assert.throws(() => checkBidiRule("\u0627\u0661" + "1"), PrecisError); // rule 4: EN with AN
});

test("OpaqueString maps spaces, composes to NFC and keeps case and width", () => {
  const cases: Array<[string, string]> = [
    ["correct horse battery staple", "correct horse battery staple"],
    ["Ｐａｓｓ", "Ｐａｓｓ"],
    ["a\u00a0b\u3000c", "a b c"],
    ["\u00e9\u0301", "\u00e9\u0301"], // no composition exists: stays
    ["e\u0301", "\u00e9"],
    ["\u265a \ufb01 \u2163", "\u265a \ufb01 \u2163"],
    [" ", " "],
  ];
  for (const [input, expected] of cases) assert.equal(prepareOpaqueString(input), expected, JSON.stringify(input));
});

test("OpaqueString refuses empty strings, controls, ignorables and unassigned code points", () => {
  const cases: Array<[string, PrecisFailure]> = [
    ["", "empty"],
    ["a\u0000", "disallowed"],
    ["tab\there", "disallowed"],
    ["a\u200b", "disallowed"], // zero width space is Default_Ignorable
    ["\ue000", "disallowed"],
    ["\ud800", "disallowed"], // lone surrogate
    ["a\u0378", "unassigned"],
  ];
  for (const [input, reason] of cases) assert.equal(failure(() => prepareOpaqueString(input)), reason, JSON.stringify(input));
});
