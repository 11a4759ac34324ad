// Pins XEP-0267 §2: "A server MUST NOT send such a presence subscription request unless explicitly requested to
// do so by the server administrator(s)". No inbound stanza, in any roster state, and no lifecycle event makes the
// server-buddies module send `subscribe` from the host JID; only the admin actions request() and approve() do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createBuddyHarness, HOST, type BuddyHarness } from "../../src/modules/server-buddies/_harness.ts";

const CLI = { actor: "cli:root", via: "cli" as const };
const TYPES = [undefined, "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "unavailable", "error", "bogus"];

const subscribes = (h: BuddyHarness): string[] =>
  h.sent.map((e) => e.toString()).filter((l) => l.startsWith("<presence") && l.includes(`from='${HOST}'`) && l.includes("type='subscribe'"));

/** Drive a peer into a state with admin actions, then clear the record of what was sent. */
const STATES: Record<string, (h: BuddyHarness, p: string) => Promise<void>> = {
  unknown: async () => {},
  "pending in": async (h, p) => void (await h.inbound(p, "subscribe")),
  "pending out": async (h, p) => void (await h.roster.request(p, CLI)),
  "pending out, one-way": async (h, p) => void (await h.roster.request(p, { ...CLI, mutual: false })),
  to: async (h, p) => {
    await h.roster.request(p, { ...CLI, mutual: false });
    await h.inbound(p, "subscribed");
  },
  from: async (h, p) => {
    await h.inbound(p, "subscribe");
    await h.roster.approve(p, CLI);
    await h.inbound(p, "unsubscribed"); // the peer refuses our reciprocal request: 'from' only
  },
  both: async (h, p) => {
    await h.roster.request(p, CLI);
    await h.inbound(p, "subscribed");
    await h.inbound(p, "subscribe");
  },
};

test("no inbound presence in any state, and no start or stop, makes the module send subscribe", async () => {
  for (const [state, enter] of Object.entries(STATES)) {
    for (const type of TYPES) {
      for (const kind of ["s2s", "c2s", "local"] as const) {
        const h = await createBuddyHarness();
        const p = "peer.example";
        await enter(h, p);
        h.sent.length = 0;
        await h.inbound(p, type, kind === "c2s" ? { kind, from: `alice@${HOST}/x` } : { kind });
        await h.inbound(p, type, { from: `alice@${p}` });
        await h.inbound(p, type); // twice: repeats too
        await h.events.fire("server/started", { host: HOST });
        await h.events.fire("server/stopping", { host: HOST });
        await h.settle();
        assert.deepEqual(subscribes(h), [], `${state} + ${type ?? "available"} from ${kind}`);
      }
    }
  }
});

test("deny, cancel and remove never send subscribe", async () => {
  const h = await createBuddyHarness();
  await h.inbound("a.example", "subscribe");
  await h.roster.request("b.example", CLI);
  await h.roster.request("c.example", CLI);
  await h.inbound("c.example", "subscribed");
  h.sent.length = 0;
  await h.roster.deny("a.example", CLI);
  await h.roster.cancel("b.example", CLI);
  await h.roster.remove("c.example", CLI);
  assert.deepEqual(subscribes(h), []);
});

test("only request() and an admin's approve() (reciprocating) send subscribe", async () => {
  const h = await createBuddyHarness();
  await h.roster.request("a.example", CLI);
  assert.equal(subscribes(h).length, 1);
  h.sent.length = 0;
  await h.inbound("b.example", "subscribe");
  await h.roster.approve("b.example", CLI);
  assert.equal(subscribes(h).length, 1);
  const off = await createBuddyHarness({ buddies: { reciprocate: false } });
  await off.inbound("b.example", "subscribe");
  await off.roster.approve("b.example", CLI);
  assert.equal(subscribes(off).length, 0);
});

test("in the module's source, one function builds a subscribe, called only from request and approve", () => {
  const dir = join(import.meta.dirname, "../../src/modules/server-buddies");
  const sources = readdirSync(dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.startsWith("_"));
  let builds = 0;
  for (const f of sources) {
    const text = readFileSync(join(dir, f), "utf8");
    // Every "subscribe" literal that is neither the inbound switch's case label nor the set of types the hook
    // recognises is a stanza being built.
    builds += text.split("\n").filter((l) => l.includes('"subscribe"') && !/case "subscribe":|new Set\(\[/.test(l)).length;
    if (f !== "roster.ts") assert.doesNotMatch(text, /sendSubscribe/, f);
  }
  assert.equal(builds, 1);
  const roster = readFileSync(join(dir, "roster.ts"), "utf8");
  const sendSubscribe = /#sendSubscribe\(peer: string\): void \{[^}]*type: "subscribe"/;
  assert.match(roster, sendSubscribe, "the one subscribe is built in #sendSubscribe");
  const calls = [...roster.matchAll(/this\.#sendSubscribe\(/g)].map((m) => m.index);
  assert.equal(calls.length, 2);
  const methodAt = (i: number): string => [...roster.slice(0, i).matchAll(/^ {2}(?:async )?(#?\w+)\(/gm)].at(-1)?.[1] ?? "";
  assert.deepEqual(calls.map((i) => methodAt(i!)).sort(), ["#approve", "request"]);
});
