// TLS channel bindings for SCRAM -PLUS: tls-exporter (RFC 9266 §2) and tls-server-end-point (RFC 5929 §4.1).
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";

// Signature algorithm OIDs and the hash RFC 5929 §4.1 uses for them (MD5 and SHA-1 are replaced by SHA-256).
const SIGNATURE_HASH: Record<string, string> = {
  "1.2.840.113549.1.1.4": "sha256", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha256", // sha1WithRSAEncryption
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.10045.4.1": "sha256", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.10040.4.3": "sha256", // dsa-with-sha1
  "2.16.840.1.101.3.4.3.1": "sha224",
  "2.16.840.1.101.3.4.3.2": "sha256",
};
const RSASSA_PSS = "1.2.840.113549.1.1.10";
// Digest OIDs, as found in RSASSA-PSS parameters.
const DIGEST_HASH: Record<string, string> = {
  "1.3.14.3.2.26": "sha256", // sha1
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
  "2.16.840.1.101.3.4.2.4": "sha224",
};

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

/** Read one DER TLV at `offset` within `[.., limit)`. */
function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error("DER: truncated");
  const tag = der[offset]!;
  let len = der[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new Error("DER: bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new Error("DER: truncated");
  return { tag, start, end };
}

function decodeOid(der: Buffer, tlv: Tlv): string {
  if (tlv.tag !== 0x06 || tlv.end <= tlv.start) throw new Error("DER: expected OID");
  const first = der[tlv.start]!;
  const arcs = [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40];
  let value = 0;
  for (let i = tlv.start + 1; i < tlv.end; i++) {
    const b = der[i]!;
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  return arcs.join(".");
}

/** The hash (node name) that tls-server-end-point uses for a DER certificate, or undefined when RFC 5929 leaves it undefined (e.g. Ed25519) or the certificate cannot be read. */
export function serverEndPointHash(der: Buffer): string | undefined {
  try {
    const cert = readTlv(der, 0, der.length);
    if (cert.tag !== 0x30) return undefined;
    const tbs = readTlv(der, cert.start, cert.end);
    const algId = readTlv(der, tbs.end, cert.end);
    if (algId.tag !== 0x30) return undefined;
    const oidTlv = readTlv(der, algId.start, algId.end);
    const oid = decodeOid(der, oidTlv);
    if (oid !== RSASSA_PSS) return SIGNATURE_HASH[oid];
    // RSASSA-PSS-params: hashAlgorithm [0] EXPLICIT AlgorithmIdentifier DEFAULT sha1 (RFC 4055 §3.1).
    if (oidTlv.end >= algId.end) return "sha256";
    const params = readTlv(der, oidTlv.end, algId.end);
    if (params.tag !== 0x30 || params.start >= params.end) return "sha256";
    const first = readTlv(der, params.start, params.end);
    if (first.tag !== 0xa0) return "sha256";
    const hashAlg = readTlv(der, first.start, first.end);
    return DIGEST_HASH[decodeOid(der, readTlv(der, hashAlg.start, hashAlg.end))];
  } catch {
    return undefined;
  }
}

/**
 * Channel bindings of an established server-side TLS connection. "tls-exporter" is offered on TLS 1.3 only;
 * "tls-server-end-point" whenever our certificate's signature hash is known (not for Ed25519/Ed448 or unknown algorithms).
 */
export function channelBindingFor(socket: TLSSocket): ChannelBinding {
  // Reading our certificate back from OpenSSL costs ~60 µs; a connection asks when it lists mechanisms and again
  // when it authenticates, so the answer is kept with the socket.
  let cb = perSocket.get(socket);
  if (cb === undefined) {
    cb = computeChannelBinding(socket);
    perSocket.set(socket, cb);
  }
  return cb;
}

/** What a TLS connection can bind to: the types on offer and their data. */
export interface ChannelBinding {
  types: string[];
  get(type: string): Buffer | undefined;
}

const perSocket = new WeakMap<TLSSocket, ChannelBinding>();

function computeChannelBinding(socket: TLSSocket): ChannelBinding {
  const types: string[] = [];
  if (socket.getProtocol() === "TLSv1.3") types.push("tls-exporter");

  let endPoint: Buffer | undefined;
  const cert = socket.getCertificate();
  const raw = cert !== null && "raw" in cert && Buffer.isBuffer(cert.raw) ? cert.raw : undefined;
  const hash = raw && serverEndPointHash(raw);
  if (raw && hash) {
    endPoint = createHash(hash).update(raw).digest();
    types.push("tls-server-end-point");
  }

  return {
    types,
    get(type) {
      if (!types.includes(type)) return undefined;
      if (type !== "tls-exporter") return endPoint;
      try {
        return socket.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
      } catch {
        return undefined; // the connection is gone
      }
    },
  };
}
