// TLS server contexts per served domain, chosen by SNI or by the stream's `to` (RFC 6120 §5, §13.7).
import { createSecureContext, type SecureContext } from "node:tls";
import type { HostCertificate } from "./certs.ts";

/** Secure contexts for every host, with TLS 1.2 as the floor. */
export class TlsContexts {
  readonly #byDomain = new Map<string, SecureContext>();
  readonly #default: SecureContext;
  /** The default certificate and key (tls.createServer needs them directly; SNI picks the others). */
  readonly defaultPair: { cert: string; key: string };

  /** `ca`: trust anchors for verifying peers' client certificates (s2s SASL EXTERNAL). */
  constructor(certs: Map<string, HostCertificate>, opts: { ca?: string[] } = {}) {
    let first: SecureContext | undefined;
    let pair: { cert: string; key: string } | undefined;
    for (const [domain, c] of certs) {
      const ctx = createSecureContext({ cert: c.cert, key: c.key, minVersion: "TLSv1.2", ...(opts.ca ? { ca: opts.ca } : {}) });
      this.#byDomain.set(domain, ctx);
      first ??= ctx;
      pair ??= { cert: c.cert, key: c.key };
    }
    if (!first || !pair) throw new Error("no certificate for any host");
    this.#default = first;
    this.defaultPair = pair;
  }

  /** The context for a domain: exact match, else its parent domain (subdomain services), else the default. */
  for(domain: string | undefined): SecureContext {
    if (domain) {
      const exact = this.#byDomain.get(domain.toLowerCase());
      if (exact) return exact;
      const dot = domain.indexOf(".");
      if (dot > 0) {
        const parent = this.#byDomain.get(domain.slice(dot + 1).toLowerCase());
        if (parent) return parent;
      }
    }
    return this.#default;
  }

  /** SNICallback for tls.createServer / TLSSocket. */
  readonly sni = (name: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.for(name));
  };
}
