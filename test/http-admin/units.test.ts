// Small parts of the admin console on their own: HTML escaping, session expiry and eviction, the session cookie,
// CSRF comparison, and which addresses count as loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { escapeHtml, html, raw } from "../../src/http/admin/html.ts";
import { formatDuration } from "../../src/admin/format.ts";
import { csrfOk, SessionStore, sessionCookie, sessionIdOf } from "../../src/http/admin/sessions.ts";
import { isLoopback } from "../../src/http/admin/auth.ts";

test("html`` escapes every value, nested arrays included, and keeps Html as markup", () => {
  assert.equal(escapeHtml(`<a href="x" title='y'>&\``), "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&#96;");
  const evil = `"><script>alert(1)</script>`;
  const out = html`<p title="${evil}">${[evil, [html`<b>${evil}</b>`]]}${raw("<i>ok</i>")}${undefined}${null}${false}${0}</p>`.text;
  assert.equal(out, `<p title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;<b>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</b><i>ok</i>0</p>`);
});

test("durations read like the CLI's ages", () => {
  assert.deepEqual([0, 59_000, 60_000, 3_600_000, 3_900_000, 86_400_000, 90_000_000].map(formatDuration), ["0s", "59s", "1m", "1h", "1h 5m", "1d", "1d 1h"]);
});

test("sessions end when idle, at their maximum age, and the least recently used go first past the cap", () => {
  const store = new SessionStore({ idleMs: 1000, maxAgeMs: 5000, max: 2 });
  const a = store.create("a@x", "f", 0);
  assert.equal(store.get(a.id, 900)?.jid, "a@x");
  assert.equal(store.get(a.id, 1800)?.jid, "a@x", "touched at 900, still alive at 1800");
  assert.equal(store.get(a.id, 2900), undefined, "idle for more than 1000 ms");
  const b = store.create("b@x", "f", 0);
  for (let t = 900; t < 5000; t += 900) assert.ok(store.get(b.id, t));
  assert.equal(store.get(b.id, 5100), undefined, "older than maxAgeMs however active");
  const c = store.create("c@x", "f", 10_000);
  const d = store.create("d@x", "f", 10_000);
  store.get(c.id, 10_001);
  store.create("e@x", "f", 10_002);
  assert.ok(store.get(c.id, 10_003), "recently used");
  assert.equal(store.get(d.id, 10_003), undefined, "evicted");
  assert.equal(store.size, 2);
  assert.notEqual(c.id, d.id);
  assert.match(c.id, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(c.csrf, c.id);
});

test("the session cookie: attributes, parsing, CSRF comparison", () => {
  assert.equal(sessionCookie("abc", false), "comity_admin=abc; Path=/admin; HttpOnly; SameSite=Strict");
  assert.equal(sessionCookie("abc", true), "comity_admin=abc; Path=/admin; HttpOnly; SameSite=Strict; Secure");
  const req = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage;
  assert.equal(sessionIdOf(req("x=1; comity_admin=abc_-9; y=2")), "abc_-9");
  assert.equal(sessionIdOf(req("comity_admin=<script>")), undefined);
  assert.equal(sessionIdOf(req()), undefined);
  const s = new SessionStore().create("a@x", "f");
  assert.equal(csrfOk(s, s.csrf), true);
  for (const bad of [null, undefined, "", s.csrf + "x", s.csrf.slice(1), s.id]) assert.equal(csrfOk(s, bad), false);
});

test("loopback addresses", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "::1"]) assert.equal(isLoopback(a), true, a);
  for (const a of ["192.0.2.1", "::ffff:127.0.0.1", "127.example", "unknown", "10.0.0.1", "::"]) assert.equal(isLoopback(a), false, a);
});
