// Unit tests of the XEP-0352 module's pure parts: what waits and what goes at once, squashing, order, the cap and
// draining. The session is a recorder of what would be written. Socket tests: test/csi/raw.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../xml/parser.ts";
import type { Element } from "../../xml/element.ts";
import type { C2sSession } from "../../core/c2s.ts";
import { classify, CsiFilter, type CsiStats } from "./mod.ts";

const el = (s: string) => parseXml(s.replace(/^<(\w+)/, "<$1 xmlns='jabber:client'"));
const urgent = (s: string) => classify(el(s)).urgent;

test("what cannot wait: bodies, calls, IQs, errors, subscriptions, own MUC presence, encrypted and carbon copies of bodies", () => {
  for (const s of [
    "<message type='chat' from='a@x/r'><body>hi</body></message>",
    "<message type='groupchat' from='room@muc.x/n'><subject>topic</subject></message>",
    "<message from='a@x/r'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>",
    "<message from='a@x/r'><retract xmlns='urn:xmpp:jingle-message:0' id='c1'/></message>",
    "<message from='a@x/r'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
    "<message from='me@x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@x/r'><body>hi</body></message></forwarded></received></message>",
    "<message from='me@x'><result xmlns='urn:xmpp:mam:2' id='1'/></message>",
    "<message from='room@muc.x'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@x'/></x></message>",
    "<iq type='set' id='push' from='me@x'><query xmlns='jabber:iq:roster'/></iq>",
    "<iq type='result' id='r1' from='x'/>",
    "<message type='error' from='a@x/r'><error type='cancel'/></message>",
    "<presence type='subscribe' from='a@x'/>",
    "<presence type='error' from='a@x'/>",
    "<presence from='room@muc.x/me'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>",
  ]) assert.equal(urgent(s), true, s);
});

test("what waits: presence updates, MUC presence, chat states, receipts, PEP events, carbon copies of chat states", () => {
  for (const s of [
    "<presence from='a@x/r'><show>away</show></presence>",
    "<presence type='unavailable' from='a@x/r'/>",
    "<presence from='room@muc.x/other'><x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/></x></presence>",
    "<message type='chat' from='a@x/r'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<message from='a@x/r'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
    "<message type='headline' from='a@x'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>",
    "<message from='me@x'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><paused xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></sent></message>",
  ]) assert.equal(urgent(s), false, s);
  assert.deepEqual(classify(el("<presence from='a@x/r'/>")), { urgent: false, key: "p a@x/r" });
  assert.deepEqual(classify(el("<message from='a@x/r'><paused xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread></message>")), { urgent: false, key: "c a@x/r" });
  assert.deepEqual(classify(el("<message from='a@x/r'><received xmlns='urn:xmpp:receipts' id='m1'/></message>")), { urgent: false, key: "" });
});

/** A filter over a recorder session: `out` is what reached the client, as "from:kind" labels. */
function setup(maxHeld = 100): { f: CsiFilter; out: string[]; stats: CsiStats; done: () => number } {
  const out: string[] = [];
  const label = (st: Element) => `${st.attrs["from"]}:${st.elements[0]?.name ?? st.name}${st.getChildText("show") ? `=${st.getChildText("show")}` : ""}`;
  const session = { sendPast: (_f: unknown, st: Element) => void out.push(label(st)) } as unknown as C2sSession;
  const stats: CsiStats = { held: 0, squashed: 0, overflows: 0 };
  let dones = 0;
  const f = new CsiFilter(session, { maxHeld, stats, onDone: () => void dones++ });
  return { f, out, stats, done: () => dones };
}

test("held stanzas are squashed per contact and go out, in order, before an urgent one", () => {
  const { f, out, stats } = setup();
  const pass = (s: string) => {
    const st = el(s);
    const r = f.filter(st);
    if (r) out.push(`${r.attrs["from"]}:${r.elements[0]?.name}`);
  };
  pass("<presence from='a@x/r'><show>away</show></presence>");
  pass("<presence from='b@x/r'><show>dnd</show></presence>");
  pass("<message from='a@x/r'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
  pass("<presence from='a@x/r'><show>xa</show></presence>");
  pass("<message from='a@x/r'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>");
  assert.deepEqual(out, [], "nothing written while inactive");
  assert.equal(f.held, 3);
  assert.equal(stats.squashed, 2);
  pass("<message type='chat' from='a@x/r'><body>hi</body></message>");
  assert.deepEqual(out, ["b@x/r:show=dnd", "a@x/r:show=xa", "a@x/r:paused", "a@x/r:body"]);
  assert.equal(f.held, 0);
});

test("past max_held everything held is flushed; drain flushes and ends the inactive state", () => {
  const { f, out, stats, done } = setup(3);
  for (const u of ["a", "b", "c"]) assert.equal(f.filter(el(`<presence from='${u}@x/r'/>`)), undefined);
  assert.deepEqual(out, []);
  f.filter(el("<presence from='d@x/r'/>"));
  assert.deepEqual(out, ["a@x/r:presence", "b@x/r:presence", "c@x/r:presence", "d@x/r:presence"]);
  assert.equal(stats.overflows, 1);
  f.filter(el("<presence from='e@x/r'/>"));
  f.drain();
  assert.deepEqual(out.slice(4), ["e@x/r:presence"]);
  assert.equal(done(), 1);
});
