// The HTTP listener's routing, errors, and what it believes of proxies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { HttpService, sendText } from "./server.ts";

const log = { warn: () => {}, debug: () => {} };

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: r.status, body: await r.text() };
}

test("requests go to the longest mounted prefix; unknown paths get 404; a failing handler gets 500", async () => {
  const http = new HttpService({ log });
  http.mount("/api", (_req, res, url) => sendText(res, 200, `api ${url.pathname}`));
  http.mount("/api/special", (_req, res) => sendText(res, 200, "special"));
  http.mount("/boom", () => {
    throw new Error("bug");
  });
  const { port } = await http.listen("127.0.0.1:0");
  try {
    assert.deepEqual(await get(port, "/api"), { status: 200, body: "api /api" });
    assert.deepEqual(await get(port, "/api/x/y"), { status: 200, body: "api /api/x/y" });
    assert.deepEqual(await get(port, "/api/special/1"), { status: 200, body: "special" });
    assert.equal((await get(port, "/apiary")).status, 404);
    assert.equal((await get(port, "/")).status, 404);
    assert.equal((await get(port, "/boom")).status, 500);
  } finally {
    await http.close();
  }
});

test("X-Forwarded-* count only from a trusted proxy", async () => {
  for (const trusted of [true, false]) {
    const http = new HttpService({ log, trustedProxies: trusted ? ["127.0.0.1"] : [] });
    http.mount("/who", (req, res) => sendText(res, 200, `${http.clientAddress(req)} ${http.isSecure(req)}`));
    const { port } = await http.listen("127.0.0.1:0");
    try {
      const r = await get(port, "/who", { "x-forwarded-for": "203.0.113.7, 127.0.0.1", "x-forwarded-proto": "https" });
      assert.equal(r.body, trusted ? "203.0.113.7 true" : "127.0.0.1 false");
    } finally {
      await http.close();
    }
  }
});

test("an upgrade to an unknown path is refused with 404 and the socket closed", async () => {
  const http = new HttpService({ log });
  const { port } = await http.listen("127.0.0.1:0");
  try {
    const reply = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1", () => s.write("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
      let got = "";
      s.on("data", (d) => (got += d.toString()));
      s.on("close", () => resolve(got));
    });
    assert.match(reply, /^HTTP\/1\.1 404/);
  } finally {
    await http.close();
  }
});

test("a request body that trickles past the deadline is cut with 408, except on a mount that bounds bodies itself", async () => {
  const http = new HttpService({ log, requestTimeoutMs: 300 });
  const drain = (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
    req.resume();
    req.on("end", () => sendText(res, 200, "got it"));
  };
  http.mount("/short", drain);
  http.mount("/long", drain, { ownRequestTimeout: true });
  const { port } = await http.listen("127.0.0.1:0");
  const slowPost = (path: string) =>
    new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na`);
        setTimeout(() => s.write("b"), 800);
      });
      let got = "";
      s.on("data", (d) => {
        got += d.toString();
        if (got.includes("got it")) s.end();
      });
      s.on("close", () => resolve(got));
      s.on("error", () => {});
    });
  try {
    assert.match(await slowPost("/short"), /^HTTP\/1\.1 408/);
    assert.match(await slowPost("/long"), /^HTTP\/1\.1 200[\s\S]*got it/);
  } finally {
    await http.close();
  }
});
