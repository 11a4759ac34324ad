// Hand-written single-pass streaming XML parser for XMPP streams (RFC 6120 §11 restricted XML; XML 1.0 5th ed. §2.2-2.11,
// §3.1-3.3, §4.1, §4.6; Namespaces in XML 1.0 §3-6). A drop-in replacement for StreamParser (./parser.ts): same handlers,
// limits and XmlError conditions, with no tokenizer objects in between. Differences and figures: docs/xml-parser.md.
import { TextDecoder } from "node:util";
import { Element } from "./element.ts";
import { DEFAULT_LIMITS, XmlError, type ParserLimits, type StreamParserHandlers } from "./parser.ts";

const XML_NS = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS = "http://www.w3.org/2000/xmlns/";

// Parser states. Each names what the next character continues.
const BEGIN = 0; // start of the document: leading whitespace, then '<'
const TEXT = 1; // character data (or whitespace outside the root)
const LT = 2; // after '<'
const OPEN_NAME = 3; // start-tag name
const IN_TAG = 4; // inside a start tag, between attributes
const ATTR_NAME = 5;
const ATTR_EQ = 6; // after an attribute name, before '='
const ATTR_QUOTE = 7; // after '=', before the opening quote
const ATTR_VALUE = 8;
const SLASH = 9; // '/' in a start tag, '>' must follow
const CLOSE_NAME = 10; // end-tag name
const CLOSE_WS = 11; // whitespace after an end-tag name
const ENTITY = 12; // a reference split across chunks
const BANG = 13; // after '<!'
const CDATA = 14;
const PI = 15; // processing-instruction target
const DECL = 16; // inside the XML declaration

// XML declaration sub-states (XML 1.0 §2.8 [23]-[27], [32]).
const D_NAME_START = 0;
const D_NAME = 1;
const D_EQ = 2;
const D_VALUE_START = 3;
const D_VALUE = 4;
const D_SEP = 5;
const D_ENDING = 6;

/** ASCII name characters: 1 = NameChar, 3 = NameStartChar too (XML 1.0 5th ed. §2.3 [4], [4a]). */
const NAME = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z_:]/.test(ch)) NAME[c] = 3;
  else if (/[-.0-9]/.test(ch)) NAME[c] = 1;
}

/** Length in code units (0, 1 or 2) of the non-ASCII name character at s[i]; `start` asks for NameStartChar. */
function nonAsciiName(s: string, i: number, start: boolean): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = s.charCodeAt(i + 1);
    if (d < 0xdc00 || d > 0xdfff) return 0;
    // A supplementary character: name (start) characters are U+10000-U+EFFFF, i.e. high surrogates D800-DB7F.
    return c <= 0xdb7f ? 2 : 0;
  }
  if (
    (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff) || (c >= 0x370 && c <= 0x37d) ||
    (c >= 0x37f && c <= 0x1fff) || c === 0x200c || c === 0x200d || (c >= 0x2070 && c <= 0x218f) ||
    (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xd7ff) || (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd)
  ) {
    return 1;
  }
  if (!start && (c === 0xb7 || (c >= 0x300 && c <= 0x36f) || c === 0x203f || c === 0x2040)) return 1;
  return 0;
}

/** Whether `code` may appear in an XML 1.0 document (§2.2 [2] Char). */
function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

function isWhitespace(t: string): boolean {
  for (let i = 0; i < t.length; i++) if (!isSpace(t.charCodeAt(i))) return false;
  return true;
}

function nwf(message: string): XmlError {
  return new XmlError("not-well-formed", message);
}

function badChar(s: string, i: number): XmlError {
  return nwf(`character U+${s.charCodeAt(i).toString(16).toUpperCase().padStart(4, "0")} is not allowed`);
}

/** Namespace declarations may not rebind xml/xmlns or bind their URIs elsewhere (Namespaces in XML 1.0 §3). */
function checkBinding(prefix: string, uri: string): void {
  if (prefix === "xml" ? uri !== XML_NS : uri === XML_NS) throw nwf("the xml prefix and its namespace are bound only to each other");
  if (prefix === "xmlns" || uri === XMLNS_NS) throw nwf("the xmlns prefix and namespace cannot be declared");
}

/** A prefixed attribute name must be prefix:local; a prefixed declaration must bind a non-empty, allowed URI. */
function checkAttrName(name: string, colon: number, value: string): void {
  const local = name.slice(colon + 1);
  if (colon === 0 || local === "" || local.includes(":")) throw nwf(`malformed name ${name}`);
  if (colon === 5 && name.startsWith("xmlns")) {
    const uri = value.trim();
    if (uri === "") throw nwf(`prefix ${local} cannot be undeclared in XML 1.0`);
    checkBinding(local, uri);
  }
}

/** Value of a predefined entity (XML 1.0 §4.6), or undefined. */
function predefined(name: string): string | undefined {
  switch (name) {
    case "lt": return "<";
    case "gt": return ">";
    case "amp": return "&";
    case "quot": return '"';
    case "apos": return "'";
    default: return undefined;
  }
}

/** Replacement text of the last reference matched by quickReference. */
let quickOut = "";

/**
 * A complete, valid reference starting after '&' at s[i] and ending before n: returns the index after ';' with the
 * replacement in quickOut, else -1 (split by the chunk end, or invalid: the incremental path then reports why).
 */
function quickReference(s: string, i: number, n: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x23) {
    let j = i + 1;
    let v = 0;
    if (s.charCodeAt(j) === 0x78) {
      const from = ++j;
      for (; j < n && j - from < 8; j++) {
        const d = s.charCodeAt(j);
        if (d >= 0x30 && d <= 0x39) v = v * 16 + d - 0x30;
        else if ((d | 0x20) >= 0x61 && (d | 0x20) <= 0x66) v = v * 16 + (d | 0x20) - 0x57;
        else break;
      }
      if (j === from) return -1;
    } else {
      const from = j;
      for (; j < n && j - from < 8; j++) {
        const d = s.charCodeAt(j);
        if (d >= 0x30 && d <= 0x39) v = v * 10 + d - 0x30;
        else break;
      }
      if (j === from) return -1;
    }
    if (j >= n || s.charCodeAt(j) !== 0x3b || !isXmlChar(v)) return -1;
    quickOut = String.fromCodePoint(v);
    return j + 1;
  }
  if (i + 3 >= n) return -1;
  const c1 = s.charCodeAt(i + 1);
  const c2 = s.charCodeAt(i + 2);
  if (c2 === 0x3b) {
    if (c1 !== 0x74) return -1;
    if (c === 0x6c) quickOut = "<";
    else if (c === 0x67) quickOut = ">";
    else return -1;
    return i + 3;
  }
  if (c === 0x61 && c1 === 0x6d && c2 === 0x70 && s.charCodeAt(i + 3) === 0x3b) {
    quickOut = "&";
    return i + 4;
  }
  if (i + 4 >= n || s.charCodeAt(i + 4) !== 0x3b) return -1;
  const c3 = s.charCodeAt(i + 3);
  if (c === 0x71 && c1 === 0x75 && c2 === 0x6f && c3 === 0x74) quickOut = '"';
  else if (c === 0x61 && c1 === 0x70 && c2 === 0x6f && c3 === 0x73) quickOut = "'";
  else return -1;
  return i + 5;
}

// Entity-reference progress: what the next character may be.
const E_START = 0; // after '&'
const E_NAME = 1; // inside a name
const E_HASH = 2; // after '&#'
const E_DEC = 3; // decimal digits
const E_X = 4; // after '&#x'
const E_HEX = 5; // hex digits

/**
 * Incremental parser for one XML stream, API-compatible with StreamParser: `write` takes raw bytes (UTF-8 enforced)
 * or decoded text and throws XmlError on the first violation; after an error nothing more is parsed until `reset`.
 */
export class FastStreamParser {
  readonly #handlers: StreamParserHandlers;
  limits: ParserLimits;
  #decoder!: TextDecoder;
  #failed: XmlError | undefined;
  /** Incremented by reset(): a reset from inside a handler ends the parse of the current chunk. */
  #generation = 0;
  #first = true;
  /** A trailing CR or high surrogate held back until the next chunk shows what follows it. */
  #carry = "";
  /** Stream position (UTF-16 units after the BOM) of index 0 of the chunk being parsed. */
  #base = 0;
  #consumed = 0;
  #stanzaStart = 0;
  #state = BEGIN;
  /** Open elements, the root included. */
  #depth = 0;
  #sawRoot = false;
  #closedRoot = false;
  /** Qualified names of the open elements (root first), for end-tag matching. */
  #names: string[] = [];
  /** Open elements below the root. */
  #stack: Element[] = [];
  /** In-scope namespace bindings as two parallel stacks, and how many each open element added. */
  #nsPrefix: string[] = [];
  #nsUri: string[] = [];
  #nsTop = 0;
  #nsCount: number[] = [];
  /** Part of a name, PI target or `<!` keyword read before a chunk boundary. */
  #partial = "";
  /** The start tag being read: its name and its attributes (as parallel arrays, reused). */
  #tag = "";
  #attrNames: string[] = [];
  #attrValues: string[] = [];
  #attrCount = 0;
  #attrName = "";
  #value = "";
  #quote = 0;
  #tagSpace = false;
  /** Character data not yet reported; reported at the next '<' (like saxes, so the limits trip at the same points). */
  #text = "";
  /** Trailing ']' count of character data at the end of the last chunk, for the "]]>" check. */
  #brackets = 0;
  #entReturn = TEXT;
  #entKind = E_START;
  #entValue = 0;
  #entName = "";
  #entOut = "";
  #declPossible = false;
  #dState = D_NAME_START;
  #dName = "";
  #dValue = "";
  #dQuote = 0;
  #dExpect = 0;
  #dVersion: string | undefined;
  #dEncoding: string | undefined;

  constructor(handlers: StreamParserHandlers, limits: Partial<ParserLimits> = {}) {
    this.#handlers = handlers;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.reset();
  }

  /** Start a new document (stream restart after STARTTLS or SASL, RFC 6120 §4.3.3). */
  reset(): void {
    this.#decoder = new TextDecoder("utf-8", { fatal: true });
    this.#generation++;
    this.#failed = undefined;
    this.#first = true;
    this.#carry = "";
    this.#base = 0;
    this.#consumed = 0;
    this.#stanzaStart = 0;
    this.#state = BEGIN;
    this.#depth = 0;
    this.#sawRoot = false;
    this.#closedRoot = false;
    this.#names = [];
    this.#stack = [];
    this.#nsPrefix = [];
    this.#nsUri = [];
    this.#nsTop = 0;
    this.#nsCount = [];
    this.#partial = "";
    this.#tag = "";
    this.#attrCount = 0;
    this.#attrName = "";
    this.#value = "";
    this.#text = "";
    this.#brackets = 0;
    this.#dVersion = undefined;
    this.#dEncoding = undefined;
  }

  /** Feed bytes (or already-decoded text). Throws XmlError on a violation. */
  write(chunk: Uint8Array | string): void {
    if (this.#failed) throw this.#failed;
    try {
      let text: string;
      if (typeof chunk === "string") {
        text = chunk;
      } else {
        if (this.#first && chunk.length >= 2 && ((chunk[0] === 0xfe && chunk[1] === 0xff) || (chunk[0] === 0xff && chunk[1] === 0xfe))) {
          throw new XmlError("unsupported-encoding", "UTF-16 is not supported, only UTF-8");
        }
        try {
          text = this.#decoder.decode(chunk, { stream: true });
        } catch {
          throw new XmlError("not-well-formed", "invalid UTF-8");
        }
      }
      if (this.#first && text.length > 0) {
        this.#first = false;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // UTF-8 byte order mark
      }
      if (text.length === 0) return;
      const added = text.length;
      if (this.#carry !== "") {
        // #base already points at the held-back unit: it was not counted as parsed.
        text = this.#carry + text;
        this.#carry = "";
      }
      let n = text.length;
      const last = text.charCodeAt(n - 1);
      // CR LF counts as one newline and a surrogate pair as one character: wait for the next unit (as saxes does).
      if (last === 0x0d || (last >= 0xd800 && last <= 0xdbff)) {
        this.#carry = text[n - 1]!;
        n--;
      }
      const generation = this.#generation;
      this.#parse(text, n);
      if (generation !== this.#generation) return; // reset by a handler: the rest of this chunk belongs to no document
      this.#base += n;
      this.#consumed += added;
      if (this.#consumed - this.#stanzaStart > this.limits.maxStanzaSize) {
        throw new XmlError("policy-violation", this.#depth === 0 ? "stream header too large" : `stanza larger than ${this.limits.maxStanzaSize} characters`);
      }
    } catch (err) {
      // A handler's own error (e.g. a StreamError refusing the stream header) passes through unchanged.
      this.#failed = err instanceof XmlError ? err : new XmlError("not-well-formed", "stream already failed");
      throw err;
    }
  }

  /** Run the state machine over s[0, n). */
  #parse(s: string, n: number): void {
    let i = 0;
    let state = this.#state;
    const generation = this.#generation;
    while (i < n) {
      switch (state) {
        case TEXT: {
          if (this.#depth === 0) {
            // Outside the root only whitespace may appear; saxes reports it (and we move the size window) at the next '<'.
            // Other text is bad-format when a '<' follows in the same chunk (saxes reports the text first, as the
            // current parser does) and not-well-formed otherwise.
            let junk = false;
            for (; i < n; i++) {
              const c = s.charCodeAt(i);
              if (c === 0x3c) break;
              if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) this.#text = " ";
              else if (c === 0x26) throw nwf("text outside of the root element");
              else if (c < 0x20 || c >= 0xfffe || (c >= 0xdc00 && c <= 0xdfff)) throw badChar(s, i);
              else if (c >= 0xd800 && c <= 0xdbff) {
                const d = s.charCodeAt(i + 1);
                if (d < 0xdc00 || d > 0xdfff) throw badChar(s, i);
                i++;
                junk = true;
              } else junk = true;
            }
            if (junk) throw i === n ? nwf("text outside of the root element") : new XmlError("bad-format", "text outside of the root element");
            if (i === n) break;
            i++;
            if (this.#text !== "") {
              this.#text = "";
              this.#stanzaStart = this.#base + i;
            }
            state = LT;
            break;
          }
          let prevBrackets = 0;
          if (this.#brackets !== 0) {
            prevBrackets = this.#brackets;
            this.#brackets = 0;
            let j = i;
            while (j < n && s.charCodeAt(j) === 0x5d) j++;
            if (j < n && s.charCodeAt(j) === 0x3e && prevBrackets + j - i >= 2) throw nwf('"]]>" is not allowed in character data');
          }
          const runStart = i;
          let start = i;
          let text = this.#text;
          for (; i < n; i++) {
            const c = s.charCodeAt(i);
            if (c > 0x5d) {
              if (c < 0xd800) continue;
              if (c <= 0xdbff) {
                const d = s.charCodeAt(i + 1);
                if (d >= 0xdc00 && d <= 0xdfff) {
                  i++;
                  continue;
                }
              } else if (c >= 0xe000 && c <= 0xfffd) continue;
              throw badChar(s, i);
            }
            if (c >= 0x20) {
              if (c === 0x3c || c === 0x26) break;
              if (c === 0x5d && s.charCodeAt(i + 1) === 0x5d && s.charCodeAt(i + 2) === 0x3e) throw nwf('"]]>" is not allowed in character data');
              continue;
            }
            if (c === 0x0a || c === 0x09) continue;
            if (c === 0x0d) {
              // End-of-line handling (XML 1.0 §2.11): CR LF and lone CR become LF.
              text += s.slice(start, i) + "\n";
              if (s.charCodeAt(i + 1) === 0x0a) i++;
              start = i + 1;
              continue;
            }
            throw badChar(s, i);
          }
          if (i > start) text += s.slice(start, i);
          if (i === n) {
            this.#text = text;
            let k = 0;
            while (k < 2 && n - 1 - k >= runStart && s.charCodeAt(n - 1 - k) === 0x5d) k++;
            if (k < 2 && n - k === runStart && runStart === 0) k = Math.min(2, k + prevBrackets);
            this.#brackets = k;
            break;
          }
          if (s.charCodeAt(i) === 0x3c) {
            i++;
            if (text !== "") {
              this.#text = "";
              this.#report(text, this.#base + i);
            }
            state = LT;
          } else {
            const q = quickReference(s, i + 1, n);
            if (q >= 0) {
              this.#text = text + quickOut;
              i = q;
              break;
            }
            this.#text = text;
            this.#entKind = E_START;
            this.#entName = "";
            this.#entValue = 0;
            const r = this.#entity(s, i + 1, n);
            if (r < 0) {
              this.#entReturn = TEXT;
              state = ENTITY;
              i = n;
            } else {
              this.#text += this.#entOut;
              i = r;
            }
          }
          break;
        }

        case LT: {
          const c = s.charCodeAt(i);
          if (c < 128 ? NAME[c] === 3 : nonAsciiName(s, i, true) > 0) {
            this.#partial = "";
            state = OPEN_NAME;
          } else if (c === 0x2f) {
            i++;
            this.#partial = "";
            state = CLOSE_NAME;
          } else if (c === 0x21) {
            i++;
            this.#partial = "";
            state = BANG;
          } else if (c === 0x3f) {
            this.#declPossible = this.#base + i === 1;
            i++;
            this.#partial = "";
            state = PI;
          } else {
            throw nwf("disallowed character after '<'");
          }
          break;
        }

        case OPEN_NAME:
        case ATTR_NAME:
        case CLOSE_NAME:
        case PI: {
          const start = i;
          for (; i < n; i++) {
            const c = s.charCodeAt(i);
            if (c < 128) {
              if (NAME[c] !== 0) continue;
              break;
            }
            const k = nonAsciiName(s, i, false);
            if (k === 0) break;
            if (k === 2) i++;
          }
          if (i === n) {
            this.#partial += s.slice(start, n);
            break;
          }
          const name = this.#partial === "" ? s.slice(start, i) : this.#partial + s.slice(start, i);
          this.#partial = "";
          const c = s.charCodeAt(i);
          const space = c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
          i++;
          if (state === OPEN_NAME) {
            if (this.#closedRoot) throw nwf("a document has only one root element");
            this.#sawRoot = true;
            this.#tag = name;
            this.#attrCount = 0;
            if (c === 0x3e) {
              this.#openTag(false, this.#base + i);
              state = TEXT;
              if (generation !== this.#generation) return;
            } else if (c === 0x2f) {
              state = SLASH;
            } else if (space) {
              this.#tagSpace = true;
              state = IN_TAG;
            } else {
              throw nwf("disallowed character in a tag name");
            }
          } else if (state === ATTR_NAME) {
            this.#attrName = name;
            if (c === 0x3d) state = ATTR_QUOTE;
            else if (space) state = ATTR_EQ;
            else throw nwf(c === 0x3e ? "attribute without value" : "disallowed character in an attribute name");
          } else if (state === CLOSE_NAME) {
            if (c === 0x3e) {
              this.#close(name, this.#base + i);
              state = TEXT;
              if (generation !== this.#generation) return;
            } else if (space) {
              this.#tag = name;
              state = CLOSE_WS;
            } else {
              throw nwf("disallowed character in an end tag");
            }
          } else {
            state = this.#piTarget(name, c, space);
          }
          break;
        }

        case IN_TAG: {
          let c = s.charCodeAt(i);
          while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) {
            this.#tagSpace = true;
            if (++i === n) break;
            c = s.charCodeAt(i);
          }
          if (i === n) break;
          if (c === 0x3e) {
            i++;
            this.#openTag(false, this.#base + i);
            state = TEXT;
            if (generation !== this.#generation) return;
          } else if (c === 0x2f) {
            i++;
            state = SLASH;
          } else if (c < 128 ? NAME[c] === 3 : nonAsciiName(s, i, true) > 0) {
            if (!this.#tagSpace) throw nwf("no whitespace between attributes");
            this.#partial = "";
            state = ATTR_NAME;
          } else {
            throw nwf("disallowed character in a start tag");
          }
          break;
        }

        case ATTR_EQ:
        case ATTR_QUOTE:
        case CLOSE_WS: {
          const c = s.charCodeAt(i++);
          if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) break;
          if (state === ATTR_EQ) {
            if (c !== 0x3d) throw nwf("attribute without value");
            state = ATTR_QUOTE;
          } else if (state === ATTR_QUOTE) {
            if (c !== 0x22 && c !== 0x27) throw nwf("attribute value not quoted");
            this.#quote = c;
            this.#value = "";
            state = ATTR_VALUE;
          } else {
            if (c !== 0x3e) throw nwf("disallowed character in an end tag");
            this.#close(this.#tag, this.#base + i);
            state = TEXT;
            if (generation !== this.#generation) return;
          }
          break;
        }

        case ATTR_VALUE: {
          const q = this.#quote;
          let start = i;
          let value = this.#value;
          for (; i < n; i++) {
            const c = s.charCodeAt(i);
            if (c === q) break;
            if (c > 0x3c) {
              if (c < 0xd800) continue;
              if (c <= 0xdbff) {
                const d = s.charCodeAt(i + 1);
                if (d >= 0xdc00 && d <= 0xdfff) {
                  i++;
                  continue;
                }
              } else if (c >= 0xe000 && c <= 0xfffd) continue;
              throw badChar(s, i);
            }
            if (c >= 0x20) {
              if (c === 0x26) break;
              if (c === 0x3c) throw nwf("'<' is not allowed in an attribute value");
              continue;
            }
            if (c === 0x09 || c === 0x0a || c === 0x0d) {
              // Attribute-value normalisation (XML 1.0 §3.3.3), after end-of-line handling: one space each.
              value += s.slice(start, i) + " ";
              if (c === 0x0d && s.charCodeAt(i + 1) === 0x0a) i++;
              start = i + 1;
              continue;
            }
            throw badChar(s, i);
          }
          if (i > start) value += s.slice(start, i);
          if (i === n) {
            this.#value = value;
            break;
          }
          if (s.charCodeAt(i) === q) {
            i++;
            const k = this.#attrCount++;
            const name = this.#attrName;
            this.#attrNames[k] = name;
            this.#attrValues[k] = value;
            // Checked as each attribute ends, like saxes, so that a truncated tag fails at the same point.
            const colon = name.indexOf(":");
            if (colon >= 0) checkAttrName(name, colon, value);
            else if (name === "xmlns") checkBinding("", value.trim());
            this.#tagSpace = false;
            state = IN_TAG;
          } else {
            const q = quickReference(s, i + 1, n);
            if (q >= 0) {
              this.#value = value + quickOut;
              i = q;
              break;
            }
            this.#value = value;
            this.#entKind = E_START;
            this.#entName = "";
            this.#entValue = 0;
            const r = this.#entity(s, i + 1, n);
            if (r < 0) {
              this.#entReturn = ATTR_VALUE;
              state = ENTITY;
              i = n;
            } else {
              this.#value += this.#entOut;
              i = r;
            }
          }
          break;
        }

        case SLASH: {
          if (s.charCodeAt(i) !== 0x3e) throw nwf("'/' in a start tag not followed by '>'");
          i++;
          this.#openTag(true, this.#base + i);
          state = TEXT;
          if (generation !== this.#generation) return;
          break;
        }

        case ENTITY: {
          const r = this.#entity(s, i, n);
          if (r < 0) {
            i = n;
            break;
          }
          i = r;
          state = this.#entReturn;
          if (state === TEXT) this.#text += this.#entOut;
          else this.#value += this.#entOut;
          break;
        }

        case BANG: {
          const keyword = (this.#partial += s[i++]!);
          if (keyword === "--") throw new XmlError("restricted-xml", "comments are not allowed");
          if (keyword === "DOCTYPE") {
            if (this.#sawRoot) throw nwf("a DOCTYPE is only allowed before the root element");
            throw new XmlError("restricted-xml", "DOCTYPE is not allowed");
          }
          if (keyword === "[CDATA[") {
            if (this.#depth === 0) throw nwf("text outside of the root element");
            this.#partial = "";
            this.#text = "";
            this.#brackets = 0;
            state = CDATA;
          } else if (!"--".startsWith(keyword) && !"[CDATA[".startsWith(keyword) && !"DOCTYPE".startsWith(keyword)) {
            throw nwf("unknown markup after '<!'");
          }
          break;
        }

        case CDATA: {
          // Content so far is in #text; #brackets counts the ']' it ends with.
          let end = -1;
          if (this.#brackets !== 0) {
            let j = i;
            while (j < n && s.charCodeAt(j) === 0x5d) j++;
            if (j < n && s.charCodeAt(j) === 0x3e && this.#brackets + j - i >= 2) {
              this.#text += s.slice(i, j);
              this.#text = this.#text.slice(0, -2);
              end = j + 1;
            }
          }
          if (end < 0) {
            const at = s.indexOf("]]>", i);
            if (at >= 0 && at < n) {
              this.#text += this.#chars(s, i, at);
              end = at + 3;
            } else {
              this.#text += this.#chars(s, i, n);
              let k = 0;
              while (k < 2 && n - 1 - k >= i && s.charCodeAt(n - 1 - k) === 0x5d) k++;
              if (k < 2 && n - k === i) k = Math.min(2, k + this.#brackets);
              this.#brackets = k;
              i = n;
              break;
            }
          }
          i = end;
          this.#brackets = 0;
          const content = this.#text;
          this.#text = "";
          state = TEXT;
          if (this.#depth >= 2) {
            if (content !== "") this.#appendText(content);
          } else {
            this.#report(content, this.#base + i);
          }
          break;
        }

        case DECL: {
          const c = s.charCodeAt(i++);
          if (this.#declStep(c)) state = TEXT;
          break;
        }

        default: {
          // BEGIN: leading whitespace is not text (and rules out an XML declaration).
          let c = s.charCodeAt(i);
          while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) {
            if (++i === n) break;
            c = s.charCodeAt(i);
          }
          if (i === n) break;
          if (c === 0x3c) {
            i++;
            state = LT;
          } else {
            state = TEXT;
          }
        }
      }
    }
    this.#state = state;
  }

  /** Validate s[from, to) as character data and apply end-of-line handling (CDATA sections). */
  #chars(s: string, from: number, to: number): string {
    let out = "";
    let start = from;
    for (let i = from; i < to; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0xd800) continue;
      if (c === 0x09 || c === 0x0a) continue;
      if (c === 0x0d) {
        out += s.slice(start, i) + "\n";
        if (s.charCodeAt(i + 1) === 0x0a) i++;
        start = i + 1;
        continue;
      }
      if (c >= 0xd800 && c <= 0xdbff) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          continue;
        }
      } else if (c >= 0xe000 && c <= 0xfffd) continue;
      throw badChar(s, i);
    }
    return out + s.slice(start, to);
  }

  /**
   * Continue an entity or character reference from s[i]; returns the index after ';' with the replacement text in
   * #entOut, or -1 when the chunk ended first. Fails at the first character that cannot continue a valid reference.
   */
  #entity(s: string, i: number, n: number): number {
    let kind = this.#entKind;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      switch (kind) {
        case E_START:
          if (c === 0x23) kind = E_HASH;
          else if (c < 128 && NAME[c] === 3) {
            kind = E_NAME;
            this.#entName = s[i]!;
          } else throw nwf(c === 0x3b ? "empty entity reference" : "disallowed character in an entity reference");
          break;
        case E_NAME:
          if (c === 0x3b) {
            const v = predefined(this.#entName);
            if (v === undefined) throw nwf(`undefined entity &${this.#entName};`);
            this.#entOut = v;
            this.#entKind = E_START;
            return i + 1;
          }
          // Only lt, gt, amp, quot and apos exist (RFC 6120 §11.1 forbids declaring more).
          if (c >= 128 || NAME[c] === 0 || this.#entName.length >= 4) throw nwf("undefined entity");
          this.#entName += s[i]!;
          break;
        case E_HASH:
          if (c === 0x78) kind = E_X;
          else if (c >= 0x30 && c <= 0x39) {
            kind = E_DEC;
            this.#entValue = c - 0x30;
          } else throw nwf("malformed character reference");
          break;
        default: {
          // E_X, E_DEC, E_HEX
          if (c === 0x3b && kind !== E_X) {
            const v = this.#entValue;
            if (!isXmlChar(v)) throw nwf("character reference to a character that is not allowed");
            this.#entOut = String.fromCodePoint(v);
            this.#entKind = E_START;
            return i + 1;
          }
          let digit: number;
          if (c >= 0x30 && c <= 0x39) digit = c - 0x30;
          else if (kind !== E_DEC && ((c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46))) digit = (c | 0x20) - 0x57;
          else throw nwf("malformed character reference");
          const v = kind === E_DEC ? this.#entValue * 10 + digit : kind === E_X ? digit : this.#entValue * 16 + digit;
          if (v > 0x10ffff) throw nwf("character reference out of range");
          this.#entValue = v;
          if (kind === E_X) kind = E_HEX;
          break;
        }
      }
    }
    this.#entKind = kind;
    return -1;
  }

  /** A PI target ended with `c`: the XML declaration at the very start, otherwise refused. Returns the next state. */
  #piTarget(target: string, c: number, space: boolean): number {
    const first = target.charCodeAt(0);
    if (target === "" || !(first < 128 ? NAME[first] === 3 : nonAsciiName(target, 0, true) > 0) || !(space || c === 0x3f)) {
      throw nwf("malformed processing instruction");
    }
    if (target === "xml" && this.#declPossible) {
      this.#dState = space ? D_NAME_START : D_ENDING;
      this.#dExpect = 0;
      this.#dName = "";
      this.#dValue = "";
      return DECL;
    }
    if (target.toLowerCase() === "xml") throw nwf("the XML declaration must be at the start of the document");
    throw new XmlError("restricted-xml", "processing instructions are not allowed");
  }

  /** One character of the XML declaration; true when it ended ("?>") and was accepted. */
  #declStep(c: number): boolean {
    const space = c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
    if (!space && (c < 0x20 || c >= 0xfffe)) throw nwf("disallowed character in the XML declaration");
    if (c === 0x3f && this.#dState !== D_NAME_START && this.#dState !== D_SEP) {
      if (this.#dState === D_ENDING) throw nwf("'?' is not allowed in the XML declaration");
      throw nwf("incomplete XML declaration");
    }
    switch (this.#dState) {
      case D_NAME_START:
        if (c === 0x3f) this.#dState = D_ENDING;
        else if (!space) {
          this.#dName = String.fromCharCode(c);
          this.#dState = D_NAME;
        }
        return false;
      case D_NAME: {
        if (!space && c !== 0x3d) {
          this.#dName += String.fromCharCode(c);
          return false;
        }
        const expected = [["version"], ["encoding", "standalone"], ["standalone"], []][this.#dExpect]!;
        if (!expected.includes(this.#dName)) throw nwf(`unexpected ${JSON.stringify(this.#dName)} in the XML declaration`);
        this.#dState = c === 0x3d ? D_VALUE_START : D_EQ;
        return false;
      }
      case D_EQ:
        if (space) return false;
        if (c !== 0x3d) throw nwf("'=' expected in the XML declaration");
        this.#dState = D_VALUE_START;
        return false;
      case D_VALUE_START:
        if (space) return false;
        if (c !== 0x22 && c !== 0x27) throw nwf("unquoted value in the XML declaration");
        this.#dQuote = c;
        this.#dValue = "";
        this.#dState = D_VALUE;
        return false;
      case D_VALUE: {
        if (c !== this.#dQuote) {
          this.#dValue += String.fromCharCode(c);
          return false;
        }
        const v = this.#dValue;
        if (this.#dName === "version") {
          if (!/^1\.[0-9]+$/.test(v)) throw nwf("malformed XML version");
          this.#dVersion = v;
          this.#dExpect = 1;
        } else if (this.#dName === "encoding") {
          if (!/^[A-Za-z][A-Za-z0-9._-]*$/.test(v)) throw nwf("malformed encoding name");
          this.#dEncoding = v;
          this.#dExpect = 2;
        } else {
          if (v !== "yes" && v !== "no") throw nwf("standalone must be yes or no");
          this.#dExpect = 3;
        }
        this.#dName = "";
        this.#dState = D_SEP;
        return false;
      }
      case D_SEP:
        if (c === 0x3f) this.#dState = D_ENDING;
        else if (space) this.#dState = D_NAME_START;
        else throw nwf("whitespace required in the XML declaration");
        return false;
      default: {
        if (c !== 0x3e) throw nwf("'?' is not allowed in the XML declaration");
        const encoding = this.#dEncoding;
        const version = this.#dVersion;
        if (version === undefined) throw nwf("the XML declaration must contain a version");
        if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) {
          throw new XmlError("unsupported-encoding", `encoding ${encoding} is not supported, only UTF-8`);
        }
        if (version !== "1.0") throw new XmlError("restricted-xml", `XML ${version} is not supported, only 1.0`);
        return true;
      }
    }
  }

  /** Namespace URI bound to `prefix` in scope, or undefined. */
  #resolve(prefix: string): string | undefined {
    const prefixes = this.#nsPrefix;
    for (let j = this.#nsTop - 1; j >= 0; j--) if (prefixes[j] === prefix) return this.#nsUri[j];
    if (prefix === "xml") return XML_NS;
    if (prefix === "xmlns") return XMLNS_NS;
    return undefined;
  }

  /** A start tag ended at stream position `pos`: resolve namespaces, check limits, build the element. */
  #openTag(selfClosing: boolean, pos: number): void {
    const qname = this.#tag;
    const names = this.#attrNames;
    const values = this.#attrValues;
    const count = this.#attrCount;
    this.#attrCount = 0;

    // Namespace declarations first: they apply to the element's own name and attributes.
    let declared = 0;
    let prefixed = 0;
    for (let k = 0; k < count; k++) {
      const name = names[k]!;
      const colon = name.indexOf(":");
      if (colon < 0 ? name === "xmlns" : colon === 5 && name.startsWith("xmlns")) {
        // Like saxes, surrounding whitespace is not part of a namespace name (checked in checkAttrName).
        const top = this.#nsTop++;
        this.#nsPrefix[top] = colon < 0 ? "" : name.slice(6);
        this.#nsUri[top] = values[k]!.trim();
        declared++;
      } else if (colon >= 0) {
        prefixed++;
      }
    }
    this.#nsCount.push(declared);

    let local = qname;
    let uri: string;
    const colon = qname.indexOf(":");
    if (colon < 0) {
      uri = this.#resolve("") ?? "";
    } else {
      const prefix = qname.slice(0, colon);
      local = qname.slice(colon + 1);
      if (prefix === "" || local === "" || local.includes(":")) throw nwf(`malformed name ${qname}`);
      if (prefix === "xmlns") throw nwf("elements may not have the xmlns prefix");
      const bound = this.#resolve(prefix);
      if (bound === undefined) throw nwf(`unbound namespace prefix ${prefix}`);
      uri = bound;
    }

    const attrs: Record<string, string> = {};
    if (count > 0) {
      // Duplicates by qualified name (declarations included), then by namespace and local name (§6.3).
      if (count > 1) {
        if (count <= 16) {
          for (let k = 1; k < count; k++) {
            const name = names[k]!;
            for (let j = 0; j < k; j++) if (names[j] === name) throw nwf(`duplicate attribute ${name}`);
          }
        } else {
          const seen = new Set<string>();
          for (let k = 0; k < count; k++) {
            if (seen.has(names[k]!)) throw nwf(`duplicate attribute ${names[k]!}`);
            seen.add(names[k]!);
          }
        }
      }
      let expanded: string[] | undefined;
      for (let k = 0; k < count; k++) {
        const name = names[k]!;
        const c = name.indexOf(":");
        if (c < 0) {
          if (name !== "xmlns") attrs[name] = values[k]!;
          continue;
        }
        const prefix = name.slice(0, c);
        if (prefix === "xmlns") continue;
        const attrLocal = name.slice(c + 1);
        const attrUri = this.#resolve(prefix);
        if (attrUri === undefined) throw nwf(`unbound namespace prefix ${prefix}`);
        if (prefixed > 1) {
          const key = `{${attrUri}}${attrLocal}`;
          if (expanded === undefined) expanded = [key];
          else if (expanded.includes(key)) throw nwf(`duplicate attribute ${key}`);
          else expanded.push(key);
        }
        attrs[name] = values[k]!;
        // A prefixed attribute keeps its declaration so that it stays bound when the element is serialised alone.
        if (prefix !== "xml") attrs["xmlns:" + prefix] = attrUri;
      }
    }

    const depth = this.#depth;
    if (depth === 0) {
      const ns: Record<string, string> = {};
      const total = this.#nsTop;
      for (let j = total - declared; j < total; j++) ns[this.#nsPrefix[j]!] = this.#nsUri[j]!;
      this.#names.push(qname);
      this.#depth = 1;
      this.#stanzaStart = pos;
      this.#handlers.rootOpen(local, uri, attrs, ns);
      if (selfClosing) this.#closeTop(pos);
      return;
    }
    const limits = this.limits;
    if (depth > limits.maxDepth) throw new XmlError("policy-violation", `elements nested deeper than ${limits.maxDepth}`);
    if (count > limits.maxAttributes) throw new XmlError("policy-violation", `more than ${limits.maxAttributes} attributes`);
    const el = new Element(local, uri, attrs);
    if (depth >= 2) {
      const kids = this.#stack[depth - 2]!.children;
      if (kids.length >= limits.maxChildren) throw new XmlError("policy-violation", `more than ${limits.maxChildren} children`);
      kids.push(el);
    }
    this.#stack.push(el);
    this.#names.push(qname);
    this.#depth = depth + 1;
    if (selfClosing) this.#closeTop(pos);
  }

  /** An end tag `</name>` ended at stream position `pos`. */
  #close(name: string, pos: number): void {
    const depth = this.#depth;
    if (depth === 0) throw nwf(`end tag </${name}> without a start tag`);
    const open = this.#names[depth - 1]!;
    if (open !== name) throw nwf(`end tag </${name}> does not match <${open}>`);
    this.#closeTop(pos);
  }

  /** Close the innermost open element at stream position `pos`. */
  #closeTop(pos: number): void {
    const depth = --this.#depth;
    this.#names.pop();
    this.#nsTop -= this.#nsCount.pop()!;
    if (depth === 0) {
      this.#closedRoot = true;
      this.#handlers.rootClose();
      return;
    }
    const el = this.#stack.pop()!;
    if (depth === 1) {
      if (pos - this.#stanzaStart > this.limits.maxStanzaSize) {
        throw new XmlError("policy-violation", `stanza larger than ${this.limits.maxStanzaSize} characters`);
      }
      this.#stanzaStart = pos;
      this.#handlers.element(el);
    }
  }

  /** Character data reported at stream position `pos` (after a '<' or a CDATA end), like saxes' text event. */
  #report(text: string, pos: number): void {
    if (this.#depth >= 2) {
      this.#appendText(text);
      return;
    }
    // Between stanzas only whitespace (e.g. keepalives) is allowed.
    if (!isWhitespace(text)) throw new XmlError("bad-format", "text outside of stanzas");
    this.#stanzaStart = pos;
  }

  /** Append character data to the innermost open element, merging with a preceding text child. */
  #appendText(text: string): void {
    const kids = this.#stack[this.#depth - 2]!.children;
    const last = kids.length - 1;
    const prev = kids[last];
    if (typeof prev === "string") kids[last] = prev + text;
    else {
      if (kids.length >= this.limits.maxChildren) throw new XmlError("policy-violation", `more than ${this.limits.maxChildren} children`);
      kids.push(text);
    }
  }
}
