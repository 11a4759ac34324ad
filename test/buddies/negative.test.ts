// Hostile server presence against a real Comity over sockets (XEP-0267 §2): subscribe from a user JID or a full
// JID, a forged (unsolicited) `subscribed`, a domain the link never authenticated, and a request flood from many
// dialback-authenticated domains against buddies.max_pending, with admins told at most once per peer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawS2s, FakeAuthority, s2sBarrier } from "../kit/raw-s2s.ts";
import { entryOf, rosterOf, waitUntil } from "./kit.ts";

const VICTIM = "victim.localhost";
const RAW = "raw.localhost";
const FLOOD = Array.from({ length: 6 }, (_, i) => `flood${i}.localhost`);
const MAX_PENDING = 3;

let victim: TestServer;
let authority: FakeAuthority;
let peer: RawS2s;

before(async () => {
  authority = await FakeAuthority.start(RAW);
  const routes: Record<string, string> = { [RAW]: `127.0.0.1:${authority.port}` };
  for (const d of FLOOD) routes[d] = `127.0.0.1:${authority.port}`;
  victim = await createTestServer(
    {
      hosts: [{ domain: VICTIM, admins: [`admin@${VICTIM}`] }],
      c2s: { direct_tls: [] },
      s2s: { listen: ["127.0.0.1:0"], verify_certificates: false, routes },
      buddies: { max_pending: MAX_PENDING, disco_timeout_ms: 500 },
    },
    { users: { [`admin@${VICTIM}`]: "pw-admin" } },
  );
  peer = await RawS2s.open(victim.s2sPort, { from: RAW, to: VICTIM, tls: true });
  assert.equal((await peer.dialback(RAW, "vouched-by-the-fake-authority")).type, "valid");
});
after(async () => {
  peer?.close();
  await victim?.stop();
  await authority?.stop();
});

/** Stored notices for the (offline) admin. */
const notices = (): Promise<number> => victim.server.storage.offline.count(VICTIM, "admin");
/** Notices the roster has sent so far (counted when sent; storing them in offline storage is asynchronous). */
const sent = (): number => rosterOf(victim, VICTIM).metrics.notificationsSent;

/**
 * Everything the peer sent before has been handled (see s2sBarrier): no fixed sleep, so a slow machine can
 * neither fail a correct server nor hide a wrong one.
 */
const settle = (): Promise<void> => s2sBarrier(peer, authority);

/** Wait until the admin's offline storage holds `n` notices (they are sent synchronously, stored asynchronously). */
async function noticesStored(n: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  let got = await notices();
  while (got < n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    got = await notices();
  }
  assert.equal(got, n, "notices in offline storage");
}

test("subscribe from a user JID or a full JID of the peer is ignored: no pending entry, no notice", async () => {
  peer.send(`<presence from='mallory@${RAW}' to='${VICTIM}' type='subscribe' id='u1'/>`);
  peer.send(`<presence from='${RAW}/res' to='${VICTIM}' type='subscribe' id='u2'/>`);
  peer.send(`<presence from='mallory@${RAW}' to='admin@${VICTIM}' type='subscribe' id='u3'/>`);
  await settle();
  assert.equal(entryOf(victim, VICTIM, RAW), undefined);
  assert.equal(sent(), 0);
  assert.equal(await notices(), 0);
  assert.ok(rosterOf(victim, VICTIM).metrics.ignored >= 2);
});

test("a forged subscribed (nothing was requested) is ignored", async () => {
  peer.send(`<presence from='${RAW}' to='${VICTIM}' type='subscribed' id='f1'/>`);
  await settle();
  assert.equal(entryOf(victim, VICTIM, RAW), undefined);
  assert.equal(rosterOf(victim, VICTIM).trusts(RAW), false);
  assert.equal(rosterOf(victim, VICTIM).isTrustedBy(RAW), false);
});

test("a domain subscribe becomes pending, never approved, and repeats notify the admin once", async () => {
  for (let i = 0; i < 4; i++) peer.send(`<presence from='${RAW}' to='${VICTIM}' type='subscribe' id='s${i}'/>`);
  await waitUntil("pending", () => entryOf(victim, VICTIM, RAW)?.pendingIn === true);
  await settle();
  const e = entryOf(victim, VICTIM, RAW)!;
  assert.equal(e.subscription, "none");
  assert.equal(sent(), 1);
  await noticesStored(1);
  assert.equal(rosterOf(victim, VICTIM).metrics.requestsRepeated, 3);
  assert.doesNotMatch(peer.buffer, /type='subscribed'/);
});

test("a flood from many authenticated domains stops at buddies.max_pending, one notice per kept peer", async () => {
  for (const d of FLOOD) assert.equal((await peer.dialback(d, "vouched")).type, "valid", d);
  for (let round = 0; round < 3; round++) {
    for (const d of FLOOD) peer.send(`<presence from='${d}' to='${VICTIM}' type='subscribe' id='${d}-${round}'/>`);
  }
  await waitUntil("cap reached", () => rosterOf(victim, VICTIM).pendingCount() === MAX_PENDING);
  await settle();
  const r = rosterOf(victim, VICTIM);
  assert.equal(r.pendingCount(), MAX_PENDING);
  assert.equal(r.list().length, MAX_PENDING);
  assert.equal(sent(), MAX_PENDING, "RAW's notice plus one per accepted flood domain");
  await noticesStored(MAX_PENDING);
  assert.ok(r.metrics.requestsDropped >= FLOOD.length - (MAX_PENDING - 1));
  const metrics = victim.server.control.get("buddies.metrics")!({}) as { pending: number; maxPending: number }[];
  assert.deepEqual([metrics[0]?.pending, metrics[0]?.maxPending], [MAX_PENDING, MAX_PENDING]);
});

test("subscribe from a domain the link never authenticated ends the stream and changes nothing", async () => {
  const before = rosterOf(victim, VICTIM).list().length;
  peer.send(`<presence from='stranger.localhost' to='${VICTIM}' type='subscribe' id='x1'/>`);
  assert.equal(await peer.streamError(), "invalid-from");
  // The stream is dead now (no barrier possible): the stanza that ended it was refused, not handled.
  assert.equal(entryOf(victim, VICTIM, "stranger.localhost"), undefined);
  assert.equal(rosterOf(victim, VICTIM).list().length, before);
});
