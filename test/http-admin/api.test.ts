// The HTTP API (/api) over real HTTP: Basic authentication (none, wrong, non-admin, admin, throttled), the
// hosts an admin may act on, listing and deciding server trust requests that a peer really sent over s2s, the
// audit log recording via "api", and the error statuses (400, 404, 405, 409, 413, 415, 422).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { entryOf, rosterOf } from "../buddies/kit.ts";
import { basic, HOST_A, HOST_B, PEERS, request, startAdminFixture, USERS, type AdminFixture } from "./kit.ts";

let fx: AdminFixture;
const [RAW, OTHER, THIRD] = PEERS as [string, string, string];

before(async () => {
  fx = await startAdminFixture();
});
after(async () => {
  await fx?.stop();
});

const as = (u: { jid: string; password: string }) => ({ authorization: basic(u.jid, u.password) });
const get = (path: string, u = USERS.admin) => request(fx.base + path, { headers: as(u) });
const post = (path: string, body?: unknown, u = USERS.admin, headers: Record<string, string> = {}) =>
  request(fx.base + path, {
    method: "POST",
    headers: { ...as(u), ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
const errorOf = (r: { json: unknown }) => (r.json as { error: string; message: string }).error;

test("no credentials: 401 with WWW-Authenticate and a JSON error", async () => {
  const r = await request(`${fx.base}/api/buddies`);
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate") ?? "", /^Basic realm="Comity admin"/);
  assert.equal(errorOf(r), "COMITY_ERR_HTTP_UNAUTHENTICATED");
  assert.equal(typeof (r.json as { message: unknown }).message, "string");
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
});

test("wrong password, unknown account and a malformed header: 401", async () => {
  for (const auth of [basic(USERS.admin.jid, "nope"), basic("ghost@a.localhost", "x"), basic("not a jid", "x"), "Basic !!!", "Bearer abc"]) {
    const r = await request(`${fx.base}/api/buddies`, { headers: { authorization: auth } });
    assert.equal(r.status, 401, auth);
    assert.ok(r.headers.get("www-authenticate"), auth);
  }
});

test("a user who administers no host: 403, even with the right password", async () => {
  const r = await get("/api/buddies", USERS.user);
  assert.equal(r.status, 403);
  assert.equal(errorOf(r), "COMITY_ERR_NOT_ADMIN");
});

test("an admin sees who they are and only their hosts; another host's data is 403", async () => {
  assert.deepEqual((await get("/api/me")).json, { jid: USERS.admin.jid, hosts: [HOST_A] });
  assert.deepEqual((await get("/api/me", USERS.multi)).json, { jid: USERS.multi.jid, hosts: [HOST_A, HOST_B] });
  const r = await get(`/api/buddies?host=${HOST_B}`);
  assert.equal(r.status, 403);
  assert.equal(errorOf(r), "COMITY_ERR_NOT_HOST_ADMIN");
  const act = await post(`/api/buddies/${RAW}/request`, { host: HOST_B });
  assert.equal(act.status, 403);
  assert.equal(rosterOf(fx.ts, HOST_B).get(RAW), undefined);
});

test("status and s2s: the same objects as the control methods, links limited to the admin's hosts", async () => {
  const st = await get("/api/status");
  assert.equal(st.status, 200);
  const status = st.json as { hosts: string[]; c2sConnections: number; s2sIncoming: number; version: string };
  assert.deepEqual(status.hosts, [HOST_A, HOST_B]);
  assert.ok(status.s2sIncoming >= 1, "the raw peer's stream");
  const links = (await get("/api/s2s")).json as { local: string; direction: string }[];
  assert.ok(links.some((l) => l.direction === "in" && l.local === HOST_A), JSON.stringify(links));
  assert.deepEqual((await get("/api/s2s", USERS.boss)).json, [], "boss administers b.localhost, which has no links");
});

test("a peer's request is listed like `comity buddies list --json` and approved through the API, recorded via api", async () => {
  await fx.pendingFrom(RAW);
  const list = await get("/api/buddies");
  assert.equal(list.status, 200);
  const entries = list.json as Record<string, unknown>[];
  const e = entries.find((x) => x["peer"] === RAW)!;
  assert.ok(e, JSON.stringify(entries));
  for (const k of ["host", "peer", "subscription", "pendingIn", "pendingOut", "peerImplementsServerRosters", "peerAvailable", "since", "note"]) assert.ok(k in e, k);
  assert.deepEqual([e["host"], e["subscription"], e["pendingIn"]], [HOST_A, "none", true]);
  assert.deepEqual(entries, JSON.parse(JSON.stringify(await fx.ts.server.control.get("buddies.list")!({ host: HOST_A }))));
  assert.deepEqual((await get(`/api/buddies/${RAW.toUpperCase()}`)).json, e);

  const r = await post(`/api/buddies/${RAW}/approve`, { note: "we know them" });
  assert.equal(r.status, 200, r.text);
  const body = r.json as { host: string; peer: string; action: string; entry: { subscription: string; pendingIn: boolean } };
  assert.deepEqual([body.host, body.peer, body.action, body.entry.subscription, body.entry.pendingIn], [HOST_A, RAW, "approve", "from", false]);
  assert.equal(entryOf(fx.ts, HOST_A, RAW)?.decidedVia, "api");
  assert.equal(entryOf(fx.ts, HOST_A, RAW)?.decidedBy, USERS.admin.jid);

  const audit = (await get(`/api/buddies/audit?peer=${RAW}`)).json as { action: string; actor: string; via: string; detail: string | null }[];
  const approval = audit.find((a) => a.action === "approve");
  assert.ok(approval, JSON.stringify(audit));
  assert.deepEqual([approval.actor, approval.via], [USERS.admin.jid, "api"]);

  // Approving again is the same approval (idempotent); denying now finds nothing pending.
  assert.equal((await post(`/api/buddies/${RAW}/approve`)).status, 200);
  const deny = await post(`/api/buddies/${RAW}/deny`);
  assert.equal(deny.status, 409);
  assert.equal(errorOf(deny), "COMITY_ERR_BUDDY_NOT_PENDING");

  const links = (await get("/api/s2s")).json as { local: string; direction: string; peers: string[] }[];
  assert.ok(links.some((l) => l.direction === "in" && l.local === HOST_A && l.peers.includes(RAW)), JSON.stringify(links));
});

test("deny, request (one way and mutual), cancel and remove through the API", async () => {
  await fx.pendingFrom(OTHER);
  const denied = await post(`/api/buddies/${OTHER}/deny`);
  assert.equal(denied.status, 200, denied.text);
  assert.equal(entryOf(fx.ts, HOST_A, OTHER)?.pendingIn ?? false, false);

  const req = await post(`/api/buddies/${THIRD}/request`, { note: "partners", mutual: false });
  assert.equal(req.status, 200, req.text);
  const entry = (req.json as { entry: { pendingOut: boolean; preApproved: boolean; note: string } }).entry;
  assert.deepEqual([entry.pendingOut, entry.preApproved, entry.note], [true, false, "partners"]);
  const mutual = await post(`/api/buddies/${THIRD}/request`);
  assert.equal((mutual.json as { entry: { preApproved: boolean } }).entry.preApproved, true, "mutual is the default");

  const cancelled = await post(`/api/buddies/${THIRD}/cancel`, {});
  assert.equal(cancelled.status, 200, cancelled.text);
  assert.equal(entryOf(fx.ts, HOST_A, THIRD)?.pendingOut ?? false, false);

  const removed = await post(`/api/buddies/${RAW}/remove`, { note: "done" });
  assert.equal(removed.status, 200, removed.text);
  assert.equal((removed.json as { entry: unknown }).entry, null);
  assert.equal(entryOf(fx.ts, HOST_A, RAW), undefined);
  assert.equal((await get(`/api/buddies/${RAW}`)).status, 404);

  const audit = (await get("/api/buddies/audit?limit=50")).json as { peer: string; action: string; via: string }[];
  for (const [peer, action] of [[OTHER, "deny"], [THIRD, "request"], [THIRD, "cancel"], [RAW, "remove"]]) {
    assert.ok(audit.some((a) => a.peer === peer && a.action === action && a.via === "api"), `${peer} ${action}: ${JSON.stringify(audit)}`);
  }
  assert.equal(((await get("/api/buddies/audit?limit=2")).json as unknown[]).length, 2);
});

test("an admin of several hosts must say which host an action is for", async () => {
  const r = await post(`/api/buddies/${RAW}/request`, undefined, USERS.multi);
  assert.equal(r.status, 400);
  assert.equal(errorOf(r), "COMITY_ERR_HTTP_HOST_REQUIRED");
  const ok = await post(`/api/buddies/${RAW}/request?host=${HOST_B}`, undefined, USERS.multi);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(rosterOf(fx.ts, HOST_B).get(RAW)?.decidedBy, USERS.multi.jid);
  const both = (await get("/api/buddies", USERS.multi)).json as { host: string }[];
  assert.ok(both.some((e) => e.host === HOST_B));
  const onlyB = (await get(`/api/buddies?host=${HOST_B}`, USERS.multi)).json as { host: string }[];
  assert.ok(onlyB.length > 0 && onlyB.every((e) => e.host === HOST_B));
});

test("bad input: 400 bad JSON or fields, 404 unknown, 405 with Allow, 413 too large, 415 not JSON, 422 not a domain", async () => {
  const cases: [Promise<{ status: number; json: unknown; headers: Headers }>, number, string][] = [
    [post(`/api/buddies/${RAW}/request`, "{not json"), 400, "COMITY_ERR_HTTP_BAD_JSON"],
    [post(`/api/buddies/${RAW}/request`, "[1]"), 400, "COMITY_ERR_HTTP_BAD_JSON"],
    [post(`/api/buddies/${RAW}/request`, { mutal: true }), 400, "COMITY_ERR_HTTP_BAD_REQUEST"],
    [post(`/api/buddies/${RAW}/request`, { mutual: "yes" }), 400, "COMITY_ERR_HTTP_BAD_REQUEST"],
    [post(`/api/buddies/${RAW}/approve`, { mutual: true }), 400, "COMITY_ERR_HTTP_BAD_REQUEST"],
    [post(`/api/buddies/${RAW}/approve`, { note: 5 }), 400, "COMITY_ERR_HTTP_BAD_REQUEST"],
    [get("/api/buddies?hots=a.localhost"), 400, "COMITY_ERR_HTTP_BAD_REQUEST"],
    [get("/api/buddies/audit?limit=0"), 400, "COMITY_ERR_HTTP_BAD_REQUEST"],
    [get("/api/nothing"), 404, "COMITY_ERR_HTTP_NOT_FOUND"],
    [post(`/api/buddies/${RAW}/befriend`), 404, "COMITY_ERR_HTTP_NOT_FOUND"],
    [post(`/api/buddies/never.localhost/approve`), 404, "COMITY_ERR_BUDDY_UNKNOWN"],
    [post(`/api/buddies/${RAW}/request`, "x".repeat(70_000)), 413, "COMITY_ERR_HTTP_BODY_TOO_LARGE"],
    [post(`/api/buddies/${RAW}/request`, "a=b", USERS.admin, { "content-type": "application/x-www-form-urlencoded" }), 415, "COMITY_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE"],
    [post(`/api/buddies/${encodeURIComponent("not a domain!")}/request`), 422, "COMITY_ERR_BUDDY_INVALID_PEER"],
    [post(`/api/buddies/${HOST_A}/request`), 422, "COMITY_ERR_BUDDY_INVALID_PEER"],
    [post(`/api/buddies/${encodeURIComponent("user@x.example")}/request`), 422, "COMITY_ERR_BUDDY_INVALID_PEER"],
  ];
  for (const [p, status, code] of cases) {
    const r = await p;
    assert.equal(r.status, status, `${code}: ${JSON.stringify(r.json)}`);
    assert.equal(errorOf(r), code);
  }
  const m = await post("/api/buddies");
  assert.equal(m.status, 405);
  assert.equal(m.headers.get("allow"), "GET, HEAD");
  const g = await get(`/api/buddies/${RAW}/approve`);
  assert.equal(g.status, 405);
  assert.equal(g.headers.get("allow"), "POST");
});

test("incidents are listed when the module is loaded", async () => {
  const r = await get("/api/incidents");
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.json));
});

test("buddies metrics per host", async () => {
  const r = await get("/api/buddies/metrics");
  assert.equal(r.status, 200, r.text);
  const m = r.json as { host: string; requestsReceived: number }[];
  assert.deepEqual(m.map((x) => x.host), [HOST_A]);
  assert.ok(m[0]!.requestsReceived >= 2);
});
