// XEP-0156 host-meta over real HTTP(S): both formats, CORS, which URLs (WebSocket and BOSH) are published when, and a
// client that logs in at the URL it discovered.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { xml } from "@xmpp/client";
import WebSocket from "ws";
import { createTestServer, type TestServer } from "../../test/kit/server.ts";
import { stopXmppClients, xmppClient } from "../../test/kit/xmppjs.ts";

// Self-signed test certificate; @xmpp/websocket needs a global WebSocket, which Node 20 lacks (lend it ws's).
process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const u = new URL(url);
  const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(u, { method: opts.method ?? "GET", headers: opts.headers ?? {}, rejectUnauthorized: false });
  return new Promise((resolve, reject) => {
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const hrefsXrd = (body: string) => [...body.matchAll(/<Link rel="urn:xmpp:alt-connections:websocket" href="([^"]*)"\/>/g)].map((m) => m[1]);

let ts: TestServer;
let plainBase: string;
let tlsBase: string;
before(async () => {
  ts = await createTestServer(
    { http: { listen: ["127.0.0.1:0"], tls_listen: ["127.0.0.1:0"], trusted_proxies: ["127.0.0.1"] } },
    { users: { "alice@localhost": "wonderland" } },
  );
  plainBase = `http://127.0.0.1:${ts.server.addresses.http[0]!.port}`;
  tlsBase = `https://127.0.0.1:${ts.server.addresses.https[0]!.port}`;
});
after(async () => {
  await stopXmppClients();
  await ts.stop();
});

test("host-meta (XRD) over https names the wss:// endpoint, readable from any origin", async () => {
  const r = await get(`${tlsBase}/.well-known/host-meta`);
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^application\/xrd\+xml/);
  assert.equal(r.headers["access-control-allow-origin"], "*");
  assert.match(r.body, /<XRD xmlns="http:\/\/docs\.oasis-open\.org\/ns\/xri\/xrd-1\.0">/);
  assert.deepEqual(hrefsXrd(r.body), [`wss://127.0.0.1:${ts.server.addresses.https[0]!.port}/xmpp-websocket`]);
});

test("host-meta.json carries the same link", async () => {
  const r = await get(`${tlsBase}/.well-known/host-meta.json`);
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  assert.equal(r.headers["access-control-allow-origin"], "*");
  const port = ts.server.addresses.https[0]!.port;
  assert.deepEqual(JSON.parse(r.body), {
    links: [
      { rel: "urn:xmpp:alt-connections:websocket", href: `wss://127.0.0.1:${port}/xmpp-websocket` },
      { rel: "urn:xmpp:alt-connections:xbosh", href: `https://127.0.0.1:${port}/http-bind` },
    ],
  });
});

test("over plaintext HTTP with encryption required nothing is published, unless a trusted proxy says it was https", async () => {
  const direct = await get(`${plainBase}/.well-known/host-meta.json`);
  assert.equal(direct.status, 200);
  assert.deepEqual(JSON.parse(direct.body), { links: [] }, "a ws:// URL would only be refused at <open/>");
  const proxied = await get(`${plainBase}/.well-known/host-meta.json`, { headers: { host: "chat.example.org", "x-forwarded-proto": "https" } });
  assert.deepEqual(JSON.parse(proxied.body).links, [
    { rel: "urn:xmpp:alt-connections:websocket", href: "wss://chat.example.org/xmpp-websocket" },
    { rel: "urn:xmpp:alt-connections:xbosh", href: "https://chat.example.org/http-bind" },
  ]);
});

test("a Host header that is not a host name is never echoed into the document", async () => {
  const r = await get(`${tlsBase}/.well-known/host-meta`, { headers: { host: 'evil.example"><Link rel="x' } });
  assert.equal(r.status, 200);
  assert.deepEqual(hrefsXrd(r.body), []);
  assert.doesNotMatch(r.body, /evil/);
});

test("HEAD and CORS preflight are answered, other methods get 405, other paths under it 404", async () => {
  const head = await get(`${tlsBase}/.well-known/host-meta`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.body, "");
  assert.ok(Number(head.headers["content-length"]) > 0);
  const pre = await get(`${tlsBase}/.well-known/host-meta.json`, { method: "OPTIONS", headers: { origin: "https://web.example", "access-control-request-method": "GET" } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers["access-control-allow-origin"], "*");
  const post = await get(`${tlsBase}/.well-known/host-meta`, { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal((await get(`${tlsBase}/.well-known/host-meta/x`)).status, 404);
});

test("a client logs in at the WebSocket URL it discovered", async () => {
  const r = await get(`${tlsBase}/.well-known/host-meta.json`);
  const href = (JSON.parse(r.body) as { links: { rel: string; href: string }[] }).links.find((l) => l.rel === "urn:xmpp:alt-connections:websocket")!.href;
  const c = xmppClient({
    service: href,
    domain: "localhost",
    resource: "discovered",
    credentials: (auth: (c: object, m: string) => Promise<void>) => auth({ username: "alice", password: "wonderland" }, "PLAIN"),
  });
  const jid = await c.start();
  assert.equal(jid.toString(), "alice@localhost/discovered");
  const pong = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  assert.equal(pong.attrs["type"], "result");
  await c.stop();
});

test("without WebSocket only BOSH is listed; without either there is nothing to discover", async () => {
  const boshOnly = await createTestServer({ http: { listen: ["127.0.0.1:0"], websocket: false, bosh: { url: "https://chat.example.org/bosh" } } });
  try {
    const r = await get(`http://127.0.0.1:${boshOnly.server.addresses.http[0]!.port}/.well-known/host-meta.json`);
    assert.deepEqual(JSON.parse(r.body).links, [{ rel: "urn:xmpp:alt-connections:xbosh", href: "https://chat.example.org/bosh" }], "http.bosh.url as configured");
  } finally {
    await boshOnly.stop();
  }
  const off = await createTestServer({ http: { listen: ["127.0.0.1:0"], websocket: false, bosh: { enabled: false } } });
  try {
    const r = await get(`http://127.0.0.1:${off.server.addresses.http[0]!.port}/.well-known/host-meta`);
    assert.equal(r.status, 404);
    const bind = await get(`http://127.0.0.1:${off.server.addresses.http[0]!.port}/http-bind`, { method: "POST" });
    assert.equal(bind.status, 404, "no BOSH endpoint when http.bosh.enabled is false");
  } finally {
    await off.stop();
  }
});

test("http.websocket_url, when set, is what is published, whatever the request", async () => {
  const url = "wss://chat.example.org/xmpp/ws";
  const proxied = await createTestServer({ http: { listen: ["127.0.0.1:0"], websocket_url: url } });
  try {
    const r = await get(`http://127.0.0.1:${proxied.server.addresses.http[0]!.port}/.well-known/host-meta`);
    assert.deepEqual(hrefsXrd(r.body), [url]);
  } finally {
    await proxied.stop();
  }
});

test("http.websocket_url must be a ws:// or wss:// URL", async () => {
  await assert.rejects(createTestServer({ http: { websocket_url: "https://chat.example.org/ws" } }), /websocket_url/);
});
