// A person's path through the console in a real browser (Debian's chromium, driven by playwright-core): two
// Comity servers on loopback; A's admin asks B for trust through the HTTP API; B's admin logs in to B's console,
// sees the request, writes a note and clicks Approve; both server rosters end 'both', B's audit log says "web" and
// A's says "api". Without chromium the test is skipped, except under CI=true, where it fails.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { rosterOf, waitUntil } from "../buddies/kit.ts";
import { basic, request } from "./kit.ts";

const CHROMIUM = process.env["COMITY_CHROMIUM"] ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];
const present = existsSync(CHROMIUM);
const skip = !present && process.env["CI"] !== "true" ? `${CHROMIUM} not installed (scripts/install-test-deps.sh installs Debian's chromium)` : false;

let a: TestServer;
let b: TestServer;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  const s2s = { listen: ["127.0.0.1:0"], verify_certificates: false };
  const http = { listen: ["127.0.0.1:0"], websocket: false };
  a = await createTestServer({ hosts: [{ domain: "a.localhost", admins: ["admin@a.localhost"] }], c2s: { direct_tls: [] }, s2s, http }, { users: { "admin@a.localhost": "pw-a" } });
  b = await createTestServer({ hosts: [{ domain: "b.localhost", admins: ["admin@b.localhost"] }], c2s: { direct_tls: [] }, s2s, http }, { users: { "admin@b.localhost": "pw-b" } });
  a.config.s2s.routes["b.localhost"] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes["a.localhost"] = `127.0.0.1:${a.s2sPort}`;
});
after(async () => {
  await browser?.close();
  await a?.stop();
  await b?.stop();
});

const httpBase = (ts: TestServer): string => `http://127.0.0.1:${ts.server.addresses.http[0]!.port}`;

test("B's admin approves A's request in the browser: both rosters end 'both', recorded via web and api", { skip, timeout: 180_000 }, async () => {
  assert.ok(present, `${CHROMIUM} is missing: run scripts/install-test-deps.sh (apt-get install chromium)`);
  const r = await request(`${httpBase(a)}/api/buddies/b.localhost/request`, {
    method: "POST",
    headers: { authorization: basic("admin@a.localhost", "pw-a"), "content-type": "application/json" },
    body: JSON.stringify({ note: "partner server" }),
  });
  assert.equal(r.status, 200, r.text);
  const ra = rosterOf(a, "a.localhost");
  const rb = rosterOf(b, "b.localhost");
  await waitUntil("A's request pending on B", () => rb.get("a.localhost")?.pendingIn === true);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${httpBase(b)}/admin/`);
  assert.match(page.url(), /\/admin\/login$/);
  await page.getByLabel("JID").fill("admin@b.localhost");
  await page.getByLabel("Password").fill("pw-b");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(/\/admin\/$/);
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Server roster");
  assert.match((await page.getByRole("heading", { name: /Requests waiting for you/ }).textContent()) ?? "", /\(1\)/);

  const row = page.getByRole("row").filter({ hasText: "a.localhost" }).first();
  await row.getByLabel("Note").fill("approved in the browser");
  await row.getByRole("button", { name: "Approve a.localhost" }).click();
  await page.waitForURL(/\/admin\/$/);
  assert.match((await page.getByRole("status").first().textContent()) ?? "", /Approved the request of a\.localhost/);
  if (process.env["COMITY_SCREENSHOT"]) await page.screenshot({ path: process.env["COMITY_SCREENSHOT"], fullPage: true });

  await waitUntil("both rosters 'both'", () => ra.get("b.localhost")?.subscription === "both" && rb.get("a.localhost")?.subscription === "both");
  const approvals = (await rb.audit("a.localhost")).filter((x) => x.action === "approve");
  assert.deepEqual(approvals.map((x) => `${x.actor} ${x.via}`), ["admin@b.localhost web"]);
  assert.equal(rb.get("a.localhost")?.note, "approved in the browser");
  const requests = (await ra.audit("b.localhost")).filter((x) => x.action === "request");
  assert.deepEqual(requests.map((x) => `${x.actor} ${x.via}`), ["admin@a.localhost api"]);

  // The audit page in the browser shows the decision too.
  await page.getByRole("link", { name: "Audit log", exact: true }).click();
  assert.ok(await page.getByRole("cell", { name: "web", exact: true }).first().isVisible());
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/admin\/login$/);
});
