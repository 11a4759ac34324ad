// Stream errors (RFC 6120 §4.9.3) and stanza errors (RFC 6120 §8.3.3) as throwable values.
import { Element } from "../xml/element.ts";
import { NS_STANZAS, NS_STREAM, NS_STREAMS } from "./ns.ts";

/** Defined stream error conditions, RFC 6120 §4.9.3. */
export type StreamCondition =
  | "bad-format" | "bad-namespace-prefix" | "conflict" | "connection-timeout" | "host-gone"
  | "host-unknown" | "improper-addressing" | "internal-server-error" | "invalid-from"
  | "invalid-namespace" | "invalid-xml" | "not-authorized" | "not-well-formed" | "policy-violation"
  | "remote-connection-failed" | "reset" | "resource-constraint" | "restricted-xml" | "see-other-host"
  | "system-shutdown" | "undefined-condition" | "unsupported-encoding" | "unsupported-feature"
  | "unsupported-stanza-type" | "unsupported-version";

/** Defined stanza error conditions, RFC 6120 §8.3.3. */
export type StanzaCondition =
  | "bad-request" | "conflict" | "feature-not-implemented" | "forbidden" | "gone"
  | "internal-server-error" | "item-not-found" | "jid-malformed" | "not-acceptable" | "not-allowed"
  | "not-authorized" | "policy-violation" | "recipient-unavailable" | "redirect"
  | "registration-required" | "remote-server-not-found" | "remote-server-timeout"
  | "resource-constraint" | "service-unavailable" | "subscription-required" | "undefined-condition"
  | "unexpected-request";

/** Error types, RFC 6120 §8.3.2. */
export type StanzaErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

/** Thrown to close a stream with `<stream:error/>`. */
export class StreamError extends Error {
  readonly condition: StreamCondition;
  readonly text: string | undefined;
  constructor(condition: StreamCondition, opts: { text?: string } = {}) {
    super(opts.text ? `${condition}: ${opts.text}` : condition);
    this.name = "StreamError";
    this.condition = condition;
    this.text = opts.text;
  }

  /** The `<stream:error>` element (serialise with the stream prefix by the caller). */
  toElement(): Element {
    const el = new Element("stream:error", NS_STREAM);
    el.children.push(new Element(this.condition, NS_STREAMS));
    if (this.text) el.children.push(new Element("text", NS_STREAMS, {}, [this.text]));
    return el;
  }
}

/** The default error type for each condition (RFC 6120 §8.3.3 examples). */
const DEFAULT_TYPE: Record<StanzaCondition, StanzaErrorType> = {
  "bad-request": "modify", conflict: "cancel", "feature-not-implemented": "cancel", forbidden: "auth",
  gone: "cancel", "internal-server-error": "cancel", "item-not-found": "cancel", "jid-malformed": "modify",
  "not-acceptable": "modify", "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify",
  "recipient-unavailable": "wait", redirect: "modify", "registration-required": "auth",
  "remote-server-not-found": "cancel", "remote-server-timeout": "wait", "resource-constraint": "wait",
  "service-unavailable": "cancel", "subscription-required": "auth", "undefined-condition": "cancel",
  "unexpected-request": "wait",
};

/** Thrown by handlers; the router turns it into an error reply (never in reply to an error). */
export class StanzaError extends Error {
  readonly condition: StanzaCondition;
  readonly type: StanzaErrorType;
  readonly text: string | undefined;
  readonly app: Element | undefined;
  constructor(condition: StanzaCondition, opts: { type?: StanzaErrorType; text?: string; app?: Element } = {}) {
    super(opts.text ? `${condition}: ${opts.text}` : condition);
    this.name = "StanzaError";
    this.condition = condition;
    this.type = opts.type ?? DEFAULT_TYPE[condition];
    this.text = opts.text;
    this.app = opts.app;
  }

  /** The `<error/>` child for a stanza in namespace `ns` (jabber:client or jabber:server). */
  toElement(ns: string, by?: string): Element {
    const attrs: Record<string, string> = { type: this.type };
    if (by) attrs["by"] = by;
    const el = new Element("error", ns, attrs);
    el.children.push(new Element(this.condition, NS_STANZAS));
    if (this.text) el.children.push(new Element("text", NS_STANZAS, { "xml:lang": "en" }, [this.text]));
    if (this.app) el.children.push(this.app);
    return el;
  }
}

/** Build the error reply to `stanza`: swap to/from, type='error', original payload kept (RFC 6120 §8.3.1). */
export function errorReply(stanza: Element, err: StanzaError, opts: { by?: string; keepPayload?: boolean } = {}): Element {
  const attrs: Record<string, string> = { type: "error" };
  const from = stanza.attrs["from"];
  const to = stanza.attrs["to"];
  const id = stanza.attrs["id"];
  if (from !== undefined) attrs["to"] = from;
  if (to !== undefined) attrs["from"] = to;
  if (id !== undefined) attrs["id"] = id;
  const reply = new Element(stanza.name, stanza.xmlns, attrs);
  if (opts.keepPayload !== false) {
    for (const c of stanza.children) if (typeof c !== "string" && c.name !== "error") reply.children.push(c);
  }
  reply.children.push(err.toElement(stanza.xmlns, opts.by));
  return reply;
}
