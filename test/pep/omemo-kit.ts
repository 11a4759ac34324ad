// Helpers of the OMEMO conversation tests (omemo.test.ts on one Comity server, omemo-prosody.test.ts between Comity and
// Prosody): run test/pep/omemo_chat.py (Debian's python3-omemo + python3-oldmemo glued to slixmpp) and check what both
// sides saw.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const PYTHON = "/usr/bin/python3";
export const omemoPresent = spawnSync(PYTHON, ["-c", "import slixmpp, omemo, oldmemo, oldmemo.etree"], { stdio: "ignore" }).status === 0;
export const OMEMO_MISSING = "python3-omemo, python3-oldmemo, python3-xmlschema or python3-slixmpp not installed (scripts/install-test-deps.sh)";
export const NS = "eu.siacs.conversations.axolotl";

interface Side {
  devicelist_events: { from: string; devices: number[] }[];
  devicelist_downloads: string[];
  bundles_fetched: string[];
  trust_decisions: { jid: string; device: number; trusted: boolean }[];
  encrypted_seen: number;
  errors: string[];
  identity_key: string;
}
interface Received { from?: string; device?: number; text?: string; fallback?: string; error?: string }
export interface Outcome { a_device: number; b_device: number; a: Side; b: Side; b_got_1: Received; a_got_1: Received; b_got_2: Received }

export interface ChatAccount { jid: string; password: string; host: string; port: number }
/** Run omemo_chat.py for two accounts (`subscribe`: they clean up and become contacts first); resolves its JSON line. */
export function runOmemoChat(a: ChatAccount, b: ChatAccount, subscribe = false): Promise<Outcome> {
  const script = fileURLToPath(new URL("./omemo_chat.py", import.meta.url));
  const args = [script, a.jid, a.password, a.host, String(a.port), b.jid, b.password, b.host, String(b.port), ...(subscribe ? ["--subscribe"] : [])];
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
  assert.deepEqual([r.a.errors, r.b.errors], [[], []]);
}
