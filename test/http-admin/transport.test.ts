// Where passwords may travel and how fast they may be guessed: behind a trusted proxy, a client that is not on
// loopback and not on HTTPS gets a clear refusal from the API and the console (its password is not even checked);
// over HTTPS (as the proxy says) it works and the cookie is Secure; repeated failures from one address are refused
// with 429 and Retry-After until the throttle's delay has passed, without touching other addresses.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request as httpsRequest } from "node:https";
import { basic, FormClient, request, startAdminFixture, USERS, type AdminFixture } from "./kit.ts";

let fx: AdminFixture;
// The refusals below must all land inside the throttle's delay after the fourth failure: three HTTP requests,
// which a loaded machine can stretch to a second or more, so the window is 3 s (600 ms left little room).
const DELAY_MS = 3000;

before(async () => {
  // The test client connects from 127.0.0.1, which is configured as a proxy: X-Forwarded-* set the client's address.
  fx = await startAdminFixture({
    http: { listen: ["127.0.0.1:0"], tls_listen: ["127.0.0.1:0"], websocket: false, trusted_proxies: ["127.0.0.1"] },
    auth: { failure_delay_ms: DELAY_MS },
  });
});
after(async () => {
  await fx?.stop();
});

const remote = (address: string, https: boolean): Record<string, string> => ({ "x-forwarded-for": address, ...(https ? { "x-forwarded-proto": "https" } : {}) });

test("API over plain HTTP from a remote address: 403 COMITY_ERR_HTTPS_REQUIRED, even with valid credentials", async () => {
  const r = await request(`${fx.base}/api/me`, { headers: { authorization: basic(USERS.admin.jid, USERS.admin.password), ...remote("192.0.2.10", false) } });
  assert.equal(r.status, 403);
  const body = r.json as { error: string; message: string };
  assert.equal(body.error, "COMITY_ERR_HTTPS_REQUIRED");
  assert.match(body.message, /HTTPS/);
  const ok = await request(`${fx.base}/api/me`, { headers: { authorization: basic(USERS.admin.jid, USERS.admin.password), ...remote("192.0.2.10", true) } });
  assert.equal(ok.status, 200, ok.text);
  // A loopback client may use plain HTTP (the proxy forwards for 127.0.0.5 here).
  const local = await request(`${fx.base}/api/me`, { headers: { authorization: basic(USERS.admin.jid, USERS.admin.password), ...remote("127.0.0.5", false) } });
  assert.equal(local.status, 200, local.text);
});

test("console over plain HTTP from a remote address says why and shows no password field; over HTTPS the cookie is Secure", async () => {
  const page = await request(`${fx.base}/admin/login`, { headers: remote("192.0.2.11", false) });
  assert.equal(page.status, 403);
  assert.match(page.text, /not encrypted/);
  assert.match(page.text, /HTTPS/);
  assert.doesNotMatch(page.text, /type="password"/);
  const post = await request(`${fx.base}/admin/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...remote("192.0.2.11", false) },
    body: new URLSearchParams({ jid: USERS.admin.jid, password: USERS.admin.password }).toString(),
  });
  assert.equal(post.status, 403);
  assert.equal(post.headers.get("set-cookie"), null);

  const secure = await request(`${fx.base}/admin/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...remote("192.0.2.11", true) },
    body: new URLSearchParams({ jid: USERS.admin.jid, password: USERS.admin.password }).toString(),
  });
  assert.equal(secure.status, 303);
  const cookie = secure.headers.get("set-cookie") ?? "";
  assert.match(cookie, /; HttpOnly; SameSite=Strict; Secure$/);
  const id = cookie.split(";")[0]!;
  // The same session cookie on a plain request is not honoured (nothing but the warning is served).
  const plain = await request(`${fx.base}/admin/`, { headers: { cookie: id, ...remote("192.0.2.11", false) } });
  assert.equal(plain.status, 403);
  const ok = await request(`${fx.base}/admin/`, { headers: { cookie: id, ...remote("192.0.2.11", true) } });
  assert.equal(ok.status, 200);
});

test("repeated failures from one address: 429 with Retry-After (even for the right password), other addresses unaffected", async () => {
  const from = (address: string, password: string) =>
    request(`${fx.base}/api/me`, { headers: { authorization: basic(USERS.admin.jid, password), ...remote(address, true) } });
  // The throttle lets a few failures through, then delays: from then on the address is refused until the delay ends.
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await from("198.51.100.7", "guess" + i)).status);
  assert.deepEqual(statuses, [401, 401, 401, 401]);
  const blocked = await from("198.51.100.7", USERS.admin.password);
  assert.equal(blocked.status, 429);
  assert.equal((blocked.json as { error: string }).error, "COMITY_ERR_HTTP_THROTTLED");
  assert.ok(Number(blocked.headers.get("retry-after")) >= 1);
  assert.equal((await from("198.51.100.8", USERS.admin.password)).status, 200, "another address");
  // The console refuses the same address too.
  const c = new FormClient(fx.base);
  const login = await c.post("/admin/login", { jid: USERS.admin.jid, password: USERS.admin.password }, remote("198.51.100.7", true));
  assert.equal(login.headers.get("location"), "/admin/login?error=throttled");
  await new Promise((r) => setTimeout(r, DELAY_MS + 100));
  assert.equal((await from("198.51.100.7", USERS.admin.password)).status, 200, "after the delay");
});

test("over the HTTPS listener itself: login works and the cookie is Secure", async () => {
  const port = fx.ts.server.addresses.https[0]!.port;
  const body = new URLSearchParams({ jid: USERS.admin.jid, password: USERS.admin.password }).toString();
  const reply = await new Promise<{ status: number; cookie: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port, path: "/admin/login", method: "POST", rejectUnauthorized: false, headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, cookie: String(res.headers["set-cookie"] ?? "") }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
  assert.equal(reply.status, 303);
  assert.match(reply.cookie, /; HttpOnly; SameSite=Strict; Secure$/);
});
