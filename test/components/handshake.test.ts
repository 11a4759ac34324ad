// XEP-0114 external components over a raw socket: the handshake (SHA-1 of stream id + secret, hex), every refusal
// as a stream error (bad secret, unknown domain, stanzas before the handshake, a second connection, a spoofed
// `from`), routing to and from a local user, disco#items on the owning host, the status, and s2s: a user on
// another Comity reaches the component and gets its answer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { createServer, type Server } from "node:net";
import { ExternalComponents, handshakeDigest } from "../../src/core/external-components.ts";
import { normalizeConfig } from "../../src/core/config/load.ts";
import { Events } from "../../src/core/events.ts";
import { Host } from "../../src/core/host.ts";
import { silentLogger } from "../../src/core/log.ts";
import { Router } from "../../src/core/router.ts";
import { SessionRegistry } from "../../src/core/sessions.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import { formatStatus } from "../../src/cli/status.ts";

const SECRET = "s3cret-for-the-bridge";
let ts: TestServer;
let remote: TestServer;
let port: number;

before(async () => {
  ts = await createTestServer(
    {
      hosts: [{ domain: "localhost", admins: ["admin@localhost"] }],
      s2s: { listen: ["127.0.0.1:0"], verify_certificates: false },
      components: { listen: ["127.0.0.1:0"], services: [{ domain: "bridge.localhost", secret: SECRET }, { domain: "other.localhost", secret: "x" }] },
    },
    { users: { "alice@localhost": "pw-a" } },
  );
  port = ts.server.addresses.components[0]!.port;
  remote = await createTestServer({ hosts: [{ domain: "far.localhost" }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } }, { users: { "zoe@far.localhost": "pw-z" } });
  remote.config.s2s.routes["bridge.localhost"] = `127.0.0.1:${ts.s2sPort}`;
  remote.config.s2s.routes["localhost"] = `127.0.0.1:${ts.s2sPort}`;
  ts.config.s2s.routes["far.localhost"] = `127.0.0.1:${remote.s2sPort}`;
});
after(async () => {
  await ts.stop();
  await remote.stop();
});

const header = (to: string, ns = "jabber:component:accept") =>
  `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'>`;

/** Open a component stream and return the client with the stream id the server gave. */
async function open(to: string): Promise<{ c: RawClient; id: string }> {
  const c = await RawClient.connect(port);
  c.send(header(to));
  const m = await c.waitFor(/<stream:stream [^>]*id='([^']+)'/);
  return { c, id: m[1]! };
}

/** A component that completed its handshake. */
async function connect(domain = "bridge.localhost", secret = SECRET): Promise<RawClient> {
  const { c, id } = await open(domain);
  c.send(`<handshake>${handshakeDigest(id, secret)}</handshake>`);
  await c.waitFor(/<handshake\/>/);
  c.buffer = "";
  return c;
}

/** Close a component's socket and wait until the server has seen it go (so the domain may connect again). */
async function disconnect(c: RawClient, domain = "bridge.localhost"): Promise<void> {
  c.close();
  const deadline = Date.now() + 15_000;
  while (ts.server.components.list().find((x) => x.domain === domain)?.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

async function streamError(c: RawClient, condition: string): Promise<void> {
  await c.waitFor(new RegExp(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`));
  await c.waitClosed();
}

test("the handshake digest is the hex SHA-1 of stream id followed by the secret (XEP-0114 §3)", () => {
  // FIPS 180 test vector: SHA-1("abc"); the id comes first, then the secret.
  assert.equal(handshakeDigest("ab", "c"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(handshakeDigest("", "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.notEqual(handshakeDigest("c", "ab"), handshakeDigest("ab", "c"));
});

test("a component with the right secret is accepted; the server answers as its domain, without version", async () => {
  const { c, id } = await open("bridge.localhost");
  assert.match(c.buffer, /<stream:stream [^>]*xmlns='jabber:component:accept'/);
  assert.match(c.buffer, /from='bridge.localhost'/);
  assert.doesNotMatch(c.buffer, /<stream:stream [^>]*version=/);
  // Upper-case hex is the same digest.
  c.send(`<handshake>${handshakeDigest(id, SECRET).toUpperCase()}</handshake>`);
  await c.waitFor(/<handshake\/>/);
  await disconnect(c);
});

test("a wrong secret closes the stream with not-authorized", async () => {
  const { c, id } = await open("bridge.localhost");
  c.send(`<handshake>${handshakeDigest(id, "wrong")}</handshake>`);
  await streamError(c, "not-authorized");
});

test("a digest over another stream id is refused (no replay)", async () => {
  const { c } = await open("bridge.localhost");
  c.send(`<handshake>${handshakeDigest("some-other-id", SECRET)}</handshake>`);
  await streamError(c, "not-authorized");
});

test("a domain that is not a configured component gets host-unknown", async () => {
  const { c } = await open("nope.localhost");
  await streamError(c, "host-unknown");
  // An account host is not a component either.
  const h = await open("localhost");
  await streamError(h.c, "host-unknown");
});

test("a stream in another namespace gets invalid-namespace", async () => {
  const c = await RawClient.connect(port);
  c.send(header("bridge.localhost", "jabber:client"));
  await streamError(c, "invalid-namespace");
});

test("stanzas before the handshake get not-authorized, and are not routed", async () => {
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "pw-a", "early");
  alice.send("<presence/>");
  await alice.sync();
  alice.buffer = "";
  const { c } = await open("bridge.localhost");
  c.send("<message from='bridge.localhost' to='alice@localhost/early'><body>too early</body></message>");
  await streamError(c, "not-authorized");
  await alice.sync();
  assert.doesNotMatch(alice.buffer, /too early/);
  alice.close();
});

test("a second connection for a connected component gets conflict; the first keeps working", async () => {
  const first = await connect();
  const { c } = await open("bridge.localhost");
  await streamError(c, "conflict");
  first.send("<iq type='get' id='p1' from='bridge.localhost' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await first.waitFor(/<iq [^>]*id='p1'[^>]*type='result'|<iq [^>]*type='result'[^>]*id='p1'/);
  await disconnect(first);
});

test("a stanza from outside the component's domain gets invalid-from and is not delivered", async () => {
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "pw-a", "spoof");
  alice.send("<presence/>");
  await alice.sync();
  alice.buffer = "";
  const c = await connect();
  c.send("<message from='admin@localhost' to='alice@localhost/spoof'><body>spoofed</body></message>");
  await streamError(c, "invalid-from");
  const d = await connect();
  d.send("<message to='alice@localhost/spoof'><body>no from</body></message>");
  await streamError(d, "improper-addressing");
  await alice.sync();
  assert.doesNotMatch(alice.buffer, /spoofed|no from/);
  alice.close();
});

test("stanzas flow both ways between a local user and the component, including its own disco answers", async () => {
  const comp = await connect();
  const { client: alice, jid } = await RawClient.login(ts.c2sPort, "alice", "pw-a", "chat");
  alice.send("<presence/>");
  await alice.sync();
  alice.buffer = "";
  // User → component: arrives in the component namespace, with the user's full JID stamped.
  alice.send("<message to='#room@bridge.localhost' type='chat' id='u1'><body>to the bridge</body></message>");
  await comp.waitFor(/<message[^>]*>.*to the bridge/);
  assert.match(comp.buffer, new RegExp(`from='${jid.replace(/\//g, "\\/")}'`));
  assert.match(comp.buffer, /<message xmlns='jabber:component:accept'|<message (?!xmlns='jabber:client')/);
  // Component → user, from a JID on its domain.
  comp.send(`<message from='#room@bridge.localhost/nick' to='${jid}' type='chat' id='c1'><body>from the bridge</body></message>`);
  await alice.waitFor(/<message[^>]*from='#room@bridge.localhost\/nick'[^>]*>.*from the bridge/);
  // The component's disco is the component's business: the query reaches it and its answer reaches the user.
  alice.send("<iq type='get' to='bridge.localhost' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  const q = await comp.waitFor(/<iq [^>]*id='d1'[^>]*>/);
  assert.match(q[0], /type='get'/);
  comp.send(`<iq type='result' id='d1' from='bridge.localhost' to='${jid}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='irc' name='Bridge'/></query></iq>`);
  await alice.waitFor(/<iq[^>]*id='d1'[\s\S]*name='Bridge'/);
  // The owning host lists the component among its items.
  alice.send("<iq type='get' to='localhost' id='i1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  await alice.waitFor(/<iq[^>]*id='i1'[\s\S]*jid='bridge.localhost'/);
  // A malformed `to` is the stanza's problem: bounced to the component, the stream stays.
  comp.buffer = "";
  comp.send("<message from='bridge.localhost' to='a@b@c' id='bad1'><body>x</body></message>");
  await comp.waitFor(/<message[^>]*type='error'[\s\S]*jid-malformed/);
  const status = ts.server.status().components.find((x) => x.domain === "bridge.localhost");
  assert.ok(status?.connected);
  assert.equal(status.host, "localhost");
  assert.ok(status.stanzasIn >= 2 && status.stanzasOut >= 2);
  assert.match(formatStatus(ts.server.status()), /component bridge.localhost\s+connected since .* from 127\.0\.0\.1/);
  assert.match(formatStatus(ts.server.status()), /component other.localhost\s+not connected/);
  await disconnect(comp);
  alice.close();
});

test("while the component is away, stanzas to it are answered with service-unavailable", async () => {
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "pw-a", "away");
  alice.send("<iq type='get' to='other.localhost' id='a1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  await alice.waitFor(/<iq[^>]*id='a1'[\s\S]*service-unavailable/);
  alice.close();
});

test("a user on another server reaches the component over s2s, and the component answers them", async () => {
  const comp = await connect();
  const { client: zoe, jid } = await RawClient.login(remote.c2sPort, "zoe", "pw-z", "far", { domain: "far.localhost" });
  zoe.send("<presence/>");
  zoe.send("<message to='#chan@bridge.localhost' type='chat' id='z1'><body>from far away</body></message>");
  await comp.waitFor(/<message[^>]*>.*from far away/, 60_000);
  assert.match(comp.buffer, new RegExp(`from='${jid.replace(/\//g, "\\/")}'`));
  comp.send(`<message from='#chan@bridge.localhost/bot' to='${jid}' type='chat' id='r1'><body>reply over s2s</body></message>`);
  await zoe.waitFor(/<message[^>]*from='#chan@bridge.localhost\/bot'[^>]*>.*reply over s2s/, 60_000);
  // The component's traffic left on a link of its own domain.
  assert.ok(ts.server.s2s.list().some((l) => l.direction === "out" && l.local === "bridge.localhost"));
  await disconnect(comp);
  zoe.close();
});

test("the owning host's federation policy applies to the component's traffic", async () => {
  // buddies-only on the owner: the bridge may not talk to a server the host's admins have not approved.
  const strict = await createTestServer({
    hosts: [{ domain: "localhost" }],
    s2s: { listen: ["127.0.0.1:0"], routes: { "stranger.localhost": "127.0.0.1:9" } },
    federation: { policy: "buddies-only" },
    components: { listen: ["127.0.0.1:0"], services: [{ domain: "gw.localhost", secret: "pw" }] },
  });
  try {
    const c = await RawClient.connect(strict.server.addresses.components[0]!.port);
    c.send(header("gw.localhost"));
    const id = (await c.waitFor(/<stream:stream [^>]*id='([^']+)'/))[1]!;
    c.send(`<handshake>${handshakeDigest(id, "pw")}</handshake>`);
    await c.waitFor(/<handshake\/>/);
    c.send("<message from='#x@gw.localhost/n' to='someone@stranger.localhost' id='out1'><body>leak</body></message>");
    await c.waitFor(/<message[^>]*type='error'[^>]*>[\s\S]*?policy-violation/);
    assert.match(c.buffer, /id='out1'/);
    assert.equal(strict.server.s2s.list().length, 0, "no link was even attempted");
    c.close();
  } finally {
    await strict.stop();
  }
});

test("bytes that are not XML, or a stanza too large before the handshake, close the stream with a stream error", async () => {
  const c = await RawClient.connect(port);
  c.send(header("bridge.localhost") + "<handshake>abc<<</handshake>");
  await streamError(c, "not-well-formed");
  // Before the handshake the pre-authentication limit applies (c2s.max_stanza_size_preauth, 10,000 bytes).
  const big = await RawClient.connect(port);
  big.send(header("bridge.localhost") + `<handshake>${"a".repeat(20_000)}</handshake>`);
  await streamError(big, "policy-violation");
});

test("a connection that never completes its handshake is cut off with connection-timeout", async () => {
  // The same class the server uses, with a short timeout, on a listener of the test's own.
  const config = normalizeConfig(
    { hosts: [{ domain: "example.org" }], data_dir: "/nonexistent", components: { services: [{ domain: "slow.example.org", secret: "s" }] } },
    { baseDir: "/" },
  );
  const hosts = new Map(config.hosts.map((h) => [h.domain, new Host(h)]));
  const router = new Router({ hosts, sessions: new SessionRegistry(), storage: createMemoryStorage(), log: silentLogger(), events: new Events() });
  const components = new ExternalComponents({ config, router, log: silentLogger(), handshakeTimeoutMs: 300 }, hosts);
  const server: Server = createServer((s) => components.accept(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const c = await RawClient.connect((server.address() as { port: number }).port);
    c.send(header("slow.example.org"));
    await c.waitFor(/<stream:stream /);
    await streamError(c, "connection-timeout");
    assert.equal(components.list()[0]?.connected, false);
    assert.deepEqual(hosts.get("example.org")!.discoItems, [{ jid: "slow.example.org" }]);
  } finally {
    await components.stop();
    server.close();
  }
});

test("a component that stops reading is not buffered for without bound: further stanzas get resource-constraint", async () => {
  const comp = await connect();
  comp.socket.pause(); // reads nothing from now on: the kernel buffers fill, then Comity's queue does
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "pw-a", "flood");
  const chunk = "x".repeat(100_000);
  // 250 × 100 KB = 25 MB: well over the 4 MiB allowed to pile up plus what the kernel's socket buffers take.
  for (let i = 0; i < 250; i++) alice.send(`<message to='#flood@bridge.localhost' type='chat' id='f${i}'><body>${chunk}</body></message>`);
  await alice.waitFor(/<message[^>]*type='error'[\s\S]*?resource-constraint/, 60_000);
  assert.ok(ts.server.components.list().find((x) => x.domain === "bridge.localhost")!.connected, "the component itself stays connected");
  alice.close();
  comp.socket.resume();
  await disconnect(comp);
});

test("stopping the server closes component streams with system-shutdown", async () => {
  const c = await connect("other.localhost", "x");
  const stopping = ts.server.components.stop();
  await streamError(c, "system-shutdown");
  await stopping;
});
