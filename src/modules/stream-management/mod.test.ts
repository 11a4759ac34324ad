// The XEP-0198 counters and queue without sockets: h parsing, acks (also across the 2^32 wrap), ack requests,
// hibernation and the max_unacked policy. The protocol over real streams is tested in test/sm/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "../../xml/element.ts";
import type { C2sSession } from "../../core/c2s.ts";
import { ACK_GRACE_MS, SmState, failed, parseH, type SmOptions } from "./mod.ts";

/** What SmState uses of a session: its connection, hibernation flag and end(). */
function fakeSession() {
  const written: Element[] = [];
  const fake = {
    hibernating: false,
    ended: [] as string[],
    errors: [] as string[],
    conn: {
      closing: false,
      send: (el: Element) => void written.push(el),
      streamError: (err: { condition: string }) => {
        fake.errors.push(err.condition);
        fake.conn.closing = true;
      },
    },
    end: (reason: string) => {
      fake.ended.push(reason);
      return Promise.resolve();
    },
  };
  return { fake, written, session: fake as unknown as C2sSession };
}

const OPTS: SmOptions = { resumeTimeoutSeconds: 300, maxUnacked: 10, ackEvery: 3, ackDelayMs: 60_000 };
const msg = (n: number) => new Element("message", "jabber:client", { id: `m${n}` });

test("h is an unsigned 32-bit integer", () => {
  assert.equal(parseH("0"), 0);
  assert.equal(parseH("4294967295"), 4294967295);
  assert.equal(parseH("4294967296"), undefined);
  assert.equal(parseH("-1"), undefined);
  assert.equal(parseH("1e3"), undefined);
  assert.equal(parseH(undefined), undefined);
});

test("failed carries a stanza error condition", () => {
  assert.equal(failed("item-not-found").toString(), "<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
  assert.equal(failed("unexpected-request", 4).attrs["h"], "4");
});

test("stanzas are written, queued and counted; an <r/> goes out every ack_every stanzas", () => {
  const { session, written } = fakeSession();
  const sm = new SmState(session, OPTS, undefined, new Map());
  for (let i = 1; i <= 7; i++) sm.send(msg(i));
  assert.equal(sm.sent, 7);
  assert.equal(sm.unacked, 7);
  assert.deepEqual(written.map((e) => (e.name === "r" ? "r" : e.attrs["id"])), ["m1", "m2", "m3", "r", "m4", "m5", "m6", "r", "m7"]);
  assert.ok(sm.ack(5));
  assert.equal(sm.unacked, 2);
  assert.ok(sm.ack(5), "the same h again frees nothing");
  assert.equal(sm.ack(8), false, "more than was sent");
  assert.ok(sm.ack(7));
  assert.equal(sm.unacked, 0);
  sm.close();
});

test("an h behind the last acknowledged count reads, modulo 2^32, as far too high", () => {
  const { session } = fakeSession();
  const sm = new SmState(session, OPTS, undefined, new Map());
  for (let i = 0; i < 3; i++) sm.send(msg(i));
  assert.ok(sm.ack(2));
  assert.equal(sm.ack(1), false);
  assert.equal(sm.ack(0xffffffff), false);
  assert.ok(sm.ack(3));
  sm.close();
});

test("a hibernating session that passes max_unacked is ended, its queue handed back for settling", () => {
  const { fake, session, written } = fakeSession();
  const registry = new Map<string, SmState>();
  const sm = new SmState(session, OPTS, { id: "abc", seconds: 300 }, registry);
  assert.equal(registry.get("abc"), sm);
  assert.ok(sm.hibernate());
  fake.hibernating = true;
  for (let i = 1; i <= 11; i++) sm.send(msg(i));
  assert.equal(written.length, 0, "nothing is written to a dead connection");
  assert.deepEqual(fake.ended, ["too many stanzas queued for resumption"]);
  const left = sm.close();
  assert.equal(left.length, 11);
  assert.equal(registry.size, 0, "the resumption id is forgotten");
});

test("a connected client over max_unacked keeps its stream while it acknowledged recently, and loses it when it did not", () => {
  const { fake, session } = fakeSession();
  const sm = new SmState(session, OPTS, undefined, new Map());
  for (let i = 1; i <= 15; i++) sm.send(msg(i));
  assert.deepEqual(fake.errors, [], "a burst right after an ack is tolerated");
  const realNow = Date.now;
  try {
    Date.now = () => realNow() + ACK_GRACE_MS + 1000;
    sm.send(msg(16));
  } finally {
    Date.now = realNow;
  }
  assert.deepEqual(fake.errors, ["policy-violation"]);
  assert.equal(sm.close().length, 16, "everything unacknowledged is handed back");
});

test("without a resumption id, or with resumption disabled, the session does not hibernate", () => {
  const { session } = fakeSession();
  assert.equal(new SmState(session, OPTS, undefined, new Map()).hibernate(), false);
  const zero = new SmState(session, OPTS, { id: "z", seconds: 0 }, new Map());
  assert.equal(zero.hibernate(), false);
});

test("after ack_delay, stanzas not yet asked for are asked for once", async () => {
  const { session, written } = fakeSession();
  const sm = new SmState(session, { ...OPTS, ackEvery: 100, ackDelayMs: 30 }, undefined, new Map());
  sm.send(msg(1));
  sm.send(msg(2));
  assert.equal(written.filter((e) => e.name === "r").length, 0);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(written.filter((e) => e.name === "r").length, 1);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(written.filter((e) => e.name === "r").length, 1, "no repeated request without new stanzas");
  sm.close();
});

test("acks in small steps free the right stanzas however the queue is compacted", () => {
  const { session } = fakeSession();
  const sm = new SmState(session, { ...OPTS, maxUnacked: 1000 }, undefined, new Map());
  for (let i = 1; i <= 300; i++) sm.send(msg(i));
  for (let h = 7; h <= 280; h += 7) assert.ok(sm.ack(h));
  assert.equal(sm.unacked, 20);
  assert.equal(sm.ack(301), false);
  const left = sm.close();
  assert.deepEqual(left.map((e) => e.attrs["id"]), Array.from({ length: 20 }, (_, i) => `m${281 + i}`));
});
