// SASL EXTERNAL between Comity servers (XEP-0178, RFC 6120 §6.4 over §5 STARTTLS) with certificates from a
// test CA (RFC 6125 DNS-ID), and what s2s.verify_certificates does to peers whose certificate is not trusted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { createTestCa, issueCert, type IssuedCert, type TestCa } from "../kit/test-ca.ts";
import { RawS2s } from "../kit/raw-s2s.ts";
import { generateSelfSigned } from "../../src/core/certs.ts";

const A = "ext-a.localhost";
const B = "ext-b.localhost";
const C = "ext-c.localhost"; // self-signed, not trusted by anyone
const E = "ext-e.localhost"; // trusted certificate, but does not insist on verification itself

let caDir: string;
let ca: TestCa;
let a: TestServer;
let b: TestServer;
let c: TestServer;
let e: TestServer;
let certE: IssuedCert;

async function federated(domain: string, s2s: Record<string, unknown>, user: string, cert?: { certFile: string; keyFile: string }): Promise<TestServer> {
  return createTestServer(
    {
      hosts: [{ domain, ...(cert ? { tls: { cert: cert.certFile, key: cert.keyFile } } : {}) }],
      c2s: { direct_tls: [] },
      s2s: { listen: ["127.0.0.1:0"], ...s2s },
    },
    { users: { [`${user}@${domain}`]: `pw-${user}` } },
  );
}

before(async () => {
  caDir = mkdtempSync(join(tmpdir(), "comity-ca-"));
  ca = await createTestCa(caDir);
  const [certA, certB, issuedE] = await Promise.all([issueCert(ca, A), issueCert(ca, B), issueCert(ca, E)]);
  certE = issuedE;
  a = await federated(A, { ca_file: ca.certFile, verify_certificates: true, direct_tls: ["127.0.0.1:0"] }, "alice", certA);
  b = await federated(B, { ca_file: ca.certFile, verify_certificates: true }, "bob", certB);
  c = await federated(C, { verify_certificates: false }, "carol");
  e = await federated(E, { ca_file: ca.certFile, verify_certificates: false }, "erin", certE);
  const all = [a, b, c, e];
  const domains = [A, B, C, E];
  for (const s of all) for (const [i, d] of domains.entries()) if (s !== all[i]) s.config.s2s.routes[d] = `127.0.0.1:${all[i]!.s2sPort}`;
});

after(async () => {
  await Promise.all([a, b, c, e].map((s) => s?.stop()));
  rmSync(caDir, { recursive: true, force: true });
});

async function login(ts: TestServer, user: string, domain: string): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, `pw-${user}`, "r", { domain });
  client.send("<presence/>");
  return client;
}

function link(ts: TestServer, direction: "in" | "out", peer: string) {
  return ts.server.s2s.list().find((l) => l.direction === direction && l.peers.includes(peer));
}

test("the test CA issues certificates Comity accepts for its hosts", () => {
  assert.match(ca.cert, /BEGIN CERTIFICATE/);
  assert.equal(a.server.s2s.list().length, 0);
});

test("two servers with certificates from a trusted CA authenticate each other with SASL EXTERNAL", async () => {
  const alice = await login(a, "alice", A);
  const bob = await login(b, "bob", B);
  alice.send(`<message to='bob@${B}/r' type='chat' id='e1'><body>over EXTERNAL</body></message>`);
  await bob.waitFor(/over EXTERNAL/, 15_000);
  assert.match(bob.buffer, new RegExp(`from='alice@${A}/r'`));
  bob.send(`<message to='alice@${A}/r' type='chat' id='e2'><body>and back</body></message>`);
  await alice.waitFor(/and back/, 15_000);
  for (const [ts, peer] of [[a, B], [b, A]] as const) {
    for (const dir of ["out", "in"] as const) {
      const l = link(ts, dir, peer);
      assert.ok(l, `${ts.config.hosts[0]!.domain} has an ${dir} link with ${peer}`);
      assert.equal(l.auth, "sasl-external", `${dir} link auth`);
      assert.equal(l.certificateValid, true, `${dir} link certificate`);
      assert.equal(l.tls, true);
      assert.equal(l.state, "established");
    }
  }
  alice.close();
  bob.close();
});

test("a trusted certificate is used for EXTERNAL even where verify_certificates is false", async () => {
  const erin = await login(e, "erin", E);
  erin.send(`<iq type='get' to='${B}' id='e3'><query xmlns='jabber:iq:version'/></iq>`);
  // The answer comes back over b's own link to e, so both directions are up.
  await erin.waitFor(/<iq[^>]*id='e3'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='e3'/, 15_000);
  assert.equal(link(e, "out", B)?.auth, "sasl-external");
  assert.equal(link(b, "in", E)?.auth, "sasl-external");
  assert.equal(link(b, "in", E)?.certificateValid, true);
  erin.close();
});

test("with verify_certificates true, a peer with an untrusted (self-signed) certificate is not reached", async () => {
  const alice = await login(a, "alice", A);
  alice.send(`<message to='carol@${C}/r' id='u1'><body>to an untrusted peer</body></message>`);
  await alice.waitFor(/<message[^>]*type='error'[^>]*>[\s\S]*?<(remote-server-not-found|remote-server-timeout) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/, 15_000);
  assert.match(alice.buffer, /id='u1'/);
  assert.equal(link(a, "out", C)?.state ?? "gone", "gone", "the failed link is dropped");
  alice.close();
});

test("with verify_certificates true, an untrusted peer cannot authenticate towards us by dialback either", async () => {
  const carol = await login(c, "carol", C);
  carol.send(`<message to='alice@${A}/r' id='u2'><body>from an untrusted peer</body></message>`);
  // a cannot check C's key: its own link to C fails certificate verification, so the dialback ends in an error.
  await carol.waitFor(/id='u2'[\s\S]*?<(remote-server-not-found|remote-server-timeout) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/, 15_000);
  assert.ok(!a.server.s2s.list().some((l) => l.direction === "in" && l.peers.includes(C)), "C never authenticated on a");
  carol.close();
});

test("with verify_certificates false, a self-signed peer is reached over TLS with dialback", async () => {
  const erin = await login(e, "erin", E);
  const carol = await login(c, "carol", C);
  erin.send(`<message to='carol@${C}/r' type='chat' id='d1'><body>dialback to self-signed</body></message>`);
  await carol.waitFor(/dialback to self-signed/, 15_000);
  const out = link(e, "out", C);
  assert.equal(out?.auth, "dialback");
  assert.equal(out?.certificateValid, false);
  assert.equal(out?.tls, true);
  erin.close();
  carol.close();
});

const EXTERNAL = (authzid: string) => `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>${authzid === "" ? "=" : Buffer.from(authzid).toString("base64")}</auth>`;

function directTlsPort(ts: TestServer): number {
  return ts.server.addresses.s2sDirectTls[0]!.port;
}

test("over direct TLS, a peer with a CA-signed certificate is offered EXTERNAL, authenticates, and may send", async () => {
  const alice = await login(a, "alice", A);
  const peer = await RawS2s.open(directTlsPort(a), { from: E, to: A, tls: "direct", tlsOptions: { cert: certE.cert, key: certE.key } });
  assert.match(peer.features, /<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL<\/mechanism><\/mechanisms>/);
  assert.match(peer.features, /<dialback xmlns='urn:xmpp:features:dialback'>/, "dialback stays available as the fallback");
  peer.send(EXTERNAL("")); // "=": the authorization identity is the stream's from (XEP-0178 §3)
  await peer.waitFor(/<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'\/>/);
  await peer.restart();
  assert.doesNotMatch(peer.features, /mechanisms|dialback|starttls/, "nothing left to negotiate");
  peer.send(`<message from='erin@${E}/raw' to='alice@${A}/r' type='chat' id='x1'><body>direct EXTERNAL</body></message>`);
  await alice.waitFor(/direct EXTERNAL/);
  const l = a.server.s2s.list().find((x) => x.direction === "in" && x.peers.includes(E));
  assert.equal(l?.auth, "sasl-external");
  assert.equal(l?.certificateValid, true);
  // Only the certificate's domain is authenticated: another one is invalid-from.
  peer.send(`<message from='mallory@${B}' to='alice@${A}/r' id='x2'><body>not erin</body></message>`);
  assert.equal(await peer.streamError(), "invalid-from");
  // The stanza that ended the stream was refused, not routed; the round trip flushes anything already sent to alice.
  await alice.sync(A);
  assert.doesNotMatch(alice.buffer, /not erin/);
  alice.close();
});

test("EXTERNAL for an identity the certificate does not cover fails with not-authorized", async () => {
  const peer = await RawS2s.open(directTlsPort(a), { from: E, to: A, tls: "direct", tlsOptions: { cert: certE.cert, key: certE.key } });
  peer.send(EXTERNAL(B));
  await peer.waitFor(/<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized\/><\/failure>/);
  peer.send(`<message from='erin@${E}/raw' to='alice@${A}/r' id='x3'><body>x</body></message>`);
  assert.equal(await peer.streamError(), "not-authorized");
});

test("a stream claiming a domain its certificate does not cover is not offered EXTERNAL", async () => {
  const peer = await RawS2s.open(directTlsPort(a), { from: B, to: A, tls: "direct", tlsOptions: { cert: certE.cert, key: certE.key } });
  assert.doesNotMatch(peer.features, /EXTERNAL/);
  peer.send(EXTERNAL(B));
  await peer.waitFor(/<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized\/><\/failure>/);
  peer.close();
});

test("a self-signed client certificate is not offered EXTERNAL", async () => {
  const self = await generateSelfSigned(E);
  const peer = await RawS2s.open(directTlsPort(a), { from: E, to: A, tls: "direct", tlsOptions: { cert: self.cert, key: self.key } });
  assert.doesNotMatch(peer.features, /EXTERNAL/);
  assert.match(peer.features, /dialback/);
  peer.send(EXTERNAL(E));
  await peer.waitFor(/<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized\/><\/failure>/);
  peer.close();
});
