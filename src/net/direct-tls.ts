// Direct TLS listeners (XEP-0368): TLS from the first byte, then the same streams as after STARTTLS. The ALPN protocol
// (`xmpp-client`, `xmpp-server`) is selected when the client offers it, and a client that offers only other protocols
// (Android's and Go's TLS stacks send h2/http/1.1 by default) is still accepted, without ALPN: Node's tls.Server can
// only select from its list or abort the handshake with no_application_protocol, so the listener reads the
// ClientHello itself first and gives each socket the ALPN list that fits its client.
import type { Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";
import { listen } from "./listen.ts";

export interface DirectTlsOptions {
  /** The default context (policy and certificate); SNI picks a host's own. */
  secureContext: SecureContext;
  SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
  /** The ALPN protocol id of this listener, selected when the client offers it (RFC 7301). */
  alpn: string;
  /** Ask for a client certificate (s2s SASL EXTERNAL); checked by the caller, never required. */
  requestCert?: boolean;
  /** A client that has not finished its handshake by then is dropped (default 30 s). */
  handshakeTimeoutMs?: number;
}

/** The largest ClientHello read before deciding (a TLS record holds at most 16 KiB). */
const MAX_HELLO = 5 + 16384 + 256;

/** Listen for direct TLS on one address; `onSocket` gets each connection once its handshake is done. */
export function listenDirectTls(addr: string, onSocket: (socket: TLSSocket) => void, opts: DirectTlsOptions) {
  return listen(addr, (raw) => accept(raw, onSocket, opts));
}

function accept(raw: Socket, onSocket: (socket: TLSSocket) => void, opts: DirectTlsOptions): void {
  raw.setNoDelay(true);
  const timer = setTimeout(() => raw.destroy(), opts.handshakeTimeoutMs ?? 30_000);
  timer.unref();
  raw.on("error", () => raw.destroy());
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const offered = alpnOffered(seen);
    if (offered === "more" && seen.length < MAX_HELLO) return;
    raw.removeListener("data", onData);
    raw.pause();
    raw.unshift(seen);
    const wants = offered !== "more" && offered !== undefined && offered.includes(opts.alpn);
    const secure = new TLSSocket(raw, {
      isServer: true,
      secureContext: opts.secureContext,
      SNICallback: opts.SNICallback,
      ...(wants ? { ALPNProtocols: [opts.alpn] } : {}),
      ...(opts.requestCert ? { requestCert: true, rejectUnauthorized: false } : {}),
    });
    secure.once("secure", () => {
      clearTimeout(timer);
      if (opts.requestCert) markAuthorization(secure);
      onSocket(secure);
    });
    secure.on("error", () => {
      clearTimeout(timer);
      secure.destroy();
    });
  };
  raw.on("data", onData);
}

/**
 * Node fills `authorized` only for sockets a tls.Server created: do the same check for a server-side TLSSocket made
 * by hand (direct TLS here, STARTTLS in connection.ts).
 */
export function markAuthorization(secure: TLSSocket): void {
  const err = (secure as unknown as { _handle?: { verifyError(): Error | null } })._handle?.verifyError();
  if (err) secure.authorizationError = ((err as NodeJS.ErrnoException).code ?? err.message) as unknown as Error;
  else secure.authorized = true;
}

/**
 * The ALPN protocol ids a TLS ClientHello offers (RFC 8446 §4.1.2, RFC 7301 §3.1): a list (empty when it has no ALPN
 * extension), "more" when the record is not complete yet, undefined when the bytes are not a ClientHello this parser
 * understands (then the handshake goes on without ALPN and TLS itself judges the bytes).
 */
export function alpnOffered(buf: Buffer): string[] | "more" | undefined {
  if (buf.length < 5) return "more";
  if (buf[0] !== 0x16) return undefined; // not a handshake record
  const recordLength = buf.readUInt16BE(3);
  if (buf.length < 5 + recordLength) return "more";
  const hs = buf.subarray(5, 5 + recordLength);
  // A ClientHello split over several records is legal but rare; without the whole message, do without ALPN.
  if (hs.length < 4 || hs[0] !== 0x01) return undefined;
  const helloLength = hs.readUIntBE(1, 3);
  if (hs.length < 4 + helloLength) return undefined;
  const hello = hs.subarray(4, 4 + helloLength);
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > hello.length) return undefined;
  p += 1 + hello[p]!; // session id
  if (p + 2 > hello.length) return undefined;
  p += 2 + hello.readUInt16BE(p); // cipher suites
  if (p + 1 > hello.length) return undefined;
  p += 1 + hello[p]!; // compression methods
  if (p === hello.length) return []; // no extensions at all
  if (p + 2 > hello.length) return undefined;
  const end = p + 2 + hello.readUInt16BE(p);
  if (end > hello.length) return undefined;
  p += 2;
  while (p + 4 <= end) {
    const type = hello.readUInt16BE(p);
    const len = hello.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return undefined;
    if (type === 0x0010) {
      const list: string[] = [];
      if (len < 2) return undefined;
      let q = p + 2;
      const listEnd = p + 2 + hello.readUInt16BE(p);
      if (listEnd > p + len) return undefined;
      while (q < listEnd) {
        const n = hello[q]!;
        if (q + 1 + n > listEnd) return undefined;
        list.push(hello.toString("latin1", q + 1, q + 1 + n));
        q += 1 + n;
      }
      return list;
    }
    p += len;
  }
  return [];
}
