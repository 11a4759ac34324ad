// testssl.sh (Debian's package), the scanner operators run, against a STARTTLS client port and a direct-TLS client port
// of a running server: client-initiated renegotiation is refused, and every suite offered is ECDHE with an AEAD
// cipher (no static RSA, no CBC, no protocol before TLS 1.2). Both scans run at once (~50 s). Without testssl the test
// is skipped, except under CI=true, where that is a failure (scripts/install-test-deps.sh installs it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestServer, type TestServer } from "../kit/server.ts";

const TESTSSL = "/usr/bin/testssl";
const missing = spawnSync(TESTSSL, ["--version"], { timeout: 30_000 }).status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "testssl.sh is not installed (scripts/install-test-deps.sh)" : false;

let ts: TestServer;
let dir: string;
const children = new Set<ChildProcess>();
before(async () => {
  ts = await createTestServer({});
  dir = mkdtempSync(join(tmpdir(), "comity-testssl-"));
});
after(async () => {
  for (const c of children) c.kill("SIGKILL");
  await ts.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

/** Run testssl (renegotiation and each cipher per protocol) against 127.0.0.1:port; its JSON findings. */
function scan(name: string, port: number, extra: string[]): Promise<Finding[]> {
  const json = join(dir, `${name}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(TESTSSL, ["--quiet", "--color", "0", "--warnings", "batch", "--ip", "one", "-E", "-R", ...extra, "--jsonfile", json, `127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      children.delete(child);
      try {
        resolve(JSON.parse(readFileSync(json, "utf8")) as Finding[]);
      } catch (err) {
        reject(new Error(`testssl ${name} (exit ${code}) wrote no findings: ${(err as Error).message}\n${out}`));
      }
    });
  });
}

function judge(name: string, findings: Finding[]): void {
  const by = (id: string) => findings.find((f) => f.id === id);
  assert.equal(by("secure_client_renego")?.finding, "not vulnerable", `${name}: ${JSON.stringify(by("secure_client_renego"))}`);
  const ciphers = findings.filter((f) => f.id.startsWith("cipher-")).map((f) => f.finding.replace(/\s+/g, " "));
  assert.ok(ciphers.length >= 3, `${name}: testssl found no suites: ${JSON.stringify(findings)}`);
  for (const c of ciphers) {
    // "TLS 1.2 xc02f ECDHE-RSA-AES128-GCM-SHA256 ECDH 253 AESGCM 128 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    const [, version, , , kx, , enc] = /^(TLS 1\.[23]|\S+(?: \S+)?) (\S+) (\S+) (\S+) (\S+) (\S+)/.exec(c) ?? [];
    assert.ok(version === "TLS 1.2" || version === "TLS 1.3", `${name}: ${c}`);
    assert.match(kx ?? "", /^ECDH/, `${name}: key exchange without forward secrecy: ${c}`);
    assert.match(enc ?? "", /^(AESGCM|ChaCha20|AESCCM)/, `${name}: not an AEAD cipher: ${c}`);
  }
}

test("testssl.sh finds no renegotiation, no static RSA and no CBC on the STARTTLS and direct TLS client ports", { skip, timeout: 300_000 }, async () => {
  assert.ok(!missing, `${TESTSSL} is missing: apt-get install testssl.sh`);
  const [starttls, direct] = await Promise.all([
    scan("starttls", ts.c2sPort, ["--starttls", "xmpp", "--xmpphost", "localhost"]),
    scan("direct", ts.directTlsPort, []),
  ]);
  judge("STARTTLS", starttls);
  judge("direct TLS", direct);
});
