// XMPP over WebSocket (RFC 7395) at /xmpp-websocket, byte for byte with a raw `ws` client: the handshake, the
// <open/>/<close/> framing, one element per message, stream errors, encryption rules, SCRAM-PLUS over wss, shutdown.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import WebSocket from "ws";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { WAIT_MS } from "../kit/raw-client.ts";

const FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const OPEN = (to = "localhost") => `<open xmlns='${FRAMING}' to='${to}' version='1.0'/>`;
const CLOSE = `<close xmlns='${FRAMING}'/>`;

/** A WebSocket client that keeps every message in order and can wait for one that matches. */
class WsClient {
  readonly ws: WebSocket;
  readonly messages: string[] = [];
  /** The client's TLS socket (wss), for channel binding. */
  tls: TLSSocket | undefined;
  closeCode: number | undefined;
  #wake: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("upgrade", (res: IncomingMessage) => {
      if (res.socket instanceof TLSSocket) this.tls = res.socket;
    });
    ws.on("message", (data, isBinary) => {
      this.messages.push(isBinary ? "<binary>" : data.toString());
      this.#notify();
    });
    ws.on("close", (code) => {
      this.closeCode = code;
      this.#notify();
    });
    ws.on("error", () => {});
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  static async connect(url: string, opts: { protocols?: string[]; headers?: Record<string, string>; origin?: string } = {}): Promise<WsClient> {
    const options: WebSocket.ClientOptions = { rejectUnauthorized: false, headers: opts.headers ?? {} };
    if (opts.origin) options.origin = opts.origin;
    const ws = new WebSocket(url, opts.protocols ?? ["xmpp"], options);
    const c = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return c;
  }

  send(text: string | Buffer, binary = false): void {
    this.ws.send(text, { binary });
  }

  /** Remove and return messages up to and including the first that matches; throws on close or timeout. */
  async expect(re: RegExp, timeoutMs = WAIT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => re.test(m));
      if (i >= 0) return this.messages.splice(0, i + 1)[i]!;
      if (this.closeCode !== undefined) throw new Error(`closed (${this.closeCode}) before ${re}; got: ${this.messages.join(" | ")}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${re}; got: ${this.messages.join(" | ")}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Wait for the WebSocket to close; returns the close code. */
  async closed(timeoutMs = WAIT_MS): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === undefined) {
      if (Date.now() > deadline) throw new Error(`not closed; got: ${this.messages.join(" | ")}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.closeCode;
  }

  /** Open the stream and return the features message. */
  async open(to = "localhost"): Promise<string> {
    this.send(OPEN(to));
    await this.expect(/^<open /);
    return this.expect(/^<stream:features/);
  }

  /** PLAIN, restart and bind; returns the bound JID. */
  async login(user: string, password: string, resource = "ws"): Promise<string> {
    await this.open();
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    await this.expect(/^<success/);
    await this.open();
    this.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    return /<jid>([^<]+)<\/jid>/.exec(await this.expect(/<jid>/))![1]!;
  }
}

/** The status code a WebSocket handshake is refused with. */
function refusedWith(url: string, protocols: string[], opts: WebSocket.ClientOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, opts);
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on("open", () => reject(new Error("the handshake was accepted")));
    ws.on("error", () => {});
  });
}

const USERS = { "alice@localhost": "wonderland", "bob@localhost": "builder" };

// Plaintext WebSocket allowed (c2s.encryption: optional, PLAIN allowed in plaintext) plus an https listener.
let ts: TestServer;
let wsUrl: string;
let wssUrl: string;
before(async () => {
  ts = await createTestServer(
    { http: { listen: ["127.0.0.1:0"], tls_listen: ["127.0.0.1:0"] }, c2s: { encryption: "optional" }, auth: { insecure_plain: true } },
    { users: USERS },
  );
  wsUrl = `ws://127.0.0.1:${ts.server.addresses.http[0]!.port}/xmpp-websocket`;
  wssUrl = `wss://127.0.0.1:${ts.server.addresses.https[0]!.port}/xmpp-websocket`;
});
after(async () => {
  await ts.stop();
});

test("a client that does not offer the xmpp subprotocol is refused with 400", async () => {
  const none = await refusedWith(wsUrl, []);
  assert.equal(none.status, 400);
  assert.match(none.body, /xmpp/);
  assert.equal((await refusedWith(wsUrl, ["chat", "mqtt"])).status, 400);
});

test("a plain GET of /xmpp-websocket says to upgrade (426)", async () => {
  const r = await fetch(wsUrl.replace("ws:", "http:"));
  assert.equal(r.status, 426);
});

test("the server answers with the xmpp subprotocol, <open/> and the features as a message of their own", async () => {
  const c = await WsClient.connect(wsUrl, { protocols: ["chat", "xmpp"] });
  assert.equal(c.ws.protocol, "xmpp");
  c.send(OPEN());
  const open = await c.expect(/^<open /);
  assert.match(open, new RegExp(`^<open xmlns='${FRAMING}'[^>]* from='localhost'`));
  assert.match(open, / id='[^']{12,}'/);
  assert.match(open, / version='1\.0'/);
  assert.match(open, / xml:lang='en'/);
  assert.match(open, /\/>$/);
  const features = await c.expect(/^<stream:features/);
  assert.match(features, /^<stream:features xmlns:stream='http:\/\/etherx\.jabber\.org\/streams'>/);
  assert.match(features, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
  assert.doesNotMatch(features, /starttls/, "no STARTTLS over WebSocket");
  assert.doesNotMatch(features, /-PLUS/, "no channel binding without TLS");
  assert.match(features, /<\/stream:features>$/);
  c.ws.close();
});

test("a full login: SASL, re-open after success, bind, then a stanza round trip with explicit namespaces", async () => {
  const c = await WsClient.connect(wsUrl);
  const jid = await c.login("alice", "wonderland", "framing");
  assert.equal(jid, "alice@localhost/framing");
  // A stanza without xmlns is read as jabber:client; the reply carries it explicitly (RFC 7395 §3.3.3).
  c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  const pong = await c.expect(/id='p1'/);
  assert.match(pong, /^<iq xmlns='jabber:client'/);
  assert.match(pong, /type='result'/);
  c.ws.close();
});

test("<close/> is answered with <close/> and the WebSocket is closed with 1000", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.login("alice", "wonderland", "closer");
  c.send(CLOSE);
  assert.equal(await c.expect(/^<close/), `<close xmlns='${FRAMING}'/>`);
  assert.equal(await c.closed(), 1000);
});

async function expectStreamError(c: WsClient, condition: string): Promise<string> {
  const err = await c.expect(/^<stream:error/);
  assert.match(err, /^<stream:error xmlns:stream='http:\/\/etherx\.jabber\.org\/streams'>/);
  assert.match(err, new RegExp(`<${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`));
  await c.expect(/^<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'\/>$/);
  return err;
}

test("bad XML in a message is a not-well-formed stream error, then <close/> and the end of the WebSocket", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.open();
  c.send("<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'></iq>");
  await expectStreamError(c, "not-well-formed");
  assert.equal(await c.closed(), 1000);
});

test("two elements in one message are refused", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.login("alice", "wonderland", "two");
  c.send("<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  const err = await expectStreamError(c, "not-well-formed");
  assert.match(err, /exactly one complete element/);
  assert.equal(c.messages.filter((m) => m.includes("p2")).length, 0, "neither element was processed");
  await c.closed();
});

test("an element split over two messages is refused", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.open();
  c.send("<iq type='get' id='half'>");
  await expectStreamError(c, "not-well-formed");
  await c.closed();
});

test("a message may not close the synthetic stream it is read in", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.open();
  c.send("</stream:stream>");
  await expectStreamError(c, "not-well-formed");
  await c.closed();
});

test("a stanza before <open/> is refused", async () => {
  const c = await WsClient.connect(wsUrl);
  c.send("<message xmlns='jabber:client' to='bob@localhost'><body>early</body></message>");
  await c.expect(/^<open /); // a stream error goes out on an opened stream (RFC 6120 §4.9.1.1)
  await expectStreamError(c, "bad-format");
  await c.closed();
});

test("a binary frame is refused: stream error, <close/>, WebSocket close 1003", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.open();
  c.send(Buffer.from(OPEN()), true);
  await expectStreamError(c, "bad-format");
  assert.equal(await c.closed(), 1003);
});

test("<starttls/> over WebSocket fails and closes", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.open();
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await c.expect(/^<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'\/>$/);
  await c.closed();
});

test("the pre-authentication stanza size limit applies to each message", async () => {
  const c = await WsClient.connect(wsUrl);
  await c.open();
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${"A".repeat(ts.config.c2s.max_stanza_size_preauth + 10)}</auth>`);
  await expectStreamError(c, "policy-violation");
  await c.closed();
});

test("a message from a WebSocket client reaches a TCP client and back", async () => {
  const { RawClient } = await import("../kit/raw-client.ts");
  const { client: tcp } = await RawClient.login(ts.c2sPort, "bob", "builder", "tcp");
  const c = await WsClient.connect(wsUrl);
  await c.login("alice", "wonderland", "web");
  c.send("<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>hi from the web</body></message>");
  const m = await tcp.waitFor(/<message[^>]*>[\s\S]*?<\/message>/);
  assert.match(m[0], /from='alice@localhost\/web'/);
  assert.match(m[0], /hi from the web/);
  tcp.send("<message to='alice@localhost/web' type='chat'><body>hi from tcp</body></message>");
  const back = await c.expect(/hi from tcp/);
  assert.match(back, /^<message xmlns='jabber:client'[^>]* from='bob@localhost\/tcp'/);
  tcp.close();
  c.ws.close();
});

// RFC 5802 SCRAM client (with RFC 9266 tls-exporter channel binding) for the wss test.
function scramClient(hash: "sha1" | "sha256", user: string, password: string, gs2: string, cbData: Buffer) {
  const nonce = randomBytes(18).toString("base64");
  const bare = `n=${user},r=${nonce}`;
  let verifier = "";
  return {
    first: () => Buffer.from(gs2 + bare).toString("base64"),
    final(serverFirstB64: string): string {
      const serverFirst = Buffer.from(serverFirstB64, "base64").toString();
      const a = Object.fromEntries(serverFirst.split(",").map((p) => [p[0]!, p.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(a["s"]!, "base64"), Number(a["i"]), hash === "sha1" ? 20 : 32, hash);
      const clientKey = createHmac(hash, salted).update("Client Key").digest();
      const withoutProof = `c=${Buffer.concat([Buffer.from(gs2), cbData]).toString("base64")},r=${a["r"]}`;
      const auth = `${bare},${serverFirst},${withoutProof}`;
      const sig = createHmac(hash, createHash(hash).update(clientKey).digest()).update(auth).digest();
      verifier = createHmac(hash, createHmac(hash, salted).update("Server Key").digest()).update(auth).digest("base64");
      return Buffer.from(`${withoutProof},p=${Buffer.from(clientKey.map((x, i) => x ^ sig[i]!)).toString("base64")}`).toString("base64");
    },
    verifier: () => `v=${verifier}`,
  };
}

test("wss through http.tls_listen: SCRAM-SHA-256-PLUS with tls-exporter channel binding, then bind", async () => {
  const c = await WsClient.connect(wssUrl);
  assert.ok(c.tls, "a TLS socket");
  const features = await c.open();
  assert.match(features, /<mechanism>SCRAM-SHA-256-PLUS<\/mechanism>/);
  assert.match(features, /<channel-binding type='tls-exporter'\/>/);
  const cb = c.tls.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
  const scram = scramClient("sha256", "alice", "wonderland", "p=tls-exporter,,", cb);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>${scram.first()}</auth>`);
  const challenge = /<challenge[^>]*>([^<]+)<\/challenge>/.exec(await c.expect(/^<challenge/))![1]!;
  c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${scram.final(challenge)}</response>`);
  const success = /<success[^>]*>([^<]*)<\/success>/.exec(await c.expect(/^<success/))![1]!;
  assert.equal(Buffer.from(success, "base64").toString(), scram.verifier());
  await c.open();
  c.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>plus</resource></bind></iq>");
  assert.match(await c.expect(/<jid>/), /alice@localhost\/plus/);
  c.ws.close();
});

test("channel binding data from another TLS connection is refused", async () => {
  const c = await WsClient.connect(wssUrl);
  await c.open();
  const scram = scramClient("sha256", "alice", "wonderland", "p=tls-exporter,,", Buffer.alloc(32, 7));
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>${scram.first()}</auth>`);
  const challenge = /<challenge[^>]*>([^<]+)<\/challenge>/.exec(await c.expect(/^<challenge/))![1]!;
  c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${scram.final(challenge)}</response>`);
  await c.expect(/^<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>/);
  c.ws.close();
});

test("with c2s.encryption: required, plain ws:// is refused with policy-violation; wss:// and a trusted https proxy are not", async () => {
  const t = await createTestServer(
    { http: { listen: ["127.0.0.1:0"], tls_listen: ["127.0.0.1:0"], trusted_proxies: ["10.9.9.9"] } },
    { users: USERS },
  );
  try {
    const port = t.server.addresses.http[0]!.port;
    const plain = await WsClient.connect(`ws://127.0.0.1:${port}/xmpp-websocket`);
    plain.send(OPEN());
    await plain.expect(/^<open /);
    const err = await expectStreamError(plain, "policy-violation");
    assert.match(err, /wss:\/\//);
    assert.equal(plain.messages.filter((m) => m.includes("mechanism")).length, 0);
    await plain.closed();

    // X-Forwarded-Proto from an address that is not a trusted proxy changes nothing.
    const spoofed = await WsClient.connect(`ws://127.0.0.1:${port}/xmpp-websocket`, { headers: { "x-forwarded-proto": "https" } });
    spoofed.send(OPEN());
    await expectStreamError(spoofed, "policy-violation");

    const secure = await WsClient.connect(`wss://127.0.0.1:${t.server.addresses.https[0]!.port}/xmpp-websocket`);
    assert.equal(await secure.login("bob", "builder", "tls"), "bob@localhost/tls");
    secure.ws.close();
  } finally {
    await t.stop();
  }
});

test("behind a trusted proxy that says https, the stream counts as encrypted but offers no -PLUS", async () => {
  const t = await createTestServer({ http: { listen: ["127.0.0.1:0"], trusted_proxies: ["127.0.0.1"] } }, { users: USERS });
  try {
    const c = await WsClient.connect(`ws://127.0.0.1:${t.server.addresses.http[0]!.port}/xmpp-websocket`, {
      headers: { "x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.4" },
    });
    const features = await c.open();
    assert.match(features, /<mechanism>PLAIN<\/mechanism>/);
    assert.doesNotMatch(features, /-PLUS|channel-binding/);
    c.ws.close();
  } finally {
    await t.stop();
  }
});

test("server shutdown ends WebSocket sessions with system-shutdown, <close/> and close code 1000", async () => {
  const t = await createTestServer({ http: { listen: ["127.0.0.1:0"] }, c2s: { encryption: "optional" }, auth: { insecure_plain: true } }, { users: USERS });
  const c = await WsClient.connect(`ws://127.0.0.1:${t.server.addresses.http[0]!.port}/xmpp-websocket`);
  await c.login("alice", "wonderland", "bye");
  assert.equal(t.server.status().c2sConnections, 1);
  const stopped = t.stop();
  await expectStreamError(c, "system-shutdown");
  assert.equal(await c.closed(), 1000);
  await stopped;
});

test("http.websocket_origins: a listed browser origin connects, another is refused with 403, no Origin at all is allowed", async () => {
  const t = await createTestServer({ http: { listen: ["127.0.0.1:0"], websocket_origins: ["https://chat.example.org"] }, c2s: { encryption: "optional" } });
  try {
    const url = `ws://127.0.0.1:${t.server.addresses.http[0]!.port}/xmpp-websocket`;
    assert.equal((await refusedWith(url, ["xmpp"], { origin: "https://evil.example" })).status, 403);
    for (const origin of ["https://chat.example.org", undefined]) {
      const c = await WsClient.connect(url, origin ? { origin } : {});
      await c.open();
      c.ws.close();
    }
  } finally {
    await t.stop();
  }
});
