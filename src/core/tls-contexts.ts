// TLS server contexts per served domain, chosen by SNI or by the stream's `to` (RFC 6120 §5, §13.7), all made with
// one TLS policy per listener section (docs/tls.md): versions, suites, and renegotiation refused.
import { constants } from "node:crypto";
import { createSecureContext, type SecureContext, type SecureContextOptions } from "node:tls";
import type { HostCertificate } from "./certs.ts";
import type { Config } from "./config/schema.ts";

/** The TLS settings in effect for one listener section. */
export interface TlsPolicy {
  min_version: "TLSv1.2" | "TLSv1.3";
  ciphers: string;
}

/** The policy of a section: its own `tls_policy` keys over the top-level `tls_policy`. */
export function tlsPolicyFor(config: Config, section: "c2s" | "s2s" | "http"): TlsPolicy {
  const own = config[section].tls_policy;
  return { min_version: own?.min_version ?? config.tls_policy.min_version, ciphers: own?.ciphers ?? config.tls_policy.ciphers };
}

/**
 * The context options every server socket gets from a policy. SSL_OP_NO_RENEGOTIATION makes OpenSSL answer a
 * client's renegotiation request with a no_renegotiation alert instead of performing it (Node would otherwise allow
 * three per ten minutes: a CPU cost a client can impose at will); the server's suite order wins so the client cannot
 * steer towards the weakest one the policy allows.
 */
export function policyOptions(policy: TlsPolicy): SecureContextOptions {
  return {
    minVersion: policy.min_version,
    ciphers: policy.ciphers,
    honorCipherOrder: true,
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  };
}

/** Why a cipher list cannot be used (OpenSSL's message), or undefined when it can. */
export function cipherListProblem(ciphers: string): string | undefined {
  try {
    createSecureContext({ ciphers });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Secure contexts for every host, made with one policy (TLS 1.2 and ECDHE-AEAD suites by default). */
export class TlsContexts {
  readonly #byDomain = new Map<string, SecureContext>();
  readonly #default: SecureContext;
  /** The default certificate and key with the policy, for servers that make their own context (HTTPS). */
  readonly serverOptions: SecureContextOptions & { cert: string; key: string };
  readonly policy: TlsPolicy;

  /** `ca`: trust anchors for verifying peers' client certificates (s2s SASL EXTERNAL). */
  constructor(certs: Map<string, HostCertificate>, opts: { ca?: string[]; policy: TlsPolicy }) {
    this.policy = opts.policy;
    const base = policyOptions(opts.policy);
    let first: SecureContext | undefined;
    let pair: { cert: string; key: string } | undefined;
    for (const [domain, c] of certs) {
      const ctx = createSecureContext({ ...base, cert: c.cert, key: c.key, ...(opts.ca ? { ca: opts.ca } : {}) });
      this.#byDomain.set(domain, ctx);
      first ??= ctx;
      pair ??= { cert: c.cert, key: c.key };
    }
    if (!first || !pair) throw new Error("no certificate for any host");
    this.#default = first;
    this.serverOptions = { ...base, ...pair };
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
