// An OMEMO conversation between two accounts on Comity: Debian's python3-omemo with python3-oldmemo (OMEMO 0.3,
// eu.siacs.conversations.axolotl) glued to slixmpp by test/pep/omemo_chat.py, over real c2s sockets. The server's part:
// device lists and bundles published on PEP with publish-options, the contact's device list delivered only as a PEP
// notification (+notify in caps; last item on presence for the later one, a live event for the earlier one), bundles
// fetched by the other account, and encrypted messages delivered both ways and decrypted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { showPepAccount } from "../../src/modules/pubsub/admin.ts";
import { befriend, PASSWORD } from "./kit.ts";
import { assertConversation, NS, OMEMO_MISSING, omemoPresent, runOmemoChat } from "./omemo-kit.ts";

const skip = !omemoPresent && process.env["CI"] !== "true" ? OMEMO_MISSING : false;

let ts: TestServer;
before(async () => {
  if (skip) return;
  ts = await createTestServer({}, { users: { "oa@localhost": PASSWORD, "ob@localhost": PASSWORD } });
  await befriend(ts, "oa", "ob");
});
after(async () => {
  await ts?.stop();
});

test("two slixmpp accounts hold an OMEMO (eu.siacs.conversations.axolotl) conversation through Comity's PEP", { skip, timeout: 180_000 }, async (t) => {
  const acct = (jid: string) => ({ jid, password: PASSWORD, host: "127.0.0.1", port: ts.c2sPort });
  const r = await runOmemoChat(acct("oa@localhost"), acct("ob@localhost"));
  t.diagnostic(`devices ${r.a_device} / ${r.b_device}; A's device-list events ${JSON.stringify(r.a.devicelist_events)}; B's ${JSON.stringify(r.b.devicelist_events)}`);
  assertConversation(r, "oa@localhost", "ob@localhost");
  assert.ok(r.b.encrypted_seen >= 2 && r.a.encrypted_seen >= 1);

  // What the server keeps: per account an open device list naming its device and an open bundle node for it.
  for (const [user, device] of [["oa", r.a_device], ["ob", r.b_device]] as const) {
    const nodes = await showPepAccount(ts.server.storage, "localhost", user);
    const list = nodes.find((n) => n.node === `${NS}.devicelist`);
    const bundle = nodes.find((n) => n.node === `${NS}.bundles:${device}`);
    assert.equal(list?.access_model, "open", `${user}: ${JSON.stringify(nodes)}`);
    assert.equal(list?.items, 1);
    assert.equal(bundle?.access_model, "open", `${user}: ${JSON.stringify(nodes)}`);
    assert.equal(bundle?.items, 1);
    assert.ok((bundle?.bytes ?? 0) > 2000, "a bundle with its 100 pre-keys");
  }
});
