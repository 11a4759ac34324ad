// Many idle unauthenticated connections (a cheap denial of service, RFC 6120 §13.12): 2,000 sockets that open and
// never send a byte do not slow a real login down, and `c2s.handshake_timeout` closes every one of them with
// <connection-timeout/> (RFC 6120 §4.9.3.4), so the server's connection count comes back down.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const IDLE = 2000;
const TIMEOUT_S = 3;
let ts: TestServer;
const idle: Socket[] = [];

before(async () => {
  ts = await createTestServer({ c2s: { handshake_timeout: TIMEOUT_S } }, { users: { "alice@localhost": "secret" } });
});
after(async () => {
  for (const s of idle) s.destroy();
  await ts.stop();
});

async function until(f: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("2,000 idle unauthenticated connections neither delay a login nor outlive the handshake timeout", { timeout: 120_000 }, async () => {
  const closedWithTimeout = { n: 0 };
  let closed = 0;
  const opened = Date.now();
  // In batches, so the listen backlog (1024) is not what is being tested.
  for (let b = 0; b < IDLE; b += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, IDLE - b) }, () =>
        new Promise<void>((resolve, reject) => {
          const s = connect({ host: "127.0.0.1", port: ts.c2sPort }, () => resolve());
          let text = "";
          s.setEncoding("utf8");
          s.on("data", (d: string) => (text += d));
          s.on("close", () => {
            closed++;
            if (text.includes("<connection-timeout")) closedWithTimeout.n++;
          });
          s.once("error", reject);
          idle.push(s);
        }),
      ),
    );
  }
  await until(() => ts.server.status().c2sConnections >= IDLE, "the server to accept every idle connection", 30_000);

  // A real login (STARTTLS, SASL, bind) while they sit there.
  const t = Date.now();
  const { client } = await RawClient.login(ts.c2sPort, "alice", "secret", "busy");
  await client.sync();
  const loginMs = Date.now() - t;
  console.log(`login with ${IDLE} idle connections open: ${loginMs} ms`);
  assert.ok(loginMs < 5000, `login took ${loginMs} ms`);

  // Every idle connection is closed by the server, with the stream error, within the timeout (plus a margin).
  await until(() => closed === IDLE, "the idle connections to be closed", TIMEOUT_S * 1000 + 20_000);
  console.log(`all ${IDLE} closed ${Date.now() - opened} ms after the first opened`);
  assert.equal(closedWithTimeout.n, IDLE);
  await until(() => ts.server.status().c2sConnections === 1, "only the logged-in client to remain", 10_000);
  assert.equal(client.closed, false, "the bound session is not subject to the handshake timeout");
  client.close();
});
