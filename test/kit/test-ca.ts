// Test kit: a throwaway certificate authority made with the `openssl` CLI, issuing leaf certificates whose
// subjectAltName carries a DNS-ID (RFC 6125 §6.4) for XMPP domains; used by the SASL EXTERNAL (XEP-0178) tests.
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A CA on disk: its certificate (PEM, what peers put in s2s.ca_file) and its private key. */
export interface TestCa {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: string;
}

/** A leaf certificate on disk (what a host puts in `tls: { cert, key }`). */
export interface IssuedCert {
  domain: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** A file name safe for any domain (IDNs and wildcards included). */
function fileBase(domain: string): string {
  return domain.replace(/[^a-zA-Z0-9.-]/g, "_");
}

/** Create a self-signed CA (EC P-256, 2 days) in `dir`. */
export async function createTestCa(dir: string, name = "Comity Test CA"): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  const certFile = join(dir, "ca.crt");
  const keyFile = join(dir, "ca.key");
  await openssl(
    [
      "req", "-x509", "-new", "-nodes",
      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
      "-keyout", keyFile, "-out", certFile, "-days", "2",
      "-subj", `/CN=${name}`,
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  return { dir, certFile, keyFile, cert: await readFile(certFile, "utf8") };
}

/**
 * Issue a certificate for `domain` signed by `ca`: SAN DNS:domain (plus `altNames`), usable as both TLS server
 * and client (s2s links authenticate in both roles). Files go next to the CA as `<domain>.crt` / `<domain>.key`.
 */
export async function issueCert(ca: TestCa, domain: string, opts: { altNames?: string[] } = {}): Promise<IssuedCert> {
  const base = join(ca.dir, fileBase(domain));
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  const csrFile = `${base}.csr`;
  const extFile = `${base}.ext`;
  const sans = [domain, ...(opts.altNames ?? [])].map((n) => `DNS:${n}`).join(",");
  await writeFile(
    extFile,
    [
      `subjectAltName=${sans}`,
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      "",
    ].join("\n"),
  );
  await openssl(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", keyFile, "-out", csrFile, "-subj", `/CN=${domain}`], ca.dir);
  const serial = `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("hex")}`;
  await openssl(["x509", "-req", "-in", csrFile, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-set_serial", serial, "-days", "2", "-extfile", extFile, "-out", certFile], ca.dir);
  return { domain, certFile, keyFile, cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
}
