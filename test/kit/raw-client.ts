// Test kit: a raw XMPP byte-level client for negative tests (send exact bytes, read what comes back).
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export const HEADER = (to = "localhost") =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${to}' version='1.0'>`;

/**
 * How long the helpers wait for something that should happen. Generous on purpose: on a loaded two-core CI
 * machine a TLS handshake or a login can take seconds, and a wait that succeeds returns as soon as it matches.
 */
export const WAIT_MS = 15_000;

const live = new Set<RawClient>();

/**
 * Close every RawClient this process opened and has not closed. Needed only for sockets to servers a test file
 * does not stop itself (Prosody, ejabberd): those would otherwise keep the test process alive after a failure.
 */
export function closeRawClients(): void {
  for (const c of [...live]) c.close();
}

/** A socket with a text buffer and helpers to wait for a pattern or for the close. */
export class RawClient {
  socket: Socket | TLSSocket;
  buffer = "";
  closed = false;
  #waiters: (() => void)[] = [];

  private constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.#attach(socket);
    live.add(this);
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buffer += d;
      this.#wake();
    });
    socket.on("close", () => {
      this.closed = true;
      if (socket === this.socket) live.delete(this);
      this.#wake();
    });
    socket.on("error", () => {});
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  static connect(port: number, opts: { tls?: boolean; host?: string; servername?: string } = {}): Promise<RawClient> {
    const host = opts.host ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      const s = opts.tls
        ? tlsConnect({ host, port, rejectUnauthorized: false, servername: opts.servername ?? "localhost" }, () => resolve(new RawClient(s)))
        : netConnect({ host, port }, () => resolve(new RawClient(s)));
      s.once("error", reject);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
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

  /** Wait for the server to close the connection. */
  async waitClosed(timeoutMs = WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`not closed; got: ${this.buffer}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** STARTTLS: send <starttls/>, wait for <proceed/>, then wrap the socket. */
  async starttls(servername = "localhost"): Promise<void> {
    this.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await this.waitFor(/<proceed[^>]*\/>/);
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    this.buffer = "";
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername }, () => resolve(s));
      s.once("error", reject);
    });
    this.socket = secure;
    this.#attach(secure);
  }

  /** PLAIN authentication (after TLS) and a stream restart; returns after the new features. */
  async authPlain(user: string, password: string, to = "localhost"): Promise<boolean> {
    const b64 = Buffer.from(`\0${user}\0${password}`).toString("base64");
    this.buffer = "";
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64}</auth>`);
    const m = await this.waitFor(/<success[^>]*\/>|<success[^>]*>[^<]*<\/success>|<failure[\s\S]*?<\/failure>/);
    if (!m[0].startsWith("<success")) return false;
    this.buffer = "";
    this.send(HEADER(to));
    await this.waitFor(/<\/stream:features>/);
    return true;
  }

  /** Full login over STARTTLS with PLAIN and bind; returns the bound JID. */
  static async login(port: number, user: string, password: string, resource = "raw", opts: { host?: string; domain?: string } = {}): Promise<{ client: RawClient; jid: string }> {
    const domain = opts.domain ?? "localhost";
    const c = await RawClient.connect(port, opts.host ? { host: opts.host } : {});
    c.send(HEADER(domain));
    await c.waitFor(/<\/stream:features>/);
    await c.starttls(domain);
    c.send(HEADER(domain));
    await c.waitFor(/<\/stream:features>/);
    if (!(await c.authPlain(user, password, domain))) throw new Error("auth failed");
    c.buffer = "";
    c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const m = await c.waitFor(/<jid>([^<]+)<\/jid>/);
    c.buffer = "";
    return { client: c, jid: m[1]! };
  }

  #syncs = 0;

  /**
   * Round trip a ping to the server (after login): the server handles a client's stanzas in order and writes to
   * its socket in order, so once the answer is here everything it routed to this client before has arrived too.
   */
  async sync(to = "localhost"): Promise<void> {
    const id = `rawsync${++this.#syncs}`;
    this.send(`<iq type='get' id='${id}' to='${to}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.waitFor(new RegExp(`<iq[^>]*id='${id}'`));
  }

  close(): void {
    live.delete(this);
    this.socket.destroy();
  }
}
