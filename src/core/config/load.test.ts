// Tests for configuration loading: defaults, error messages naming the key, semantic checks, path resolution (load.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ConfigError, defaultConfig, listenersByDefault, loadConfig, parseConfig } from "./load.ts";

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, "COMITY_ERR_CONFIG");
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

test("a minimal config gets every default, including those inside nested objects", () => {
  const c = parseConfig("hosts:\n  - domain: comity.test\n");
  assert.equal(c.c2s.encryption, "required");
  assert.deepEqual(c.c2s.listen, ["0.0.0.0:5222"]);
  assert.equal(c.c2s.max_stanza_size, 262144);
  assert.deepEqual(c.s2s.routes, {});
  assert.equal(c.auth.password_storage, "scram");
  assert.equal(c.auth.scram_iterations, 4096);
  assert.equal(c.log.level, "info");
  assert.equal(c.buddies.reciprocate, true);
  assert.equal(c.federation.policy, "open");
  assert.deepEqual(c.hosts[0]?.admins, []);
  assert.deepEqual(c.hosts[0]?.contact.abuse, []);
  assert.equal(c.data_dir, resolve("data"));
});

test("a partly given section keeps the given keys and fills the others", () => {
  const c = parseConfig("hosts: [{domain: a.test}]\nc2s: {encryption: optional}\n");
  assert.equal(c.c2s.encryption, "optional");
  assert.deepEqual(c.c2s.direct_tls, ["0.0.0.0:5223"]);
});

test("without c2s.direct_tls, direct TLS listens on c2s.listen's addresses with port 5223", () => {
  // Two servers on one machine, each bound to its own address, must not both claim 0.0.0.0:5223.
  const c = parseConfig("hosts: [{domain: a.test}]\nc2s: {listen: ['127.0.0.2:5222', '[::1]:15222', '127.0.0.2:6222']}\n");
  assert.deepEqual(c.c2s.direct_tls, ["127.0.0.2:5223", "[::1]:5223"]);
  assert.deepEqual(listenersByDefault(c).map((l) => `${l.key}=${l.addresses.join(",")}`), ["c2s.direct_tls=127.0.0.2:5223,[::1]:5223", "s2s.listen=0.0.0.0:5269"]);
  const explicit = parseConfig("hosts: [{domain: a.test}]\nc2s: {listen: ['127.0.0.2:5222'], direct_tls: []}\ns2s: {listen: []}\n");
  assert.deepEqual(explicit.c2s.direct_tls, []);
  assert.deepEqual(listenersByDefault(explicit), []);
  const none = parseConfig("hosts: [{domain: a.test}]\n");
  assert.deepEqual(none.c2s.direct_tls, ["0.0.0.0:5223"]);
  assert.deepEqual(listenersByDefault(none).map((l) => l.key), ["c2s.listen", "c2s.direct_tls", "s2s.listen"]);
});

test("an unknown key is an error naming the key, with a suggestion", () => {
  const problems = problemsOf(() => parseConfig("hosts: [{domain: a.test}]\ns2s:\n  listne: []\n"));
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? "", /^s2s\.listne: unknown key/);
  assert.match(problems[0] ?? "", /listen/);
  assert.match(problemsOf(() => parseConfig("hosts: [{domain: a.test, color: red}]\n"))[0] ?? "", /^hosts\[0\]\.color: unknown key/);
});

test("a wrong enum value names the key, the allowed values and what was given", () => {
  const problems = problemsOf(() => parseConfig("hosts: [{domain: a.test}]\nc2s: {encryption: maybe}\n"));
  assert.deepEqual(problems, ['c2s.encryption: must be one of "required", "optional" (got "maybe")']);
});

test("every problem is listed, not just the first", () => {
  const problems = problemsOf(() => parseConfig("hosts: [{admins: []}]\nauth: {scram_iterations: 10}\nlimits: 3\nc2s: {listen: [nope]}\n"));
  assert.ok(problems.includes("hosts[0].domain: required"), problems.join("\n"));
  assert.ok(problems.some((p) => p.startsWith("auth.scram_iterations: must be at least 4096")));
  assert.ok(problems.some((p) => p.startsWith("limits: expected mapping (got 3)")));
  assert.ok(problems.some((p) => p.startsWith('c2s.listen[0]: expected address and port')));
  assert.match(problemsOf(() => parseConfig(""))[0] ?? "", /^hosts: required/);
});

test("a YAML syntax error gives the line and column", () => {
  const problems = problemsOf(() => parseConfig("hosts:\n  - domain: a.test\nc2s: {listen: [\n"));
  assert.match(problems[0] ?? "", /^line \d+, column \d+: /);
  assert.match(problemsOf(() => parseConfig("data_dir: a\ndata_dir: b\n"))[0] ?? "", /^line 2, column 1: .*unique/);
});

test("duplicate hosts, non-bare admin JIDs, bad domains and bad ports are rejected", () => {
  const problems = problemsOf(() =>
    parseConfig(
      [
        "hosts:",
        "  - domain: a.test",
        "    admins: [a.test, x@a.test/phone]",
        "  - domain: a.test",
        "  - domain: Upper.test",
        "  - domain: 'bad domain'",
        "c2s: {listen: ['0.0.0.0:70000']}",
        "s2s: {listen: ['0.0.0.0:5269'], direct_tls: ['0.0.0.0:5269']}",
      ].join("\n"),
    ),
  );
  const text = problems.join("\n");
  assert.match(text, /hosts\[0\]\.admins\[0\]: must be a bare JID/);
  assert.match(text, /hosts\[0\]\.admins\[1\]: must be a bare JID/);
  assert.match(text, /hosts\[1\]\.domain: duplicate of hosts\[0\]/);
  assert.match(text, /hosts\[2\]\.domain: must be lowercase/);
  assert.match(text, /hosts\[3\]\.domain: not a valid domain/);
  assert.match(text, /c2s\.listen\[0\]: port must be 0\.\.65535/);
  assert.match(text, /s2s\.direct_tls\[0\]: .*already used by s2s\.listen\[0\]/);
});

test("relative paths resolve against the config file's directory, absolute ones stay", async () => {
  const dir = await mkdtemp(join(tmpdir(), "comity-config-"));
  try {
    const file = join(dir, "etc", "comity.yaml");
    await mkdir(join(dir, "etc"));
    await writeFile(
      file,
      "hosts:\n  - domain: a.test\n    tls: {cert: a.crt, key: /abs/a.key}\ndata_dir: ../var\ntls: {cert: certs/all.crt, key: certs/all.key}\ns2s: {ca_file: ca.pem}\n",
    );
    const c = loadConfig(file);
    assert.equal(c.data_dir, join(dir, "var"));
    assert.equal(c.hosts[0]?.tls?.cert, join(dir, "etc", "a.crt"));
    assert.equal(c.hosts[0]?.tls?.key, "/abs/a.key");
    assert.equal(c.tls?.cert, join(dir, "etc", "certs", "all.crt"));
    assert.equal(c.s2s.ca_file, join(dir, "etc", "ca.pem"));
    assert.equal(c.control_socket, join(dir, "var", "comity.sock"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a missing file is a ConfigError naming the file", () => {
  assert.match(problemsOf(() => loadConfig("/nonexistent/comity.yaml"))[0] ?? "", /cannot read \/nonexistent\/comity\.yaml: no such file/);
});

test("the embedded default serves localhost without federation", () => {
  const c = defaultConfig();
  assert.equal(c.hosts[0]?.domain, "localhost");
  assert.deepEqual(c.hosts[0]?.admins, ["admin@localhost"]);
  assert.deepEqual(c.c2s.listen, ["0.0.0.0:5222"]);
  assert.deepEqual(c.c2s.direct_tls, ["0.0.0.0:5223"]);
  assert.deepEqual(c.s2s.listen, []);
  assert.deepEqual(c.http.listen, []);
  assert.equal(c.data_dir, resolve("data"));
});

test("the example config at the repository root is valid", () => {
  const c = loadConfig(new URL("../../../comity.example.yaml", import.meta.url).pathname);
  assert.equal(c.hosts[0]?.domain, "comity.test");
});

test("an upload service needs an HTTP listener and a domain of its own; its limits have Prosody-like defaults", () => {
  const base = "hosts:\n  - domain: comity.test\n    upload:\n      domain: ";
  assert.deepEqual(problemsOf(() => parseConfig(`${base}upload.comity.test\n`)), [
    "hosts[0].upload: needs an HTTP listener (http.listen or http.tls_listen) to receive and serve files",
  ]);
  const withHttp = "http:\n  listen: [\"127.0.0.1:5280\"]\n";
  assert.match(problemsOf(() => parseConfig(`${withHttp}${base}comity.test\n`))[0]!, /^hosts\[0\]\.upload\.domain: "comity\.test" is a host/);
  const twice = `${withHttp}hosts:\n  - domain: comity.test\n    muc: { domain: svc.comity.test }\n    upload: { domain: svc.comity.test }\n`;
  assert.match(problemsOf(() => parseConfig(twice))[0]!, /^hosts\[0\]\.upload\.domain: "svc\.comity\.test" is already used by hosts\[0\]\.muc\.domain/);
  const c = parseConfig(`${withHttp}${base}upload.comity.test\n`);
  assert.deepEqual(c.hosts[0]!.upload, {
    domain: "upload.comity.test",
    name: "HTTP File Upload",
    max_file_size: 10 * 1024 * 1024,
    quota_daily: 100 * 1024 * 1024,
    expire_after: 7 * 86400,
    slot_timeout: 300,
    allow_from: [],
  });
  assert.ok(problemsOf(() => parseConfig(`${withHttp}${base}upload.comity.test\n      url: "https://files.comity.test/"\n`)).length > 0, "no trailing slash");
});
