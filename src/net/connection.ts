// An XML stream over a socket (RFC 6120 §4): bytes in → parsed elements out, elements in → bytes out.
// Handles stream headers, restarts, stream errors and closing, and the STARTTLS socket upgrade (§5).
// Knows nothing of c2s or s2s negotiation: the session layer above drives it.
import { markAuthorization } from "./direct-tls.ts";
import type { Socket } from "node:net";
import { TLSSocket, connect as tlsConnect, type SecureContext } from "node:tls";
import { randomBytes } from "node:crypto";
import { XmlError, type ParserLimits } from "../xml/parser.ts";
// The hand-written restricted parser: same contract and tests as the saxes-based StreamParser, about 5x faster
// and far less garbage per stanza (docs/xml-parser.md); StreamParser stays as its differential-test reference.
import { FastStreamParser } from "../xml/fast-parser.ts";
import { escapeAttr, serialize, type Element } from "../xml/element.ts";
import { StreamError } from "../xmpp/errors.ts";
import { NS_STREAM } from "../xmpp/ns.ts";

/** What the session layer receives from a connection. */
export interface ConnectionHandlers {
  /** The peer opened (or reopened) its stream. Throw StreamError to refuse it. */
  streamOpen(attrs: Record<string, string>, info: { name: string; uri: string; contentNs: string | undefined }): void;
  /** A top-level element (stanza or negotiation element). May return a promise; elements are handled in order. */
  element(el: Element): void | Promise<void>;
  /** The connection is gone (after close or error); called once. */
  closed(reason: string): void;
  /**
   * Stanzas handed to send() that never reached the peer's kernel buffer: still queued in user space when the
   * socket was destroyed, or sent after the stream began closing. Oldest first. The session settles them (offline
   * storage or a bounce, RFC 6121 §8.5); without this handler they are lost.
   */
  unsent?(stanzas: Element[]): void;
}

export interface ConnectionOptions {
  /** Content namespace of the stream: jabber:client or jabber:server. */
  contentNs: string;
  limits: Partial<ParserLimits>;
  /** Log sink for protocol-level problems. */
  log?: { debug(obj: object, msg: string): void };
  /** Write elements in this namespace as the content namespace (s2s: jabber:client → jabber:server). */
  alias?: { from: string; to: string };
  /** Extra namespace declarations on our stream header (s2s: xmlns:db). */
  headerNs?: Record<string, string>;
  /** The client's address when the socket's peer is not the client (a trusted HTTP proxy). */
  remoteAddress?: string;
  /**
   * The socket's bytes are read by someone else (a WebSocket library) and complete elements arrive through
   * `receive()`: no parsing of the raw socket here (subclasses with their own framing, RFC 7395).
   */
  externalInput?: boolean;
  /**
   * Most bytes that may wait in user space for a peer that does not read (socket.writableLength); past it the
   * stream is closed with `resource-constraint` (RFC 6120 §4.9.3.17). 0 or absent: no bound.
   */
  maxSendBuffer?: number;
}

/** One write while the socket had a backlog: its bytes, and the stanza when it was one. */
interface Backlogged {
  bytes: number;
  stanza: Element | undefined;
}

const CLOSE = Symbol("close");
const STANZA_NAMES = new Set(["message", "presence", "iq"]);

/** Random stream id (RFC 6120 §4.7.3: unpredictable). */
export function newStreamId(): string {
  return randomBytes(12).toString("base64url");
}

/** One XML stream on one socket; replaced socket on STARTTLS, new parser on every restart. */
export class Connection {
  socket: Socket;
  readonly contentNs: string;
  readonly remoteAddress: string;
  streamId = "";
  #handlers: ConnectionHandlers;
  #parser: FastStreamParser;
  #headerSent = false;
  #closing = false;
  #closed = false;
  #queue: (Element | typeof CLOSE)[] = [];
  #processing = false;
  #paused = false;
  #dropUntilRestart = false;
  #log: ConnectionOptions["log"];
  #alias: ConnectionOptions["alias"];
  #headerNs: string;
  #externalInput: boolean;
  #onData = (chunk: Buffer) => this.#data(chunk);
  readonly #maxSendBuffer: number;
  /**
   * The writes made while the socket had a backlog (writableLength > 0 after the write), oldest first from
   * #backlogHead: the last `writableLength` bytes of these are what the kernel has not taken yet. Empty (and never
   * allocated) while the peer reads: a write that leaves no backlog clears it, so the common path costs two getter
   * reads and no allocation. Bounded: entries wholly behind the backlog are dropped as writes come in.
   */
  #backlog: Backlogged[] | undefined;
  #backlogHead = 0;
  #backlogBytes = 0;
  #overflowed = false;

  constructor(socket: Socket, handlers: ConnectionHandlers, opts: ConnectionOptions) {
    this.socket = socket;
    this.contentNs = opts.contentNs;
    this.remoteAddress = opts.remoteAddress ?? socket.remoteAddress ?? "unknown";
    this.#externalInput = opts.externalInput === true;
    this.#maxSendBuffer = opts.maxSendBuffer ?? 0;
    this.#handlers = handlers;
    this.#log = opts.log;
    this.#alias = opts.alias;
    this.#headerNs = Object.entries(opts.headerNs ?? {}).map(([p, uri]) => ` xmlns:${p}='${escapeAttr(uri)}'`).join("");
    this.#parser = new FastStreamParser(
      {
        rootOpen: (name, uri, attrs, ns) => this.#rootOpen(name, uri, attrs, ns),
        element: (el) => this.#element(el),
        rootClose: () => this.#enqueue(CLOSE),
      },
      opts.limits,
    );
    this.#attach(socket);
  }

  /** Whether the socket is TLS-protected. */
  get secure(): boolean {
    return this.socket instanceof TLSSocket && this.socket.encrypted;
  }

  /** Whether STARTTLS can upgrade this transport (not over WebSocket, where TLS belongs to the HTTP layer). */
  get canStartTls(): boolean {
    return true;
  }

  /**
   * Whether XEP-0198 stream management may be offered on this transport (not over BOSH, whose own request ids and
   * acks recover lost HTTP requests, XEP-0124 §9 and §14.3).
   */
  get streamManagement(): boolean {
    return true;
  }

  /** Whether close() has begun. */
  get closing(): boolean {
    return this.#closing || this.#closed;
  }

  /**
   * Whether the stream was closed in XML (close() ran: by our choice, a stream error, or the peer's closing tag)
   * rather than the transport dying under it (XEP-0198 §5: only the latter leaves a session to resume).
   */
  get ended(): boolean {
    return this.#closing;
  }

  /** Change parser limits, e.g. after authentication. */
  setLimits(limits: Partial<ParserLimits>): void {
    Object.assign(this.#parser.limits, limits);
  }

  #attach(socket: Socket): void {
    if (!this.#externalInput) socket.on("data", this.#onData);
    socket.on("error", (err) => this.#destroy(`socket error: ${err.message}`));
    socket.on("close", () => this.#destroy("socket closed"));
    socket.on("end", () => this.#destroy("peer ended connection"));
  }

  #data(chunk: Buffer): void {
    if (this.#closed || this.#dropUntilRestart) return;
    try {
      this.#parser.write(chunk);
    } catch (err) {
      if (err instanceof StreamError) this.streamError(err);
      else if (err instanceof XmlError) this.streamError(new StreamError(err.condition, { text: err.message }));
      else this.streamError(new StreamError("internal-server-error"));
    }
  }

  #rootOpen(name: string, uri: string, attrs: Record<string, string>, ns: Record<string, string>): void {
    if (this.#closing) return;
    this.#handlers.streamOpen(attrs, { name, uri, contentNs: ns[""] });
  }

  #element(el: Element): void {
    if (this.#closing || this.#dropUntilRestart) return;
    this.#enqueue(el);
  }

  /** A complete top-level element read by a subclass's own framing (`externalInput`); handled in order. */
  protected receive(el: Element): void {
    this.#element(el);
  }

  /**
   * Elements are handled after the parser returns (never inside its callbacks), one at a time, so async
   * handlers keep stanza order and a handler may reset the parser (restart, STARTTLS) safely.
   */
  #enqueue(item: Element | typeof CLOSE): void {
    this.#queue.push(item);
    if (!this.#processing) {
      this.#processing = true;
      queueMicrotask(() => void this.#drain());
    }
  }

  /** Handle queued elements one at a time, so async handlers keep stanza order. */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#closing) {
        const el = this.#queue.shift()!;
        if (el === CLOSE) {
          this.close("peer closed the stream");
          break;
        }
        try {
          const r = this.#handlers.element(el);
          if (r) await r;
        } catch (err) {
          if (err instanceof StreamError) this.streamError(err);
          else {
            this.#log?.debug({ err }, "element handler failed");
            this.streamError(new StreamError("internal-server-error"));
          }
        }
        if (this.#queue.length > 1000 && !this.#paused) {
          this.#paused = true;
          this.socket.pause();
        }
      }
    } finally {
      this.#processing = false;
      if (this.#paused && !this.#closed) {
        this.#paused = false;
        this.socket.resume();
      }
    }
  }

  /** Send our stream header (response or initiation). */
  sendHeader(attrs: Record<string, string | undefined>): void {
    if (!this.streamId) this.streamId = newStreamId();
    this.write(this.headerText(attrs));
    this.#headerSent = true;
  }

  /** Our stream header as it goes on the wire (a subclass with other framing writes its own). */
  protected headerText(attrs: Record<string, string | undefined>): string {
    let s = `<?xml version='1.0'?><stream:stream xmlns='${this.contentNs}' xmlns:stream='${NS_STREAM}'${this.#headerNs}`;
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined) s += ` ${k}='${escapeAttr(v)}'`;
    }
    return s + ">";
  }

  /** The end of our stream as it goes on the wire. */
  protected footerText(): string {
    return "</stream:stream>";
  }

  /** End the transport after the footer (TCP: half-close; a subclass may close its own way). */
  protected endTransport(): void {
    this.socket.end();
  }

  /** Whether our header has been sent on the current stream. */
  get headerSent(): boolean {
    return this.#headerSent;
  }

  /** Serialise and send an element in the stream's content namespace. */
  send(el: Element): void {
    if (this.undeliverable(el)) return;
    const text = serialize(el, this.contentNs, this.#alias);
    if (this.socket.destroyed) return;
    this.socket.write(text);
    this.written(text, el);
  }

  /** Send raw text (stream framing only; stanzas go through send()). */
  write(text: string): void {
    if (this.#closed || this.socket.destroyed) return;
    this.socket.write(text);
    this.written(text, undefined);
  }

  /**
   * Whether a stanza can no longer be written: the stream is closed or closing (anything after our
   * </stream:stream> is never read), so it goes to the session's `unsent` handler instead of being lost.
   * Stream-level elements (no jabber:client stanza) are simply dropped then.
   */
  protected undeliverable(el: Element): boolean {
    if (!this.#closed && !this.#closing) return false;
    if (STANZA_NAMES.has(el.name) && el.xmlns === this.contentNs) this.#handlers.unsent?.([el]);
    return true;
  }

  /** Bytes written to the transport but not yet taken by the kernel (a subclass with its own queue adds it). */
  protected get buffered(): number {
    return this.socket.writableLength;
  }

  /** Bytes the transport adds around one write of `bytes` (WebSocket frame headers); 0 for a plain stream. */
  protected framing(_bytes: number): number {
    return 0;
  }

  /**
   * After every write: record it while the socket has a backlog, and close the stream when the backlog passes
   * `maxSendBuffer` (a peer that stopped reading must not grow the server without bound). Subclasses that write
   * their own way call this too.
   */
  protected written(text: string, stanza: Element | undefined): void {
    const buffered = this.buffered;
    if (buffered === 0) {
      if (this.#backlog !== undefined) this.#clearBacklog();
      return;
    }
    if (this.#handlers.unsent !== undefined) this.#record(text, stanza, buffered);
    if (this.#maxSendBuffer > 0 && buffered > this.#maxSendBuffer && !this.#overflowed) {
      this.#overflowed = true;
      this.#log?.debug({ remote: this.remoteAddress, buffered }, "send buffer full: the peer is not reading");
      // Closing writes the error and our footer behind the backlog and gives the peer the close grace period to
      // read them; what is still queued then is handed back through `unsent`.
      this.streamError(new StreamError("resource-constraint", { text: `the peer is not reading: more than ${this.#maxSendBuffer} bytes waiting` }));
    }
  }

  #record(text: string, stanza: Element | undefined, buffered: number): void {
    const len = Buffer.byteLength(text);
    const bytes = len + this.framing(len);
    const log = (this.#backlog ??= []);
    log.push({ bytes, stanza });
    this.#backlogBytes += bytes;
    // Forget entries wholly written: the recorded total beyond the current backlog was taken by the kernel.
    let head = this.#backlogHead;
    while (head < log.length - 1 && this.#backlogBytes - log[head]!.bytes >= buffered) {
      this.#backlogBytes -= log[head]!.bytes;
      head++;
    }
    if (head > 64 && head * 2 > log.length) {
      this.#backlog = log.slice(head);
      head = 0;
    }
    this.#backlogHead = head;
  }

  #clearBacklog(): void {
    this.#backlog = undefined;
    this.#backlogHead = 0;
    this.#backlogBytes = 0;
  }

  /**
   * The stanzas not (wholly) taken by the kernel: walk back from the newest write over the last `buffered` bytes.
   * A stanza cut at the boundary counts as unsent (the peer cannot parse half a stanza), so an error errs towards
   * storing a copy the peer may also have had, never towards losing one.
   */
  #unwritten(): Element[] {
    const log = this.#backlog;
    if (log === undefined) return [];
    // A socket the peer already tore down reports nothing reliable: count everything recorded as unsent.
    let left = this.socket.destroyed ? this.#backlogBytes : this.buffered;
    const out: Element[] = [];
    for (let i = log.length - 1; i >= this.#backlogHead && left > 0; i--) {
      const e = log[i]!;
      if (e.stanza !== undefined) out.push(e.stanza);
      left -= e.bytes;
    }
    this.#clearBacklog();
    return out.reverse();
  }

  /** Prepare a stream restart (RFC 6120 §4.3.3): a new parser and a new header from us. */
  restart(): void {
    this.#parser.reset();
    this.#queue.length = 0;
    this.#headerSent = false;
    this.streamId = "";
    this.#dropUntilRestart = false;
  }

  /** Drop everything else the peer sent on this stream (after <starttls/> or SASL success, until the restart). */
  ignoreRest(): void {
    this.#dropUntilRestart = true;
    this.#queue.length = 0;
  }

  /** STARTTLS (RFC 6120 §5.4.3.3): wrap the TCP socket in TLS as the server; resolves when the handshake is done. */
  upgradeToTls(opts: {
    secureContext: SecureContext;
    SNICallback?: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
    /** Ask the peer for a certificate (s2s: SASL EXTERNAL); it is checked by the caller, never required. */
    requestCert?: boolean;
  }): Promise<void> {
    const raw = this.socket;
    raw.removeListener("data", this.#onData);
    raw.removeAllListeners("end");
    raw.removeAllListeners("close");
    raw.removeAllListeners("error");
    this.restart();
    const tlsOpts: import("node:tls").TLSSocketOptions = { isServer: true, secureContext: opts.secureContext };
    if (opts.SNICallback) tlsOpts.SNICallback = opts.SNICallback;
    if (opts.requestCert) {
      tlsOpts.requestCert = true;
      tlsOpts.rejectUnauthorized = false;
    }
    const secure = new TLSSocket(raw, tlsOpts);
    this.socket = secure;
    return new Promise((resolve, reject) => {
      secure.once("secure", () => {
        secure.disableRenegotiation();
        if (opts.requestCert) markAuthorization(secure);
        this.#attach(secure);
        resolve();
      });
      secure.once("error", (err) => {
        this.#destroy(`TLS handshake failed: ${err.message}`);
        reject(err);
      });
    });
  }

  /** STARTTLS as the initiating side (s2s out): wrap the socket in TLS as a client; resolves when secure. */
  upgradeToTlsClient(opts: import("node:tls").ConnectionOptions): Promise<TLSSocket> {
    const raw = this.socket;
    raw.removeListener("data", this.#onData);
    raw.removeAllListeners("end");
    raw.removeAllListeners("close");
    raw.removeAllListeners("error");
    this.restart();
    return new Promise((resolve, reject) => {
      const secure = tlsConnect({ ...opts, socket: raw }, () => {
        this.socket = secure;
        this.#attach(secure);
        resolve(secure);
      });
      secure.once("error", (err) => {
        this.socket = secure;
        this.#destroy(`TLS handshake failed: ${err.message}`);
        reject(err);
      });
    });
  }

  /** Take over a socket that is already TLS (direct TLS, XEP-0368) after the connection was made. */
  get tlsSocket(): TLSSocket | undefined {
    return this.socket instanceof TLSSocket ? this.socket : undefined;
  }

  /** Send a stream error and close (RFC 6120 §4.9): header first when none was sent yet. */
  streamError(err: StreamError): void {
    if (this.#closing || this.#closed) return;
    if (!this.#headerSent) this.sendHeader({ version: "1.0" });
    this.#log?.debug({ condition: err.condition, text: err.text, remote: this.remoteAddress }, "stream error");
    this.send(err.toElement());
    this.close(`stream error: ${err.condition}`);
  }

  /** Close the stream: send </stream:stream>, end the socket, force-destroy after a grace period. */
  close(reason = "closed"): void {
    if (this.#closing || this.#closed) return;
    this.#closing = true;
    if (!this.#headerSent) this.sendHeader({ version: "1.0" });
    this.write(this.footerText());
    this.endTransport();
    const timer = setTimeout(() => this.#destroy(reason), 2000);
    timer.unref();
    this.socket.once("close", () => {
      clearTimeout(timer);
      this.#destroy(reason);
    });
  }

  #destroy(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    const unsent = this.#unwritten();
    if (!this.socket.destroyed) this.socket.destroy();
    if (unsent.length > 0) this.#handlers.unsent?.(unsent);
    this.#handlers.closed(reason);
  }
}
