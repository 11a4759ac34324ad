// `comity deluser` against a running server goes through its control socket: the account's sessions end with
// <not-authorized/>, the account is gone from storage, and modules hear `account/deleted` (several of them keep data
// outside the account's rows: uploaded files, push registrations, caches). Before, the CLI deleted rows behind the
// running server's back, sessions went on and no module was told.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const BIN = fileURLToPath(new URL("../../src/cli/run.ts", import.meta.url));

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "gone@localhost": "pw", "stays@localhost": "pw" } });
});
after(async () => {
  await ts.stop();
});

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, out });
    });
  });
}

test("deluser on a running server ends the account's sessions and tells the modules", { timeout: 120_000 }, async () => {
  const seen: string[] = [];
  ts.server.events.on("account/deleted", ({ host, username }) => void seen.push(`${username}@${host}`));
  const { client: gone } = await RawClient.login(ts.c2sPort, "gone", "pw", "phone");
  const { client: stays } = await RawClient.login(ts.c2sPort, "stays", "pw", "desk");
  const config = join(ts.dataDir, "comity.yaml");
  writeFileSync(config, `hosts: [{domain: localhost}]\ndata_dir: ${JSON.stringify(ts.dataDir)}\n`);
  const r = await cli(["deluser", "gone@localhost", "--config", config]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /deleted gone@localhost/);
  await gone.waitFor(/<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await gone.waitClosed();
  assert.deepEqual(seen, ["gone@localhost"]);
  assert.equal(await ts.server.storage.accounts.get("localhost", "gone"), undefined);
  // Nobody else is touched, and the name can no longer log in.
  await stays.sync();
  assert.doesNotMatch(stays.buffer, /stream:error/);
  await assert.rejects(RawClient.login(ts.c2sPort, "gone", "pw", "again"));
  const again = await cli(["deluser", "gone@localhost", "--config", config]);
  assert.notEqual(again.code, 0);
  assert.match(again.out, /no such account/);
  stays.close();
});
