// Two Comity servers federate over loopback: dialback over STARTTLS with self-signed certificates,
// messages and IQs both ways, errors routed back, and bounces when a peer cannot be reached.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

let a: TestServer;
let b: TestServer;

before(async () => {
  // Both listen on ephemeral ports; each learns the other's port through its static route table.
  a = await createTestServer({ hosts: [{ domain: "a.localhost" }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } }, { users: { "alice@a.localhost": "pw-a" } });
  b = await createTestServer({ hosts: [{ domain: "b.localhost" }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } }, { users: { "bob@b.localhost": "pw-b" } });
  a.config.s2s.routes["b.localhost"] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes["a.localhost"] = `127.0.0.1:${a.s2sPort}`;
});
after(async () => {
  await a.stop();
  await b.stop();
});

async function login(ts: TestServer, user: string, domain: string, pw: string, resource: string): Promise<RawClient> {
  const c = await RawClient.connect(ts.directTlsPort, { tls: true });
  c.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`);
  await c.waitFor(/<\/stream:features>/);
  assert.ok(await c.authPlain(user, pw, domain));
  c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.waitFor(/<jid>/);
  c.send("<presence/>");
  c.buffer = "";
  return c;
}

test("a message crosses from one Comity to another over dialback, and back", async () => {
  const alice = await login(a, "alice", "a.localhost", "pw-a", "r1");
  const bob = await login(b, "bob", "b.localhost", "pw-b", "r2");
  alice.send("<message to='bob@b.localhost' type='chat' id='m1'><body>hello from a</body></message>");
  await bob.waitFor(/<message[^>]*from='alice@a.localhost\/r1'[^>]*>.*hello from a/);
  assert.match(bob.buffer, /<message xmlns='jabber:client'|<message (?!xmlns)/);
  bob.send("<message to='alice@a.localhost/r1' type='chat' id='m2'><body>hi back</body></message>");
  await alice.waitFor(/hi back/);
  const links = a.server.s2s.list();
  const out = links.find((l) => l.direction === "out" && l.peers.includes("b.localhost"));
  assert.ok(out);
  assert.equal(out.auth, "dialback");
  assert.equal(out.tls, true);
  const inbound = links.find((l) => l.direction === "in" && l.peers.includes("b.localhost"));
  assert.equal(inbound?.auth, "dialback");
  alice.close();
  bob.close();
});

test("IQs to a remote server are answered, and errors come back", async () => {
  const alice = await login(a, "alice", "a.localhost", "pw-a", "iq");
  alice.send("<iq type='get' to='b.localhost' id='v1'><query xmlns='jabber:iq:version'/></iq>");
  await alice.waitFor(/<iq[^>]*id='v1'[^>]*>[\s\S]*<name>Comity<\/name>/);
  alice.send("<iq type='get' to='b.localhost' id='u1'><query xmlns='urn:example:unknown'/></iq>");
  await alice.waitFor(/id='u1'[\s\S]*?<service-unavailable/);
  alice.send("<message to='nobody@b.localhost' id='n1'><body>x</body></message>");
  await alice.waitFor(/id='n1'[\s\S]*?<service-unavailable/);
  alice.close();
});

test("a domain nobody serves bounces with remote-server-not-found", async () => {
  const alice = await login(a, "alice", "a.localhost", "pw-a", "bounce");
  alice.send("<message to='carol@nowhere.invalid' id='x1'><body>lost</body></message>");
  await alice.waitFor(/id='x1'[\s\S]*?<remote-server-not-found/, 15000);
  alice.close();
});

test("comity s2s list shows the links of the running server over the control socket", async () => {
  const { writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const file = join(a.dataDir, "comity.yaml");
  writeFileSync(file, `hosts: [{domain: a.localhost}]\ndata_dir: ${a.dataDir}\n`);
  // The server runs in this process: the CLI must be awaited, not run synchronously.
  const run = async (...args: string[]) => (await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args, "--config", file], { encoding: "utf8", timeout: 60_000 })).stdout;
  const links = JSON.parse(await run("s2s", "list", "--json")) as { direction: string; peers: string[]; auth: string; tls: boolean }[];
  assert.ok(links.some((l) => l.direction === "out" && l.peers.includes("b.localhost") && l.auth === "dialback" && l.tls));
  const table = await run("s2s", "list");
  assert.match(table, /^PEER\s+DIR\s+LOCAL/m);
  assert.match(table, /b\.localhost\s+out\s+a\.localhost\s+established/);
  // `comity status` reads the same server: its links, its clients and its memory.
  const watcher = await login(a, "alice", "a.localhost", "pw-a", "status");
  const status = JSON.parse(await run("status", "--json")) as { hosts: string[]; c2sSessions: number; c2sConnections: number; s2sOutgoing: number; memory: { rss: number; heapUsed: number } };
  assert.deepEqual(status.hosts, ["a.localhost"]);
  assert.ok(status.c2sSessions >= 1 && status.c2sConnections >= status.c2sSessions, JSON.stringify(status));
  assert.ok(status.s2sOutgoing >= 1);
  assert.ok(status.memory.rss > status.memory.heapUsed && status.memory.heapUsed > 0);
  assert.match(await run("status"), /^clients\s+\d+ connections, \d+ bound sessions$/m);
  watcher.close();
});
