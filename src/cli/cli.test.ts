// Tests for the offline CLI commands, run as child processes like an operator would (main.ts via run.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateSelfSigned } from "../core/certs.ts";
import { parseConfig } from "../core/config/load.ts";
import { saltedPassword, scramCredential } from "../sasl/credentials.ts";
import { openStorage } from "../storage/open.ts";
import type { StoredCredentials } from "../storage/types.ts";
import { checkCertificates, checkConfigSettings, checkDns, type DnsResolver } from "./check.ts";
import { deriveCredentialsAsync, parseImportFile } from "./users.ts";

const RUN = fileURLToPath(new URL("./run.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function comity(cwd: string, args: string[], input = ""): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", TSX, RUN, ...args], { cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // A bound for a hung child only (a run takes a second or two, more on a loaded machine).
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "comity-cli-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const CONFIG = "hosts:\n  - domain: comity.test\n    admins: [admin@comity.test]\n  - domain: other.test\ndata_dir: ./data\n";

function passwordMatches(credentials: StoredCredentials, password: string): boolean {
  const c = credentials.scram["SHA-256"];
  if (c === undefined) return false;
  const salt = Buffer.from(c.salt, "base64");
  return scramCredential("SHA-256", saltedPassword("SHA-256", password, salt, c.iterations), salt, c.iterations).storedKey === c.storedKey;
}

async function account(dir: string, host: string, user: string) {
  const storage = await openStorage({ dataDir: join(dir, "data") });
  try {
    return await storage.accounts.get(host, user);
  } finally {
    await storage.close();
  }
}

test("adduser, passwd and deluser work offline on the data directory", async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, "comity.yaml"), CONFIG); // found without --config

    let r = await comity(dir, ["adduser", "Alice@comity.test", "first secret"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created alice@comity\.test/);
    let acct = await account(dir, "comity.test", "alice");
    assert.ok(acct && passwordMatches(acct.credentials, "first secret"));
    assert.equal(acct.credentials.plain, undefined);

    r = await comity(dir, ["adduser", "alice@comity.test", "again"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^comity: .*already exists/);

    r = await comity(dir, ["passwd", "alice@comity.test"], "second secret\n"); // password from stdin
    assert.equal(r.code, 0, r.stderr);
    acct = await account(dir, "comity.test", "alice");
    assert.ok(acct && passwordMatches(acct.credentials, "second secret"));

    r = await comity(dir, ["passwd", "bob@other.test", "--random", "--json"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no such account: bob@other\.test/);

    r = await comity(dir, ["adduser", "bob@other.test", "--random", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { jid: string; password: string };
    assert.equal(out.jid, "bob@other.test");
    const bob = await account(dir, "other.test", "bob");
    assert.ok(bob && passwordMatches(bob.credentials, out.password));

    r = await comity(dir, ["adduser", "carol@elsewhere.test", "pw"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /elsewhere\.test is not a configured host/);
    r = await comity(dir, ["adduser", "carol@comity.test/phone", "pw"]);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace for user errors

    r = await comity(dir, ["deluser", "alice@comity.test"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await account(dir, "comity.test", "alice"), undefined);
    r = await comity(dir, ["deluser", "alice@comity.test"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no such account/);
  });
});

test("import-users imports the good lines and reports the bad one by line number", async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, "c.yaml"), CONFIG);
    const lines = ["# exported accounts", "", "a@comity.test pw a", "b@comity.test pwb", "no-password-here@comity.test", "c@other.test  pw-c  "];
    await writeFile(join(dir, "users.txt"), `${lines.join("\n")}\n`);
    let r = await comity(dir, ["import-users", "users.txt", "--config", "c.yaml"]);
    assert.equal(r.code, 1, "a bad line makes the exit code 1");
    assert.match(r.stdout, /created 3 accounts/);
    assert.match(r.stderr, /users\.txt:5: /);
    const a = await account(dir, "comity.test", "a");
    assert.ok(a && passwordMatches(a.credentials, "pw a"));
    const c = await account(dir, "other.test", "c");
    assert.ok(c && passwordMatches(c.credentials, "pw-c"));

    r = await comity(dir, ["import-users", "-", "--config", "c.yaml", "--json"], "a@comity.test changed\n");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual({ ...JSON.parse(r.stdout), seconds: 0 }, { imported: 0, skipped: 1, bad: [], seconds: 0 });
    r = await comity(dir, ["import-users", "-", "--config", "c.yaml", "--replace"], "a@comity.test changed\n");
    assert.equal(r.code, 0, r.stderr);
    const changed = await account(dir, "comity.test", "a");
    assert.ok(changed && passwordMatches(changed.credentials, "changed"));
  });
});

test("check passes on a valid config without DNS, and fails naming an unknown key", async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, "good.yaml"), CONFIG);
    let r = await comity(dir, ["check", "--config", "good.yaml", "--no-dns"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /configuration is valid/);

    await writeFile(join(dir, "bad.yaml"), `${CONFIG}s2s:\n  listne: ["0.0.0.0:5269"]\n`);
    r = await comity(dir, ["check", "--config", "bad.yaml", "--no-dns"]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /s2s\.listne: unknown key/);
    r = await comity(dir, ["check", "--config", "bad.yaml", "--json"]);
    const report = JSON.parse(r.stdout) as { ok: boolean; findings: { severity: string; message: string }[] };
    assert.equal(report.ok, false);
    assert.ok(report.findings.some((f) => f.severity === "error" && f.message.startsWith("s2s.listne")));

    r = await comity(dir, ["adduser", "x@comity.test", "pw", "--config", "bad.yaml"]);
    assert.equal(r.code, 2, "other commands exit 2 on invalid config");
    assert.match(r.stderr, /s2s\.listne: unknown key/);
  });
});

test("cert generate writes the pair, refuses to overwrite without --force", async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, "comity.yaml"), CONFIG);
    let r = await comity(dir, ["cert", "generate", "comity.test"]);
    assert.equal(r.code, 0, r.stderr);
    const crt = join(dir, "data", "certs", "comity.test.crt");
    const key = join(dir, "data", "certs", "comity.test.key");
    assert.ok(existsSync(crt));
    assert.equal((await stat(key)).mode & 0o777, 0o600);
    assert.match(r.stdout, /comity\.test\.crt/);
    r = await comity(dir, ["cert", "generate", "comity.test"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists.*--force/);
    r = await comity(dir, ["cert", "generate", "comity.test", "--force", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { certFile: string }).certFile, crt);
    r = await comity(dir, ["check", "--no-dns"]);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /covers comity\.test/);
  });
});

test("parseImportFile keeps the rest of the line as the password and flags duplicates", () => {
  const config = parseConfig("hosts: [{domain: comity.test}]\n");
  const { entries, bad } = parseImportFile(config, "a@comity.test two words\r\nA@comity.test dup\nb@x.test pw\n");
  assert.deepEqual(entries.map((e) => [e.username, e.password, e.line]), [["a", "two words", 1]]);
  assert.deepEqual(bad.map((b) => b.line), [2, 3]);
});

test("async credential derivation gives keys that verify the password", async () => {
  const creds = await deriveCredentialsAsync("pencil", { storage: "plain", iterations: 4096 });
  assert.equal(creds.plain, "pencil");
  assert.ok(passwordMatches(creds, "pencil"));
  const sha1 = creds.scram["SHA-1"];
  assert.ok(sha1);
  const salt = Buffer.from(sha1.salt, "base64");
  assert.equal(scramCredential("SHA-1", saltedPassword("SHA-1", "pencil", salt, 4096), salt, 4096).storedKey, sha1.storedKey);
});

function fakeResolver(zone: { srv?: Record<string, { name: string; port: number }[]>; a?: Record<string, string[]> }): DnsResolver {
  const notFound = () => Object.assign(new Error("not found"), { code: "ENOTFOUND" });
  return {
    resolveSrv: async (name) => {
      const r = zone.srv?.[name];
      if (r === undefined) throw notFound();
      return r.map((x) => ({ ...x, priority: 0, weight: 5 }));
    },
    resolve4: async (name) => {
      const r = zone.a?.[name];
      if (r === undefined) throw notFound();
      return r;
    },
    resolve6: async () => {
      throw notFound();
    },
  };
}

test("the DNS check reports missing records, wrong ports and skips testing domains", async () => {
  const config = parseConfig("hosts: [{domain: good.org}, {domain: bare.org}, {domain: lab.test}]\nc2s: {direct_tls: []}\n");
  const findings = await checkDns(
    config,
    fakeResolver({
      srv: {
        "_xmpp-client._tcp.good.org": [{ name: "xmpp.good.org", port: 5222 }],
        "_xmpp-server._tcp.good.org": [{ name: "xmpp.good.org", port: 5270 }],
      },
      a: { "xmpp.good.org": ["192.0.2.1"] },
    }),
  );
  const of = (host: string) => findings.filter((f) => f.host === host);
  assert.deepEqual(of("good.org").map((f) => f.severity), ["ok", "warning"]);
  assert.match(of("good.org")[1]?.message ?? "", /port 5270/);
  assert.ok(of("bare.org").every((f) => f.severity === "error" && f.fix !== undefined));
  assert.equal(of("bare.org").length, 2);
  assert.deepEqual(of("lab.test").map((f) => [f.severity, f.message]), [["info", "local/testing domain, DNS not checked"]]);
});

test("the DNS check covers a group chat domain's server records, which other servers need to reach its rooms", async () => {
  const config = parseConfig("hosts: [{domain: good.org, muc: {domain: rooms.good.org}}, {domain: two.org, muc: {domain: chat.two.org}}]\nc2s: {direct_tls: []}\n");
  const findings = await checkDns(
    config,
    fakeResolver({
      srv: {
        "_xmpp-client._tcp.good.org": [{ name: "xmpp.good.org", port: 5222 }],
        "_xmpp-server._tcp.good.org": [{ name: "xmpp.good.org", port: 5269 }],
        "_xmpp-server._tcp.rooms.good.org": [{ name: "xmpp.good.org", port: 5269 }],
        "_xmpp-client._tcp.two.org": [{ name: "xmpp.good.org", port: 5222 }],
        "_xmpp-server._tcp.two.org": [{ name: "xmpp.good.org", port: 5269 }],
      },
      a: { "xmpp.good.org": ["192.0.2.1"] },
    }),
  );
  const of = (host: string) => findings.filter((f) => f.host === host);
  assert.deepEqual(of("rooms.good.org").map((f) => [f.severity, f.message]), [["ok", "_xmpp-server._tcp.rooms.good.org SRV → xmpp.good.org:5269 (192.0.2.1)"]]);
  assert.ok(of("rooms.good.org").every((f) => !/client/.test(f.message)), "no client records are asked of a chat domain");
  assert.deepEqual(of("chat.two.org").map((f) => f.severity), ["error"]);
  assert.match(of("chat.two.org")[0]!.message, /_xmpp-server\._tcp\.chat\.two\.org/);
});

test("the certificate check finds a certificate that does not cover the host", async () => {
  await withDir(async (dir) => {
    const pair = await generateSelfSigned("someone-else.org");
    await writeFile(join(dir, "c.crt"), pair.cert);
    await writeFile(join(dir, "c.key"), pair.key, { mode: 0o600 });
    const config = parseConfig("hosts: [{domain: comity.org}]\ntls: {cert: c.crt, key: c.key}\n", join(dir, "comity.yaml"));
    const findings = await checkCertificates(config);
    assert.ok(findings.some((f) => f.severity === "error" && /does not cover comity\.org/.test(f.message)));
    assert.ok(findings.some((f) => f.severity === "warning" && /self-signed/.test(f.message)));
    const later = await checkCertificates(config, new Date(Date.now() + 360 * 86_400_000));
    assert.ok(later.some((f) => f.severity === "warning" && /expires in \d+ days/.test(f.message)));
  });
});

test("comity check names the listeners the configuration left to defaults", () => {
  const config = parseConfig("hosts: [{domain: a.test}]\nc2s: {listen: ['127.0.0.7:5222']}\ns2s: {listen: []}\n");
  const infos = checkConfigSettings(config, "comity.yaml").filter((f) => f.severity === "info").map((f) => f.message);
  assert.deepEqual(infos.filter((m) => m.includes("not set")), ["c2s.direct_tls not set: listening on 127.0.0.7:5223 (c2s.listen's addresses with port 5223)"]);
});

test("comity check prints the TLS policy of each listener section and warns about suites without forward secrecy", () => {
  const config = parseConfig("hosts: [{domain: a.test}]\ns2s: {tls_policy: {ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA'}}\nhttp: {tls_policy: {min_version: TLSv1.3}}\n");
  const tls = checkConfigSettings(config, "comity.yaml").filter((f) => f.message.startsWith("TLS on "));
  assert.deepEqual(tls.map((f) => f.severity), ["info", "warning", "info"]);
  assert.match(tls[0]!.message, /^TLS on c2s: TLSv1\.2 and later, 9 suites .*renegotiation refused$/);
  assert.match(tls[1]!.message, /without forward secrecy or AEAD: AES128-SHA/);
  assert.match(tls[2]!.message, /^TLS on http: TLSv1\.3 and later/);
  assert.throws(() => parseConfig("hosts: [{domain: a.test}]\ntls_policy: {ciphers: 'NOT-A-SUITE'}\n"), /tls_policy\.ciphers: OpenSSL accepts none of these suites/);
});
