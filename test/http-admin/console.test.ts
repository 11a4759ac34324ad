// The web admin console (/admin) over real HTTP, as a browser without JavaScript uses it: login form and session
// cookie, pages and their security headers, CSRF refusal, approving a peer's pending request from the page
// (recorded via "web"), flash messages after redirects, escaping, logout and the end of sessions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { entryOf, rosterOf } from "../buddies/kit.ts";
import { deriveCredentials } from "../../src/sasl/credentials.ts";
import { csrfOf, FormClient, HOST_A, HOST_B, PEERS, request, startAdminFixture, USERS, type AdminFixture } from "./kit.ts";

let fx: AdminFixture;
const [RAW, OTHER, THIRD] = PEERS as [string, string, string];

before(async () => {
  fx = await startAdminFixture();
});
after(async () => {
  await fx?.stop();
});

async function loggedIn(u = USERS.admin): Promise<{ c: FormClient; csrf: string; page: string }> {
  const c = new FormClient(fx.base);
  const r = await c.login(u.jid, u.password);
  assert.equal(r.status, 303, r.text);
  assert.equal(r.headers.get("location"), "/admin/");
  const page = await c.get("/admin/");
  assert.equal(page.status, 200);
  return { c, csrf: csrfOf(page.text), page: page.text };
}

test("pages need a session: redirect to the login form, which is served with a strict CSP", async () => {
  for (const path of ["/admin", "/admin/", "/admin/audit", "/admin/status", "/admin/nowhere"]) {
    const r = await request(fx.base + path);
    assert.equal(r.status, 303, path);
    assert.equal(r.headers.get("location"), "/admin/login", path);
  }
  const login = await request(`${fx.base}/admin/login`);
  assert.equal(login.status, 200);
  assert.match(login.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(login.headers.get("content-security-policy") ?? "", /^default-src 'self'/);
  assert.equal(login.headers.get("x-frame-options"), "DENY");
  assert.match(login.text, /<form method="post" action="\/admin\/login"/);
  assert.match(login.text, /not encrypted/, "plain HTTP from loopback is allowed, and the page says so");
  assert.doesNotMatch(login.text, /<script|style=/, "no scripts, no inline styles");
  const css = await request(`${fx.base}/admin/style.css`);
  assert.equal(css.status, 200);
  assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
});

test("wrong password, non-admin and cross-site logins are refused; no cookie is set", async () => {
  const c = new FormClient(fx.base);
  const wrong = await c.login(USERS.admin.jid, "nope");
  assert.equal(wrong.status, 303);
  assert.equal(wrong.headers.get("location"), "/admin/login?error=credentials");
  assert.equal(c.cookie, undefined);
  assert.match((await c.get("/admin/login?error=credentials")).text, /Wrong JID or password/);
  const user = await c.login(USERS.user.jid, USERS.user.password);
  assert.equal(user.headers.get("location"), "/admin/login?error=forbidden");
  assert.equal(c.cookie, undefined);
  const cross = await c.post("/admin/login", { jid: USERS.admin.jid, password: USERS.admin.password }, { "sec-fetch-site": "cross-site" });
  assert.equal(cross.status, 403);
  assert.equal(c.cookie, undefined);
});

test("login sets an HttpOnly SameSite=Strict session cookie (not Secure over plain loopback HTTP)", async () => {
  const c = new FormClient(fx.base);
  const r = await c.login(USERS.admin.jid, USERS.admin.password);
  const cookie = r.headers.get("set-cookie") ?? "";
  assert.match(cookie, /^comity_admin=[A-Za-z0-9_-]{40,}; Path=\/admin; HttpOnly; SameSite=Strict$/);
  const page = await c.get("/admin/");
  assert.equal(page.status, 200);
  assert.match(page.text, new RegExp(`${HOST_A}`));
  assert.doesNotMatch(page.text, new RegExp(`id="h-${HOST_B}"`), "only the hosts the admin administers");
  assert.match(page.text, /Request trust/);
  // Already logged in: the login page sends you on.
  assert.equal((await c.get("/admin/login")).headers.get("location"), "/admin/");
});

test("a pending request shows Approve and Deny; a POST without the session's CSRF token changes nothing", async () => {
  await fx.pendingFrom(RAW);
  const { c, csrf, page } = await loggedIn();
  assert.match(page, /Requests waiting for you \(1\)/);
  assert.match(page, new RegExp(`aria-label="Approve ${RAW}"`));
  assert.match(page, new RegExp(`aria-label="Deny ${RAW}"`));

  const other = await loggedIn(USERS.multi);
  for (const token of [undefined, "", "forged", other.csrf, csrf.slice(0, -1)]) {
    const fields: Record<string, string> = { host: HOST_A, peer: RAW, action: "approve" };
    if (token !== undefined) fields["csrf"] = token;
    const r = await c.post("/admin/buddies", fields);
    assert.equal(r.status, 403, `token ${String(token)}`);
    assert.match(r.text, /CSRF/);
  }
  assert.equal(entryOf(fx.ts, HOST_A, RAW)?.pendingIn, true, "still pending");
  // Without any session the POST goes to the login page.
  const anon = await request(`${fx.base}/admin/buddies`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `csrf=${csrf}&host=${HOST_A}&peer=${RAW}&action=approve` });
  assert.equal(anon.status, 303);
  assert.equal(entryOf(fx.ts, HOST_A, RAW)?.pendingIn, true);
});

test("Approve from the page: redirect, flash message, recorded via web with the admin's JID", async () => {
  const { c, csrf } = await loggedIn();
  const r = await c.post("/admin/buddies", { csrf, host: HOST_A, peer: RAW, action: "approve", note: "from the console" });
  assert.equal(r.status, 303, r.text);
  assert.equal(r.headers.get("location"), "/admin/");
  const e = entryOf(fx.ts, HOST_A, RAW)!;
  assert.deepEqual([e.subscription, e.pendingIn, e.decidedBy, e.decidedVia, e.note], ["from", false, USERS.admin.jid, "web", "from the console"]);
  const page = await c.get("/admin/");
  assert.match(page.text, /class="flash ok"[^>]*>Approved the request of raw\.localhost/);
  assert.doesNotMatch((await c.get("/admin/")).text, /class="flash/, "a flash message is shown once");
  const audit = await rosterOf(fx.ts, HOST_A).audit(RAW);
  const approval = audit.find((a) => a.action === "approve")!;
  assert.deepEqual([approval.actor, approval.via], [USERS.admin.jid, "web"]);
  const auditPage = await c.get(`/admin/audit?peer=${RAW}`);
  assert.equal(auditPage.status, 200);
  assert.match(auditPage.text, /<td>approve<\/td><td>admin@a\.localhost<\/td><td>web<\/td>/);
});

test("Deny, request (mutual by default, or one way), cancel and remove from the page; errors come back as flash", async () => {
  await fx.pendingFrom(OTHER);
  const { c, csrf } = await loggedIn();
  const post = (fields: Record<string, string>) => c.post("/admin/buddies", { csrf, host: HOST_A, ...fields });
  assert.equal((await post({ peer: OTHER, action: "deny" })).status, 303);
  assert.equal(entryOf(fx.ts, HOST_A, OTHER)?.pendingIn ?? false, false);

  await post({ peer: THIRD, action: "request", note: "partner", one_way: "yes" });
  assert.deepEqual([entryOf(fx.ts, HOST_A, THIRD)?.pendingOut, entryOf(fx.ts, HOST_A, THIRD)?.preApproved], [true, false]);
  await post({ peer: THIRD, action: "request" });
  assert.equal(entryOf(fx.ts, HOST_A, THIRD)?.preApproved, true);
  let page = (await c.get("/admin/")).text;
  assert.match(page, /Our requests waiting for them \(2\)/, "ours to third.localhost, and the reciprocal one to raw.localhost");
  assert.match(page, new RegExp(`aria-label="Cancel the request to ${THIRD}"`));
  await post({ peer: THIRD, action: "cancel" });
  assert.equal(entryOf(fx.ts, HOST_A, THIRD)?.pendingOut ?? false, false);

  // Remove needs the confirmation box.
  await post({ peer: RAW, action: "remove" });
  assert.ok(entryOf(fx.ts, HOST_A, RAW));
  page = (await c.get("/admin/")).text;
  assert.match(page, /class="flash error"[^>]*>Could not remove raw\.localhost: tick &quot;sure&quot;/);
  await post({ peer: RAW, action: "remove", confirm: "yes" });
  assert.equal(entryOf(fx.ts, HOST_A, RAW), undefined);

  // Errors from the roster, and hosts the admin does not administer.
  await post({ peer: "never.localhost", action: "approve" });
  assert.match((await c.get("/admin/")).text, /class="flash error"[^>]*>Could not approve never\.localhost: never\.localhost is not in the server roster/);
  await post({ peer: "x.localhost", action: "request", host: HOST_B });
  assert.match((await c.get("/admin/")).text, /class="flash error"[^>]*>Could not request x\.localhost: admin@a\.localhost is not an admin of b\.localhost/);
  assert.equal(rosterOf(fx.ts, HOST_B).get("x.localhost"), undefined);
  const audit = await rosterOf(fx.ts, HOST_A).audit();
  for (const [peer, action] of [[OTHER, "deny"], [THIRD, "request"], [THIRD, "cancel"], [RAW, "remove"]]) {
    assert.ok(audit.some((a) => a.peer === peer && a.action === action && a.via === "web" && a.actor === USERS.admin.jid), `${peer} ${action}`);
  }
});

test("everything shown is escaped", async () => {
  const evil = `<script>alert("x")</script>&'`;
  await rosterOf(fx.ts, HOST_A).request("evil.localhost", { actor: "cli:<b>me</b>", via: "cli", note: evil });
  const { c } = await loggedIn();
  const page = (await c.get("/admin/")).text;
  assert.ok(page.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"), "the note, escaped");
  assert.ok(page.includes("cli:&lt;b&gt;me&lt;/b&gt;"));
  assert.ok(!page.includes("<script>") && !page.includes("<b>me"));
  const audit = (await c.get(`/admin/audit?peer=${encodeURIComponent('"><script>')}`)).text;
  assert.ok(!audit.includes('"><script>'));
});

test("status page: server figures, links of the admin's hosts, trust request counters", async () => {
  const { c } = await loggedIn();
  const r = await c.get("/admin/status");
  assert.equal(r.status, 200);
  assert.match(r.text, /Client connections/);
  assert.match(r.text, /Server links of your hosts \(\d+\)/);
  assert.match(r.text, new RegExp(`<td>${HOST_A}</td><td>\\d+</td><td>100</td>`));
});

test("wrong methods get 405 with Allow; unknown pages 404", async () => {
  const { c } = await loggedIn();
  const g = await c.get("/admin/buddies");
  assert.equal(g.status, 405);
  assert.equal(g.headers.get("allow"), "POST");
  const p = await c.post("/admin/audit", {});
  assert.equal(p.status, 405);
  assert.equal(p.headers.get("allow"), "GET, HEAD");
  assert.equal((await c.get("/admin/nowhere")).status, 404);
});

test("logout ends the session (with the CSRF token); a password change ends every session", async () => {
  const { c, csrf } = await loggedIn();
  const cookie = c.cookie;
  assert.equal((await c.post("/admin/logout", { csrf: "forged" })).status, 403);
  const out = await c.post("/admin/logout", { csrf });
  assert.equal(out.status, 303);
  assert.equal(out.headers.get("location"), "/admin/login");
  assert.match(out.headers.get("set-cookie") ?? "", /Max-Age=0/);
  const stale = await request(`${fx.base}/admin/`, { headers: { cookie: cookie! } });
  assert.equal(stale.headers.get("location"), "/admin/login?error=expired");

  const second = await loggedIn(USERS.multi);
  await fx.ts.server.storage.accounts.setCredentials(HOST_A, "multi", deriveCredentials("new-password", { storage: "scram", iterations: 4096 }));
  assert.equal((await second.c.get("/admin/")).headers.get("location"), "/admin/login?error=expired");
  assert.equal((await new FormClient(fx.base).login(USERS.multi.jid, USERS.multi.password)).headers.get("location"), "/admin/login?error=credentials");
  assert.equal((await new FormClient(fx.base).login(USERS.multi.jid, "new-password")).headers.get("location"), "/admin/");
});
