// The TLS policy on real sockets (docs/tls.md): only ECDHE suites with AEAD ciphers under TLS 1.2, TLS 1.3, no
// renegotiation on STARTTLS or direct TLS, and ALPN on direct TLS (XEP-0368) selected when offered but never a reason
// to refuse a client that offers other protocols (Android's and Go's TLS stacks send h2 and http/1.1).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect, createServer, type AddressInfo } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { HEADER, RawClient } from "../kit/raw-client.ts";
import { alpnOffered } from "../../src/net/direct-tls.ts";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({ s2s: { listen: ["127.0.0.1:0"], direct_tls: ["127.0.0.1:0"] } });
});
after(async () => {
  await ts.stop();
});

/** A direct TLS handshake with these client options: the socket, or the error that ended it. */
function handshake(port: number, opts: ConnectionOptions): Promise<{ socket?: TLSSocket; error?: Error }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, ...opts }, () => resolve({ socket: s }));
    s.once("error", (error) => resolve({ error }));
  });
}

/** Renegotiation from the client side: resolves with the error the server's refusal caused (or undefined if it went through). */
function renegotiate(s: TLSSocket): Promise<Error | undefined> {
  return new Promise((resolve) => {
    s.once("error", (err) => resolve(err));
    const started = s.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? undefined));
    if (!started) resolve(new Error("renegotiate() refused locally"));
  });
}

test("direct TLS selects xmpp-client when offered and accepts a client that offers only other protocols", async () => {
  const xmpp = await handshake(ts.directTlsPort, { ALPNProtocols: ["xmpp-client"] });
  assert.equal(xmpp.socket?.alpnProtocol, "xmpp-client", String(xmpp.error));
  xmpp.socket!.destroy();
  const other = await handshake(ts.directTlsPort, { ALPNProtocols: ["h2", "http/1.1"] });
  assert.ok(other.socket, `refused: ${String(other.error)}`);
  assert.equal(other.socket.alpnProtocol, false);
  // And the stream works on it.
  const c = await new Promise<string>((resolve) => {
    let buf = "";
    other.socket!.setEncoding("utf8");
    other.socket!.on("data", (d: string) => {
      buf += d;
      if (buf.includes("</stream:features>")) resolve(buf);
    });
    other.socket!.write(HEADER());
  });
  assert.match(c, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
  other.socket!.destroy();
  const none = await handshake(ts.directTlsPort, {});
  assert.ok(none.socket, String(none.error));
  none.socket.destroy();
});

test("server-to-server direct TLS selects xmpp-server when offered and accepts other offers", async () => {
  const port = ts.server.addresses.s2sDirectTls[0]!.port;
  const xmpp = await handshake(port, { ALPNProtocols: ["xmpp-server"] });
  assert.equal(xmpp.socket?.alpnProtocol, "xmpp-server", String(xmpp.error));
  xmpp.socket!.destroy();
  const other = await handshake(port, { ALPNProtocols: ["h2"] });
  assert.ok(other.socket, String(other.error));
  other.socket.destroy();
});

test("TLS 1.2 suites without forward secrecy or without AEAD are refused; ECDHE with GCM and TLS 1.3 are accepted", async () => {
  for (const ciphers of ["AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "DHE-RSA-AES128-GCM-SHA256"]) {
    const r = await handshake(ts.directTlsPort, { ciphers, maxVersion: "TLSv1.2" });
    assert.ok(r.error, `${ciphers} was accepted`);
    r.socket?.destroy();
  }
  for (const ciphers of ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"]) {
    const r = await handshake(ts.directTlsPort, { ciphers, maxVersion: "TLSv1.2" });
    assert.ok(r.socket, `${ciphers}: ${String(r.error)}`);
    r.socket.destroy();
  }
  const v13 = await handshake(ts.directTlsPort, { minVersion: "TLSv1.3" });
  assert.equal(v13.socket?.getProtocol(), "TLSv1.3", String(v13.error));
  v13.socket!.destroy();
  const v11 = await handshake(ts.directTlsPort, { minVersion: "TLSv1.1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" });
  assert.ok(v11.error, "TLS 1.1 was accepted");
});

test("a client's renegotiation is refused on direct TLS and after STARTTLS", async () => {
  const direct = await handshake(ts.directTlsPort, { maxVersion: "TLSv1.2" });
  assert.ok(direct.socket, String(direct.error));
  assert.ok(await renegotiate(direct.socket), "direct TLS renegotiated");
  direct.socket.destroy();
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await c.waitFor(/<proceed[^>]*\/>/);
  const plain = c.socket;
  plain.removeAllListeners("data");
  const secure = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: "localhost", maxVersion: "TLSv1.2" }, () => resolve(s));
    s.once("error", reject);
  });
  assert.ok(await renegotiate(secure), "STARTTLS renegotiated");
  secure.destroy();
  c.close();
});

test("the ClientHello reader finds the ALPN list, and says when it needs more bytes or cannot tell", async () => {
  // A real ClientHello from Node's TLS client, captured by a plain TCP server.
  const capture = async (opts: ConnectionOptions): Promise<Buffer> => {
    let got = Buffer.alloc(0);
    const srv = createServer((s) => s.on("data", (d: Buffer) => (got = Buffer.concat([got, d]))));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const c = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts });
    c.on("error", () => {});
    const t0 = Date.now();
    while (alpnOffered(got) === "more" && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 10));
    c.destroy();
    srv.close();
    return got;
  };
  const hello = await capture({ ALPNProtocols: ["h2", "xmpp-client"] });
  assert.deepEqual(alpnOffered(hello), ["h2", "xmpp-client"]);
  assert.deepEqual(alpnOffered(await capture({})), []);
  assert.equal(alpnOffered(hello.subarray(0, 3)), "more");
  assert.equal(alpnOffered(hello.subarray(0, hello.length - 1)), "more");
  assert.equal(alpnOffered(Buffer.from("<?xml version='1.0'?><stream:stream>")), undefined);
  const truncated = Buffer.from(hello);
  truncated.writeUInt16BE(10, 3); // a record too short for the ClientHello it claims
  assert.equal(alpnOffered(truncated.subarray(0, 15)), undefined);
  // Plain bytes on the direct TLS port are refused by TLS, and the listener keeps serving.
  const raw = netConnect(ts.directTlsPort, "127.0.0.1");
  raw.on("error", () => {});
  raw.write("<stream:stream>");
  await new Promise((r) => raw.once("close", r));
  const ok = await handshake(ts.directTlsPort, {});
  assert.ok(ok.socket, String(ok.error));
  ok.socket.destroy();
});
