// An OMEMO conversation between two accounts on Comity: Debian's python3-omemo with python3-oldmemo (OMEMO 0.3,
// eu.siacs.conversations.axolotl) glued to slixmpp by test/pep/omemo_chat.py, over real c2s sockets. The server's part:
// device lists and bundles published on PEP with publish-options, the contact's device list delivered only as a PEP
// notification (+notify in caps; last item on presence for the later one, a live event for the earlier one), bundles
// fetched by the other account, and encrypted messages delivered both ways and decrypted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { showPepAccount } from "../../src/modules/pubsub/admin.ts";
import { befriend, PASSWORD } from "./kit.ts";

const PYTHON = "/usr/bin/python3";
const present = spawnSync(PYTHON, ["-c", "import slixmpp, omemo, oldmemo, oldmemo.etree"], { stdio: "ignore" }).status === 0;
const skip = !present && process.env["CI"] !== "true"
  ? "python3-omemo, python3-oldmemo, python3-xmlschema or python3-slixmpp not installed (scripts/install-test-deps.sh)" : false;
const NS = "eu.siacs.conversations.axolotl";

interface Side {
  devicelist_events: { from: string; devices: number[] }[];
  devicelist_downloads: string[];
  bundles_fetched: string[];
  trust_decisions: { jid: string; device: number; trusted: boolean }[];
  encrypted_seen: number;
  identity_key: string;
}
interface Received { from?: string; device?: number; text?: string; fallback?: string; error?: string }
interface Outcome { a_device: number; b_device: number; a: Side; b: Side; b_got_1: Received; a_got_1: Received; b_got_2: Received }

/** Run omemo_chat.py for two accounts; resolves its JSON line. */
export function runOmemoChat(a: { jid: string; password: string; host: string; port: number }, b: { jid: string; password: string; host: string; port: number }): Promise<Outcome> {
  const script = fileURLToPath(new URL("./omemo_chat.py", import.meta.url));
  const args = [script, a.jid, a.password, a.host, String(a.port), b.jid, b.password, b.host, String(b.port)];
  return new Promise<Outcome>((resolve, reject) => {
    const p = spawn(PYTHON, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill(), 150_000); // a bound for a hung Python only, under the test's timeout
    p.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`omemo_chat.py exited ${code}: ${stdout}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as Outcome);
      } catch (err) {
        reject(new Error(`omemo_chat.py printed no result (${String(err)}): ${stdout}\n${stderr}`));
      }
    });
  });
}

/** What both sides of any OMEMO run must have seen, whichever servers carried it. */
export function assertConversation(r: Outcome, aJid: string, bJid: string): void {
  assert.equal(r.b_got_1.error, undefined, `B failed to decrypt: ${r.b_got_1.error}`);
  assert.deepEqual([r.b_got_1.from, r.b_got_1.device, r.b_got_1.text], [aJid, r.a_device, "Hello Bob, this is OMEMO over Comity."]);
  assert.match(r.b_got_1.fallback ?? "", /OMEMO/, "the fallback body travels with the encrypted element");
  assert.equal(r.a_got_1.error, undefined, `A failed to decrypt: ${r.a_got_1.error}`);
  assert.deepEqual([r.a_got_1.from, r.a_got_1.device, r.a_got_1.text], [bJid, r.b_device, "Hi Alice, decrypted fine; here is my answer."]);
  assert.equal(r.b_got_2.error, undefined, `B failed to decrypt the second message: ${r.b_got_2.error}`);
  assert.deepEqual([r.b_got_2.from, r.b_got_2.text], [aJid, "Second message, on the established session. \u00e9\u2713"]);
  // Device lists of the contact came as notifications, never downloaded.
  assert.ok(r.a.devicelist_events.some((e) => e.from === bJid && e.devices.includes(r.b_device)), `A was not notified of B's device list: ${JSON.stringify(r.a.devicelist_events)}`);
  assert.ok(r.b.devicelist_events.some((e) => e.from === aJid && e.devices.includes(r.a_device)), `B was not notified of A's device list: ${JSON.stringify(r.b.devicelist_events)}`);
  assert.ok(!r.a.devicelist_downloads.includes(bJid) && !r.b.devicelist_downloads.includes(aJid), "a contact's device list was fetched by IQ, not learned from PEP");
  // Each fetched the other's bundle through the server, and its identity key is the one the other side holds.
  assert.ok(r.a.bundles_fetched.includes(`${bJid}/${r.b_device}`), `A did not fetch B's bundle: ${JSON.stringify(r.a.bundles_fetched)}`);
  assert.ok(r.b.bundles_fetched.includes(`${aJid}/${r.a_device}`), `B did not fetch A's bundle: ${JSON.stringify(r.b.bundles_fetched)}`);
  assert.deepEqual(r.a.trust_decisions, [{ jid: bJid, device: r.b_device, trusted: true }]);
  assert.deepEqual(r.b.trust_decisions, [{ jid: aJid, device: r.a_device, trusted: true }]);
  assert.notEqual(r.a.identity_key, r.b.identity_key);
}

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
