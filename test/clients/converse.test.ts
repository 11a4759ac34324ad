// Converse.js 10 (Strophe.js 1.6 underneath), the browser client the issue names, against Comity over wss:// in
// Debian's headless chromium (driven by playwright-core): alice and bob each log in from their own Converse page,
// and Strophe's legacy RFC 3921 <session/> request after binding is answered, so both reach `connected`; alice adds
// bob, bob accepts the request, both rosters end 'both'; alice writes from her chat box, bob's Converse receives and
// shows it, and his reply shows in hers. Converse's prebuilt dist/ is served from loopback with the page that starts
// it; nothing outside 127.0.0.1 is fetched. A failure prints both pages' WebSocket frames (COMITY_CONVERSE_REPORT=1
// prints them for a pass too). Without chromium the test is skipped, except under CI=true, where it fails.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium, type Browser } from "playwright-core";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { CHROMIUM, FLAGS, WAIT_MS, newClientPage, present, servePage, skip, type Client, type ComityHooks, type PageServer } from "./converse-kit.ts";

let ts: TestServer;
let web: PageServer | undefined;
let webBase: string;
let wssUrl: string;
let browser: Browser | undefined;
const clients: Client[] = [];

before(async () => {
  if (skip) return;
  ts = await createTestServer(
    { http: { tls_listen: ["127.0.0.1:0"], listen: ["127.0.0.1:0"] } },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } },
  );
  wssUrl = `wss://127.0.0.1:${ts.server.addresses.https[0]!.port}/xmpp-websocket`;
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
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => client.frames.push(`C: ${String(f.payload)}`));
    ws.on("framereceived", (f) => client.frames.push(`S: ${String(f.payload)}`));
    ws.on("close", () => client.frames.push("-- websocket closed"));
  });
  await page.goto(`${webBase}/`);
  await page.evaluate((settings) => (globalThis as unknown as ComityHooks).comity.start(settings), {
    websocket_url: wssUrl,
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

/** Describe what each page saw, for a failure message: its log, console errors and the last frames. */
async function report(): Promise<string> {
  const parts: string[] = [`not found on the web server: ${(web?.notFound ?? []).join(" ") || "none"}`];
  for (const c of clients) {
    const log = await c.page.evaluate(() => (globalThis as unknown as ComityHooks).comity.log).catch(() => ["(page gone)"]);
    parts.push(`--- ${c.name}\nconverse: ${log.join(" | ")}\nconsole: ${c.console.join("\n  ")}\nframes:\n${c.frames.slice(-200).join("\n")}`);
  }
  return parts.join("\n");
}

test("Converse.js logs in over wss://, adds a contact and chats both ways", { skip, timeout: 180_000 }, async () => {
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
      const id = /\bid=["']([^"']+)["']/.exec(sent[0]!)?.[1];
      assert.ok(id, sent[0]);
      assert.ok(c.frames.some((f) => f.startsWith("S: <iq") && f.includes(id) && /type=["']result["']/.test(f)), `session request ${id} answered with a result`);
      assert.ok(!c.frames.some((f) => f.includes("stream:error") || f.includes("streams:error")), "no stream error");
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
    assert.ok(bob.frames.some((f) => f.startsWith("S: <message") && f.includes("Hello Bob, from Converse") && /from=["']alice@localhost\/converse\.js-/.test(f)), "delivered from alice's full JID");
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
    // The stanza exchange is what explains a failure here: attach it.
    process.stderr.write(`${await report()}\n`);
    throw err;
  }
});
