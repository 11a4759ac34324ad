// PEP with aioxmpp, the way its own e2e tests for pep, pubsub and avatar use it: a claimed PEP node with notify=True
// (caps-driven +notify), AvatarService publishing and reading an avatar, PubSubClient retrieval, retraction and
// deletion, and a stranger refused. Drives test/pep/aioxmpp_pep.py with Debian's /usr/bin/python3 (python3-aioxmpp).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { befriend, PASSWORD } from "./kit.ts";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "xa@localhost": PASSWORD, "xb@localhost": PASSWORD, "xc@localhost": PASSWORD } });
  await befriend(ts, "xa", "xb");
});
after(async () => {
  await ts.stop();
});

test("aioxmpp claims a PEP node, publishes and reads avatars, and uses pubsub on its own PEP", { timeout: 150_000 }, async () => {
  const script = fileURLToPath(new URL("./aioxmpp_pep.py", import.meta.url));
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn("/usr/bin/python3", [script, String(ts.c2sPort), "xa@localhost", "xb@localhost", "xc@localhost", PASSWORD], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill(), 130_000); // a bound for a hung Python only, under the test's timeout
    p.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`aioxmpp_pep.py exited ${code}: ${stdout}\n${stderr}`));
    });
  });
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
  assert.equal(r["notified_title"], "Song");
  assert.equal(r["avatar_notified"], true);
  assert.equal(r["avatar_id_ok"], true);
  assert.equal(r["avatar_bytes_ok"], true);
  assert.deepEqual(r["items"], ["t1"]);
  assert.deepEqual(r["by_id"], ["t1"]);
  assert.equal(r["stranger"], "not-authorized");
  assert.deepEqual(r["after_retract"], []);
  assert.equal(r["after_delete"], "item-not-found");
});
