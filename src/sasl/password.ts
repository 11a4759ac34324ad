// PRECIS OpaqueString profile for passwords (RFC 8265 §4.2 over the FreeformClass of RFC 8264 §4.3, §7, §9; RFC 5892 Appendix A rules).

/** Why a string was refused by the OpaqueString profile. */
export type PasswordErrorCode = "empty" | "disallowed";

/** Thrown when a password cannot be prepared (empty after preparation, or a disallowed code point). */
export class PasswordError extends Error {
  readonly code: PasswordErrorCode;
  /** The offending code point, for "disallowed". */
  readonly codePoint: number | undefined;

  constructor(code: PasswordErrorCode, codePoint?: number) {
    super(
      code === "empty"
        ? "password is empty"
        : `password contains a character the PRECIS OpaqueString profile disallows (U+${(codePoint ?? 0).toString(16).toUpperCase().padStart(4, "0")})`,
    );
    this.name = "PasswordError";
    this.code = code;
    this.codePoint = codePoint;
  }
}

// RFC 8265 §4.2.1 additional mapping: non-ASCII spaces (Zs other than U+0020) become U+0020.
const NON_ASCII_SPACE = /(?!\u0020)\p{Zs}/gu;

// RFC 5892 §2.6 exceptions that matter after the FreeformClass derivation (RFC 8264 §9.6).
const EXCEPTION_PVALID = new Set([0x00df, 0x03c2, 0x06fd, 0x06fe, 0x0f0b, 0x3007]);
const EXCEPTION_DISALLOWED = new Set([0x0640, 0x07fa, 0x302e, 0x302f, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303b]);

const UNASSIGNED = /^\p{Cn}$/u;
const IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u;
const CONTROL = /^\p{Cc}$/u;
// LetterDigits, OtherLetterDigits, Spaces, Symbols, Punctuation (RFC 8264 §9.1, §9.14, §9.15, §9.16, §9.17, §9.18).
const FREEFORM_VALID = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}\p{Lt}\p{Nl}\p{No}\p{Me}\p{Zs}\p{Sm}\p{Sc}\p{Sk}\p{So}\p{Pc}\p{Pd}\p{Ps}\p{Pe}\p{Pi}\p{Pf}\p{Po}]$/u;
const MARK = /^\p{M}$/u;
const LETTER = /^\p{L}$/u;
const GREEK = /^\p{Script=Greek}$/u;
const HEBREW = /^\p{Script=Hebrew}$/u;
const KANA_HAN = /^[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]$/u;

function isOldHangulJamo(cp: number): boolean {
  // Hangul_Syllable_Type L, V and T (RFC 5892 §2.9).
  return (
    (cp >= 0x1100 && cp <= 0x11ff) ||
    (cp >= 0xa960 && cp <= 0xa97c) ||
    (cp >= 0xd7b0 && cp <= 0xd7c6) ||
    (cp >= 0xd7cb && cp <= 0xd7fb)
  );
}

function is(re: RegExp, cp: number | undefined): boolean {
  return cp !== undefined && re.test(String.fromCodePoint(cp));
}

/** CONTEXTO rules of RFC 5892 Appendix A.3 to A.9, evaluated over the whole string. */
function contextOk(cps: number[], i: number): boolean {
  const cp = cps[i]!;
  const before = cps[i - 1];
  const after = cps[i + 1];
  switch (cp) {
    case 0x00b7: // MIDDLE DOT: only between two 'l' (Catalan).
      return before === 0x6c && after === 0x6c;
    case 0x0375: // GREEK LOWER NUMERAL SIGN: followed by Greek.
      return is(GREEK, after);
    case 0x05f3:
    case 0x05f4: // HEBREW GERESH / GERSHAYIM: preceded by Hebrew.
      return is(HEBREW, before);
    case 0x30fb: // KATAKANA MIDDLE DOT: the string has Hiragana, Katakana or Han.
      return cps.some((c) => c !== 0x30fb && is(KANA_HAN, c));
  }
  if (cp >= 0x0660 && cp <= 0x0669) return !cps.some((c) => c >= 0x06f0 && c <= 0x06f9);
  if (cp >= 0x06f0 && cp <= 0x06f9) return !cps.some((c) => c >= 0x0660 && c <= 0x0669);
  return true;
}

function isContextO(cp: number): boolean {
  return cp === 0x00b7 || cp === 0x0375 || cp === 0x05f3 || cp === 0x05f4 || cp === 0x30fb || (cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06f0 && cp <= 0x06f9);
}

/**
 * CONTEXTJ for ZERO WIDTH (NON-)JOINER (RFC 5892 Appendix A.1, A.2). Approximation: JavaScript cannot read the
 * Canonical_Combining_Class or Joining_Type properties, so "after a virama" is read as "after a combining mark"
 * and the ZWNJ joining rule as "between two letters". This accepts a little more than the exact rule.
 */
function joinerOk(cps: number[], i: number): boolean {
  const before = cps[i - 1];
  if (is(MARK, before)) return true;
  return cps[i] === 0x200c && is(LETTER, before) && is(LETTER, cps[i + 1]);
}

/** Whether one code point is allowed by the FreeformClass at position `i` (RFC 8264 §8 derivation order). */
function allowed(cps: number[], i: number): boolean {
  const cp = cps[i]!;
  if (EXCEPTION_PVALID.has(cp)) return true;
  if (EXCEPTION_DISALLOWED.has(cp)) return false;
  if (isContextO(cp)) return contextOk(cps, i);
  if (is(UNASSIGNED, cp)) return false;
  if (cp >= 0x21 && cp <= 0x7e) return true;
  if (cp === 0x200c || cp === 0x200d) return joinerOk(cps, i);
  if (isOldHangulJamo(cp)) return false;
  if (is(IGNORABLE, cp)) return false;
  if (is(CONTROL, cp)) return false;
  const ch = String.fromCodePoint(cp);
  if (ch.normalize("NFKC") !== ch) return true; // HasCompat: FREE_PVAL
  return FREEFORM_VALID.test(ch); // Cf, Co, Cs, Zl, Zp fall through to DISALLOWED
}

/** Enforce the PRECIS OpaqueString profile (RFC 8265 §4.2.2) on a password; throws PasswordError when it is not allowed. */
export function prepareOpaqueString(input: string): string {
  const mapped = input.replace(NON_ASCII_SPACE, " ").normalize("NFC");
  if (mapped.length === 0) throw new PasswordError("empty");
  const cps = Array.from(mapped, (ch) => ch.codePointAt(0)!);
  for (let i = 0; i < cps.length; i++) {
    if (!allowed(cps, i)) throw new PasswordError("disallowed", cps[i]);
  }
  return mapped;
}
