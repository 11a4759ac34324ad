// Presence module tests (RFC 6121 §4) over the roster module's in-process harness, with both modules loaded.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { parseJid } from "../../xmpp/jid.ts";
import type { Subscription } from "../../storage/types.ts";
import roster from "../roster/mod.ts";
import presence from "./mod.ts";
import { createHarness, type Harness } from "../roster/_harness.ts";

async function setup(items: [string, string, Subscription][] = []): Promise<Harness> {
  const h = await createHarness([roster, presence]);
  for (const u of ["alice", "bob", "carol"]) await h.addUser(u);
  for (const [user, contact, subscription] of items) {
    await h.storage.rosters.setItem("localhost", user, { jid: contact, subscription, ask: false, approved: false, groups: [] });
  }
  return h;
}

/** "type from to" of each presence stanza. */
function seen(stanzas: Element[]): string[] {
  return stanzas.filter((e) => e.name === "presence").map((e) => `${e.attrs["type"] ?? "available"} ${e.attrs["from"]} ${e.attrs["to"]}`);
}

test("initial presence goes to subscribers and the user's own resources, and probes the contacts it watches", async () => {
  const h = await setup([
    ["alice", "bob@localhost", "from"],
    ["alice", "carol@localhost", "to"],
    ["alice", "dave@remote.example", "both"],
    ["bob", "alice@localhost", "to"],
  ]);
  const b = h.login("bob@localhost/b");
  await h.send(b, `<presence/>`);
  const a1 = h.login("alice@localhost/one");
  const a2 = h.login("alice@localhost/two");
  await h.send(a2, `<presence><show>away</show></presence>`);
  a2.take();
  b.take();
  h.remote.length = 0;
  await h.send(a1, `<presence><priority>5</priority></presence>`);
  const got = b.take();
  assert.deepEqual(seen(got), ["available alice@localhost/one bob@localhost"]);
  assert.equal(got[0]!.getChildText("priority"), "5");
  assert.deepEqual(seen(a2.take()), ["available alice@localhost/one alice@localhost/two"]);
  // The sender sees its own presence and its other resource's.
  assert.deepEqual(seen(a1.take()).sort(), ["available alice@localhost/one alice@localhost/one", "available alice@localhost/two alice@localhost/one"]);
  assert.deepEqual(seen(h.remote).sort(), ["available alice@localhost/one dave@remote.example", "probe alice@localhost dave@remote.example"]);
});

test("a probe is answered with each available resource's presence, or unavailable, and only for subscribers", async () => {
  const h = await setup([
    ["alice", "bob@localhost", "both"],
    ["bob", "alice@localhost", "both"],
  ]);
  const b1 = h.login("bob@localhost/one");
  const b2 = h.login("bob@localhost/two");
  await h.send(b1, `<presence><status>one</status></presence>`);
  await h.send(b2, `<presence><status>two</status></presence>`);
  const a = h.login("alice@localhost/a");
  await h.send(a, `<presence/>`);
  const got = a.take().filter((e) => e.attrs["from"]?.startsWith("bob@"));
  assert.deepEqual(got.map((e) => `${e.attrs["from"]} ${e.getChildText("status")}`).sort(), ["bob@localhost/one one", "bob@localhost/two two"]);
  // Bob offline: the probe gets unavailable from his bare JID.
  await h.end(b1);
  await h.end(b2);
  const a2 = h.login("alice@localhost/a2");
  await h.send(a2, `<presence/>`);
  assert.ok(seen(a2.take()).includes("unavailable bob@localhost alice@localhost"));
  // Carol has no subscription to Bob: her probe learns nothing.
  const c = h.login("carol@localhost/c");
  await h.send(c, `<presence/>`);
  c.take();
  const probe = parseXml(`<presence type='probe' from='carol@localhost' to='bob@localhost'/>`);
  await h.router.route(probe, parseJid("carol@localhost"), parseJid("bob@localhost"), { kind: "local", jid: parseJid("localhost") });
  await h.settle();
  // The answer is `unsubscribed`, which Carol's side (A.3.4, state None) consumes without delivering.
  assert.deepEqual(seen(c.take()), []);
  const remoteProbe = parseXml(`<presence type='probe' from='eve@remote.example' to='bob@localhost'/>`);
  await h.router.route(remoteProbe, parseJid("eve@remote.example"), parseJid("bob@localhost"), { kind: "s2s", jid: parseJid("remote.example") });
  await h.settle();
  assert.deepEqual(seen(h.remote), ["unsubscribed bob@localhost eve@remote.example"]);
});

test("presence updates and explicit unavailable reach subscribers, own resources and directed recipients", async () => {
  const h = await setup([["alice", "bob@localhost", "from"]]);
  const b = h.login("bob@localhost/b");
  const c = h.login("carol@localhost/c");
  await h.send(b, `<presence/>`);
  await h.send(c, `<presence/>`);
  const a = h.login("alice@localhost/a");
  await h.send(a, `<presence/>`);
  await h.send(a, `<presence to='carol@localhost/c'><status>directed</status></presence>`);
  assert.deepEqual([...a.directed], ["carol@localhost/c"]);
  b.take();
  c.take();
  await h.send(a, `<presence><show>dnd</show></presence>`);
  assert.deepEqual(seen(b.take()), ["available alice@localhost/a bob@localhost"]);
  assert.deepEqual(seen(c.take()), [], "updates are not sent to directed recipients");
  a.take();
  await h.send(a, `<presence type='unavailable'><status>bye</status></presence>`);
  assert.deepEqual(seen(b.take()), ["unavailable alice@localhost/a bob@localhost"]);
  const cGot = c.take();
  assert.deepEqual(seen(cGot), ["unavailable alice@localhost/a carol@localhost/c"]);
  assert.equal(cGot[0]!.getChildText("status"), "bye");
  assert.deepEqual(seen(a.take()), ["unavailable alice@localhost/a alice@localhost/a"]);
  assert.equal(a.directed.size, 0);
});

test("a session that ends without unavailable presence goes offline for subscribers, resources and directed recipients", async () => {
  const h = await setup([["alice", "bob@localhost", "both"]]);
  const b = h.login("bob@localhost/b");
  const c = h.login("carol@localhost/c");
  await h.send(b, `<presence/>`);
  await h.send(c, `<presence/>`);
  const a1 = h.login("alice@localhost/one");
  const a2 = h.login("alice@localhost/two");
  await h.send(a1, `<presence/>`);
  await h.send(a2, `<presence/>`);
  await h.send(a1, `<presence to='carol@localhost'/>`);
  await h.send(a1, `<presence to='bob@localhost/b'/>`);
  for (const s of [a1, a2, b, c]) s.take();
  await h.end(a1);
  assert.deepEqual(seen(b.take()), ["unavailable alice@localhost/one bob@localhost"], "a subscriber is told once");
  assert.deepEqual(seen(c.take()), ["unavailable alice@localhost/one carol@localhost"]);
  assert.deepEqual(seen(a2.take()), ["unavailable alice@localhost/one alice@localhost/two"]);
});

test("a session that only sent directed presence tells those recipients when it ends", async () => {
  const h = await setup();
  const c = h.login("carol@localhost/c");
  await h.send(c, `<presence/>`);
  const a = h.login("alice@localhost/a");
  await h.send(a, `<presence to='carol@localhost/c'/>`);
  await h.send(a, `<presence to='bob@localhost'/>`);
  await h.send(a, `<presence to='bob@localhost' type='unavailable'/>`);
  assert.deepEqual([...a.directed], ["carol@localhost/c"]);
  c.take();
  await h.end(a);
  assert.deepEqual(seen(c.take()), ["unavailable alice@localhost/a carol@localhost/c"]);
});
