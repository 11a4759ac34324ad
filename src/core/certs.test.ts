// Tests for certificate generation, selection per host and inspection (certs.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSelfSigned, inspectCertificate, loadCertificates, CertError } from "./certs.ts";
import { parseConfig } from "./config/load.ts";

test("a generated certificate covers the domain and its subdomains, and matches its key", async () => {
  const pair = await generateSelfSigned("comity.test", { days: 30, altNames: ["conference.other.test"] });
  const info = inspectCertificate(pair.cert, pair.key);
  assert.equal(info.subject, "CN=comity.test");
  assert.deepEqual(info.altNames, ["comity.test", "*.comity.test", "conference.other.test"]);
  assert.equal(info.selfSigned, true);
  assert.equal(info.matchesKey, true);
  assert.ok(info.coversDomain("comity.test"));
  assert.ok(info.coversDomain("upload.comity.test"));
  assert.ok(info.coversDomain("conference.other.test"));
  assert.ok(!info.coversDomain("a.b.comity.test"));
  assert.ok(!info.coversDomain("capulet.lit"));
  const days = (info.notAfter.getTime() - info.notBefore.getTime()) / 86_400_000;
  assert.ok(Math.abs(days - 30) < 0.01);
});

test("inspection without a key leaves matchesKey undefined, and a foreign key does not match", async () => {
  const a = await generateSelfSigned("a.test");
  const b = await generateSelfSigned("b.test");
  assert.equal(inspectCertificate(a.cert).matchesKey, undefined);
  assert.equal(inspectCertificate(a.cert, b.key).matchesKey, false);
  assert.equal(inspectCertificate(a.cert, "not a key").matchesKey, false);
  assert.throws(() => inspectCertificate("garbage"));
});

test("loadCertificates generates one certificate per host on first start and reuses it later", async () => {
  const dir = await mkdtemp(join(tmpdir(), "comity-certs-"));
  try {
    const config = parseConfig("hosts: [{domain: a.test}, {domain: b.test}]\n", join(dir, "comity.yaml"));
    const warnings: string[] = [];
    const log = { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never;
    const first = await loadCertificates(config, log);
    assert.deepEqual([...first.keys()].sort(), ["a.test", "b.test"]);
    const a = first.get("a.test");
    assert.ok(a);
    assert.equal(a.certFile, join(dir, "data", "certs", "a.test.crt"));
    assert.equal(a.keyFile, join(dir, "data", "certs", "a.test.key"));
    assert.equal((await stat(a.keyFile)).mode & 0o777, 0o600);
    assert.equal(await readFile(a.certFile, "utf8"), a.cert);
    assert.ok(inspectCertificate(a.cert, a.key).coversDomain("a.test"));
    assert.ok(warnings.some((w) => w.includes("self-signed")));
    const second = await loadCertificates(config);
    assert.equal(second.get("a.test")?.cert, a.cert);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("loadCertificates prefers the host's tls, then the global tls, and rejects a key that does not match", async () => {
  const dir = await mkdtemp(join(tmpdir(), "comity-certs-"));
  try {
    const g = await generateSelfSigned("global.test");
    const h = await generateSelfSigned("own.test");
    await writeFile(join(dir, "g.crt"), g.cert);
    await writeFile(join(dir, "g.key"), g.key);
    await writeFile(join(dir, "h.crt"), h.cert);
    await writeFile(join(dir, "h.key"), h.key);
    const yaml = "tls: {cert: g.crt, key: g.key}\nhosts:\n  - domain: global.test\n  - domain: own.test\n    tls: {cert: h.crt, key: h.key}\n";
    const certs = await loadCertificates(parseConfig(yaml, join(dir, "comity.yaml")));
    assert.equal(certs.get("global.test")?.certFile, join(dir, "g.crt"));
    assert.equal(certs.get("own.test")?.cert, h.cert);

    const bad = "tls: {cert: g.crt, key: h.key}\nhosts: [{domain: global.test}]\n";
    await assert.rejects(loadCertificates(parseConfig(bad, join(dir, "comity.yaml"))), (err) => err instanceof CertError && err.code === "COMITY_ERR_TLS");
    const missing = "tls: {cert: nope.crt, key: g.key}\nhosts: [{domain: global.test}]\n";
    await assert.rejects(loadCertificates(parseConfig(missing, join(dir, "comity.yaml"))), /nope\.crt/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
