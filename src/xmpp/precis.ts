// PRECIS string preparation: RFC 8264 (IdentifierClass, FreeformClass, §9 derived properties) and the RFC 8265 profiles UsernameCaseMapped (§3.3) and OpaqueString (§4.2).
//
// The derived property of RFC 8264 §9 is computed on the fly from JavaScript's Unicode property
// escapes instead of a generated table. What is approximated, and how:
// - The categories (LetterDigits, Spaces, Symbols, ...) and the Unassigned, Controls,
//   Default_Ignorable and Noncharacter tests are exact for the Unicode version built into V8,
//   which may be newer than the version the peer used (RFC 8264 expects such version drift).
// - HasCompat is "NFKC(cp) !== cp", which is its definition.
// - The CONTEXTJ rules (RFC 5892 Appendix A.1, A.2) cannot read Canonical_Combining_Class or
//   Joining_Type from JS: "Before(cp) is a virama" is approximated by "is a nonspacing mark", and the
//   ZWNJ joining-type rule by "between letters of a cursive-joining script (Arabic, Syriac, N'Ko,
//   Mongolian, ...)", skipping nonspacing marks. Both accept a few strings the real rules refuse.
// - The Bidi Rule (RFC 5893 §2, required by UsernameCaseMapped) needs Bidi_Class, which JS
//   regexps lack: AN and EN come from explicit digit ranges, NSM from \p{Mn}/\p{Me}, R/AL from
//   any other character of a right-to-left script, L from other letters, digits and spacing marks,
//   and everything else counts as a neutral (ON). As in most implementations, the rule is only
//   applied to strings that contain right-to-left text, so left-to-right strings never fail it.
// - Case mapping uses String#toLowerCase, which is Unicode toLowerCase() as RFC 8264 §5.2.3 asks
//   (full mappings, final sigma; no locale tailoring).
// - Width mapping (RFC 8264 §5.2.1) maps the <wide>/<narrow> characters, which all live in
//   U+3000 and U+FF00..U+FFEF, through their compatibility decomposition.

/** A string refused by a PRECIS profile; `reason` is a stable machine-readable cause. */
export class PrecisError extends Error {
  readonly reason: PrecisFailure;
  constructor(reason: PrecisFailure, message: string) {
    super(message);
    this.name = "PrecisError";
    this.reason = reason;
  }
}

/** Why a string was refused by a PRECIS profile. */
export type PrecisFailure = "empty" | "disallowed" | "unassigned" | "context" | "bidi" | "unstable";

/** The two PRECIS string classes, RFC 8264 §4. */
export type PrecisClass = "identifier" | "freeform";

/** Derived property values, RFC 8264 §8. ID_DIS/FREE_PVAL are resolved to these per class. */
type Derived = "PVALID" | "CONTEXTJ" | "CONTEXTO" | "DISALLOWED" | "UNASSIGNED";

// RFC 5892 §2.6 exceptions, reused by RFC 8264 §9.6.
const EXCEPTIONS = new Map<number, Derived>([
  [0x00df, "PVALID"], [0x03c2, "PVALID"], [0x06fd, "PVALID"], [0x06fe, "PVALID"],
  [0x0f0b, "PVALID"], [0x3007, "PVALID"],
  [0x00b7, "CONTEXTO"], [0x0375, "CONTEXTO"], [0x05f3, "CONTEXTO"], [0x05f4, "CONTEXTO"],
  [0x30fb, "CONTEXTO"],
  [0x0640, "DISALLOWED"], [0x07fa, "DISALLOWED"], [0x302e, "DISALLOWED"], [0x302f, "DISALLOWED"],
  [0x3031, "DISALLOWED"], [0x3032, "DISALLOWED"], [0x3033, "DISALLOWED"], [0x3034, "DISALLOWED"],
  [0x3035, "DISALLOWED"], [0x303b, "DISALLOWED"],
]);

const RE_UNASSIGNED = /^\p{Cn}$/u;
const RE_NONCHARACTER = /^\p{Noncharacter_Code_Point}$/u;
const RE_JOIN_CONTROL = /^\p{Join_Control}$/u;
const RE_IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u;
const RE_CONTROL = /^\p{Cc}$/u;
const RE_LETTER_DIGITS = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
const RE_OTHER_LETTER_DIGITS = /^[\p{Lt}\p{Nl}\p{No}\p{Me}]$/u;
const RE_SPACES = /^\p{Zs}$/u;
const RE_SYMBOLS = /^\p{S}$/u;
const RE_PUNCTUATION = /^\p{P}$/u;
const RE_NONSPACING = /^\p{Mn}$/u;
const RE_GREEK = /^\p{Script=Greek}$/u;
const RE_HEBREW = /^\p{Script=Hebrew}$/u;
const RE_KANA_HAN = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u;
const RE_JOINING_LETTER =
  /^[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Mandaic}\p{Script=Manichaean}\p{Script=Psalter_Pahlavi}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Sogdian}\p{Script=Phags_Pa}]$/u;
const RE_RTL_SCRIPT =
  /^[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Imperial_Aramaic}\p{Script=Phoenician}\p{Script=Kharoshthi}\p{Script=Old_South_Arabian}\p{Script=Avestan}\p{Script=Manichaean}\p{Script=Psalter_Pahlavi}\p{Script=Sogdian}\p{Script=Old_Sogdian}\p{Script=Mende_Kikakui}\p{Script=Yezidi}\p{Script=Nabataean}\p{Script=Palmyrene}\p{Script=Hatran}\p{Script=Lydian}\p{Script=Old_Hungarian}]$/u;
const RE_ANY_RTL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}]/u;
const RE_LTR = /^[\p{L}\p{Nd}\p{Mc}\p{Nl}\p{No}]$/u;
const RE_NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/gu;
const RE_WIDE_NARROW = /[\u3000\uff01-\uffee]/gu;

function isOldHangulJamo(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97f) || (cp >= 0xd7b0 && cp <= 0xd7ff);
}

/** The RFC 8264 §8 derived property of one code point for the given string class. */
export function derivedProperty(cp: number, cls: PrecisClass): Derived {
  const exception = EXCEPTIONS.get(cp);
  if (exception !== undefined) return exception;
  if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06f0 && cp <= 0x06f9)) return "CONTEXTO";
  const ch = String.fromCodePoint(cp);
  if (RE_UNASSIGNED.test(ch) && !RE_NONCHARACTER.test(ch)) return "UNASSIGNED";
  if (cp >= 0x21 && cp <= 0x7e) return "PVALID";
  if (RE_JOIN_CONTROL.test(ch)) return "CONTEXTJ";
  if (isOldHangulJamo(cp) || RE_IGNORABLE.test(ch) || RE_CONTROL.test(ch)) return "DISALLOWED";
  const freeOnly: Derived = cls === "freeform" ? "PVALID" : "DISALLOWED";
  if (ch.normalize("NFKC") !== ch) return freeOnly;
  if (RE_LETTER_DIGITS.test(ch)) return "PVALID";
  if (RE_OTHER_LETTER_DIGITS.test(ch) || RE_SPACES.test(ch) || RE_SYMBOLS.test(ch) || RE_PUNCTUATION.test(ch)) {
    return freeOnly;
  }
  return "DISALLOWED";
}

function hex(cp: number): string {
  return "U+" + cp.toString(16).toUpperCase().padStart(4, "0");
}

// RFC 5892 Appendix A contextual rules, over the code points of the whole string.
function contextAllows(cps: readonly number[], i: number): boolean {
  const cp = cps[i]!;
  const before = cps[i - 1];
  const after = cps[i + 1];
  const is = (re: RegExp, c: number | undefined): boolean => c !== undefined && re.test(String.fromCodePoint(c));
  switch (cp) {
    case 0x200c: {
      if (is(RE_NONSPACING, before)) return true;
      let j = i - 1;
      while (j >= 0 && is(RE_NONSPACING, cps[j])) j--;
      let k = i + 1;
      while (k < cps.length && is(RE_NONSPACING, cps[k])) k++;
      return is(RE_JOINING_LETTER, cps[j]) && is(RE_JOINING_LETTER, cps[k]);
    }
    case 0x200d:
      return is(RE_NONSPACING, before);
    case 0x00b7:
      return before === 0x6c && after === 0x6c;
    case 0x0375:
      return is(RE_GREEK, after);
    case 0x05f3:
    case 0x05f4:
      return is(RE_HEBREW, before);
    case 0x30fb:
      return cps.some((c) => c !== 0x30fb && RE_KANA_HAN.test(String.fromCodePoint(c)));
    default:
      if (cp >= 0x0660 && cp <= 0x0669) return !cps.some((c) => c >= 0x06f0 && c <= 0x06f9);
      if (cp >= 0x06f0 && cp <= 0x06f9) return !cps.some((c) => c >= 0x0660 && c <= 0x0669);
      return false;
  }
}

/** Throws PrecisError unless every code point of `s` is allowed in the string class (RFC 8264 §4.2, §4.3). */
export function checkStringClass(s: string, cls: PrecisClass): void {
  const cps = Array.from(s, (c) => c.codePointAt(0)!);
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i]!;
    const prop = derivedProperty(cp, cls);
    if (prop === "PVALID") continue;
    if (prop === "UNASSIGNED") throw new PrecisError("unassigned", `unassigned code point ${hex(cp)}`);
    if (prop === "DISALLOWED") throw new PrecisError("disallowed", `code point ${hex(cp)} is not allowed in the ${cls} class`);
    if (!contextAllows(cps, i)) throw new PrecisError("context", `code point ${hex(cp)} is not allowed in this context`);
  }
}

type BidiClass = "L" | "R" | "AN" | "EN" | "NSM" | "ON";

function bidiClass(cp: number): BidiClass {
  if ((cp >= 0x0600 && cp <= 0x0605) || (cp >= 0x0660 && cp <= 0x0669) || cp === 0x066b || cp === 0x066c ||
    cp === 0x06dd || cp === 0x0890 || cp === 0x0891 || cp === 0x08e2 || (cp >= 0x10d30 && cp <= 0x10d39) ||
    (cp >= 0x10e60 && cp <= 0x10e7e)) return "AN";
  if ((cp >= 0x30 && cp <= 0x39) || (cp >= 0x06f0 && cp <= 0x06f9) || cp === 0xb2 || cp === 0xb3 || cp === 0xb9 ||
    (cp >= 0x2070 && cp <= 0x2089) || (cp >= 0xff10 && cp <= 0xff19)) return "EN";
  const ch = String.fromCodePoint(cp);
  if (/^[\p{Mn}\p{Me}]$/u.test(ch)) return "NSM";
  if (RE_RTL_SCRIPT.test(ch)) return "R";
  if (RE_LTR.test(ch)) return "L";
  return "ON";
}

/** Throws PrecisError if `s` contains right-to-left text and breaks the RFC 5893 §2 Bidi Rule (approximated, see file header). */
export function checkBidiRule(s: string): void {
  if (!RE_ANY_RTL.test(s)) return;
  const classes = Array.from(s, (c) => bidiClass(c.codePointAt(0)!));
  if (!classes.some((c) => c === "R" || c === "AN")) return;
  const fail = (rule: number): never => {
    throw new PrecisError("bidi", `right-to-left string breaks Bidi Rule ${rule} (RFC 5893 §2)`);
  };
  const first = classes[0];
  if (first !== "L" && first !== "R") fail(1);
  let last = classes.length - 1;
  while (last > 0 && classes[last] === "NSM") last--;
  const end = classes[last];
  if (first === "R") {
    if (classes.includes("L")) fail(2);
    if (end !== "R" && end !== "EN" && end !== "AN") fail(3);
    if (classes.includes("EN") && classes.includes("AN")) fail(4);
  } else {
    if (classes.includes("R") || classes.includes("AN")) fail(5);
    if (end !== "L" && end !== "EN") fail(6);
  }
}

function widthMap(s: string): string {
  return s.replace(RE_WIDE_NARROW, (c) => c.normalize("NFKC"));
}

// RFC 8264 §7: apply the rules until the output is stable, giving up after three extra rounds.
function enforce(s: string, rules: (s: string) => string): string {
  let current = s;
  for (let round = 0; round < 4; round++) {
    const next = rules(current);
    if (next === current) return next;
    current = next;
  }
  throw new PrecisError("unstable", "string does not stabilise under the profile's rules");
}

function usernameRules(s: string): string {
  return widthMap(s).toLowerCase().normalize("NFC");
}

function opaqueRules(s: string): string {
  return s.replace(RE_NON_ASCII_SPACE, " ").normalize("NFC");
}

const RE_ASCII_IDENTIFIER = /^[\x21-\x7e]+$/;
const RE_ASCII_FREEFORM = /^[\x20-\x7e]+$/;

/** Enforces the UsernameCaseMapped profile (RFC 8265 §3.3): width map, lowercase, NFC, IdentifierClass, Bidi Rule. */
export function prepareUsernameCaseMapped(s: string): string {
  if (s === "") throw new PrecisError("empty", "string is empty");
  // Printable ASCII is all PVALID, has no width or normalization mappings and no RTL text.
  if (RE_ASCII_IDENTIFIER.test(s)) return s.toLowerCase();
  const out = enforce(s, usernameRules);
  if (out === "") throw new PrecisError("empty", "string is empty after preparation");
  checkStringClass(out, "identifier");
  checkBidiRule(out);
  return out;
}

/** Enforces the OpaqueString profile (RFC 8265 §4.2), used for passwords and XMPP resourceparts: spaces to U+0020, NFC, FreeformClass. */
export function prepareOpaqueString(s: string): string {
  if (s === "") throw new PrecisError("empty", "string is empty");
  // Printable ASCII plus U+0020 is all valid in the FreeformClass and NFC-stable.
  if (RE_ASCII_FREEFORM.test(s)) return s;
  const out = enforce(s, opaqueRules);
  if (out === "") throw new PrecisError("empty", "string is empty after preparation");
  checkStringClass(out, "freeform");
  return out;
}
