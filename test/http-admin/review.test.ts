// Adversarial review of /admin and /api: what a client can claim through proxy headers, what a same-site page can
// make a browser do with cached Basic credentials, what error texts reveal, how look-alike peer domains are shown,
// and the edges that were checked and found sound (JSON bodies, body limits, HEAD and OPTIONS, throttling across
// usernames, the remembered password after a change or a deletion, JID normalisation at login).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { connect, type Socket } from "node:net";
import { entryOf, rosterOf } from "../buddies/kit.ts";
import { deriveCredentials } from "../../src/sasl/credentials.ts";
import { AdminOps, HttpError } from "../../src/http/admin/ops.ts";
import { SessionStore } from "../../src/http/admin/sessions.ts";
import { StorageError } from "../../src/storage/errors.ts";
import type { Logger } from "../../src/core/log.ts";
import { basic, FormClient, HOST_A, HOST_B, request, startAdminFixture, USERS, type AdminFixture } from "./kit.ts";

let fx: AdminFixture;
let port: number;
/** Listed as an admin of a.localhost; the account is created and deleted by a test. */
const TEMP = "temp@a.localhost";

before(async () => {
  // 127.0.0.1 is a trusted proxy; requests sent from 127.0.0.2 come from a loopback socket that is not one.
  fx = await startAdminFixture({
    hosts: [
      { domain: HOST_A, admins: [USERS.admin.jid, USERS.multi.jid, TEMP] },
      { domain: HOST_B, admins: [USERS.multi.jid, USERS.boss.jid] },
    ],
    http: { listen: ["127.0.0.1:0"], websocket: false, trusted_proxies: ["127.0.0.1"] },
    auth: { failure_delay_ms: 2000 },
  });
  port = fx.ts.server.addresses.http[0]!.port;
});
after(async () => {
  await fx?.stop();
});

interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP request with control over the source address and every header. */
function raw(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, method: opts.method ?? "GET", headers: opts.headers ?? {}, localAddress: opts.from ?? "127.0.0.1" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const errorOf = (r: RawReply): string => (JSON.parse(r.text) as { error: string }).error;
const adminAuth = { authorization: basic(USERS.admin.jid, USERS.admin.password) };

test("behind a proxy that appends to X-Forwarded-For, a client can neither pose as loopback nor dodge the throttle", async () => {
  // nginx's $proxy_add_x_forwarded_for keeps what the client sent and appends the address it saw: only the right
  // end is the proxy's word.
  const posing = await raw("/api/me", { headers: { ...adminAuth, "x-forwarded-for": "127.0.0.1, 192.0.2.50" } });
  assert.equal(posing.status, 403, posing.text);
  assert.equal(errorOf(posing), "COMITY_ERR_HTTPS_REQUIRED");

  // Four wrong guesses, each with a different made-up first hop, from the same real client.
  const from = (i: number) => ({ "x-forwarded-for": `203.0.113.${i}, 192.0.2.51`, "x-forwarded-proto": "https" });
  for (let i = 1; i <= 4; i++) {
    const r = await raw("/api/me", { headers: { authorization: basic(USERS.admin.jid, `guess-${i}`), ...from(i) } });
    assert.equal(r.status, 401);
  }
  const blocked = await raw("/api/me", { headers: { ...adminAuth, ...from(5) } });
  assert.equal(blocked.status, 429, "the failures were counted against 192.0.2.51, the address the proxy saw");

  // A chain of trusted proxies is walked from the right; a single replaced header works as before.
  const chained = await raw("/api/me", { headers: { ...adminAuth, "x-forwarded-for": "198.51.100.1, 192.0.2.52, 127.0.0.1", "x-forwarded-proto": "https" } });
  assert.equal(chained.status, 200, chained.text);
  assert.equal(fx.ts.server.http!.clientAddress({ socket: { remoteAddress: "127.0.0.1" }, headers: { "x-forwarded-for": "198.51.100.1, 192.0.2.52, 127.0.0.1" } } as never), "192.0.2.52");
  assert.equal(fx.ts.server.http!.clientAddress({ socket: { remoteAddress: "127.0.0.1" }, headers: { "x-forwarded-for": "192.0.2.53" } } as never), "192.0.2.53");
  assert.equal(fx.ts.server.http!.clientAddress({ socket: { remoteAddress: "127.0.0.1" }, headers: { "x-forwarded-for": "127.0.0.1" } } as never), "127.0.0.1");
});

test("a loopback socket that forwards for someone else is a proxy, not a loopback client", async () => {
  // 127.0.0.2 is not in http.trusted_proxies: its X-Forwarded-For is not believed, and it is not taken for the user.
  const viaUnknownProxy = await raw("/api/me", { from: "127.0.0.2", headers: { ...adminAuth, "x-forwarded-for": "203.0.113.20" } });
  assert.equal(viaUnknownProxy.status, 403, viaUnknownProxy.text);
  assert.equal(errorOf(viaUnknownProxy), "COMITY_ERR_HTTPS_REQUIRED");
  assert.match(JSON.parse(viaUnknownProxy.text).message, /came through a proxy that is not listed in http\.trusted_proxies/);
  const page = await raw("/admin/login", { from: "127.0.0.2", headers: { "x-forwarded-for": "203.0.113.20" } });
  assert.equal(page.status, 403);
  assert.doesNotMatch(page.text, /type="password"/);
  assert.match(page.text, /came through a proxy that is not listed in <code>http\.trusted_proxies<\/code>/);
  // A trusted proxy that names the client only in Forwarded (RFC 7239), which Comity does not read.
  const forwardedOnly = await raw("/api/me", { headers: { ...adminAuth, forwarded: "for=203.0.113.21;proto=http" } });
  assert.equal(forwardedOnly.status, 403, forwardedOnly.text);
  // A real loopback client, with no forwarding header, still may use plain HTTP.
  assert.equal((await raw("/api/me", { from: "127.0.0.2", headers: adminAuth })).status, 200);
  assert.equal((await raw("/admin/login", { from: "127.0.0.2" })).status, 200);
});

test("the API refuses a browser POST from another origin, even one with no body that cached Basic credentials ride on", async () => {
  // Chromium sends cached Basic credentials with a same-site fetch(url, {method: "POST", mode: "no-cors",
  // credentials: "include"}): no body, so no Content-Type, so the JSON-only rule does not stop it.
  const peer = "csrf.localhost";
  const attempts: Record<string, string>[] = [
    { "sec-fetch-site": "same-site", origin: "http://127.0.0.1:1" },
    { "sec-fetch-site": "cross-site", origin: "https://evil.example" },
    { origin: "https://evil.example" }, // a browser too old to send Sec-Fetch-Site
  ];
  for (const headers of attempts) {
    const r = await raw(`/api/buddies/${peer}/request?host=${HOST_A}`, { method: "POST", headers: { ...adminAuth, ...headers } });
    assert.equal(r.status, 403, JSON.stringify(headers));
    assert.equal(errorOf(r), "COMITY_ERR_HTTP_CROSS_SITE");
  }
  assert.equal(entryOf(fx.ts, HOST_A, peer), undefined, "nothing was requested");
  // Reading is harmless (the browser does not show another origin the answer): GET is not refused.
  assert.equal((await raw("/api/me", { headers: { ...adminAuth, "sec-fetch-site": "cross-site", origin: "https://evil.example" } })).status, 200);
  // Scripts send neither header; a same-origin page says so.
  const ok = await raw(`/api/buddies/${peer}/request?host=${HOST_A}`, { method: "POST", headers: { ...adminAuth, "sec-fetch-site": "same-origin" } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await raw(`/api/buddies/${peer}/cancel`, { method: "POST", headers: adminAuth })).status, 200);
});

test("an error with an internal COMITY_ERR_* code (storage) reaches the client as a generic 500, with the details only in the log", async () => {
  const logged: unknown[] = [];
  const log = { warn: (obj: unknown) => void logged.push(obj) } as unknown as Logger;
  const control = new Map([["buddies.list", () => Promise.reject(new StorageError("COMITY_ERR_STORAGE_UNAVAILABLE", "PostgreSQL at db.internal:5432/comity: password authentication failed for user \"comity\""))]]);
  const ops = new AdminOps(control, log);
  const err = await ops.buddies([HOST_A]).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof HttpError);
  assert.equal(err.status, 500);
  assert.doesNotMatch(err.message, /db\.internal|password|PostgreSQL/);
  assert.equal(logged.length, 1, "the details are logged");
  // The roster's own codes keep their status and text.
  const known = new AdminOps(new Map([["buddies.approve", () => Promise.reject(Object.assign(new Error("x.localhost has no pending request"), { code: "COMITY_ERR_BUDDY_NOT_PENDING" }))]]), log);
  const e409 = await known.decide({ jid: USERS.admin.jid, hosts: [HOST_A] }, "api", HOST_A, "approve", "x.localhost").then(() => undefined, (e: unknown) => e);
  assert.ok(e409 instanceof HttpError);
  assert.deepEqual([e409.status, e409.code, e409.message], [409, "COMITY_ERR_BUDDY_NOT_PENDING", "x.localhost has no pending request"]);
});

test("a peer domain with non-ASCII letters is shown with its ASCII form too, so a look-alike cannot pass for a known name", async () => {
  const lookalike = "\u0430pple.localhost"; // Cyrillic a
  await rosterOf(fx.ts, HOST_A).request(lookalike, { actor: "cli:test", via: "cli" });
  const c = new FormClient(fx.base);
  await c.login(USERS.admin.jid, USERS.admin.password);
  const page = (await c.get("/admin/")).text;
  assert.ok(page.includes("xn--pple-43d.localhost"), "the A-label is on the page");
  assert.ok(page.includes('aria-label="Cancel the request to \u0430pple.localhost (xn--pple-43d.localhost)"'));
  const audit = (await c.get("/admin/audit")).text;
  assert.ok(audit.includes("xn--pple-43d.localhost"));
  await rosterOf(fx.ts, HOST_A).remove(lookalike, { actor: "cli:test", via: "cli" });
});

test("one admin logging in over and over cannot push other admins' sessions out", () => {
  const store = new SessionStore({ max: 10, maxPerJid: 3 });
  const others = [store.create("a@x", "f"), store.create("b@x", "f")];
  const mine: { id: string }[] = [];
  for (let i = 0; i < 50; i++) mine.push(store.create("noisy@x", "f"));
  for (const s of others) assert.ok(store.get(s.id), s.jid);
  assert.equal(mine.filter((s) => store.get(s.id) !== undefined).length, 3, "the noisy admin keeps its 3 most recent");
  assert.ok(store.get(mine.at(-1)!.id));
  assert.equal(store.size, 5);
});

test("an account that administers nothing cannot make the server derive keys for every request it sends", async () => {
  // Each check of a password runs PBKDF2 on the event loop (a few ms at 4096 iterations, for every connection).
  // Admins' passwords were remembered; a plain user's right password was checked again on every request.
  const crypto = createRequire(import.meta.url)("node:crypto") as { pbkdf2Sync: (...args: unknown[]) => Buffer };
  const original = crypto.pbkdf2Sync;
  let runs = 0;
  crypto.pbkdf2Sync = (...args: unknown[]) => {
    runs++;
    return original(...args);
  };
  syncBuiltinESMExports();
  try {
    const user = { authorization: basic(USERS.user.jid, USERS.user.password) };
    for (let i = 0; i < 10; i++) assert.equal((await raw("/api/me", { headers: user })).status, 403);
    assert.ok(runs <= 1, `${runs} key derivations for 10 requests`);
  } finally {
    crypto.pbkdf2Sync = original;
    syncBuiltinESMExports();
  }
});

// --- Checked and sound: kept as regression tests. ---

test("JSON bodies: __proto__, non-objects, wrong types and huge numbers are refused, and nothing is polluted", async () => {
  const peer = "json.localhost";
  const bodies = ['{"__proto__": {"polluted": true}}', '{"constructor": {"prototype": {"polluted": true}}}', "[]", "1e400", '"x"', "null", '{"mutual": 1e400}', '{"note": 5}', '{"host": ["a.localhost"]}', "{", "[".repeat(50_000)];
  for (const body of bodies) {
    const r = await raw(`/api/buddies/${peer}/request?host=${HOST_A}`, { method: "POST", headers: { ...adminAuth, "content-type": "application/json" }, body });
    assert.equal(r.status, 400, body.slice(0, 40));
  }
  assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  assert.equal(entryOf(fx.ts, HOST_A, peer), undefined);
});

/** Write raw bytes on a fresh connection; resolves with everything read until the server closes it. */
function rawSocket(write: (s: Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1", () => write(s));
    let got = "";
    s.on("data", (d) => (got += d.toString()));
    s.on("error", () => {});
    s.on("close", () => resolve(got));
  });
}

test("bodies over 64 KiB are refused, declared or chunked, and the connection is closed", async () => {
  const auth = `Authorization: ${adminAuth.authorization}\r\n`;
  const declared = await rawSocket((s) => s.write(`POST /api/buddies/x.localhost/approve HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n`));
  assert.match(declared, /^HTTP\/1\.1 413/);
  const chunked = await rawSocket((s) => {
    s.write(`POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`);
    for (let i = 0; i < 20; i++) s.write(`1000\r\n${"a".repeat(0x1000)}\r\n`);
  });
  assert.match(chunked, /^HTTP\/1\.1 413/);
});

test("HEAD answers without a body; OPTIONS gets no CORS permission", async () => {
  const head = await raw("/api/me", { method: "HEAD", headers: adminAuth });
  assert.equal(head.status, 200);
  assert.equal(head.text, "");
  const preflight = await raw("/api/buddies/x.localhost/approve", { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
  assert.equal(preflight.status, 401);
  assert.equal(preflight.headers["access-control-allow-origin"], undefined);
  const options = await raw("/api/me", { method: "OPTIONS", headers: adminAuth });
  assert.equal(options.status, 405);
  assert.equal(options.headers["allow"], "GET, HEAD");
  const consoleHead = await raw("/admin/login", { method: "HEAD" });
  assert.equal(consoleHead.status, 200);
  assert.equal(consoleHead.text, "");
});

test("guessing across many usernames from one address is throttled like guessing one", async () => {
  const from = { "x-forwarded-for": "192.0.2.70", "x-forwarded-proto": "https" };
  const names = ["ghost@a.localhost", "admin@b.localhost", "not a jid", USERS.boss.jid];
  for (const jid of names) assert.equal((await raw("/api/me", { headers: { authorization: basic(jid, "guess"), ...from } })).status, 401, jid);
  assert.equal((await raw("/api/me", { headers: { ...adminAuth, ...from } })).status, 429);
});

test("the remembered password: a changed password or a deleted admin account is refused at once", async () => {
  const me = (password: string) => raw("/api/me", { headers: { authorization: basic(TEMP, password) } });
  assert.equal((await me("pw-1")).status, 401, "listed in hosts[].admins, but no account yet");
  await fx.ts.server.storage.accounts.create(HOST_A, "temp", deriveCredentials("pw-1", { storage: "scram", iterations: 4096 }));
  assert.equal((await me("pw-1")).status, 200);
  assert.equal((await me("pw-1")).status, 200, "remembered");
  await fx.ts.server.storage.accounts.setCredentials(HOST_A, "temp", deriveCredentials("pw-2", { storage: "scram", iterations: 4096 }));
  assert.equal((await me("pw-1")).status, 401);
  assert.equal((await me("pw-2")).status, 200);
  const browser = new FormClient(fx.base);
  assert.equal((await browser.login(TEMP, "pw-2")).headers.get("location"), "/admin/");
  await fx.ts.server.storage.accounts.delete(HOST_A, "temp");
  assert.equal((await me("pw-2")).status, 401);
  assert.equal((await browser.get("/admin/")).headers.get("location"), "/admin/login?error=expired", "the console session ends too");
});

test("login normalises the JID as XMPP does, and refuses full JIDs", async () => {
  assert.equal((await request(`${fx.base}/api/me`, { headers: { authorization: basic("ADMIN@A.LOCALHOST.", USERS.admin.password) } })).status, 200);
  assert.equal(((await request(`${fx.base}/api/me`, { headers: { authorization: basic("Admin@a.localhost", USERS.admin.password) } })).json as { jid: string }).jid, USERS.admin.jid);
  assert.equal((await request(`${fx.base}/api/me`, { headers: { authorization: basic(`${USERS.admin.jid}/laptop`, USERS.admin.password) } })).status, 401);
  // An admin of b.localhost only cannot reach a.localhost by any spelling of it.
  const boss = { authorization: basic(USERS.boss.jid, USERS.boss.password) };
  for (const h of ["a.localhost", "A.LOCALHOST", " a.localhost ", "a.localhost."]) {
    const r = await request(`${fx.base}/api/buddies?host=${encodeURIComponent(h)}`, { headers: boss });
    assert.equal(r.status, 403, h);
  }
});

test("a session id chosen by someone else is never adopted: login always issues a new one", async () => {
  const c = new FormClient(fx.base);
  c.cookie = "comity_admin=chosen-by-the-attacker-0123456789abcdefghijklmnopq";
  const r = await c.login(USERS.admin.jid, USERS.admin.password);
  assert.equal(r.status, 303);
  assert.notEqual(c.cookie, "comity_admin=chosen-by-the-attacker-0123456789abcdefghijklmnopq");
  const fixed = await request(`${fx.base}/admin/`, { headers: { cookie: "comity_admin=chosen-by-the-attacker-0123456789abcdefghijklmnopq" } });
  assert.equal(fixed.headers.get("location"), "/admin/login?error=expired");
});

test("/admin/style.css is one fixed text: no path reaches a file", async () => {
  for (const path of ["/admin/style.css/../../../../etc/passwd", "/admin/..%2f..%2f..%2fetc%2fpasswd", "/admin/style.css%00.html", "/admin/%2e%2e/%2e%2e/etc/passwd", "/admin/style.css/"]) {
    const r = await raw(path);
    assert.ok([303, 404].includes(r.status), `${path}: ${r.status}`);
    assert.doesNotMatch(r.text, /root:/);
  }
});
