// Tests for TLS channel bindings (RFC 9266 tls-exporter, RFC 5929 §4.1 tls-server-end-point).
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import tls from "node:tls";
import { generate } from "selfsigned";
import { channelBindingFor, serverEndPointHash } from "./channel-binding.ts";

async function certificate(algorithm: string): Promise<{ cert: string; key: string; der: Buffer }> {
  const pems = await generate([{ name: "commonName", value: "capulet.lit" }], { keyType: "ec", algorithm });
  return { cert: pems.cert, key: pems.private, der: new X509Certificate(pems.cert).raw };
}

/** Minimal DER encoder for hand-made certificates with unusual signature algorithms. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const len = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const bytes = [a! * 40 + b!];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}
function fakeCert(algorithmIdentifier: Buffer): Buffer {
  return der(0x30, der(0x30, der(0x02, Buffer.from([1]))), algorithmIdentifier, der(0x03, Buffer.from([0, 1, 2])));
}

describe("serverEndPointHash", () => {
  it("uses the certificate's signature hash, and SHA-256 instead of SHA-1", async () => {
    assert.equal(serverEndPointHash((await certificate("sha1")).der), "sha256");
    assert.equal(serverEndPointHash((await certificate("sha256")).der), "sha256");
    assert.equal(serverEndPointHash((await certificate("sha384")).der), "sha384");
    assert.equal(serverEndPointHash((await certificate("sha512")).der), "sha512");
  });

  it("reads the hash from RSASSA-PSS parameters", () => {
    const sha384 = der(0x30, oid("2.16.840.1.101.3.4.2.2"));
    assert.equal(serverEndPointHash(fakeCert(der(0x30, oid("1.2.840.113549.1.1.10"), der(0x30, der(0xa0, sha384))))), "sha384");
    assert.equal(serverEndPointHash(fakeCert(der(0x30, oid("1.2.840.113549.1.1.10"), der(0x30)))), "sha256");
  });

  it("leaves Ed25519, unknown algorithms and garbage undefined", () => {
    assert.equal(serverEndPointHash(fakeCert(der(0x30, oid("1.3.101.112")))), undefined);
    assert.equal(serverEndPointHash(fakeCert(der(0x30, oid("1.2.3.4")))), undefined);
    assert.equal(serverEndPointHash(Buffer.from([0x30, 0x85, 1])), undefined);
    assert.equal(serverEndPointHash(Buffer.alloc(0)), undefined);
  });
});

async function connect(maxVersion: tls.SecureVersion) {
  const { cert, key, der: raw } = await certificate("sha384");
  const server = tls.createServer({ cert, key, maxVersion });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "secureConnection") as Promise<[tls.TLSSocket]>;
  const client = tls.connect({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", rejectUnauthorized: false });
  await once(client, "secureConnect");
  const [socket] = await accepted;
  const close = async () => {
    client.destroy();
    socket.destroy();
    server.close();
    await once(server, "close");
  };
  return { client, socket, raw, close };
}

describe("channelBindingFor", () => {
  it("offers tls-exporter and tls-server-end-point on TLS 1.3, matching the client's view", async () => {
    const { client, socket, raw, close } = await connect("TLSv1.3");
    try {
      const cb = channelBindingFor(socket);
      assert.deepEqual(cb.types, ["tls-exporter", "tls-server-end-point"]);
      assert.deepEqual(cb.get("tls-exporter"), client.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0)));
      assert.deepEqual(cb.get("tls-server-end-point"), createHash("sha384").update(client.getPeerCertificate().raw).digest());
      assert.deepEqual(cb.get("tls-server-end-point"), createHash("sha384").update(raw).digest());
      assert.equal(cb.get("tls-unique"), undefined);
    } finally {
      await close();
    }
  });

  it("offers only tls-server-end-point on TLS 1.2", async () => {
    const { socket, close } = await connect("TLSv1.2");
    try {
      const cb = channelBindingFor(socket);
      assert.deepEqual(cb.types, ["tls-server-end-point"]);
      assert.equal(cb.get("tls-exporter"), undefined);
    } finally {
      await close();
    }
  });
});
