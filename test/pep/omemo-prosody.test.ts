// An OMEMO conversation across federation: alice@comity.test on a Comity server for comity.test on 127.0.0.10:25269
// (the address the peers' DNS publishes) and bob@prosody.test on Prosody 0.12 from ../shared/peers, both slixmpp with
// python3-omemo/oldmemo (test/pep/omemo_chat.py --subscribe: Prosody keeps state between runs, so bob first deletes
// his OMEMO nodes and both drop the other from their rosters, then alice subscribes). Over s2s: the caps queries each
// PEP service sends the other's client, Prosody's last device-list item to alice and Comity's device-list event to
// bob, both bundles fetched from the other server, and the encrypted messages both ways.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { showPepAccount } from "../../src/modules/pubsub/admin.ts";
import { assertConversation, NS, OMEMO_MISSING, omemoPresent, runOmemoChat } from "./omemo-kit.ts";

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

const up = await reachable("127.0.0.2", 25122);
// In CI the peers must be running (.ci/run starts them) and the packages installed: then a miss is a failure.
const skip = process.env["CI"] === "true" ? false
  : !up ? "Prosody from ../shared/peers is not running: start it with ../shared/peers/up.sh (.ci/run does)"
  : !omemoPresent ? OMEMO_MISSING : false;

let ts: TestServer;
before(async () => {
  if (skip) return;
  assert.ok(up, "Prosody from ../shared/peers must be running (../shared/peers/up.sh)");
  ts = await createTestServer(
    {
      hosts: [{ domain: "comity.test", admins: ["admin@comity.test"] }],
      c2s: { listen: ["127.0.0.10:0"], direct_tls: [] },
      s2s: { listen: ["127.0.0.10:25269"], verify_certificates: false, dns_servers: ["127.0.0.1:25053"] },
    },
    { users: { "alice@comity.test": "comity-pass" } },
  );
});
after(async () => {
  await ts?.stop();
});

test("alice@comity.test and bob@prosody.test hold an OMEMO conversation over s2s", { skip, timeout: 240_000 }, async (t) => {
  const r = await runOmemoChat(
    { jid: "alice@comity.test", password: "comity-pass", host: "127.0.0.10", port: ts.c2sPort },
    { jid: "bob@prosody.test", password: "bob-pass", host: "127.0.0.2", port: 25122 },
    true,
  );
  t.diagnostic(`devices ${r.a_device} / ${r.b_device}; alice's device-list events ${JSON.stringify(r.a.devicelist_events)}; bob's ${JSON.stringify(r.b.devicelist_events)}`);
  assertConversation(r, "alice@comity.test", "bob@prosody.test");

  const nodes = await showPepAccount(ts.server.storage, "comity.test", "alice");
  assert.equal(nodes.find((n) => n.node === `${NS}.devicelist`)?.access_model, "open", JSON.stringify(nodes));
  assert.equal(nodes.find((n) => n.node === `${NS}.bundles:${r.a_device}`)?.access_model, "open", JSON.stringify(nodes));
});
