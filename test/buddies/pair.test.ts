// Two Comity servers on loopback establish server trust (XEP-0267) through `comity buddies` over their control
// sockets: request, admin notification (live and stored offline), approval, mutual 'both', a restart of both with
// the state intact and presence exchanged, removal back to nothing, and a denial.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import type { BuddyEntry } from "../../src/modules/server-buddies/api.ts";
import { cliConfig, comity, entryOf, waitUntil } from "./kit.ts";

const A = "a.localhost";
const B = "b.localhost";
let a: TestServer;
let b: TestServer;
let cliA: string;
let cliB: string;

/** Start (or restart, on the same data dir and port) one of the two servers. */
async function start(domain: string, opts: { dataDir?: string; s2sPort?: number; routes?: Record<string, string> } = {}): Promise<TestServer> {
  return createTestServer(
    {
      hosts: [{ domain, admins: [`admin@${domain}`] }],
      s2s: { listen: [`127.0.0.1:${opts.s2sPort ?? 0}`], verify_certificates: false, routes: opts.routes ?? {} },
    },
    opts.dataDir === undefined ? { users: { [`admin@${domain}`]: "pw-admin" } } : { dataDir: opts.dataDir },
  );
}

function link(): void {
  a.config.s2s.routes[B] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes[A] = `127.0.0.1:${a.s2sPort}`;
}

before(async () => {
  a = await start(A);
  b = await start(B);
  link();
  cliA = cliConfig(a, A);
  cliB = cliConfig(b, B);
});
after(async () => {
  await a?.stop();
  await b?.stop();
});

async function loginAdmin(ts: TestServer, domain: string): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, "admin", "pw-admin", "console", { domain });
  return client;
}

const sub = (ts: TestServer, host: string, peer: string): string => entryOf(ts, host, peer)?.subscription ?? "(no entry)";

test("A's admin requests trust by CLI; B's offline admin finds the notice on login; B approves by CLI; both end 'both'", async () => {
  const r = await comity(cliA, "buddies", "request", B, "--note", "our partner", "--json");
  assert.equal(r.code, 0, r.stderr);
  const requested = JSON.parse(r.stdout) as BuddyEntry;
  assert.equal(requested.pendingOut, true);
  assert.equal(requested.preApproved, true);
  assert.match(requested.decidedBy ?? "", /^cli:/);

  await waitUntil("B holds A's request as pending", () => entryOf(b, B, A)?.pendingIn === true);
  assert.equal(sub(b, B, A), "none", "never approved by itself");
  assert.equal(entryOf(a, A, B)?.pendingOut, true);

  // B's admin was offline: the notice waits in offline storage and arrives at login.
  const admin = await loginAdmin(b, B);
  admin.send("<presence/>");
  await admin.waitFor(/<message[^>]*>[\s\S]*?<subject>Server trust request from a\.localhost<\/subject>[\s\S]*?<\/message>/);
  assert.match(admin.buffer, new RegExp(`<message[^>]*from='${B}'`));
  assert.match(admin.buffer, /comity buddies approve a\.localhost/);
  admin.close();

  const list = await comity(cliB, "buddies", "list");
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /a\.localhost\s+none\s+in: waiting for us \d+s\s+yes/, list.stdout);

  const ok = await comity(cliB, "buddies", "approve", A);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^a\.localhost: subscription from; our request is pending/);

  await waitUntil("both rosters reach 'both'", () => sub(a, A, B) === "both" && sub(b, B, A) === "both");
  const json = JSON.parse((await comity(cliA, "buddies", "list", "--json")).stdout) as Record<string, unknown>[];
  assert.equal(json.length, 1);
  const e = json[0]!;
  for (const k of ["host", "peer", "subscription", "pendingIn", "pendingOut", "peerImplementsServerRosters", "peerAvailable", "since", "note"]) assert.ok(k in e, k);
  assert.deepEqual(
    { host: e["host"], peer: e["peer"], subscription: e["subscription"], pendingIn: e["pendingIn"], pendingOut: e["pendingOut"], note: e["note"] },
    { host: A, peer: B, subscription: "both", pendingIn: false, pendingOut: false, note: "our partner" },
  );
  await waitUntil("A learned that B implements server rosters", () => entryOf(a, A, B)?.peerImplementsServerRosters === true);

  // B's approval: one approval in the audit log, by the CLI user; A's pre-approval shows as such.
  const auditB = JSON.parse((await comity(cliB, "buddies", "audit", A, "--json")).stdout) as { action: string; actor: string; via: string }[];
  const approvals = auditB.filter((x) => x.action === "approve");
  assert.equal(approvals.length, 1);
  assert.match(approvals[0]!.actor, /^cli:/);
  assert.equal(approvals[0]!.via, "cli");
  const auditA = JSON.parse((await comity(cliA, "buddies", "audit", "--json")).stdout) as { action: string; actor: string }[];
  assert.ok(auditA.some((x) => x.action === "approve" && x.actor === "pre-approval"));
  assert.ok(auditA.some((x) => x.action === "inbound-subscribed"));
});

test("approving twice is one approval, and errors come back with their codes", async () => {
  const again = await comity(cliB, "buddies", "approve", A);
  assert.equal(again.code, 0, "already approved: nothing to do");
  const auditB = JSON.parse((await comity(cliB, "buddies", "audit", A, "--json")).stdout) as { action: string }[];
  assert.equal(auditB.filter((x) => x.action === "approve").length, 1);
  const unknown = await comity(cliB, "buddies", "deny", "nobody.localhost");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^comity: nobody\.localhost is not in the server roster/);
  const bad = await comity(cliB, "buddies", "request", "alice@a.localhost");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not a server domain/);
  const own = await comity(cliB, "buddies", "request", B);
  assert.equal(own.code, 1);
});

test("after both servers restart on the same data, the rosters are intact and presence flows", async () => {
  const dirs = { a: a.dataDir, b: b.dataDir };
  const ports = { a: a.s2sPort, b: b.s2sPort };
  await a.server.stop();
  await b.server.stop();
  // Routes known before start, so the presence sent at start-up finds the peer.
  a = await start(A, { dataDir: dirs.a, s2sPort: ports.a, routes: { [B]: `127.0.0.1:${ports.b}` } });
  b = await start(B, { dataDir: dirs.b, s2sPort: ports.b, routes: { [A]: `127.0.0.1:${ports.a}` } });
  link();
  assert.equal(sub(a, A, B), "both");
  assert.equal(sub(b, B, A), "both");
  assert.equal(entryOf(a, A, B)?.note, "our partner");
  // B started last: its available presence reaches A, and its probe makes A answer with ours.
  await waitUntil("each sees the other available", () => entryOf(a, A, B)?.peerAvailable === true && entryOf(b, B, A)?.peerAvailable === true);
});

test("remove sends unsubscribe and unsubscribed: both back to nothing", async () => {
  const r = await comity(cliA, "buddies", "remove", B);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(entryOf(a, A, B), undefined);
  await waitUntil("B dropped A", () => entryOf(b, B, A) === undefined);
  const audit = JSON.parse((await comity(cliB, "buddies", "audit", A, "--json")).stdout) as { action: string }[];
  assert.deepEqual(audit.slice(0, 2).map((x) => x.action).sort(), ["inbound-unsubscribe", "revoked"]);
  assert.match((await comity(cliB, "buddies", "list")).stdout, /the server roster is empty/);
});

test("a one-way request denied by the peer's admin (online, told at once) leaves nothing on either side", async () => {
  const adminA = await loginAdmin(a, A);
  adminA.send("<presence/>");
  await adminA.sync(A); // the presence was handled: the admin is online, so the notice comes at once
  const r = await comity(cliB, "buddies", "request", A, "--one-way");
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse((await comity(cliB, "buddies", "list", "--json")).stdout) as BuddyEntry[])[0]?.preApproved, false);
  await adminA.waitFor(/<subject>Server trust request from b\.localhost<\/subject>/);
  await waitUntil("A holds B's request", () => entryOf(a, A, B)?.pendingIn === true);
  const d = await comity(cliA, "buddies", "deny", B, "--note", "not now");
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /no longer in the server roster/);
  await waitUntil("B's request is gone", () => entryOf(b, B, A) === undefined);
  assert.equal(entryOf(a, A, B), undefined);
  const audit = JSON.parse((await comity(cliB, "buddies", "audit", A, "--json")).stdout) as { action: string }[];
  assert.equal(audit[0]?.action, "denied-by-peer");
  const metrics = JSON.parse(JSON.stringify(a.server.control.get("buddies.metrics")!({}))) as { requestsReceived: number; notificationsSent: number }[];
  assert.equal(metrics[0]?.requestsReceived, 1);
  adminA.close();
});
