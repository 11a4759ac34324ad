// Test kit: hostile and scripted server-to-server peers over real sockets (RFC 6120 `jabber:server` streams,
// XEP-0220 dialback): a raw originating peer, and a tiny authoritative server that answers <db:verify/> as told.
import { connect as netConnect, createServer, type Server, type Socket, type AddressInfo } from "node:net";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { generateSelfSigned, type CertificatePair } from "../../src/core/certs.ts";
import { WAIT_MS } from "./raw-client.ts";

const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

/** An s2s stream header from `from` to `to` (dialback prefix declared, version 1.0). */
export function s2sHeader(from: string | undefined, to: string): string {
  const f = from === undefined ? "" : ` from='${from}'`;
  return `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'${f} to='${to}' version='1.0'>`;
}

/** The value of attribute `name` in an opening tag, single or double quoted. */
export function attr(tag: string, name: string): string | undefined {
  const m = tag.match(new RegExp(`\\s${name}=(?:'([^']*)'|"([^"]*)")`));
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Client certificate and trust options for the raw peer's TLS (SASL EXTERNAL tests). */
export interface RawTlsOptions {
  cert?: string;
  key?: string;
  ca?: string[];
}

/** A raw originating server over a real socket: exact bytes out, a text buffer in, STARTTLS or direct TLS. */
export class RawS2s {
  socket: Socket | TLSSocket;
  readonly from: string;
  readonly to: string;
  buffer = "";
  closed = false;
  /** The id of the receiving server's current stream (changes after STARTTLS and SASL). */
  streamId = "";
  /** The last <stream:features> received. */
  features = "";
  #waiters: (() => void)[] = [];

  private constructor(socket: Socket | TLSSocket, from: string, to: string) {
    this.socket = socket;
    this.from = from;
    this.to = to;
    this.#attach(socket);
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buffer += d;
      this.#wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.#wake();
    });
    socket.on("error", () => {});
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /**
   * Connect to an s2s port and open a stream; resolves after the stream features. `tls: "starttls"` (or true)
   * negotiates STARTTLS first; `"direct"` connects with TLS from the first byte (XEP-0368).
   */
  static async open(port: number, opts: { from: string; to: string; tls?: boolean | "starttls" | "direct"; tlsOptions?: RawTlsOptions }): Promise<RawS2s> {
    const direct = opts.tls === "direct";
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s: Socket | TLSSocket = direct
        ? tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: opts.to, ALPNProtocols: ["xmpp-server"], ...opts.tlsOptions }, () => resolve(s))
        : netConnect({ host: "127.0.0.1", port }, () => resolve(s));
      s.once("error", reject);
    });
    const peer = new RawS2s(socket, opts.from, opts.to);
    await peer.restart();
    if (opts.tls === true || opts.tls === "starttls") {
      await peer.starttls(opts.tlsOptions);
      await peer.restart();
    }
    return peer;
  }

  /** Send a new stream header and wait for the receiving server's header and features. */
  async restart(): Promise<void> {
    this.buffer = "";
    this.send(s2sHeader(this.from, this.to));
    const head = await this.waitFor(/<stream:stream\b[^>]*>/);
    this.streamId = attr(head[0], "id") ?? "";
    this.features = (await this.waitFor(/<stream:features\/>|<stream:features>[\s\S]*?<\/stream:features>/))[0];
    this.buffer = this.buffer.slice(this.buffer.indexOf(this.features) + this.features.length);
  }

  /** STARTTLS (RFC 6120 §5.4): <starttls/>, <proceed/>, then a TLS handshake, optionally with a client certificate. */
  async starttls(opts: RawTlsOptions = {}): Promise<void> {
    this.send(`<starttls xmlns='${NS_TLS}'/>`);
    await this.waitFor(/<proceed[^>]*\/>/);
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    this.buffer = "";
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: this.to, ...opts }, () => resolve(s));
      s.once("error", reject);
    });
    this.socket = secure;
    this.#attach(secure);
  }

  /** Send raw text on the stream. */
  send(xml: string): void {
    this.socket.write(xml);
  }

  /** Wait until the buffer matches, or the connection closes, or the timeout passes; returns the match. */
  async waitFor(re: RegExp, timeoutMs = WAIT_MS): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.buffer.match(re);
      if (m) return m;
      if (this.closed) throw new Error(`closed before ${re}; got: ${this.buffer}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${re}; got: ${this.buffer}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Claim `domain` with a dialback key (XEP-0220 §2.1.1) and wait for the receiving server's <db:result type=.../>. */
  async dialback(domain: string, key: string, to = this.to, timeoutMs = 10_000): Promise<{ type: string; xml: string }> {
    this.send(`<db:result from='${domain}' to='${to}'>${key}</db:result>`);
    const re = new RegExp(`<db:result\\b(?=[^>]*from='${to.replace(/\./g, "\\.")}')(?=[^>]*to='${domain.replace(/\./g, "\\.")}')[^>]*(?:/>|>[\\s\\S]*?</db:result>)`);
    const m = await this.waitFor(re, timeoutMs);
    return { type: attr(m[0], "type") ?? "", xml: m[0] };
  }

  /** Wait for a stream error; returns its condition. */
  async streamError(timeoutMs = WAIT_MS): Promise<string> {
    const m = await this.waitFor(/<stream:error>\s*<([a-z-]+)/, timeoutMs);
    return m[1]!;
  }

  /** Wait for the receiving server to close the connection. */
  async waitClosed(timeoutMs = WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`not closed; got: ${this.buffer}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A <db:verify/> request the fake authoritative server received. */
export interface VerifyRequest {
  /** The receiving server (asking). */
  from: string;
  /** The domain the key was claimed for. */
  to: string;
  id: string;
  key: string;
}

/** What the fake authority answers: raw XML to write (possibly several elements, or "" for silence). */
export type VerifyAnswer = (req: VerifyRequest) => string;

/** The usual honest answers: `valid` or `invalid` for the request as asked. */
export function answer(type: "valid" | "invalid"): VerifyAnswer {
  return (r) => `<db:verify from='${r.to}' to='${r.from}' id='${r.id}' type='${type}'/>`;
}

/**
 * A scripted authoritative server for dialback (XEP-0220 §2.3): offers STARTTLS (required), then dialback,
 * answers every <db:verify/> with `onVerify`, and accepts every <db:result/> the receiving server sends
 * to authenticate its own link back. Point the victim's s2s.routes at `port`.
 */
export class FakeAuthority {
  readonly server: Server;
  readonly requests: VerifyRequest[] = [];
  onVerify: VerifyAnswer;
  /** <db:result/> keys the receiving server sent us for its link back, with the stream id we gave it. */
  readonly results: { from: string; to: string; key: string; streamId: string }[] = [];
  /** Raw XML written right after our first (pre-TLS) stream header for a stream to `to`, e.g. an unsolicited <db:verify/>. */
  greeting: (to: string) => string = () => "";
  /** Stanzas the receiving server sent us on its link back (answers to what a RawS2s sent it, for barriers). */
  readonly stanzas: string[] = [];
  readonly #cert: CertificatePair;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, cert: CertificatePair, onVerify: VerifyAnswer) {
    this.server = server;
    this.#cert = cert;
    this.onVerify = onVerify;
  }

  /** Listen on 127.0.0.1 with an ephemeral port and a self-signed certificate for `domain`. */
  static async start(domain: string, onVerify: VerifyAnswer = answer("valid")): Promise<FakeAuthority> {
    const cert = await generateSelfSigned(domain);
    let self: FakeAuthority | undefined;
    const server = createServer((s) => self!.#accept(s));
    self = new FakeAuthority(server, cert, onVerify);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return self;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  #accept(raw: Socket): void {
    let socket: Socket = raw;
    let buf = "";
    let secure = false;
    let streamId = "";
    this.#sockets.add(raw);
    raw.on("error", () => {});
    raw.on("close", () => this.#sockets.delete(raw));
    const onData = (d: Buffer) => {
      buf += d.toString("utf8");
      for (;;) {
        buf = buf.replace(/^\s+/, "");
        if (buf.startsWith("<?xml")) {
          const end = buf.indexOf("?>");
          if (end < 0) return;
          buf = buf.slice(end + 2);
          continue;
        }
        if (buf.startsWith("<stream:stream")) {
          const end = buf.indexOf(">");
          if (end < 0) return;
          const head = buf.slice(0, end + 1);
          buf = buf.slice(end + 1);
          const to = attr(head, "to") ?? "";
          const from = attr(head, "from");
          streamId = `fake-${Math.random().toString(36).slice(2)}`;
          socket.write(
            `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='${streamId}' from='${to}'${from ? ` to='${from}'` : ""} version='1.0'>`,
          );
          if (!secure) socket.write(this.greeting(to));
          socket.write(
            secure
              ? "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
              : `<stream:features><starttls xmlns='${NS_TLS}'><required/></starttls></stream:features>`,
          );
          continue;
        }
        if (buf.startsWith("</stream:stream>")) {
          socket.end("</stream:stream>");
          return;
        }
        const m = buf.match(/^<([\w:]+)((?:\s+[\w:]+=(?:'[^']*'|"[^"]*"))*)\s*(?:\/>|>([\s\S]*?)<\/\1>)/);
        if (!m) return; // incomplete: wait for more bytes
        buf = buf.slice(m[0].length);
        const [, name, attrs = "", text = ""] = m;
        const tag = `<${name}${attrs}>`;
        if (name === "starttls" && !secure) {
          socket.write(`<proceed xmlns='${NS_TLS}'/>`);
          raw.removeListener("data", onData);
          const tls = new TLSSocket(raw, { isServer: true, cert: this.#cert.cert, key: this.#cert.key });
          tls.on("error", () => {});
          tls.on("data", onData);
          socket = tls;
          secure = true;
          buf = "";
          return;
        }
        if (name === "db:verify") {
          const req: VerifyRequest = { from: attr(tag, "from") ?? "", to: attr(tag, "to") ?? "", id: attr(tag, "id") ?? "", key: text.trim() };
          this.requests.push(req);
          socket.write(this.onVerify(req));
          continue;
        }
        if (name === "db:result") {
          // The receiving server authenticates its own link to us: accept it, so the link settles.
          this.results.push({ from: attr(tag, "from") ?? "", to: attr(tag, "to") ?? "", key: text.trim(), streamId });
          socket.write(`<db:result from='${attr(tag, "to") ?? ""}' to='${attr(tag, "from") ?? ""}' type='valid'/>`);
          continue;
        }
        // Anything else (stanzas on the link back) is only recorded.
        this.stanzas.push(m[0]);
      }
    };
    raw.on("data", onData);
  }

  /** Wait until a stanza on the link back matches `re` (polling; bounded by `timeoutMs`). */
  async received(re: RegExp, timeoutMs = WAIT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.stanzas.find((x) => re.test(x));
      if (hit !== undefined) return hit;
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${re} on the link back; got: ${this.stanzas.join(" ")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stop listening and drop every connection. */
  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let barriers = 0;

/**
 * A barrier on an authenticated RawS2s stream whose domain routes to `authority`: ping the receiving server and
 * wait for the answer, which comes back on its link to the authority. The receiving server handles a stream's
 * elements one at a time, so once the answer is there it has finished with everything `peer` sent before.
 */
export async function s2sBarrier(peer: RawS2s, authority: FakeAuthority, from = peer.from, timeoutMs = WAIT_MS): Promise<void> {
  const id = `barrier${++barriers}`;
  peer.send(`<iq type='get' from='${from}' to='${peer.to}' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await authority.received(new RegExp(`<iq\\b[^>]*id='${id}'`), timeoutMs);
}

/** A TCP port on 127.0.0.1 that nobody listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
