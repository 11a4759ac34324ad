// Hostile server-to-server peers against a real Comity server over sockets: RFC 6120 §4.9.3 stream errors
// (not-authorized, policy-violation, invalid-from, improper-addressing, host-unknown), §5 STARTTLS policy,
// and XEP-0220 dialback (§2.1–§2.4: bad keys, unreachable authorities, unsolicited answers, piggybacking).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { RawS2s, FakeAuthority, answer, closedPort } from "../kit/raw-s2s.ts";

const VICTIM = "victim.localhost";
const SECOND = "second.localhost"; // another domain the victim serves
const HONEST = "a.localhost"; // served by an honest second Comity server

let victim: TestServer;
let honest: TestServer;
let authority: FakeAuthority;
let alice: RawClient;
let carol: RawClient;

before(async () => {
  authority = await FakeAuthority.start("raw.localhost", (req) => {
    // mismatch.localhost: wrong id, wrong from and wrong to all say "valid"; only the matching answer says "invalid".
    if (req.to === "mismatch.localhost") {
      return (
        `<db:verify from='${req.to}' to='${req.from}' id='not-${req.id}' type='valid'/>` +
        `<db:verify from='evil.localhost' to='${req.from}' id='${req.id}' type='valid'/>` +
        `<db:verify from='${req.to}' to='${SECOND}' id='${req.id}' type='valid'/>` +
        `<db:verify from='${req.to}' to='${req.from}' id='${req.id}' type='invalid'/>`
      );
    }
    if (req.to === "slow.localhost") return ""; // an authority that never answers
    return answer("valid")(req);
  });
  honest = await createTestServer({ hosts: [{ domain: HONEST }], c2s: { direct_tls: [] }, s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } });
  const nowhere = await closedPort();
  victim = await createTestServer(
    {
      hosts: [{ domain: VICTIM }, { domain: SECOND }],
      c2s: { direct_tls: [] },
      s2s: {
        listen: ["127.0.0.1:0"],
        verify_certificates: false,
        routes: {
          [HONEST]: `127.0.0.1:${honest.s2sPort}`,
          "raw.localhost": `127.0.0.1:${authority.port}`,
          "raw2.localhost": `127.0.0.1:${authority.port}`,
          "mismatch.localhost": `127.0.0.1:${authority.port}`,
          "slow.localhost": `127.0.0.1:${authority.port}`,
          "nowhere.localhost": `127.0.0.1:${nowhere}`,
        },
      },
    },
    { users: { [`alice@${VICTIM}`]: "pw-alice", [`carol@${SECOND}`]: "pw-carol" } },
  );
  honest.config.s2s.routes[VICTIM] = `127.0.0.1:${victim.s2sPort}`;
  // As in production DNS, the victim's own second domain points back at the victim itself.
  victim.config.s2s.routes[SECOND] = `127.0.0.1:${victim.s2sPort}`;
  alice = (await RawClient.login(victim.c2sPort, "alice", "pw-alice", "r", { domain: VICTIM })).client;
  carol = (await RawClient.login(victim.c2sPort, "carol", "pw-carol", "r", { domain: SECOND })).client;
  alice.send("<presence/>");
  carol.send("<presence/>");
});

after(async () => {
  alice?.close();
  carol?.close();
  await victim?.stop();
  await honest?.stop();
  await authority?.stop();
});

/** A message to alice's full JID carrying a marker we can search for. */
function msg(from: string | undefined, marker: string, to = `alice@${VICTIM}/r`): string {
  const f = from === undefined ? "" : ` from='${from}'`;
  const t = to === "" ? "" : ` to='${to}'`;
  return `<message${f}${t} type='chat' id='${marker}'><body>${marker}</body></message>`;
}

/**
 * Check the local user never got `marker`. Callers first wait for the stream error or close that refused the
 * stanza, so the server is done with it; the user's ping round trip then flushes anything the server already
 * routed to them (it writes to a client in order). No fixed sleep: a slow machine cannot hide a delivery.
 */
async function assertNotDelivered(user: RawClient, marker: string, domain = VICTIM): Promise<void> {
  await user.sync(domain);
  assert.doesNotMatch(user.buffer, new RegExp(marker), `${marker} must not reach the local user`);
}

/** A raw peer over STARTTLS that has authenticated as `domain` via the fake authority. */
async function authenticated(domain = "raw.localhost"): Promise<RawS2s> {
  const peer = await RawS2s.open(victim.s2sPort, { from: domain, to: VICTIM, tls: true });
  const r = await peer.dialback(domain, "any-key-the-authority-vouches-for");
  assert.equal(r.type, "valid");
  return peer;
}

test("stanzas before authentication end the stream with not-authorized and are not delivered", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM });
  peer.send(msg("mallory@raw.localhost/x", "pre-auth-1"));
  assert.equal(await peer.streamError(), "not-authorized");
  await peer.waitClosed();
  await assertNotDelivered(alice, "pre-auth-1");
});

test("stanzas after STARTTLS but before dialback are refused too", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM, tls: true });
  assert.match(peer.features, /<dialback xmlns='urn:xmpp:features:dialback'>/);
  peer.send(msg("mallory@raw.localhost/x", "pre-auth-2"));
  assert.equal(await peer.streamError(), "not-authorized");
  await assertNotDelivered(alice, "pre-auth-2");
});

test("without TLS the features demand STARTTLS, offer no dialback, and a db:result is a policy violation", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM });
  assert.match(peer.features, /<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required\/><\/starttls>/);
  assert.doesNotMatch(peer.features, /dialback|mechanisms/);
  peer.send("<db:result from='raw.localhost' to='victim.localhost'>key</db:result>");
  assert.equal(await peer.streamError(), "policy-violation");
  await peer.waitClosed();
  assert.equal(authority.requests.filter((r) => r.key === "key").length, 0, "no verification is even attempted");
});

test("a wrong key for a domain an honest server serves is rejected by that server, and the stream closes", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: HONEST, to: VICTIM, tls: true });
  const r = await peer.dialback(HONEST, "0".repeat(64), VICTIM, 15_000);
  assert.equal(r.type, "invalid");
  await peer.waitClosed(); // XEP-0220 §2.1.2: after "invalid" the receiving server closes the stream
  // The victim really asked the honest server: it holds a link to it, and the honest server one from the victim.
  assert.ok(victim.server.s2s.list().some((l) => l.direction === "out" && l.peers.includes(HONEST)));
  assert.ok(honest.server.s2s.list().some((l) => l.direction === "in" && l.local === HONEST));
});

test("a stanza sent after a rejected claim is never delivered", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: HONEST, to: VICTIM, tls: true });
  peer.send(`<db:result from='${HONEST}' to='${VICTIM}'>${"1".repeat(64)}</db:result>` + msg(`mallory@${HONEST}/x`, "forged-key-1"));
  // Either the stanza is refused at once (not-authorized) or it waits for the verdict and is dropped with the stream.
  await peer.waitClosed(15_000);
  await assertNotDelivered(alice, "forged-key-1");
});

test("a claimed domain nobody serves gets type='error', and the stream stays unauthenticated", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "nowhere.localhost", to: VICTIM, tls: true });
  const r = await peer.dialback("nowhere.localhost", "abc", VICTIM, 15_000);
  assert.ok(r.type === "error" || r.type === "invalid", `type=${r.type}`);
  if (r.type === "error") assert.match(r.xml, /<error\b[^>]*type='(wait|cancel)'[\s\S]*xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/);
  peer.send(msg("mallory@nowhere.localhost/x", "nowhere-1"));
  assert.equal(await peer.streamError(), "not-authorized");
  await assertNotDelivered(alice, "nowhere-1");
});

test("dialback errors carry an <error/> in jabber:server, as XEP-0220 §2.4 requires", {
}, async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM, tls: true });
  const r = await peer.dialback("raw.localhost", "abc", "stranger.localhost");
  assert.equal(r.type, "error");
  assert.match(r.xml, /<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><\/error>/);
  peer.close();
});

test("a db:result for a domain the receiving server does not serve gets item-not-found", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM, tls: true });
  const r = await peer.dialback("raw.localhost", "abc", "stranger.localhost");
  assert.equal(r.type, "error");
  assert.match(r.xml, /<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/);
  peer.close();
});

test("an unsolicited <db:result type='valid'/> from the peer authenticates nothing", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM, tls: true });
  peer.send(`<db:result from='raw.localhost' to='${VICTIM}' type='valid'/>`);
  peer.send(msg("mallory@raw.localhost/x", "unsolicited-1"));
  assert.equal(await peer.streamError(), "not-authorized");
  assert.doesNotMatch(peer.buffer, /<db:result/, "no reply to an answer");
  await assertNotDelivered(alice, "unsolicited-1");
});

test("a <db:verify/> with a type on an incoming stream gets no reply and has no effect", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM, tls: true });
  peer.send(`<db:verify from='raw.localhost' to='${VICTIM}' id='forged' type='valid'/>`);
  // A real request right after it: its answer proves the first one was read and ignored.
  peer.send(`<db:verify from='raw.localhost' to='${VICTIM}' id='probe'>${"a".repeat(64)}</db:verify>`);
  await peer.waitFor(/<db:verify\b[^>]*id='probe'[^>]*\/>/);
  const replies = peer.buffer.match(/<db:verify\b[^>]*>/g) ?? [];
  assert.equal(replies.length, 1, peer.buffer);
  assert.match(replies[0]!, /type='invalid'/);
  assert.match(replies[0]!, new RegExp(`from='${VICTIM}'`));
  peer.send(msg("mallory@raw.localhost/x", "verify-typed-1"));
  assert.equal(await peer.streamError(), "not-authorized");
  await assertNotDelivered(alice, "verify-typed-1");
});

test("as authoritative server, the victim confirms only the key it really issued", async () => {
  // Make the victim dial raw.localhost: it sends its own dialback key to the fake authority.
  alice.send(`<message to='someone@raw.localhost' id='dial'><body>x</body></message>`);
  const deadline = Date.now() + 20_000; // a new outgoing link: connect, STARTTLS, dialback
  while (!authority.results.some((r) => r.from === VICTIM && r.to === "raw.localhost") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const issued = authority.results.find((r) => r.from === VICTIM && r.to === "raw.localhost");
  assert.ok(issued, "the victim sent a db:result to raw.localhost");
  const peer = await RawS2s.open(victim.s2sPort, { from: "raw.localhost", to: VICTIM, tls: true });
  peer.send(`<db:verify from='raw.localhost' to='${VICTIM}' id='${issued.streamId}'>${issued.key}</db:verify>`);
  peer.send(`<db:verify from='raw.localhost' to='${VICTIM}' id='other-stream'>${issued.key}</db:verify>`);
  peer.send(`<db:verify from='raw2.localhost' to='${VICTIM}' id='${issued.streamId}'>${issued.key}</db:verify>`);
  await peer.waitFor(/(<db:verify\b[^>]*\/>[\s\S]*){3}/);
  const replies = peer.buffer.match(/<db:verify\b[^>]*\/>/g) ?? [];
  assert.match(replies[0]!, /type='valid'/);
  assert.match(replies[1]!, /type='invalid'/, "another stream id");
  assert.match(replies[2]!, /type='invalid'/, "another receiving server");
  peer.close();
});

test("mismatched or early <db:verify/> answers on the outgoing link are ignored", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: "mismatch.localhost", to: VICTIM, tls: true });
  // Before the victim has even asked (pre-TLS on its new link), the "authority" volunteers a valid verdict.
  authority.greeting = (to) => (to === "mismatch.localhost" ? `<db:verify from='mismatch.localhost' to='${VICTIM}' id='${peer.streamId}' type='valid'/>` : "");
  try {
    const r = await peer.dialback("mismatch.localhost", "bad", VICTIM, 15_000);
    assert.equal(r.type, "invalid");
    await peer.waitClosed();
    assert.ok(authority.requests.some((q) => q.to === "mismatch.localhost"), "the victim asked the authority");
  } finally {
    authority.greeting = () => "";
  }
});

test("an authenticated peer's stanzas are delivered (positive control)", async () => {
  const peer = await authenticated();
  peer.send(msg("juliet@raw.localhost/balcony", "good-1"));
  await alice.waitFor(/good-1<\/body>/);
  assert.match(alice.buffer, /<message[^>]*from='juliet@raw\.localhost\/balcony'[^>]*>[\s\S]*good-1/);
  const link = victim.server.s2s.list().find((l) => l.direction === "in" && l.peers.includes("raw.localhost"));
  assert.equal(link?.auth, "dialback");
  assert.equal(link?.tls, true);
  peer.close();
});

test("a from in a domain not authenticated on the stream is invalid-from", async () => {
  const peer = await authenticated();
  peer.send(msg("mallory@other.localhost", "forged-from-1"));
  assert.equal(await peer.streamError(), "invalid-from");
  await peer.waitClosed();
  await assertNotDelivered(alice, "forged-from-1");
});

test("a from in a subdomain of the authenticated one is invalid-from too", async () => {
  const peer = await authenticated();
  peer.send(msg("mallory@sub.raw.localhost", "forged-from-2"));
  assert.equal(await peer.streamError(), "invalid-from");
  await assertNotDelivered(alice, "forged-from-2");
});

test("a stanza without from is improper-addressing", async () => {
  const peer = await authenticated();
  peer.send(msg(undefined, "no-from-1"));
  assert.equal(await peer.streamError(), "improper-addressing");
  await assertNotDelivered(alice, "no-from-1");
});

test("a stanza without to is improper-addressing", async () => {
  const peer = await authenticated();
  peer.send(msg("juliet@raw.localhost/balcony", "no-to-1", ""));
  assert.equal(await peer.streamError(), "improper-addressing");
});

test("a malformed from is improper-addressing", async () => {
  const peer = await authenticated();
  peer.send(msg("@@bad", "bad-from-1"));
  assert.equal(await peer.streamError(), "improper-addressing");
  await assertNotDelivered(alice, "bad-from-1");
});

test("a stanza to a local domain not authenticated for the stream is host-unknown", async () => {
  const peer = await authenticated();
  peer.send(msg("juliet@raw.localhost/balcony", "wrong-host-1", `carol@${SECOND}/r`));
  assert.equal(await peer.streamError(), "host-unknown");
  await assertNotDelivered(carol, "wrong-host-1", SECOND);
});

test("piggybacking: a second domain, and a second local domain, authenticated on the same stream may send", async () => {
  const peer = await authenticated();
  const r2 = await peer.dialback("raw2.localhost", "key-2");
  assert.equal(r2.type, "valid");
  const r3 = await peer.dialback("raw.localhost", "key-3", SECOND);
  assert.equal(r3.type, "valid");
  peer.send(msg("romeo@raw2.localhost/r", "piggy-1"));
  peer.send(msg("juliet@raw.localhost/r", "piggy-2"));
  peer.send(msg("juliet@raw.localhost/r", "piggy-3", `carol@${SECOND}/r`));
  await alice.waitFor(/piggy-1<\/body>/);
  await alice.waitFor(/piggy-2<\/body>/);
  await carol.waitFor(/piggy-3<\/body>/);
  // raw2.localhost was authenticated only towards victim.localhost, not towards second.localhost.
  peer.send(msg("romeo@raw2.localhost/r", "piggy-4", `carol@${SECOND}/r`));
  assert.equal(await peer.streamError(), "host-unknown");
  await assertNotDelivered(carol, "piggy-4", SECOND);
});

test("a repeated claim for an authenticated pair is answered valid without asking again", async () => {
  const peer = await authenticated();
  const before = authority.requests.length;
  const r = await peer.dialback("raw.localhost", "whatever");
  assert.equal(r.type, "valid");
  assert.equal(authority.requests.length, before);
  peer.close();
});

test("a stream header for a domain not served here is host-unknown", async () => {
  const c = await RawClient.connect(victim.s2sPort);
  c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='raw.localhost' to='stranger.localhost' version='1.0'>");
  await c.waitFor(/<stream:error>\s*<host-unknown/);
  await c.waitClosed();
});

test("a stream in the client namespace is refused with invalid-namespace", async () => {
  const c = await RawClient.connect(victim.s2sPort);
  c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='victim.localhost' version='1.0'>");
  await c.waitFor(/<stream:error>\s*<invalid-namespace/);
  await c.waitClosed();
});

test("claiming one of the victim's own domains with a guessed key is rejected", async () => {
  const peer = await RawS2s.open(victim.s2sPort, { from: SECOND, to: VICTIM, tls: true });
  const r = await peer.dialback(SECOND, "f".repeat(64), VICTIM, 15_000);
  assert.notEqual(r.type, "valid");
  await peer.waitClosed(); // a claim for one of the victim's own domains is refused and the stream closed
  peer.send(msg(`carol@${SECOND}/r`, "self-claim-1"));
  await assertNotDelivered(alice, "self-claim-1");
  peer.close();
});

test("stanzas for verified pairs keep flowing while another domain's dialback is pending (XEP-0220 §2.1.2)", {
}, async () => {
  const peer = await authenticated();
  peer.send(`<db:result from='slow.localhost' to='${VICTIM}'>key</db:result>`);
  peer.send(msg("juliet@raw.localhost/r", "while-pending-1"));
  // 15 s is generous for a loaded machine and still half the victim's 30 s verification timeout: a server that
  // held the stanza until slow.localhost's verdict would fail here.
  await alice.waitFor(/while-pending-1<\/body>/, 15_000);
  peer.close();
});
