// XEP-0215 against a real TURN server: Debian's coturn, started here on loopback with its own config file in a temp
// dir (`use-auth-secret`, the TURN REST scheme), on ports this test picks. The credentials a local user gets from
// Comity allocate a relay with coturn's own client (`turnutils_uclient`); credentials past their expiry are refused.
// Without coturn the test is skipped, except under CI=true, where that is a failure (scripts/install-test-deps.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomInt } from "node:crypto";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const NS = "urn:xmpp:extdisco:2";
const found = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).status === 0;
const missing = !found("turnserver") || !found("turnutils_uclient");
const skip = missing && process.env["CI"] !== "true" ? "coturn is not installed (scripts/install-test-deps.sh)" : false;

const SECRET = randomBytes(24).toString("base64url");
let dir: string;
let turnPort: number;
let turn: ChildProcess | undefined;
let turnLog = "";
let ts: TestServer;
let shortLived: TestServer;
const clients: RawClient[] = [];
const children = new Set<ChildProcess>();

/** A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both). */
async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const udp = createSocket("udp4");
    const port = await new Promise<number>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(0, "127.0.0.1", () => resolve(udp.address().port));
    });
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once("error", () => resolve(false));
      tcp.listen(port, "127.0.0.1", () => resolve(true));
    });
    await new Promise<void>((r) => udp.close(() => r()));
    if (ok) {
      await new Promise<void>((r) => tcp.close(() => r()));
      return port;
    }
  }
  throw new Error("no free port");
}

function services(port: number, ttl?: number): Record<string, unknown>[] {
  return [
    { type: "stun", host: "127.0.0.1", port, transport: "udp" },
    { type: "turn", host: "127.0.0.1", port, transport: "udp", secret: SECRET, ...(ttl === undefined ? {} : { ttl }) },
    { type: "turn", host: "127.0.0.1", port, transport: "tcp", secret: SECRET, name: "Relay over TCP", ...(ttl === undefined ? {} : { ttl }) },
  ];
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "comity-coturn-"));
  turnPort = await freePort();
  const relayBase = randomInt(50_000, 59_000);
  const conf = join(dir, "turnserver.conf");
  writeFileSync(
    conf,
    [
      "listening-ip=127.0.0.1",
      "relay-ip=127.0.0.1",
      `listening-port=${turnPort}`,
      `min-port=${relayBase}`,
      `max-port=${relayBase + 199}`,
      "use-auth-secret",
      `static-auth-secret=${SECRET}`,
      "realm=localhost",
      "no-tls",
      "no-dtls",
      "no-cli",
      "allow-loopback-peers", // the relays and the client all live on 127.0.0.1
      `pidfile=${join(dir, "turnserver.pid")}`,
      `userdb=${join(dir, "turndb")}`,
      "log-file=stdout",
      "simple-log",
      "verbose",
      "",
    ].join("\n"),
  );
  turn = spawn("turnserver", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  turn.stdout!.setEncoding("utf8").on("data", (d: string) => (turnLog += d));
  turn.stderr!.setEncoding("utf8").on("data", (d: string) => (turnLog += d));
  const deadline = Date.now() + 30_000;
  const ready = new RegExp(`UDP listener opened on\\s*:\\s*127\\.0\\.0\\.1:${turnPort}`);
  while (!ready.test(turnLog)) {
    if (turn.exitCode !== null || Date.now() > deadline) throw new Error(`coturn did not start:\n${turnLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  ts = await createTestServer({ hosts: [{ domain: "localhost", external_services: services(turnPort) }] }, { users: { "alice@localhost": "pw" } });
  shortLived = await createTestServer({ hosts: [{ domain: "localhost", external_services: services(turnPort, 1) }] }, { users: { "bob@localhost": "pw" } });
});

after(async () => {
  for (const c of clients) c.close();
  for (const c of children) c.kill("SIGKILL");
  turn?.kill("SIGKILL");
  await ts?.stop();
  await shortLived?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Attributes of one opening tag. */
function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/\s([\w:-]+)=(?:'([^']*)'|"([^"]*)")/g)) out[m[1]!] = (m[2] ?? m[3])!.replace(/&amp;/g, "&").replace(/&apos;/g, "'");
  return out;
}

async function login(server: TestServer, user: string): Promise<RawClient> {
  const { client } = await RawClient.login(server.c2sPort, user, "pw", "phone");
  clients.push(client);
  return client;
}

/** Send an IQ get and return the text of its answer. */
async function iq(c: RawClient, id: string, payload: string, to = " to='localhost'"): Promise<string> {
  c.send(`<iq type='get' id='${id}'${to}>${payload}</iq>`);
  return (await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*(?:/>|>[\\s\\S]*?</iq>)`)))[0];
}

function serviceTags(xml: string): Record<string, string>[] {
  return [...xml.matchAll(/<service\b[^>]*>/g)].map((m) => attrs(m[0]));
}

/** Run coturn's test client against the relay: allocate, then send and receive a few packets through it. */
function uclient(username: string, password: string, tcp = false): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const args = [...(tcp ? ["-t"] : []), "-y", "-n", "3", "-p", String(turnPort), "-u", username, "-w", password, "127.0.0.1"];
    const child = spawn("turnutils_uclient", args, { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      children.delete(child);
      resolve({ code, out });
    });
  });
}

test("the server advertises urn:xmpp:extdisco:2 and lists STUN and TURN with credentials for a local user", { skip, timeout: 120_000 }, async () => {
  const c = await login(ts, "alice");
  const info = await iq(c, "d1", "<query xmlns='http://jabber.org/protocol/disco#info'/>");
  assert.match(info, new RegExp(`<feature var='${NS}'/>`));
  const all = serviceTags(await iq(c, "s1", `<services xmlns='${NS}'/>`));
  assert.equal(all.length, 3);
  assert.deepEqual(all[0], { type: "stun", host: "127.0.0.1", port: String(turnPort), transport: "udp" });
  const turn = all[1]!;
  assert.equal(turn["type"], "turn");
  assert.equal(turn["restricted"], "true");
  const [expiry, user] = turn["username"]!.split(":");
  assert.equal(user, "alice@localhost");
  const expires = Date.parse(turn["expires"]!);
  assert.equal(Number(expiry) * 1000, expires, "the username carries the expiry that `expires` states");
  assert.ok(Math.abs(expires - (Date.now() + 86_400_000)) < 60_000, "valid for the default day");
  assert.match(turn["expires"]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "XEP-0082, UTC");
  const only = serviceTags(await iq(c, "s2", `<services xmlns='${NS}' type='stun'/>`));
  assert.deepEqual(only.map((s) => s["type"]), ["stun"]);
});

test("the issued credentials allocate a relay on coturn, over UDP and TCP", { skip, timeout: 180_000 }, async () => {
  const c = await login(ts, "alice");
  const relays = serviceTags(await iq(c, "s3", `<services xmlns='${NS}' type='turn'/>`));
  assert.deepEqual(relays.map((s) => s["transport"]), ["udp", "tcp"]);
  const [udp, tcp] = relays;
  const r = await uclient(udp!["username"]!, udp!["password"]!);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /tot_recv_msgs=[1-9]/, "packets came back through the relay");
  assert.ok(turnLog.includes(`user <${udp!["username"]}>: incoming packet ALLOCATE processed, success`), "coturn allocated for these credentials");
  const t = await uclient(tcp!["username"]!, tcp!["password"]!, true);
  assert.equal(t.code, 0, t.out);
});

test("credentials asked for one service (§3.3) work; unknown services and malformed requests get errors", { skip, timeout: 120_000 }, async () => {
  const c = await login(ts, "alice");
  const r = await iq(c, "c1", `<credentials xmlns='${NS}'><service host='127.0.0.1' type='turn' port='${turnPort}'/></credentials>`);
  assert.match(r, /type='result'/);
  const creds = serviceTags(r);
  assert.equal(creds.length, 2, "both transports on that host and port match");
  const u = await uclient(creds[0]!["username"]!, creds[0]!["password"]!);
  assert.equal(u.code, 0, u.out);
  assert.match(await iq(c, "c2", `<credentials xmlns='${NS}'><service host='turn.example' type='turn'/></credentials>`), /<item-not-found /);
  assert.match(await iq(c, "c3", `<credentials xmlns='${NS}'><service host='127.0.0.1'/></credentials>`), /<bad-request /);
  assert.match(await iq(c, "c4", `<credentials xmlns='${NS}'/>`), /<bad-request /);
  // Without `to` the request is answered for the account's own session, the same way.
  assert.equal(serviceTags(await iq(c, "c5", `<services xmlns='${NS}'/>`, "")).length, 3);
});

test("expired credentials and credentials made with another secret are refused by coturn", { skip, timeout: 180_000 }, async () => {
  const c = await login(shortLived, "bob");
  const turn = serviceTags(await iq(c, "e1", `<services xmlns='${NS}' type='turn'/>`))[0]!;
  const expires = Date.parse(turn["expires"]!);
  assert.ok(expires - Date.now() <= 1000, "ttl 1 s");
  while (Date.now() < expires + 1500) await new Promise((r) => setTimeout(r, 100));
  const r = await uclient(turn["username"]!, turn["password"]!);
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /Cannot complete Allocation/);
  assert.ok(!turnLog.includes(`user <${turn["username"]}>: incoming packet ALLOCATE processed, success`), "coturn allocated nothing for them");
  // The same user with a fresh expiry but a password not made with coturn's secret.
  const forged = `${Math.floor(Date.now() / 1000) + 600}:bob@localhost`;
  const f = await uclient(forged, turn["password"]!);
  assert.notEqual(f.code, 0, f.out);
  assert.ok(!turnLog.includes(`user <${forged}>: incoming packet ALLOCATE processed, success`));
});
