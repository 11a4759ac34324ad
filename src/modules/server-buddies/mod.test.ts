// Tests of the server-buddies module without sockets (XEP-0267 §2–§3 with RFC 6121 §3 subscription rules).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BuddyError } from "./api.ts";
import { ADMIN, createBuddyHarness, HOST } from "./_harness.ts";
import { NS_SERVER_PRESENCE } from "./mod.ts";

const P = "peer.example";
const CLI = { actor: "cli:root", via: "cli" as const };

/** Stanzas of one kind in serialised output. */
const presences = (lines: string[], type: string | undefined, to = P): string[] =>
  lines.filter((l) => l.startsWith("<presence") && l.includes(`to='${to}'`) && (type === undefined ? !l.includes(" type=") : l.includes(`type='${type}'`)));
const messages = (lines: string[]): string[] => lines.filter((l) => l.startsWith("<message"));

function code(c: string) {
  return (err: unknown) => err instanceof BuddyError && err.code === c;
}

describe("server-buddies module", () => {
  it("advertises urn:xmpp:server-presence and provides the server-roster API", async () => {
    const h = await createBuddyHarness();
    assert.ok(h.host.features.host.has(NS_SERVER_PRESENCE));
    assert.equal(h.host.provided.get("server-roster"), h.roster);
    for (const m of ["list", "request", "approve", "deny", "cancel", "remove", "audit", "metrics"]) assert.ok(h.control.has(`buddies.${m}`), m);
  });

  it("request sends subscribe, asks disco, and a later subscribed makes it 'to'", async () => {
    const h = await createBuddyHarness();
    h.discoFeature.set(P, true);
    const e = await h.roster.request(P, { ...CLI, note: "partner" });
    assert.equal(e.pendingOut, true);
    assert.equal(e.preApproved, true);
    assert.equal(e.note, "partner");
    await h.settle();
    const out = h.take();
    assert.equal(presences(out, "subscribe").length, 1);
    assert.ok(out.some((l) => l.startsWith("<iq") && l.includes("disco#info")));
    assert.equal(h.roster.get(P)?.peerImplementsServerRosters, true);
    assert.equal(h.roster.isTrustedBy(P), false);
    await h.inbound(P, "subscribed");
    assert.equal(h.roster.get(P)?.subscription, "to");
    assert.equal(h.roster.get(P)?.pendingOut, false);
    assert.ok(h.roster.isTrustedBy(P) && h.roster.trusts(P) && !h.roster.isMutual(P));
    assert.equal(presences(h.take(), "probe").length, 1, "probes to learn the peer's availability");
  });

  it("the peer's reciprocal request is approved by the pre-approval our admin gave, and ends 'both'", async () => {
    const h = await createBuddyHarness();
    await h.roster.request(P, CLI);
    await h.inbound(P, "subscribed");
    h.take();
    await h.inbound(P, "subscribe");
    const e = h.roster.get(P)!;
    assert.equal(e.subscription, "both");
    assert.equal(e.pendingIn, false);
    assert.equal(e.decidedBy, "pre-approval");
    const out = h.take();
    assert.equal(presences(out, "subscribed").length, 1);
    assert.equal(presences(out, "subscribe").length, 0, "no second subscribe: we already have 'to'");
    assert.equal(messages(out).length, 0, "no admin is bothered: one already decided");
    const audit = await h.roster.audit(P);
    assert.deepEqual(audit.map((a) => `${a.action}/${a.actor}`).slice(0, 1), ["approve/pre-approval"]);
  });

  it("a one-way request gives no pre-approval: the reciprocal request waits for an admin", async () => {
    const h = await createBuddyHarness();
    await h.roster.request(P, { ...CLI, mutual: false });
    await h.inbound(P, "subscribed");
    await h.inbound(P, "subscribe");
    assert.equal(h.roster.get(P)?.pendingIn, true);
    assert.equal(h.roster.get(P)?.subscription, "to");
  });

  it("an inbound request waits for an admin, who is told once; approve answers, subscribes back and sends presence", async () => {
    const h = await createBuddyHarness();
    h.discoFeature.set(P, false);
    assert.equal(await h.inbound(P, "subscribe", { status: "please" }), true);
    let e = h.roster.get(P)!;
    assert.equal(e.pendingIn, true);
    assert.ok(e.pendingInSince !== null);
    assert.equal(e.subscription, "none");
    assert.equal(h.roster.trusts(P), false);
    let out = h.take();
    const notes = messages(out);
    assert.equal(notes.length, 2, "one message per admin JID");
    assert.match(notes[0]!, new RegExp(`from='${HOST}'`));
    assert.match(notes[0]!, new RegExp(`to='${ADMIN}'`));
    assert.match(notes[0]!, /<subject>Server trust request from peer\.example<\/subject>/);
    assert.match(notes[0]!, /comity buddies approve peer\.example/);
    assert.equal(presences(out, "subscribed").length, 0, "never approved automatically");
    assert.equal(h.roster.get(P)?.peerImplementsServerRosters, false);
    await h.inbound(P, "subscribe");
    await h.inbound(P, "subscribe");
    assert.equal(messages(h.take()).length, 0, "repeats do not re-notify");
    assert.equal(h.roster.metrics.requestsRepeated, 2);

    e = await h.roster.approve(P, { actor: "admin@comity.example", via: "xmpp" });
    assert.equal(e.subscription, "from");
    assert.equal(e.pendingOut, true, "subscribed back (buddies.reciprocate)");
    assert.equal(e.decidedBy, "admin@comity.example");
    assert.equal(e.decidedVia, "xmpp");
    out = h.take();
    assert.equal(presences(out, "subscribed").length, 1);
    assert.equal(presences(out, "subscribe").length, 1);
    assert.equal(presences(out, undefined).length, 1, "our available presence");
    await h.inbound(P, "subscribed");
    assert.equal(h.roster.get(P)?.subscription, "both");
    assert.ok(h.roster.isMutual(P));
  });

  it("with reciprocate off, approve does not subscribe back", async () => {
    const h = await createBuddyHarness({ buddies: { reciprocate: false } });
    await h.inbound(P, "subscribe");
    h.take();
    await h.roster.approve(P, CLI);
    assert.equal(presences(h.take(), "subscribe").length, 0);
    assert.equal(h.roster.get(P)?.pendingOut, false);
  });

  it("two approvals of the same request, at once, are one approval", async () => {
    const h = await createBuddyHarness();
    await h.inbound(P, "subscribe");
    h.take();
    const [a, b] = await Promise.all([h.roster.approve(P, CLI), h.roster.approve(P, { actor: "admin@comity.example", via: "xmpp" })]);
    assert.equal(a.subscription, "from");
    assert.equal(b.subscription, "from");
    const out = h.take();
    assert.equal(presences(out, "subscribed").length, 1);
    assert.equal(presences(out, "subscribe").length, 1);
    assert.equal((await h.roster.audit(P)).filter((r) => r.action === "approve").length, 1);
  });

  it("deny sends unsubscribed and drops the entry; approve or deny without a request fail with codes", async () => {
    const h = await createBuddyHarness();
    await assert.rejects(h.roster.approve(P, CLI), code("COMITY_ERR_BUDDY_UNKNOWN"));
    await h.inbound(P, "subscribe");
    h.take();
    assert.equal(await h.roster.deny(P, CLI), undefined);
    assert.equal(presences(h.take(), "unsubscribed").length, 1);
    assert.equal(h.roster.get(P), undefined);
    await assert.rejects(h.roster.deny(P, CLI), code("COMITY_ERR_BUDDY_UNKNOWN"));
    await h.roster.request(P, CLI);
    await assert.rejects(h.roster.approve(P, CLI), code("COMITY_ERR_BUDDY_NOT_PENDING"));
    await assert.rejects(h.roster.deny(P, CLI), code("COMITY_ERR_BUDDY_NOT_PENDING"));
  });

  it("cancel withdraws a request nobody answers (ejabberd) with unsubscribe", async () => {
    const h = await createBuddyHarness();
    await h.roster.request(P, CLI);
    h.take();
    assert.equal(await h.roster.cancel(P, CLI), undefined);
    assert.equal(presences(h.take(), "unsubscribe").length, 1);
    assert.equal(h.roster.get(P), undefined);
    await assert.rejects(h.roster.cancel(P, CLI), code("COMITY_ERR_BUDDY_UNKNOWN"));
  });

  it("remove sends unsubscribe and unsubscribed and drops the entry", async () => {
    const h = await createBuddyHarness();
    await h.roster.request(P, CLI);
    await h.inbound(P, "subscribed");
    await h.inbound(P, "subscribe");
    h.take();
    await h.roster.remove(P, CLI);
    const out = h.take();
    assert.equal(presences(out, "unsubscribe").length, 1);
    assert.equal(presences(out, "unsubscribed").length, 1);
    assert.equal(h.roster.get(P), undefined);
    assert.equal(h.roster.trusts(P), false);
    assert.equal((await h.roster.audit(P))[0]?.action, "remove");
  });

  it("rejects peers that are not server domains, or are served here", async () => {
    const h = await createBuddyHarness();
    for (const bad of ["alice@peer.example", "peer.example/res", "", "bad domain", HOST]) {
      await assert.rejects(h.roster.request(bad, CLI), code("COMITY_ERR_BUDDY_INVALID_PEER"), bad);
    }
    assert.equal(h.take().length, 0);
  });

  it("ignores subscription stanzas from user JIDs, other domains on the link, and non-s2s senders", async () => {
    const h = await createBuddyHarness();
    await h.inbound(P, "subscribe", { from: `alice@${P}` });
    await h.inbound(P, "subscribe", { from: `${P}/res` });
    await h.inbound(P, "subscribe", { from: "other.example" });
    await h.inbound(P, "subscribe", { from: `alice@${HOST}/phone`, kind: "c2s" });
    await h.inbound(P, "subscribe", { kind: "local" });
    assert.deepEqual(h.roster.list(), []);
    assert.deepEqual(h.take(), []);
    assert.equal(h.roster.metrics.ignored, 5);
  });

  it("ignores an unsolicited subscribed, and unsubscribed/unsubscribe for nothing", async () => {
    const h = await createBuddyHarness();
    await h.inbound(P, "subscribed");
    await h.inbound(P, "unsubscribed");
    await h.inbound(P, "unsubscribe");
    await h.inbound(P, undefined);
    assert.deepEqual(h.roster.list(), []);
    assert.deepEqual(h.take(), []);
  });

  it("caps pending requests globally; the excess is dropped and admins hear of each kept one once", async () => {
    const h = await createBuddyHarness({ buddies: { max_pending: 3 } });
    await Promise.all(Array.from({ length: 8 }, (_, i) => h.inbound(`p${i}.example`, "subscribe")));
    for (let i = 0; i < 8; i++) await h.inbound(`p${i}.example`, "subscribe");
    assert.equal(h.roster.pendingCount(), 3);
    assert.equal(h.roster.list().length, 3);
    assert.equal(messages(h.take()).length, 3 * 2);
    assert.equal(h.roster.metrics.requestsReceived, 3);
    assert.equal(h.roster.metrics.requestsDropped, 10);
  });

  it("answers probes: presence to peers with 'from', silence while pending, unsubscribed otherwise", async () => {
    const h = await createBuddyHarness();
    await h.inbound(P, "probe");
    assert.equal(presences(h.take(), "unsubscribed").length, 1);
    await h.inbound(P, "subscribe");
    h.take();
    await h.inbound(P, "probe");
    assert.deepEqual(h.take(), []);
    await h.roster.approve(P, CLI);
    h.take();
    await h.inbound(P, "probe");
    assert.equal(presences(h.take(), undefined).length, 1);
  });

  it("records the peer's presence, and tells admins when a peer revokes or withdraws", async () => {
    const h = await createBuddyHarness();
    await h.roster.request(P, CLI);
    await h.inbound(P, "subscribed");
    await h.inbound(P, undefined, { status: "running" });
    assert.equal(h.roster.get(P)?.peerAvailable, true);
    assert.equal(h.roster.get(P)?.peerStatus, "running");
    await h.inbound(P, "unavailable");
    assert.equal(h.roster.get(P)?.peerAvailable, false);
    await h.inbound(P, "subscribe");
    assert.equal(h.roster.get(P)?.subscription, "both");
    h.take();
    await h.inbound(P, "unsubscribed");
    assert.equal(h.roster.get(P)?.subscription, "from");
    assert.match(messages(h.take())[0] ?? "", /Server trust revoked by peer\.example/);
    await h.inbound(P, "unsubscribe");
    assert.equal(h.roster.get(P), undefined);
    assert.match(messages(h.take())[0] ?? "", /withdrawn/);
    const actions = (await h.roster.audit(P)).map((a) => a.action);
    assert.deepEqual(actions.slice(0, 2), ["inbound-unsubscribe", "revoked"]);
  });

  it("a peer declining our request clears it and the pre-approval", async () => {
    const h = await createBuddyHarness();
    await h.roster.request(P, CLI);
    await h.inbound(P, "unsubscribed");
    assert.equal(h.roster.get(P), undefined);
    await h.inbound(P, "subscribe");
    assert.equal(h.roster.get(P)?.pendingIn, true, "no pre-approval survives a refusal");
  });

  it("announces itself after start and says goodbye on shutdown", async () => {
    const h = await createBuddyHarness();
    await h.inbound("from.example", "subscribe");
    await h.roster.approve("from.example", { ...CLI });
    await h.roster.request("to.example", CLI);
    await h.inbound("to.example", "subscribed");
    h.take();
    await h.events.fire("server/started", { host: HOST });
    let out = h.take();
    assert.equal(presences(out, undefined, "from.example").length, 1);
    assert.equal(presences(out, "probe", "to.example").length, 1);
    assert.equal(presences(out, undefined, "to.example").length, 0);
    await h.events.fire("server/stopping", { host: HOST });
    out = h.take();
    assert.equal(presences(out, "unavailable", "from.example").length, 1);
    assert.equal(presences(out, "unavailable", "to.example").length, 0);
  });

  it("keeps the roster across a restart (same storage)", async () => {
    const h = await createBuddyHarness();
    await h.inbound(P, "subscribe");
    await h.roster.approve(P, CLI);
    const again = await h.restart();
    assert.equal(again.roster.get(P)?.subscription, "from");
    assert.equal(again.roster.get(P)?.pendingOut, true);
    assert.ok(again.roster.trusts("PEER.example"), "lookups prepare the domain");
  });

  it("tells listeners about every change", async () => {
    const h = await createBuddyHarness();
    const seen: string[] = [];
    const off = h.roster.onChange((c) => seen.push(`${c.action}:${c.entry?.subscription ?? "-"}`));
    await h.inbound(P, "subscribe");
    await h.roster.approve(P, CLI);
    off();
    await h.roster.remove(P, CLI);
    assert.deepEqual(seen, ["inbound-subscribe:none", "approve:from"]);
  });

  it("control methods map errors to codes and list every host", async () => {
    const h = await createBuddyHarness();
    const call = (m: string, p: Record<string, unknown>) => Promise.resolve(h.control.get(`buddies.${m}`)!(p));
    await call("request", { peer: P, note: "n", actor: "cli:ops" });
    const list = (await call("list", {})) as { peer: string; decidedBy: string; decidedVia: string }[];
    assert.equal(list[0]?.peer, P);
    assert.equal(list[0]?.decidedBy, "cli:ops");
    assert.equal(list[0]?.decidedVia, "cli");
    await assert.rejects(call("approve", { peer: P }), (e: unknown) => (e as { code?: string }).code === "COMITY_ERR_BUDDY_NOT_PENDING");
    await assert.rejects(call("request", { peer: "x@y" }), (e: unknown) => (e as { code?: string }).code === "COMITY_ERR_BUDDY_INVALID_PEER");
    const metrics = (await call("metrics", {})) as { host: string; pending: number }[];
    assert.equal(metrics[0]?.host, HOST);
    const audit = (await call("audit", { peer: P })) as { action: string }[];
    assert.equal(audit[0]?.action, "request");
  });
});
