// XMPP over WebSocket framing (RFC 7395 §3.3–3.6): a Connection whose input is one complete element per WebSocket
// text message and whose output is one message per element, with <open/> and <close/> in the framing namespace in
// place of the <stream:stream> header and footer. Everything above the framing (stream negotiation, SASL, binding,
// routing, limits) is the c2s session of src/core/c2s.ts, unchanged.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import WebSocket, { type RawData } from "ws";
import { Connection, type ConnectionHandlers, type ConnectionOptions } from "../net/connection.ts";
import { FastStreamParser } from "../xml/fast-parser.ts";
import { XmlError, type ParserLimits } from "../xml/parser.ts";
import { escapeAttr, serialize, type Element } from "../xml/element.ts";
import { StreamError } from "../xmpp/errors.ts";
import { NS_STREAM } from "../xmpp/ns.ts";

/** RFC 7395 §3.3.2: the namespace of <open/> and <close/>. */
export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

/** WebSocket close codes (RFC 6455 §7.4.1). */
const NORMAL_CLOSURE = 1000;
const UNSUPPORTED_DATA = 1003;

const WHITESPACE = /^[ \t\r\n]*$/;

export interface WsConnectionOptions extends ConnectionOptions {
  /** The HTTP request came over TLS (our https listener, or a trusted proxy that says https). */
  secure: boolean;
  /** The client's own TLS socket, for SCRAM -PLUS channel binding; absent when a proxy terminated TLS. */
  tls?: TLSSocket | undefined;
}

/**
 * One XMPP stream over one WebSocket. Each message is parsed as its own document: the text is read inside a
 * synthetic stream root that declares jabber:client as the default namespace and the `stream` prefix (so a
 * client that leaves either undeclared on a stanza is still understood), and must yield exactly one element.
 */
export class WsConnection extends Connection {
  readonly #ws: WebSocket;
  readonly #secure: boolean;
  readonly #tls: TLSSocket | undefined;
  readonly #parser: FastStreamParser;
  readonly #root: string;
  /** The client sent <open/> on the current stream (cleared by a restart, e.g. after SASL success). */
  #opened = false;
  #closeCode = NORMAL_CLOSURE;
  /** What the parser produced from the current message. */
  #found: Element | undefined;
  #count = 0;
  #rootClosed = false;

  constructor(ws: WebSocket, socket: Socket, handlers: ConnectionHandlers, opts: WsConnectionOptions) {
    // The framing elements go through the connection's ordered queue like any other element, so that an <open/>
    // or <close/> is never handled before the stanzas sent ahead of it.
    let self: WsConnection | undefined;
    const framed: ConnectionHandlers = {
      streamOpen: handlers.streamOpen,
      element: (el) => self!.#frame(el, handlers),
      closed: handlers.closed,
    };
    if (handlers.unsent) framed.unsent = handlers.unsent;
    const base: ConnectionOptions = { contentNs: opts.contentNs, limits: opts.limits, externalInput: true };
    if (opts.log) base.log = opts.log;
    if (opts.remoteAddress !== undefined) base.remoteAddress = opts.remoteAddress;
    if (opts.maxSendBuffer !== undefined) base.maxSendBuffer = opts.maxSendBuffer;
    super(socket, framed, base);
    self = this;
    this.#ws = ws;
    this.#secure = opts.secure;
    this.#tls = opts.tls;
    this.#root = `<stream:stream xmlns='${escapeAttr(opts.contentNs)}' xmlns:stream='${NS_STREAM}'>`;
    this.#parser = new FastStreamParser(
      {
        rootOpen: () => {},
        element: (el) => {
          this.#count++;
          this.#found = el;
        },
        rootClose: () => {
          this.#rootClosed = true;
        },
      },
      opts.limits,
    );
    ws.on("message", (data, isBinary) => this.#message(data, isBinary));
    ws.on("error", (err) => opts.log?.debug({ err, remote: this.remoteAddress }, "websocket error"));
  }

  override get secure(): boolean {
    return this.#secure;
  }

  override get tlsSocket(): TLSSocket | undefined {
    return this.#tls;
  }

  /** RFC 7395 §3.8: TLS belongs to the WebSocket (wss://); STARTTLS is never offered. */
  override get canStartTls(): boolean {
    return false;
  }

  override setLimits(limits: Partial<ParserLimits>): void {
    super.setLimits(limits);
    Object.assign(this.#parser.limits, limits);
  }

  override restart(): void {
    super.restart();
    this.#opened = false;
  }

  override upgradeToTls(): Promise<void> {
    return Promise.reject(new Error("no STARTTLS over WebSocket"));
  }

  #message(data: RawData, isBinary: boolean): void {
    if (this.closing) return;
    if (isBinary) {
      // RFC 7395 §3.2: XMPP travels in text frames only.
      this.#closeCode = UNSUPPORTED_DATA;
      this.streamError(new StreamError("bad-format", { text: "binary WebSocket frames are not allowed; send text" }));
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString("utf8") : Array.isArray(data) ? Buffer.concat(data).toString("utf8") : Buffer.from(data).toString("utf8");
    if (WHITESPACE.test(text)) return; // not a document, but harmless (RFC 7395 §3.7 prefers pings to whitespace)
    this.#found = undefined;
    this.#count = 0;
    this.#rootClosed = false;
    const p = this.#parser;
    try {
      p.reset();
      p.write(this.#root);
      p.write(text);
      if (this.#rootClosed) throw new XmlError("not-well-formed", "a WebSocket message may not close the stream; send <close/>");
      p.write("</stream:stream>");
    } catch (err) {
      if (err instanceof StreamError) this.streamError(err);
      else if (err instanceof XmlError) this.streamError(new StreamError(err.condition, { text: err.message }));
      else this.streamError(new StreamError("internal-server-error"));
      return;
    }
    if (this.#count !== 1 || !this.#found) {
      // An XML document has exactly one root element (XML 1.0 §2.1), and RFC 7395 §3.3.3 makes each message one.
      this.streamError(new StreamError("not-well-formed", { text: "each WebSocket message must carry exactly one complete element" }));
      return;
    }
    const el = this.#found;
    this.#found = undefined;
    this.receive(el);
  }

  /** Framing elements become stream events; anything else must come after <open/>. */
  #frame(el: Element, handlers: ConnectionHandlers): void | Promise<void> {
    if (el.xmlns === NS_FRAMING) {
      if (el.name === "open") {
        if (this.#opened) throw new StreamError("bad-format", { text: "the stream is already open" });
        this.#opened = true;
        handlers.streamOpen(el.attrs, { name: "stream", uri: NS_STREAM, contentNs: this.contentNs });
        return;
      }
      if (el.name === "close") {
        // RFC 7395 §3.6: answer <close/>, then end the WebSocket.
        this.close("peer closed the stream");
        return;
      }
      throw new StreamError("bad-format", { text: `unknown framing element <${el.name}/>` });
    }
    if (!this.#opened) throw new StreamError("bad-format", { text: `open the stream with <open xmlns='${NS_FRAMING}'/> first` });
    return handlers.element(el);
  }

  /** RFC 7395 §3.4: the server's <open/>, a complete element of its own. */
  protected override headerText(attrs: Record<string, string | undefined>): string {
    let s = `<open xmlns='${NS_FRAMING}'`;
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined) s += ` ${k}='${escapeAttr(v)}'`;
    }
    return s + "/>";
  }

  protected override footerText(): string {
    return `<close xmlns='${NS_FRAMING}'/>`;
  }

  protected override endTransport(): void {
    this.#ws.close(this.#closeCode);
  }

  override write(text: string): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(text);
    this.written(text, undefined);
  }

  /** RFC 6455 §5.2: an unmasked server frame's header is 2 bytes, 4 with a 16-bit length, 10 with a 64-bit one. */
  protected override framing(bytes: number): number {
    return bytes < 126 ? 2 : bytes < 65536 ? 4 : 10;
  }

  /**
   * One element, one message, with every namespace it uses declared on it (RFC 7395 §3.3.3): stanzas carry
   * xmlns='jabber:client', and stream:features / stream:error declare the stream prefix themselves.
   */
  override send(el: Element): void {
    if (this.undeliverable(el) || this.#ws.readyState !== WebSocket.OPEN) return;
    let s = serialize(el, "");
    if (el.name.startsWith("stream:")) s = `<${el.name} xmlns:stream='${NS_STREAM}'` + s.slice(el.name.length + 1);
    this.#ws.send(s);
    this.written(s, el);
  }
}
