// Streaming, namespace-aware XML parser for XMPP streams (RFC 6120 §11: restricted XML).
// Built on saxes; turns bytes into a root-open event, one Element per depth-1 child, and a root-close event.
// Refuses DOCTYPE/entity declarations, comments, processing instructions and non-UTF-8 input, and enforces
// size, depth, child and attribute limits. Library choice and figures: docs/xml-parser.md.
import { SaxesParser, type SaxesTagNS, type SaxesAttributeNS } from "saxes";
import { TextDecoder } from "node:util";
import { Element } from "./element.ts";

/** Why parsing stopped; the names are the RFC 6120 stream error conditions they map to. */
export type XmlErrorCondition = "not-well-formed" | "restricted-xml" | "unsupported-encoding" | "policy-violation" | "bad-format" | "invalid-namespace";

/** A parse failure, carrying the stream error condition the caller should send. */
export class XmlError extends Error {
  readonly condition: XmlErrorCondition;
  constructor(condition: XmlErrorCondition, message: string) {
    super(message);
    this.name = "XmlError";
    this.condition = condition;
  }
}

/** Limits applied while parsing; sizes are counted in characters of the decoded text. */
export interface ParserLimits {
  /** Largest depth-1 element (stanza), and largest prologue before the root. */
  maxStanzaSize: number;
  /** Deepest nesting below the root (a stanza is depth 1). */
  maxDepth: number;
  /** Most child nodes of one element. */
  maxChildren: number;
  /** Most attributes on one element. */
  maxAttributes: number;
}

export const DEFAULT_LIMITS: ParserLimits = { maxStanzaSize: 262144, maxDepth: 32, maxChildren: 1024, maxAttributes: 64 };

/** Callbacks of a stream parser; called synchronously from `write`. */
export interface StreamParserHandlers {
  /** The root element opened: its namespace URI, local name, attributes and in-scope namespace declarations. */
  rootOpen(name: string, uri: string, attrs: Record<string, string>, ns: Record<string, string>): void;
  /** A complete depth-1 child of the root. */
  element(el: Element): void;
  /** The root element closed. */
  rootClose(): void;
}

const WHITESPACE = /^[ \t\r\n]*$/;

/** Turn saxes attributes into Element attrs: namespace declarations dropped, prefixed names kept with their declaration. */
function convertAttrs(attributes: Record<string, SaxesAttributeNS>): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const key in attributes) {
    const a = attributes[key]!;
    if (a.prefix === "xmlns" || a.name === "xmlns") continue;
    if (a.prefix === "" || a.prefix === "xml") {
      attrs[a.name] = a.value;
    } else {
      attrs[a.name] = a.value;
      attrs["xmlns:" + a.prefix] = a.uri;
    }
  }
  return attrs;
}

/**
 * Incremental parser for one XML stream. `write` takes raw bytes (UTF-8 enforced) and throws XmlError on
 * the first violation; after an error or `reset` nothing more is parsed until the next `reset`.
 */
export class StreamParser {
  readonly #handlers: StreamParserHandlers;
  limits: ParserLimits;
  #sax!: SaxesParser<{ xmlns: true; position: true }>;
  #decoder!: TextDecoder;
  #stack: Element[] = [];
  #depth = 0;
  #stanzaStart = 0;
  #consumed = 0;
  #failed: XmlError | undefined;
  #first = true;

  constructor(handlers: StreamParserHandlers, limits: Partial<ParserLimits> = {}) {
    this.#handlers = handlers;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.reset();
  }

  /** Start a new document (stream restart after STARTTLS or SASL, RFC 6120 §4.3.3). */
  reset(): void {
    this.#decoder = new TextDecoder("utf-8", { fatal: true });
    this.#stack = [];
    this.#depth = 0;
    this.#stanzaStart = 0;
    this.#consumed = 0;
    this.#failed = undefined;
    this.#first = true;
    const sax = new SaxesParser({ xmlns: true, position: true });
    this.#sax = sax;
    sax.on("error", (err) => {
      throw new XmlError("not-well-formed", err.message);
    });
    sax.on("doctype", () => {
      throw new XmlError("restricted-xml", "DOCTYPE is not allowed");
    });
    sax.on("comment", () => {
      throw new XmlError("restricted-xml", "comments are not allowed");
    });
    sax.on("processinginstruction", () => {
      throw new XmlError("restricted-xml", "processing instructions are not allowed");
    });
    sax.on("xmldecl", (decl) => {
      if (decl.encoding !== undefined && !/^utf-?8$/i.test(decl.encoding)) {
        throw new XmlError("unsupported-encoding", `encoding ${decl.encoding} is not supported, only UTF-8`);
      }
      if (decl.version !== undefined && decl.version !== "1.0") {
        throw new XmlError("restricted-xml", `XML ${decl.version} is not supported, only 1.0`);
      }
    });
    sax.on("opentag", (tag) => this.#open(tag));
    sax.on("closetag", () => this.#close());
    sax.on("text", (text) => this.#text(text));
    sax.on("cdata", (text) => this.#text(text));
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
      this.#sax.write(text);
      // saxes' `position` is exact inside callbacks but stale after write() returns; count here.
      this.#consumed += text.length;
      if (this.#consumed - this.#stanzaStart > this.limits.maxStanzaSize) {
        throw new XmlError("policy-violation", this.#depth === 0 ? "stream header too large" : `stanza larger than ${this.limits.maxStanzaSize} characters`);
      }
    } catch (err) {
      // A handler's own error (e.g. a StreamError refusing the stream header) passes through unchanged.
      this.#failed = err instanceof XmlError ? err : new XmlError("not-well-formed", "stream already failed");
      throw err;
    }
  }

  #open(tag: SaxesTagNS): void {
    const depth = this.#depth++;
    if (depth === 0) {
      this.#stanzaStart = this.#sax.position;
      const attrs = convertAttrs(tag.attributes as Record<string, SaxesAttributeNS>);
      this.#handlers.rootOpen(tag.local, tag.uri, attrs, { ...tag.ns });
      return;
    }
    if (depth > this.limits.maxDepth) throw new XmlError("policy-violation", `elements nested deeper than ${this.limits.maxDepth}`);
    const attrs = tag.attributes as Record<string, SaxesAttributeNS>;
    let count = 0;
    for (const _ in attrs) count++;
    if (count > this.limits.maxAttributes) throw new XmlError("policy-violation", `more than ${this.limits.maxAttributes} attributes`);
    const el = new Element(tag.local, tag.uri, convertAttrs(attrs));
    const parent = this.#stack[this.#stack.length - 1];
    if (parent) {
      if (parent.children.length >= this.limits.maxChildren) throw new XmlError("policy-violation", `more than ${this.limits.maxChildren} children`);
      parent.children.push(el);
    }
    this.#stack.push(el);
  }

  #close(): void {
    this.#depth--;
    if (this.#depth === 0) {
      this.#handlers.rootClose();
      return;
    }
    const el = this.#stack.pop()!;
    if (this.#depth === 1) {
      // A stanza that started and ended inside one chunk is measured here.
      if (this.#sax.position - this.#stanzaStart > this.limits.maxStanzaSize) {
        throw new XmlError("policy-violation", `stanza larger than ${this.limits.maxStanzaSize} characters`);
      }
      this.#stanzaStart = this.#sax.position;
      this.#handlers.element(el);
    }
  }

  #text(text: string): void {
    const parent = this.#stack[this.#stack.length - 1];
    if (!parent) {
      // Between stanzas only whitespace (e.g. keepalives) is allowed.
      if (!WHITESPACE.test(text)) throw new XmlError("bad-format", "text outside of stanzas");
      if (this.#depth <= 1) this.#stanzaStart = this.#sax.position;
      return;
    }
    const kids = parent.children;
    const last = kids[kids.length - 1];
    if (typeof last === "string") kids[kids.length - 1] = last + text;
    else {
      if (kids.length >= this.limits.maxChildren) throw new XmlError("policy-violation", `more than ${this.limits.maxChildren} children`);
      kids.push(text);
    }
  }
}

/** Parse one complete XML element from a string with the same restrictions (tests, fixtures, config). */
export function parseXml(text: string, limits: Partial<ParserLimits> = {}): Element {
  let result: Element | undefined;
  const wrapper = new StreamParser(
    { rootOpen() {}, element(el) { result ??= el; }, rootClose() {} },
    { maxStanzaSize: Number.MAX_SAFE_INTEGER, ...limits },
  );
  wrapper.write(`<w xmlns='${"jabber:client"}'>`);
  wrapper.write(text);
  wrapper.write("</w>");
  if (!result) throw new XmlError("not-well-formed", "no element");
  return result;
}

/** Tagged template for tests: xml`<message to='a@b'/>` parsed by the production parser. */
export function xml(strings: TemplateStringsArray, ...values: unknown[]): Element {
  let s = "";
  strings.forEach((str, i) => {
    s += str;
    if (i < values.length) s += String(values[i]);
  });
  return parseXml(s.trim());
}
