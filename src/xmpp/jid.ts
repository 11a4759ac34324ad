// XMPP addresses (JIDs): parsing, preparation and comparison per RFC 7622 §3 (localpart via RFC 8265 UsernameCaseMapped, domainpart via IDNA/UTS #46, resourcepart via OpaqueString).
import { isIPv4, isIPv6 } from "node:net";
import { domainToASCII, domainToUnicode } from "node:url";
import { PrecisError, prepareOpaqueString, prepareUsernameCaseMapped } from "./precis.ts";

/** Which part of an address was malformed ("jid" when the whole string was). */
export type JidPart = "local" | "domain" | "resource" | "jid";

/** A malformed address; callers answer with the `jid-malformed` stanza error (RFC 6120 §8.3.3.8). */
export class JidError extends Error {
  readonly condition = "jid-malformed";
  readonly part: JidPart;
  constructor(part: JidPart, message: string) {
    super(message);
    this.name = "JidError";
    this.part = part;
  }
}

/** The parts of an address, for building a Jid without going through a string. */
export interface JidParts {
  local?: string | undefined;
  domain: string;
  resource?: string | undefined;
}

// RFC 7622 §3.1: each part is at most 1023 octets of UTF-8 after preparation.
const MAX_PART_BYTES = 1023;
// Cheap guard before any Unicode work: preparation can shrink a string (NFC composition, width
// mapping), but never by 4 UTF-16 units per output octet, so nothing longer can become valid.
const MAX_INPUT_UNITS = 4 * (3 * MAX_PART_BYTES + 2);

let construct: (local: string, domain: string, resource: string) => Jid;

/** An immutable, prepared XMPP address; all parts are in canonical form, absent parts are "". */
export class Jid {
  readonly local: string;
  readonly domain: string;
  readonly resource: string;
  readonly #string: string;

  static {
    construct = (local, domain, resource) => new Jid(local, domain, resource);
  }

  private constructor(local: string, domain: string, resource: string) {
    this.local = local;
    this.domain = domain;
    this.resource = resource;
    const bare = local === "" ? domain : `${local}@${domain}`;
    this.#string = resource === "" ? bare : `${bare}/${resource}`;
  }

  /** The address without its resourcepart (itself when already bare). */
  get bare(): Jid {
    return this.resource === "" ? this : construct(this.local, this.domain, "");
  }

  /** True when there is no resourcepart. */
  get isBare(): boolean {
    return this.resource === "";
  }

  /** True for a plain domain address: no localpart and no resourcepart. */
  get isDomain(): boolean {
    return this.local === "" && this.resource === "";
  }

  /** The canonical string form, `local@domain/resource` with absent parts left out. */
  toString(): string {
    return this.#string;
  }

  /** Serializes as the canonical string (for JSON logs). */
  toJSON(): string {
    return this.#string;
  }

  /** The canonical string of the bare address. */
  bareString(): string {
    return this.local === "" ? this.domain : `${this.local}@${this.domain}`;
  }

  /** True when both addresses are the same after preparation (RFC 7622 §3.1 comparison). */
  equals(other: Jid): boolean {
    return this === other || this.#string === other.#string;
  }

  /** A copy with the given resourcepart, prepared with OpaqueString; throws JidError if invalid. */
  withResource(resource: string): Jid {
    return construct(this.local, this.domain, prepareResource(resource));
  }
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function checkLength(part: JidPart, s: string): string {
  // ASCII strings are 1 octet per unit; skip the byte count when even 3 octets per unit fit.
  if (s.length * 3 > MAX_PART_BYTES && utf8Length(s) > MAX_PART_BYTES) {
    throw new JidError(part, `${part}part longer than ${MAX_PART_BYTES} octets`);
  }
  return s;
}

function precis(part: JidPart, s: string, profile: (s: string) => string): string {
  if (s === "") throw new JidError(part, `empty ${part}part`);
  if (s.length > MAX_INPUT_UNITS) throw new JidError(part, `${part}part is too long`);
  try {
    return profile(s);
  } catch (err) {
    if (err instanceof PrecisError) throw new JidError(part, `invalid ${part}part: ${err.message}`);
    throw err;
  }
}

// RFC 7622 §3.3.1: characters that PRECIS allows but XMPP localparts must not contain.
const RE_LOCAL_FORBIDDEN = /["&'/:<>@]/;

/** Prepares a localpart (RFC 7622 §3.3: UsernameCaseMapped, minus " & ' / : < > @); throws JidError. */
export function prepareLocal(s: string): string {
  const out = precis("local", s, prepareUsernameCaseMapped);
  const bad = RE_LOCAL_FORBIDDEN.exec(out);
  if (bad !== null) throw new JidError("local", `character '${bad[0]}' is not allowed in a localpart`);
  return checkLength("local", out);
}

/** Prepares a resourcepart (RFC 7622 §3.4: OpaqueString); throws JidError. */
export function prepareResource(s: string): string {
  return checkLength("resource", precis("resource", s, prepareOpaqueString));
}

const RE_LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const RE_NUMERIC = /^[0-9]+$/;
// Label separators that RFC 3490 §3.1 and UTS #46 treat like '.' (after NFKC only U+3002 is left).
const RE_DOTS = /[.\u3002]/;
const RE_ASCII = /^[\x00-\x7f]*$/;

// Validates a lowercase ASCII domain (A-labels allowed) and says whether it holds A-labels.
function checkAsciiDomain(a: string): boolean {
  const labels = a.split(".");
  let hasALabel = false;
  for (const label of labels) {
    if (label === "") throw new JidError("domain", "empty label in domainpart");
    if (label.length > 63) throw new JidError("domain", "domain label longer than 63 octets");
    if (!RE_LDH_LABEL.test(label)) throw new JidError("domain", `invalid domain label "${label}"`);
    if (label.startsWith("xn--")) hasALabel = true;
  }
  // A dotted-decimal IPv4 literal (RFC 3986 IPv4address); other all-numeric endings are not hostnames.
  if (RE_NUMERIC.test(labels[labels.length - 1]!) && !isIPv4(a)) {
    throw new JidError("domain", "domainpart looks numeric but is not an IPv4 address");
  }
  return hasALabel;
}

/** Prepares a domainpart (RFC 7622 §3.2) to lowercase U-labels, or an IP literal; throws JidError. */
export function prepareDomain(s: string): string {
  if (s === "") throw new JidError("domain", "empty domainpart");
  if (s.length > MAX_INPUT_UNITS) throw new JidError("domain", "domainpart is too long");
  if (s.startsWith("[")) {
    const inner = s.endsWith("]") ? s.slice(1, -1) : "";
    if (!isIPv6(inner) || inner.includes("%")) throw new JidError("domain", "invalid IPv6 literal");
    return `[${inner.toLowerCase()}]`;
  }
  // RFC 7622 §3.2: strip one trailing label separator before anything else.
  let d = /[.\u3002\uff0e\uff61]$/.test(s) ? s.slice(0, -1) : s;
  if (d === "") throw new JidError("domain", "empty domainpart");
  if (RE_ASCII.test(d)) {
    d = d.toLowerCase();
    if (!checkAsciiDomain(d)) return checkLength("domain", d);
  } else {
    // UTS #46 (via WHATWG URL) would percent-decode or cut the name at ASCII delimiters such as
    // '#', '?' or '\\', so refuse every ASCII character that is not LDH or '.' first, including those
    // that only appear after compatibility mapping (fullwidth solidus and the like).
    const n = d.normalize("NFKC");
    if (/[^\x80-\u{10ffff}a-zA-Z0-9.-]/u.test(n)) throw new JidError("domain", "invalid character in domainpart");
    const ascii = domainToASCII(n);
    if (ascii === "") throw new JidError("domain", "domainpart is not a valid internationalized domain name");
    if (ascii.split(".").length !== n.split(RE_DOTS).length) {
      throw new JidError("domain", "domainpart changed shape under IDNA mapping");
    }
    checkAsciiDomain(ascii);
    d = ascii;
  }
  // Canonical form is U-labels (RFC 7622 §3.2); the round trip also validates A-labels.
  const unicode = domainToUnicode(d);
  if (unicode === "" || domainToASCII(unicode) !== d) {
    throw new JidError("domain", "domainpart holds an invalid A-label");
  }
  return checkLength("domain", unicode.toLowerCase());
}

function build(local: string | undefined, domain: string, resource: string | undefined): Jid {
  return construct(
    local === undefined ? "" : prepareLocal(local),
    prepareDomain(domain),
    resource === undefined ? "" : prepareResource(resource),
  );
}

// Fast path for the common case, already in canonical form: printable ASCII, no uppercase or
// forbidden characters in the localpart, lowercase LDH labels with no trailing dot
// and a last label starting with a letter (so never an IPv4 literal). Addresses that
// fail this test are not necessarily invalid; they take the full preparation path below.
const RE_CANONICAL_ASCII =
  /^(?:([a-z0-9!#$%*+\-.;=?^_`{|}~,()[\]\\]+)@)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\/([\x20-\x7e]+))?$/;

/** Parses and prepares an address (RFC 7622 §3.1); throws JidError for anything malformed. */
export function parseJid(s: string): Jid {
  if (typeof s !== "string") throw new JidError("jid", "address is not a string");
  // Every stanza carries addresses, and the same few recur (a conversation, a peer's domain): a parsed Jid is
  // immutable, so the last few thousand are kept by their text. Only successful parses are kept.
  const hit = recent.get(s);
  if (hit !== undefined) return hit;
  const jid = parseUncached(s);
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(s, jid);
  return jid;
}

const RECENT_MAX = 4096;
const recent = new Map<string, Jid>();

function parseUncached(s: string): Jid {
  if (s.length > MAX_INPUT_UNITS) throw new JidError("jid", "address is too long");
  const m = s.length <= MAX_PART_BYTES ? RE_CANONICAL_ASCII.exec(s) : null;
  if (m !== null && !m[2]!.includes("xn--")) return construct(m[1] ?? "", m[2]!, m[3] ?? "");
  // The resourcepart starts at the first '/', so it may itself contain '@' and '/'.
  const slash = s.indexOf("/");
  const head = slash === -1 ? s : s.slice(0, slash);
  const at = head.indexOf("@");
  return build(
    at === -1 ? undefined : head.slice(0, at),
    at === -1 ? head : head.slice(at + 1),
    slash === -1 ? undefined : s.slice(slash + 1),
  );
}

/** Like parseJid, but returns undefined instead of throwing on malformed input. */
export function tryParseJid(s: string): Jid | undefined {
  try {
    return parseJid(s);
  } catch (err) {
    if (err instanceof JidError) return undefined;
    throw err;
  }
}

/** Builds an address from separate parts, preparing each (an empty string counts as absent); throws JidError. */
export function createJid(parts: JidParts): Jid {
  const { local, domain, resource } = parts;
  return build(local === "" ? undefined : local, domain, resource === "" ? undefined : resource);
}
