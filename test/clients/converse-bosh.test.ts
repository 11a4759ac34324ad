// Converse.js 10 (Strophe.js 1.6 underneath) over BOSH (XEP-0206) at /http-bind, in Debian's headless chromium (driven
// by playwright-core), the way test/clients/converse.test.ts does it over wss://: alice and bob each log in from their
// own Converse page with `bosh_service_url`, so every stanza travels in <body/> wrappers of HTTP long-polls (the SASL
// exchange, the xmpp:restart stream restart, binding and Strophe's legacy <session/> request included); alice adds bob,
// bob accepts, both rosters end 'both'; alice writes from her chat box, bob's Converse shows it, and his reply shows in
// hers. The page is served from another port than the BOSH endpoint, so the browser's CORS checks (preflight included)
// must pass. A failure prints both pages' BOSH requests and answers (COMITY_CONVERSE_REPORT=1 prints them for a pass
// too). Without chromium the test is skipped, except under CI=true, where it fails.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium, type Browser } from "playwright-core";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { CHROMIUM, FLAGS, WAIT_MS, newClientPage, present, servePage, skip, type Client, type ComityHooks, type PageServer } from "./converse-kit.ts";

let ts: TestServer;
let web: PageServer | undefined;
let webBase: string;
let boshUrl: string;
let browser: Browser | undefined;
const clients: Client[] = [];

before(async () => {
  if (skip) return;
  ts = await createTestServer(
    { http: { tls_listen: ["127.0.0.1:0"], listen: ["127.0.0.1:0"] } },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } },
  );
  boshUrl = `https://127.0.0.1:${ts.server.addresses.https[0]!.port}/http-bind`;
  web = await servePage();
  webBase = web.base;
});
after(async () => {
  await browser?.close();
  await web?.close();
  await ts?.stop();
});

/** Open a fresh browser context (its own IndexedDB) with Converse logging in as `jid`. */
async function openConverse(b: Browser, jid: string, password: string): Promise<Client> {
  const client = await newClientPage(b, jid);
  clients.push(client);
  const page = client.page;
  // Every BOSH request body (C:) and answer (S:), in the order the browser saw them.
  page.on("request", (r) => {
    if (r.url().startsWith(boshUrl) && r.method() === "POST") client.frames.push(`C: ${r.postData() ?? ""}`);
  });
  page.on("response", (r) => {
    if (!r.url().startsWith(boshUrl) || r.request().method() !== "POST") return;
    r.text().then(
      (t) => client.frames.push(`S: ${t}`),
      () => client.frames.push(`S: (answer unreadable, HTTP ${r.status()})`),
    );
  });
  page.on("requestfailed", (r) => {
    if (r.url().startsWith(boshUrl)) client.frames.push(`-- request failed: ${r.failure()?.errorText ?? "?"}`);
  });
  await page.goto(`${webBase}/`);
  await page.evaluate((settings) => (globalThis as unknown as ComityHooks).comity.start(settings), {
    bosh_service_url: boshUrl,
    discover_connection_methods: false,
    jid,
    password,
    auto_login: true,
    auto_reconnect: false,
    assets_path: "/dist/",
    view_mode: "fullscreen",
    loglevel: "warn",
    play_sounds: false,
    show_desktop_notifications: false,
    use_system_emojis: true,
    i18n: "en",
  });
  return client;
}

/** Wait until `check` holds in the client's page (polled), or fail after WAIT_MS saying what was awaited. */
async function until(c: Client, what: string, check: () => boolean): Promise<void> {
  await c.page.waitForFunction(check, undefined, { timeout: WAIT_MS, polling: 100 }).catch((err: Error) => {
    throw new Error(`${c.name}: ${what}: ${err.message}`);
  });
}

/** Poll `check` until it holds or WAIT_MS passed; returns its last value. */
async function eventually(check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** Describe what each page saw, for a failure message: its log, console errors and the last frames. */
async function report(): Promise<string> {
  const parts: string[] = [`not found on the web server: ${(web?.notFound ?? []).join(" ") || "none"}`];
  for (const c of clients) {
    const log = await c.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.log).catch(() => ["(page gone)"]);
    parts.push(`--- ${c.name}\nconverse: ${log.join(" | ")}\nconsole: ${c.console.join("\n  ")}\nframes:\n${c.frames.slice(-200).join("\n")}`);
  }
  return parts.join("\n");
}

test("Converse.js logs in over BOSH, adds a contact and chats both ways", { skip, timeout: 180_000 }, async () => {
  assert.ok(present, `${CHROMIUM} is missing: run scripts/install-test-deps.sh (apt-get install chromium)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  try {
    const alice = await openConverse(browser, "alice@localhost", "wonderland");
    const bob = await openConverse(browser, "bob@localhost", "builder");
    // Logged in: Converse fires `connected` only after bind and the <session/> request both succeeded (an error
    // answer to <session/> made Strophe report an authentication failure, "address and/or password is incorrect").
    for (const c of [alice, bob]) {
      await until(c, "Converse connected", () => (globalThis as unknown as ComityHooks).comity.connected);
    }
    for (const c of [alice, bob]) {
      const sent = c.frames.filter((f) => f.startsWith("C: ") && f.includes("urn:ietf:params:xml:ns:xmpp-session"));
      assert.equal(sent.length, 1, "Strophe sends the RFC 3921 session request once after binding");
      // The <iq> holding the <session/> request (a body may carry several stanzas), then its result among the answers.
      const iq = /<iq\b[^>]*>(?:(?!<\/iq>)[\s\S])*?urn:ietf:params:xml:ns:xmpp-session/.exec(sent[0]!)?.[0] ?? "";
      const id = /\bid=["']([^"']+)["']/.exec(iq.slice(0, iq.indexOf(">")))?.[1];
      assert.ok(id, sent[0]);
      // Answers are read from the browser asynchronously (playwright's response.text()): give them a moment.
      const answered = await eventually(() => c.frames.some((f) => f.startsWith("S: ") && [...f.matchAll(/<iq\b[^>]*>/g)].some((m) => m[0].includes(`'${id}'`) || m[0].includes(`"${id}"`) ? /type=["']result["']/.test(m[0]) : false)));
      assert.ok(answered, `session request ${id} answered with a result`);
      assert.ok(c.frames.some((f) => f.startsWith("C: ") && /xmpp:restart=["']true["']/.test(f)), "the stream was restarted after SASL (XEP-0206 §5)");
      // Chromium handles CORS preflights itself (playwright does not show them): that the page, on another origin,
      // read these answers at all is what shows the CORS headers were right.
      assert.notEqual(new URL(webBase).origin, new URL(boshUrl).origin, "the page is cross-origin to /http-bind");
      assert.ok(!c.frames.some((f) => f.includes("stream:error") || f.includes("type='terminate'") || f.includes('type="terminate"')), "no stream error, no terminated session");
    }

    // alice adds bob; bob's Converse shows the request and he accepts it; alice's Converse answers bob's own
    // subscription request by itself (the contact is already 'to'), so both end 'both'.
    await alice.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.addContact("bob@localhost", "Bob"));
    await until(bob, "alice's request shown", () => (globalThis as unknown as ComityHooks).comity.contact("alice@localhost")?.requesting === true);
    await bob.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.acceptRequest("alice@localhost"));
    await until(alice, "bob 'both'", () => (globalThis as unknown as ComityHooks).comity.contact("bob@localhost")?.subscription === "both");
    await until(bob, "alice 'both'", () => (globalThis as unknown as ComityHooks).comity.contact("alice@localhost")?.subscription === "both");
    assert.equal((await ts.server.storage.rosters.getItem("localhost", "alice", "bob@localhost"))?.subscription, "both", "the server's roster agrees");
    assert.equal((await ts.server.storage.rosters.getItem("localhost", "bob", "alice@localhost"))?.subscription, "both");

    // alice writes from her chat box; bob's Converse receives it and shows it in his.
    await alice.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.send("bob@localhost", "Hello Bob, from Converse"));
    await until(bob, "alice's message received", () => (globalThis as unknown as ComityHooks).comity.received.some((m) => m.body === "Hello Bob, from Converse"));
    const got = await bob.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.received);
    assert.equal(got.find((m) => m.body === "Hello Bob, from Converse")!.from, "alice@localhost");
    assert.ok(await eventually(() => bob.frames.some((f) => f.startsWith("S: ") && /<message [^>]*from=["']alice@localhost\/converse\.js-[^>]*>.*Hello Bob, from Converse/.test(f))), "delivered from alice's full JID");
    // In the fullscreen view a chat that a message opened waits behind the roster until its contact is clicked.
    await bob.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.openChat("alice@localhost"));
    await bob.page.locator(".chat-msg__text", { hasText: "Hello Bob, from Converse" }).first().waitFor({ timeout: WAIT_MS });

    // bob replies; alice's Converse shows it.
    await bob.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.send("alice@localhost", "Hi Alice, Bob here"));
    await until(alice, "bob's reply received", () => (globalThis as unknown as ComityHooks).comity.received.some((m) => m.body === "Hi Alice, Bob here"));
    await alice.page.locator(".chat-msg__text", { hasText: "Hi Alice, Bob here" }).first().waitFor({ timeout: WAIT_MS });
    if (process.env["COMITY_SCREENSHOT"]) await alice.page.screenshot({ path: process.env["COMITY_SCREENSHOT"], fullPage: true });

    for (const c of [alice, bob]) {
      const log = await c.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.log);
      assert.ok(!log.some((l) => /session creation failed|disconnected/i.test(l)), log.join(" | "));
      assert.deepEqual(c.console.filter((l) => l.startsWith("refused request")), [], "Converse asked for nothing beyond loopback");
    }
    if (process.env["COMITY_CONVERSE_REPORT"]) process.stderr.write(`${await report()}\n`);
  } catch (err) {
    // The BOSH exchange is what explains a failure here: attach it.
    process.stderr.write(`${await report()}\n`);
    throw err;
  }
});
