// PEP with a real client library: slixmpp's xep_0222/xep_0223 (its itests/test_pep.py flavours), xep_0084 avatars
// (itests/test_user_avatar.py) with a notification from caps interest, and OMEMO-shaped publishes with
// publish-options read by a stranger. Drives test/pep/slixmpp_pep.py with Debian's /usr/bin/python3.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { killPythonScripts, runPython } from "../kit/python.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { befriend, PASSWORD } from "./kit.ts";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "sa@localhost": PASSWORD, "sb@localhost": PASSWORD, "sc@localhost": PASSWORD } });
  await befriend(ts, "sa", "sb");
});
after(async () => {
  killPythonScripts();
  await ts.stop();
});

test("slixmpp publishes, is notified and reads PEP nodes: moods, avatars and OMEMO device lists", { timeout: 150_000 }, async () => {
  const script = fileURLToPath(new URL("./slixmpp_pep.py", import.meta.url));
  const run = await runPython(script, [String(ts.c2sPort), "sa@localhost", "sb@localhost", "sc@localhost", PASSWORD], { killAfterS: 130 }); // under the test's timeout
  assert.equal(run.code, 0, `slixmpp_pep.py exited ${run.code}: ${run.stdout}\n${run.stderr}`);
  const r = run.events.at(-1)!;
  assert.equal(r["public_own"], "Happy boi");
  assert.equal(r["public_contact"], "toto");
  assert.equal(r["private_own"], "secret");
  assert.equal(r["private_contact"], "not-allowed", "xep_0223's whitelist keeps a contact out");
  assert.equal(r["after_delete"], "item-not-found");
  assert.match(String(r["metadata_event"]), /^[0-9a-f]{40}$/);
  assert.equal(r["avatar_ok"], true);
  assert.equal(r["avatar_own_ok"], true);
  assert.deepEqual(r["devices"], ["1234", "5678"]);
  assert.equal(r["bundle_ok"], true);
  assert.equal(r["avatar_stranger"], "not-authorized", "avatars keep the default presence access");
});
