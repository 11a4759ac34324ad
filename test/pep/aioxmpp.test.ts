// PEP with aioxmpp, the way its own e2e tests for pep, pubsub and avatar use it: a claimed PEP node with notify=True
// (caps-driven +notify), AvatarService publishing and reading an avatar, PubSubClient retrieval, retraction and
// deletion, and a stranger refused. Drives test/pep/aioxmpp_pep.py with Debian's /usr/bin/python3 (python3-aioxmpp).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { killPythonScripts, runPython } from "../kit/python.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { befriend, PASSWORD } from "./kit.ts";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "xa@localhost": PASSWORD, "xb@localhost": PASSWORD, "xc@localhost": PASSWORD } });
  await befriend(ts, "xa", "xb");
});
after(async () => {
  killPythonScripts();
  await ts.stop();
});

test("aioxmpp claims a PEP node, publishes and reads avatars, and uses pubsub on its own PEP", { timeout: 150_000 }, async () => {
  const script = fileURLToPath(new URL("./aioxmpp_pep.py", import.meta.url));
  const run = await runPython(script, [String(ts.c2sPort), "xa@localhost", "xb@localhost", "xc@localhost", PASSWORD], { killAfterS: 130 }); // under the test's timeout
  assert.equal(run.code, 0, `aioxmpp_pep.py exited ${run.code}: ${run.stdout}\n${run.stderr}`);
  const r = run.events.at(-1)!;
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
