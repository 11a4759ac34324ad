// XMPP over BOSH (XEP-0206 on XEP-0124): a Connection whose transport is a series of HTTP requests instead of a
// socket. Elements arrive in the <body/> wrappers of the client's requests and are handed to the c2s session in rid
// order; what the session sends is queued and goes out in the responses to the requests held for it. Everything above
// this layer (stream negotiation, SASL, binding, routing, limits) is the c2s session of src/core/c2s.ts, unchanged, as
// for WebSocket (./websocket-connection.ts). The HTTP side (paths, CORS, parsing, session ids) is ./bosh.ts.
//
// One BoshConnection is one BOSH session (one `sid`, one XMPP stream; no XEP-0124 §18 multiple streams). It keeps:
// - the rid window (XEP-0124 §14.2): requests may arrive out of order within `requests` of the last one; they are
//   handled, and answered, in rid order;
// - the requests held for the client (§8, at most `hold`, each for at most `wait` seconds);
// - the responses already sent to the last `requests` rids, so that a repeated request gets the same answer (§14.3);
// - the inactivity timer (§10): no request held for `inactivity` seconds ends the session like a dropped socket.
import type { Socket } from "node:net";
import type { ServerResponse } from "node:http";
import { Duplex } from "node:stream";
import { Connection, type ConnectionHandlers, type ConnectionOptions } from "../net/connection.ts";
import type { ParserLimits } from "../xml/parser.ts";
import { Element, escapeAttr, renameNamespace, serialize } from "../xml/element.ts";
import { StreamError } from "../xmpp/errors.ts";
import { NS_CLIENT, NS_STREAM } from "../xmpp/ns.ts";

/** XEP-0124 §4: the namespace of <body/>. */
export const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
/** XEP-0206 §6: the namespace of the xmpp:version / xmpp:restart attributes. */
export const NS_XBOSH = "urn:xmpp:xbosh";
/** The highest XEP-0124 protocol version we speak (the 'ver' attribute, §7.1). */
export const BOSH_VERSION = "1.11";

/** XEP-0124 §17.2 terminal binding conditions we use. */
export type TerminalCondition =
  | "bad-request"
  | "host-unknown"
  | "improper-addressing"
  | "internal-server-error"
  | "item-not-found"
  | "policy-violation"
  | "remote-stream-error"
  | "system-shutdown";

/** One HTTP request of a session, parsed by ./bosh.ts. */
export interface BoshRequest {
  rid: number;
  /** The <body/> payloads in order (stanzas, SASL elements...). */
  elements: Element[];
  /** type='terminate' (§13). */
  terminate: boolean;
  /** xmpp:restart='true' (XEP-0206 §5). */
  restart: boolean;
  /** The 'to' and 'xml:lang' of a restart request. */
  to: string | undefined;
  lang: string | undefined;
  /** The client's 'ack' (§9.2): the highest rid whose response it has, with all below. */
  ack: number | undefined;
  /** Where the answer goes, and the headers every answer carries (CORS). */
  res: ServerResponse;
  headers: Record<string, string>;
}

/** The session's parameters, negotiated by ./bosh.ts from the session creation request (§7.1, §7.2). */
export interface BoshSessionParams {
  sid: string;
  wait: number;
  hold: number;
  /** Most requests the client may have unanswered at once (hold + 1, §11). */
  requests: number;
  inactivity: number;
  polling: number;
  /** The protocol version used for this session (§7.2 'ver'). */
  ver: string;
  maxQueuedStanzas: number;
  maxQueuedBytes: number;
  /** The request came over TLS (our https listener, or a trusted proxy that says https). */
  secure: boolean;
}

export interface BoshConnectionOptions extends ConnectionOptions {
  params: BoshSessionParams;
  /** The session is gone (terminated, timed out, or ended by the server): forget its sid. */
  onGone(): void;
}

/** A request handled in rid order and not answered yet. */
interface Held {
  rid: number;
  res: ServerResponse;
  headers: Record<string, string>;
  timer: NodeJS.Timeout | undefined;
  /** Carried no payload and asked for nothing (an empty poll, §12). */
  empty: boolean;
  /** Its HTTP connection closed before the answer (a tab closed, a network gone): it holds nothing open any more. */
  abandoned?: boolean;
}

/** Stream errors that have a terminal binding condition of their own (§17.2); the rest are remote-stream-error. */
const OWN_CONDITION = new Set(["host-unknown", "system-shutdown", "improper-addressing"]);

/** What a new session needs before its first request is handled. */
export interface BoshOpen {
  to: string;
  lang: string | undefined;
  version: string | undefined;
  from: string | undefined;
}

/**
 * One BOSH session as one XMPP stream. The Connection base class needs a socket for its lifetime events; a BOSH
 * session has none of its own (its HTTP requests come and go on any connection), so it gets a detached Duplex that
 * stands for the session: destroying it (termination, inactivity, server shutdown) ends the stream and the c2s session.
 */
export class BoshConnection extends Connection {
  readonly params: BoshSessionParams;
  readonly #virtual: Duplex;
  readonly #onGone: () => void;
  readonly #log: ConnectionOptions["log"];
  /** Elements we made to carry stream events through the connection's ordered queue (never a client's element). */
  readonly #markers = new WeakSet<Element>();
  #limits: ParserLimits;
  /** The next rid to handle: every lower one has been handled (§14.2). */
  #nextRid: number;
  /** Requests that arrived ahead of a missing lower rid, by rid. */
  readonly #early = new Map<number, BoshRequest>();
  /** Handled requests waiting for something to send, lowest rid first. */
  readonly #held: Held[] = [];
  /** Responses sent, by rid, for repeated requests (§14.3): the last `requests` of them. */
  readonly #sent = new Map<number, string>();
  /** Serialised payloads for the client, and their total size. */
  #out: string[] = [];
  #outBytes = 0;
  /** The header attributes of the stream (from c2s's sendHeader): `id` becomes 'authid' in the creation response. */
  #header: Record<string, string | undefined> = {};
  /** The session creation response is still to be sent (it carries the session's attributes, §7.2). */
  #creating = true;
  #flushScheduled = false;
  #inactivity: NodeJS.Timeout | undefined;
  /** Set when the session ends: how every remaining request is answered. */
  #terminated: { condition: TerminalCondition | undefined } | undefined;
  #pendingCondition: TerminalCondition | undefined;
  /** When the last empty request arrived, and whether its answer carried nothing (§12 polling rule). */
  #lastEmpty: { at: number; answeredEmpty: boolean | undefined } | undefined;
  /** When the last request was handled (§11: two requests within 'polling' seconds). */
  #lastAt = 0;
  #gone = false;

  constructor(handlers: ConnectionHandlers, opts: BoshConnectionOptions) {
    const virtual = new Duplex({
      read() {},
      write(_chunk, _enc, cb) {
        cb();
      },
    });
    // Stream events (open, restart, terminate) go through the connection's ordered queue like any other element, so
    // that they are never handled before the stanzas the client sent ahead of them.
    let self: BoshConnection | undefined;
    const framed: ConnectionHandlers = {
      streamOpen: handlers.streamOpen,
      element: (el) => self!.#frame(el, handlers),
      closed: handlers.closed,
    };
    const base: ConnectionOptions = { contentNs: opts.contentNs, limits: opts.limits, externalInput: true };
    if (opts.log) base.log = opts.log;
    if (opts.remoteAddress !== undefined) base.remoteAddress = opts.remoteAddress;
    super(virtual as unknown as Socket, framed, base);
    self = this;
    this.#virtual = virtual;
    this.params = opts.params;
    this.#onGone = opts.onGone;
    this.#log = opts.log;
    this.#limits = { maxStanzaSize: 10000, maxDepth: 32, maxChildren: 1024, maxAttributes: 64, ...opts.limits };
    this.#nextRid = 0;
    virtual.once("close", () => this.#teardown());
  }

  override get secure(): boolean {
    return this.params.secure;
  }

  /**
   * No channel binding: a BOSH session's requests travel over any number of TLS connections (or a proxy's), so no
   * one of them is the session's own, and SCRAM -PLUS is not offered.
   */
  override get tlsSocket(): undefined {
    return undefined;
  }

  /** XEP-0206 §4: TLS belongs to HTTP (https://); STARTTLS is never offered. */
  override get canStartTls(): boolean {
    return false;
  }

  /** XEP-0198 is not offered over BOSH: XEP-0124's rids and acks already recover lost requests (docs/bosh.md). */
  override get streamManagement(): boolean {
    return false;
  }

  /** The parser limits for this session's payloads (pre-authentication until SASL succeeds). */
  get limits(): ParserLimits {
    return this.#limits;
  }

  override setLimits(limits: Partial<ParserLimits>): void {
    super.setLimits(limits);
    this.#limits = { ...this.#limits, ...limits };
  }

  override upgradeToTls(): Promise<void> {
    return Promise.reject(new Error("no STARTTLS over BOSH"));
  }

  /** The session creation request (§7.1): open the stream and hold the request for the features. */
  start(req: BoshRequest, open: BoshOpen): void {
    this.#nextRid = req.rid + 1;
    const attrs: Record<string, string> = { to: open.to };
    if (open.lang !== undefined) attrs["xml:lang"] = open.lang;
    if (open.version !== undefined) attrs["version"] = open.version;
    if (open.from !== undefined) attrs["from"] = open.from;
    this.#mark("open", attrs);
    for (const el of req.elements) this.receive(asClient(el));
    this.#hold(req, false);
    this.#schedule();
  }

  /** A request with this session's sid (§8): check its rid, then handle it and those after it in rid order. */
  handle(req: BoshRequest): void {
    if (this.#terminated || this.#gone) {
      answer(req.res, req.headers, terminateBody("item-not-found"));
      return;
    }
    if (req.ack !== undefined) for (const rid of this.#sent.keys()) if (rid <= req.ack) this.#sent.delete(rid);
    const rid = req.rid;
    if (rid < this.#nextRid) {
      // §14.3: a repeated request (its connection broke before the answer arrived) gets the same answer again.
      const cached = this.#sent.get(rid);
      if (cached !== undefined) {
        answer(req.res, req.headers, cached);
        return;
      }
      const held = this.#held.find((h) => h.rid === rid);
      if (held) {
        // Still held: the earlier HTTP request is presumably dead; the answer goes to the new one.
        answer(held.res, held.headers, emptyBody());
        held.res = req.res;
        held.headers = req.headers;
        held.abandoned = false;
        this.#watch(held);
        if (this.#inactivity) {
          clearTimeout(this.#inactivity);
          this.#inactivity = undefined;
        }
        return;
      }
      this.#fail("item-not-found", req, "repeated rid whose answer is no longer kept");
      return;
    }
    // §14.2: a window of `requests` rids after the last handled one; anything further is an error.
    if (rid >= this.#nextRid + this.params.requests) {
      this.#fail("item-not-found", req, "rid outside the window");
      return;
    }
    const early = this.#early.get(rid);
    if (early) {
      answer(early.res, early.headers, emptyBody());
      this.#early.set(rid, req);
      return;
    }
    // §11: more requests unanswered at once than 'requests' allows (a terminate may be one more).
    const unanswered = this.#held.length + this.#early.size + 1;
    if (unanswered > this.params.requests && !req.terminate) {
      this.#fail("policy-violation", req, "too many simultaneous requests");
      return;
    }
    if (this.#inactivity) {
      clearTimeout(this.#inactivity);
      this.#inactivity = undefined;
    }
    this.#early.set(rid, req);
    for (let next = this.#early.get(this.#nextRid); next; next = this.#early.get(this.#nextRid)) {
      this.#early.delete(this.#nextRid);
      this.#nextRid++;
      if (!this.#process(next)) return;
    }
    this.#schedule();
  }

  /** A request of this session that could not be read (bad XML, limits): the stream ends as on TCP. */
  fail(res: ServerResponse, headers: Record<string, string>, err: StreamError): void {
    if (this.#terminated || this.#gone) {
      answer(res, headers, terminateBody("item-not-found"));
      return;
    }
    this.#held.push({ rid: -1, res, headers, timer: undefined, empty: false });
    this.streamError(err);
  }

  /** End the session with a terminal binding condition, in answer to a request that could not be taken (§17.2). */
  terminate(condition: TerminalCondition, res: ServerResponse, headers: Record<string, string>, why: string): void {
    if (this.#terminated || this.#gone) {
      answer(res, headers, terminateBody("item-not-found"));
      return;
    }
    this.#fail(condition, { res, headers }, why);
  }

  /** Handle one request in rid order; false when it ended the session. */
  #process(req: BoshRequest): boolean {
    const empty = req.elements.length === 0 && !req.terminate && !req.restart;
    if (empty && this.params.hold === 0) {
      // §12: a polling session may not send two empty requests within 'polling' seconds when the answer to the first
      // carried nothing.
      const last = this.#lastEmpty;
      if (last && last.answeredEmpty === true && Date.now() - last.at < this.params.polling * 1000) {
        this.#fail("policy-violation", req, "polling too frequently");
        return false;
      }
    }
    const now = Date.now();
    const previous = this.#lastAt;
    this.#lastAt = now;
    if (empty && this.#held.length > 0 && this.#held.length + 1 >= this.params.requests && now - previous < this.params.polling * 1000) {
      // §11: as many requests unanswered as allowed, the last one empty and within 'polling' seconds of the one before.
      this.#fail("policy-violation", req, "empty requests too frequently");
      return false;
    }
    if (req.restart) {
      // XEP-0206 §5: the stream restart after SASL success, as a new stream header would be on TCP.
      const attrs: Record<string, string> = { to: req.to ?? this.#header["from"] ?? "", version: "1.0" };
      if (req.lang !== undefined) attrs["xml:lang"] = req.lang;
      this.#mark("open", attrs);
    }
    for (const el of req.elements) this.receive(asClient(el));
    if (req.terminate) this.#mark("terminate", {});
    this.#hold(req, empty);
    return true;
  }

  #hold(req: BoshRequest, empty: boolean): void {
    const held: Held = { rid: req.rid, res: req.res, headers: req.headers, timer: undefined, empty };
    if (empty) this.#lastEmpty = { at: Date.now(), answeredEmpty: undefined };
    // §8: answered empty after 'wait' seconds when nothing came for the client.
    held.timer = setTimeout(() => {
      held.timer = undefined;
      const i = this.#held.indexOf(held);
      if (i < 0) return;
      // Answer in rid order: the ones before it first (they were held longer, so their timers fired already).
      for (const h of this.#held.splice(0, i + 1)) this.#respond(h);
      this.#idle();
    }, this.params.wait * 1000);
    held.timer.unref();
    this.#held.push(held);
    this.#watch(held);
  }

  /**
   * A held request whose HTTP connection closes unanswered stays held (the client may send its rid again, §14.3), but
   * no longer counts as the client being there: with only such requests held, the inactivity clock runs (§10), so a
   * closed tab goes offline after 'inactivity' seconds rather than 'wait' + 'inactivity'.
   */
  #watch(held: Held): void {
    const res = held.res;
    res.once("close", () => {
      if (res.writableFinished || held.res !== res || !this.#held.includes(held)) return;
      held.abandoned = true;
      this.#idle();
    });
  }

  #mark(name: "open" | "terminate", attrs: Record<string, string>): void {
    const el = new Element(name, NS_XBOSH, attrs);
    this.#markers.add(el);
    this.receive(el);
  }

  /** Stream events that the request wrappers carried, in order with the payloads around them. */
  #frame(el: Element, handlers: ConnectionHandlers): void | Promise<void> {
    if (this.#markers.has(el)) {
      if (el.name === "open") {
        handlers.streamOpen(el.attrs, { name: "stream", uri: NS_STREAM, contentNs: NS_CLIENT });
        return;
      }
      // §13: the client ends the session; its payloads (an unavailable presence) were handled just before.
      this.close("client terminated the BOSH session");
      return;
    }
    return handlers.element(el);
  }

  /** Gather what was sent in this turn into one response (§8: answer as soon as something is there to send). */
  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#gone) return;
    // Payloads go to the oldest held request; beyond 'hold' the oldest is answered even with nothing (§8).
    while (this.#held.length > 0 && (this.#out.length > 0 || this.#held.length > this.params.hold)) {
      this.#respond(this.#held.shift()!);
    }
    this.#idle();
  }

  /**
   * With nothing held (or only requests whose connection closed), the inactivity clock runs (§10). Requests waiting
   * for a missing lower rid do not stop it: if the client never sends that rid, it is gone.
   */
  #idle(): void {
    if (this.#gone || this.#terminated || this.#inactivity || this.#held.some((h) => h.abandoned !== true)) return;
    this.#inactivity = setTimeout(() => {
      this.#inactivity = undefined;
      // §10: the client is gone; end the session without telling it (it is not listening).
      this.#log?.debug({ sid: this.params.sid, remote: this.remoteAddress }, "bosh session inactive");
      this.close("BOSH session inactive");
    }, this.params.inactivity * 1000);
    this.#inactivity.unref();
  }

  /** Answer one held request with everything queued for the client. */
  #respond(h: Held, extra: Record<string, string> = {}): void {
    if (h.timer) clearTimeout(h.timer);
    h.timer = undefined;
    const attrs: Record<string, string> = { ...extra };
    if (this.#creating && !this.#terminated) {
      this.#creating = false;
      const p = this.params;
      Object.assign(attrs, {
        sid: p.sid,
        wait: String(p.wait),
        hold: String(p.hold),
        requests: String(p.requests),
        inactivity: String(p.inactivity),
        polling: String(p.polling),
        ver: p.ver,
        // The server is in this process: the connection manager's link to it is as secure as it gets (§7.2).
        secure: "true",
        "xmpp:version": "1.0",
        // XEP-0206 §5: we understand xmpp:restart.
        "xmpp:restartlogic": "true",
        "xmlns:xmpp": NS_XBOSH,
        // §9.1: announcing acks on the creation response commits us to sending them where they say something.
        ack: String(h.rid),
      });
      if (this.#header["from"] !== undefined) attrs["from"] = this.#header["from"]!;
      if (this.#header["id"] !== undefined) attrs["authid"] = this.#header["id"]!;
    } else if (h.rid >= 0 && this.#nextRid - 1 !== h.rid && !this.#terminated) {
      // §9.1: later requests arrived while this one was held; say so.
      attrs["ack"] = String(this.#nextRid - 1);
    }
    const payload = this.#out.join("");
    const hadPayload = this.#out.length > 0;
    this.#out = [];
    this.#outBytes = 0;
    if (h.empty && this.#lastEmpty && this.#lastEmpty.answeredEmpty === undefined) this.#lastEmpty.answeredEmpty = !hadPayload;
    const text = bodyText(attrs, payload);
    if (h.rid >= 0 && !this.#terminated) {
      this.#sent.set(h.rid, text);
      for (const rid of this.#sent.keys()) if (rid <= h.rid - this.params.requests) this.#sent.delete(rid);
    }
    answer(h.res, h.headers, text);
  }

  /** End the session with a terminal binding condition, answering `req` (and every held request) with it. */
  #fail(condition: TerminalCondition, req: Pick<BoshRequest, "res" | "headers">, why: string): void {
    this.#log?.debug({ sid: this.params.sid, condition, why, remote: this.remoteAddress }, "bosh session terminated");
    this.#held.push({ rid: -1, res: req.res, headers: req.headers, timer: undefined, empty: false });
    this.#pendingCondition = condition;
    this.close(`BOSH ${condition}: ${why}`);
  }

  override streamError(err: StreamError): void {
    if (this.closing) return;
    this.#pendingCondition = OWN_CONDITION.has(err.condition) ? (err.condition as TerminalCondition) : "remote-stream-error";
    super.streamError(err);
  }

  /** c2s's stream header: no bytes over BOSH; its `id` and `from` go on the creation response (XEP-0206 §4). */
  protected override headerText(attrs: Record<string, string | undefined>): string {
    this.#header = { ...attrs, id: this.streamId };
    return "";
  }

  protected override footerText(): string {
    return "";
  }

  /** The stream is closed: every request still held is answered with type='terminate' (§13), then the session goes. */
  protected override endTransport(): void {
    this.#terminate(this.#pendingCondition);
    this.#virtual.destroy();
  }

  override write(_text: string): void {
    // Nothing goes out as raw text over BOSH: the header is held for the creation response, and there is no footer.
  }

  /** Queue one element for the client, with its namespaces declared (XEP-0206 §6: stanzas in jabber:client). */
  override send(el: Element): void {
    if (this.#gone || this.#terminated) return;
    const s = serialize(el, "");
    this.#out.push(s);
    this.#outBytes += Buffer.byteLength(s);
    if (this.#out.length > this.params.maxQueuedStanzas || this.#outBytes > this.params.maxQueuedBytes) {
      // The client stopped collecting what we send: bounded memory, so the session ends (policy-violation).
      if (this.#held.length === 0) {
        this.#out = [];
        this.#outBytes = 0;
        this.#pendingCondition = "policy-violation";
        queueMicrotask(() => this.close("BOSH client does not collect its stanzas"));
        return;
      }
    }
    this.#schedule();
  }

  #terminate(condition: TerminalCondition | undefined): void {
    if (this.#terminated) return;
    this.#terminated = { condition };
    if (this.#inactivity) clearTimeout(this.#inactivity);
    this.#inactivity = undefined;
    const attrs: Record<string, string> = { type: "terminate" };
    if (condition) attrs["condition"] = condition;
    // The held requests in rid order; the first one carries what was still queued (a stream error, a last stanza).
    for (const h of this.#held.splice(0)) this.#respond(h, attrs);
    for (const r of this.#early.values()) answer(r.res, r.headers, bodyText(attrs, ""));
    this.#early.clear();
    this.#sent.clear();
  }

  /** The session is over (closed by either side, inactivity, or the server destroying it at shutdown). */
  #teardown(): void {
    if (this.#gone) return;
    this.#terminate(this.#pendingCondition ?? "system-shutdown");
    this.#gone = true;
    this.#onGone();
  }

}

/** Payloads in the <body/> wrapper's own namespace are stanzas in jabber:client (XEP-0206 §6). */
function asClient(el: Element): Element {
  return renameNamespace(el, NS_HTTPBIND, NS_CLIENT);
}

/** A <body/> wrapper with these attributes around `payload` (serialised elements). */
export function bodyText(attrs: Record<string, string>, payload: string): string {
  let s = `<body xmlns='${NS_HTTPBIND}'`;
  for (const k in attrs) s += ` ${k}='${escapeAttr(attrs[k]!)}'`;
  if (payload === "") return s + "/>";
  // stream:features and stream:error use the prefix; declare it once on the wrapper.
  return `${s} xmlns:stream='${NS_STREAM}'>${payload}</body>`;
}

export function emptyBody(): string {
  return bodyText({}, "");
}

export function terminateBody(condition: TerminalCondition): string {
  return bodyText({ type: "terminate", condition }, "");
}

/** Write a BOSH answer (always HTTP 200 for a client that speaks XEP-0124 1.6+, §17.1). */
export function answer(res: ServerResponse, headers: Record<string, string>, body: string, status = 200): void {
  if (res.headersSent || res.destroyed || res.writableEnded) return;
  res.writeHead(status, {
    "content-type": "text/xml; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(body);
}
