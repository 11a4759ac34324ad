// Test kit for Converse.js in Debian's headless chromium: the prebuilt dist/ and the page that starts it served from
// loopback (test/clients/converse-page.js exposes `window.comity`), and a browser context per user that refuses
// everything off loopback and records console errors. The transport (WebSocket or BOSH) and what to record of it
// stay with each test.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";

export const CHROMIUM = process.env["COMITY_CHROMIUM"] ?? "/usr/bin/chromium";
// --ignore-certificate-errors: the test server's certificate is self-signed, generated at start.
export const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--ignore-certificate-errors"];
export const present = existsSync(CHROMIUM);
export const skip = !present && process.env["CI"] !== "true" ? `${CHROMIUM} not installed (scripts/install-test-deps.sh installs Debian's chromium)` : false;

/** Generous for a loaded two-core machine; every wait returns as soon as its condition holds. */
export const WAIT_MS = 60_000;
const DIST = join(dirname(createRequire(import.meta.url).resolve("converse.js/package.json")), "dist");
const PAGE_JS = join(dirname(fileURLToPath(import.meta.url)), "converse-page.js");
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Converse.js on Comity</title>
<link rel="stylesheet" href="/dist/converse.min.css">
<script src="/dist/converse.min.js"></script><script src="/comity.js"></script>
</head><body class="converse-fullscreen"></body></html>`;
const TYPES: Record<string, string> = { ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml", ".ttf": "font/ttf", ".woff": "font/woff", ".woff2": "font/woff2", ".png": "image/png", ".mp3": "audio/mpeg", ".ogg": "audio/ogg" };

/** What `window.comity` (converse-page.js) holds, as the test reads it. */
export interface ComityHooks {
  comity: {
    connected: boolean;
    log: string[];
    received: { from: string; body: string }[];
    start(settings: Record<string, unknown>): void;
    contact(jid: string): { subscription: string; ask: string | null; requesting: boolean | null } | null;
    addContact(jid: string, name: string): Promise<void>;
    acceptRequest(jid: string): Promise<void>;
    openChat(jid: string): Promise<void>;
    send(jid: string, body: string): Promise<void>;
  };
}

/** One user's Converse page with what it saw: the transport's traffic both ways, console errors, requests refused. */
export interface Client {
  name: string;
  page: Page;
  frames: string[];
  console: string[];
}

/** The loopback web server of the page: its base URL, the paths it did not have, and how to stop it. */
export interface PageServer {
  base: string;
  notFound: string[];
  close(): Promise<void>;
}

/** Serve the page and Converse's dist/ on an ephemeral loopback port. */
export async function servePage(): Promise<PageServer> {
  const notFound: string[] = [];
  const web = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      res.end(body);
    };
    if (path === "/") return send(200, "text/html; charset=utf-8", PAGE);
    if (path === "/comity.js") return send(200, "text/javascript", readFileSync(PAGE_JS));
    if (path.startsWith("/dist/")) {
      const file = normalize(join(DIST, decodeURIComponent(path.slice("/dist/".length))));
      if (file.startsWith(DIST + sep) && existsSync(file)) return send(200, TYPES[extname(file)] ?? "application/octet-stream", readFileSync(file));
    }
    notFound.push(path);
    send(404, "text/plain", "not found");
  });
  await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve));
  const addr = web.address();
  assert.ok(addr && typeof addr === "object");
  return {
    base: `http://127.0.0.1:${addr.port}`,
    notFound,
    close: async () => {
      web.closeAllConnections();
      await new Promise<void>((resolve) => web.close(() => resolve()));
    },
  };
}

/**
 * A fresh browser context (its own IndexedDB) and page for `jid`: anything not on loopback is refused (and noted, so a
 * failure report shows it), console errors and warnings are kept. The caller records its transport and starts Converse.
 */
export async function newClientPage(b: Browser, jid: string): Promise<Client> {
  const context = await b.newContext();
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const client: Client = { name: jid, page, frames: [], console: [] };
  await context.route(/^(?!(?:http|ws)s?:\/\/127\.0\.0\.1[:/])/, (route) => {
    client.console.push(`refused request: ${route.request().url()}`);
    return route.abort();
  });
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") client.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => client.console.push(`pageerror: ${e.message}`));
  return client;
}
