// TLS certificates: per-host selection, self-signed generation on first start, inspection (RFC 6120 §13.7.1.2, RFC 6125).
import { X509Certificate, createPrivateKey } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import selfsigned from "selfsigned";
import type { Config } from "./config/schema.ts";
import type { Logger } from "./log.ts";

/** A certificate that cannot be read or used; the message names the file. */
export class CertError extends Error {
  readonly code = "COMITY_ERR_TLS";
  constructor(message: string) {
    super(message);
    this.name = "CertError";
  }
}

export interface CertificatePair {
  cert: string;
  key: string;
}

export interface HostCertificate extends CertificatePair {
  certFile: string;
  keyFile: string;
}

export interface CertificateInfo {
  /** Subject distinguished name, e.g. `CN=comity.test`. */
  subject: string;
  /** DNS names from subjectAltName (without the `DNS:` prefix). */
  altNames: string[];
  notBefore: Date;
  notAfter: Date;
  /** Issuer equals subject and the certificate verifies with its own key. */
  selfSigned: boolean;
  /** Whether `key` belongs to the certificate; undefined when no key was given. */
  matchesKey: boolean | undefined;
  /** Whether the certificate is valid for `domain` (subjectAltName DNS, wildcards allowed). */
  coversDomain(domain: string): boolean;
}

/** A self-signed RSA-2048 certificate for `domain` (and `*.domain`), valid for `days` (default 365). */
export async function generateSelfSigned(domain: string, opts: { days?: number; altNames?: string[] } = {}): Promise<CertificatePair> {
  const notBeforeDate = new Date(Date.now() - 60_000); // tolerate small clock skew between peers
  const notAfterDate = new Date(notBeforeDate.getTime() + (opts.days ?? 365) * 86_400_000);
  const names = [...new Set([domain, `*.${domain}`, ...(opts.altNames ?? [])])];
  const altNames: { type: 2 | 7; value?: string; ip?: string }[] = names.map((value) => ({ type: 2, value }));
  if (domain === "localhost") altNames.push({ type: 7, ip: "127.0.0.1" }, { type: 7, ip: "::1" });
  const pems = await selfsigned.generate([{ name: "commonName", value: domain }], {
    keyType: "rsa",
    keySize: 2048,
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      // clientAuth too: the same certificate authenticates us on outgoing s2s links (SASL EXTERNAL).
      { name: "extKeyUsage", serverAuth: true, clientAuth: true },
      { name: "subjectAltName", altNames },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Paths of the generated certificate for `domain` under the data directory. */
export function generatedCertPaths(dataDir: string, domain: string): { certFile: string; keyFile: string } {
  const dir = join(dataDir, "certs");
  return { certFile: join(dir, `${domain}.crt`), keyFile: join(dir, `${domain}.key`) };
}

/** Write a certificate pair; the key file is created with mode 0600. Both are written to temporary names first. */
export async function writeCertificatePair(pair: CertificatePair, files: { certFile: string; keyFile: string }): Promise<void> {
  await mkdir(dirname(files.certFile), { recursive: true });
  await mkdir(dirname(files.keyFile), { recursive: true });
  const tmpKey = `${files.keyFile}.tmp-${process.pid}`;
  const tmpCert = `${files.certFile}.tmp-${process.pid}`;
  await writeFile(tmpKey, pair.key, { mode: 0o600 });
  await chmod(tmpKey, 0o600); // the umask may have widened nothing, but an existing file keeps its mode
  await writeFile(tmpCert, pair.cert, { mode: 0o644 });
  await rename(tmpKey, files.keyFile);
  await rename(tmpCert, files.certFile);
}

/** The certificate for every configured host: its own `tls`, else the global `tls`, else one generated in data_dir. */
export async function loadCertificates(config: Config, log?: Logger): Promise<Map<string, HostCertificate>> {
  const out = new Map<string, HostCertificate>();
  await Promise.all(
    config.hosts.map(async (host) => {
      const tls = host.tls ?? config.tls;
      if (tls) {
        const [cert, key] = await Promise.all([readPem(tls.cert, "certificate"), readPem(tls.key, "private key")]);
        const info = inspectOrThrow(cert, key, tls.cert);
        if (info.matchesKey === false) throw new CertError(`${tls.key} is not the private key of ${tls.cert}`);
        if (!info.coversDomain(host.domain)) log?.warn({ host: host.domain, certFile: tls.cert }, "certificate does not cover this host's domain");
        if (info.notAfter.getTime() < Date.now()) log?.warn({ host: host.domain, certFile: tls.cert, notAfter: info.notAfter }, "certificate has expired");
        out.set(host.domain, { cert, key, certFile: tls.cert, keyFile: tls.key });
        return;
      }
      const files = generatedCertPaths(config.data_dir, host.domain);
      let pair: CertificatePair | undefined;
      try {
        pair = { cert: await readFile(files.certFile, "utf8"), key: await readFile(files.keyFile, "utf8") };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new CertError(`cannot read ${files.certFile}: ${(err as Error).message}`);
      }
      if (pair === undefined) {
        pair = await generateSelfSigned(host.domain);
        await writeCertificatePair(pair, files);
        log?.warn({ host: host.domain, certFile: files.certFile }, "generated a self-signed certificate; clients and peers that verify certificates will not trust it (set tls.cert/tls.key)");
      } else {
        if (inspectOrThrow(pair.cert, pair.key, files.certFile).selfSigned) log?.warn({ host: host.domain, certFile: files.certFile }, "using a self-signed certificate");
      }
      out.set(host.domain, { ...pair, ...files });
    }),
  );
  return out;
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CertError(`cannot read ${what} ${file}: ${code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

function inspectOrThrow(cert: string, key: string, file: string): CertificateInfo {
  try {
    return inspectCertificate(cert, key);
  } catch (err) {
    throw new CertError(`${file}: not a usable PEM certificate (${(err as Error).message})`);
  }
}

/** Facts about a PEM certificate (the first one of a chain), and whether `key` is its private key. */
export function inspectCertificate(pem: string, key?: string): CertificateInfo {
  const x509 = new X509Certificate(pem);
  const altNames = (x509.subjectAltName ?? "")
    .split(/,\s*/)
    .filter((n) => n.startsWith("DNS:"))
    .map((n) => n.slice(4));
  let selfSigned = false;
  try {
    // Not checkIssued(): OpenSSL also wants keyCertSign there, which a leaf self-signed certificate lacks.
    selfSigned = x509.issuer === x509.subject && x509.verify(x509.publicKey);
  } catch {
    selfSigned = false;
  }
  let matchesKey: boolean | undefined;
  if (key !== undefined) {
    try {
      matchesKey = x509.checkPrivateKey(createPrivateKey(key));
    } catch {
      matchesKey = false;
    }
  }
  return {
    subject: x509.subject.replace(/\n/g, ", "),
    altNames,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    selfSigned,
    matchesKey,
    coversDomain: (domain: string) => x509.checkHost(domain) !== undefined,
  };
}
