// Roster module tests over the in-process harness: RFC 6121 §2 get/set/remove, pushes, versioning, errors, §3 flows.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import roster from "./mod.ts";
import { createHarness, type FakeSession, type Harness } from "./_harness.ts";

const R = "jabber:iq:roster";
let n = 0;

async function setup(overrides: Record<string, unknown> = {}): Promise<Harness> {
  const h = await createHarness([roster], overrides);
  await h.addUser("alice");
  await h.addUser("bob");
  return h;
}

/** Send an iq and return the reply to it (and leave other stanzas in the session's queue). */
async function iq(h: Harness, s: FakeSession, type: "get" | "set", inner: string, to?: string): Promise<Element> {
  const id = `q${++n}`;
  await h.send(s, `<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ""}>${inner}</iq>`);
  const i = s.received.findIndex((e) => e.name === "iq" && e.attrs["id"] === id);
  assert.ok(i >= 0, `no reply to ${id}: ${s.received.map(String).join("\n")}`);
  return s.received.splice(i, 1)[0]!;
}

function condition(reply: Element): string | undefined {
  assert.equal(reply.attrs["type"], "error", reply.toString());
  return reply.getChild("error")?.elements[0]?.name;
}

function pushes(s: FakeSession): Element[] {
  return s.take().filter((e) => e.name === "iq" && e.attrs["type"] === "set").map((e) => e.getChild("query", R)!);
}

test("an empty roster is returned with version 0 and the session then gets pushes", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  const res = await iq(h, a, "get", `<query xmlns='${R}'/>`);
  assert.equal(res.attrs["type"], "result");
  assert.equal(res.getChild("query", R)!.attrs["ver"], "0");
  assert.equal(res.getChild("query", R)!.elements.length, 0);
  assert.equal(a.interested, true);
});

test("a roster set stores name and groups and pushes to every interested resource with the new version", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  const b = h.login("alice@localhost/b");
  const c = h.login("alice@localhost/c");
  await iq(h, a, "get", `<query xmlns='${R}'/>`);
  await iq(h, b, "get", `<query xmlns='${R}'/>`);
  const res = await iq(h, a, "set", `<query xmlns='${R}'><item jid='Carol@Example.org' name='Carol'><group>Friends</group><group>Work</group></item></query>`);
  assert.equal(res.attrs["type"], "result");
  assert.equal(res.elements.length, 0);
  for (const s of [a, b]) {
    const [p] = pushes(s);
    assert.ok(p);
    assert.equal(p.attrs["ver"], "1");
    const item = p.getChild("item")!;
    assert.equal(item.attrs["jid"], "carol@example.org");
    assert.equal(item.attrs["name"], "Carol");
    assert.equal(item.attrs["subscription"], "none");
    assert.deepEqual(item.getChildren("group").map((g) => g.text()), ["Friends", "Work"]);
  }
  assert.deepEqual(pushes(c), [], "a resource that never fetched the roster gets no push");
  // An update keeps the subscription state and replaces name and groups.
  await iq(h, a, "set", `<query xmlns='${R}'><item jid='carol@example.org' subscription='both'/></query>`);
  const item = (await h.storage.rosters.getItem("localhost", "alice", "carol@example.org"))!;
  assert.equal(item.subscription, "none", "a subscription attribute other than remove is ignored");
  assert.equal(item.name, undefined);
  assert.deepEqual(item.groups, []);
});

test("roster versioning: the current ver gets an empty result, an old or empty one the whole roster", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  await iq(h, a, "set", `<query xmlns='${R}'><item jid='carol@example.org'/></query>`);
  await iq(h, a, "set", `<query xmlns='${R}'><item jid='dave@example.org'/></query>`);
  const same = await iq(h, a, "get", `<query xmlns='${R}' ver='2'/>`);
  assert.equal(same.attrs["type"], "result");
  assert.equal(same.elements.length, 0);
  for (const ver of ["1", ""]) {
    const full = await iq(h, a, "get", `<query xmlns='${R}' ver='${ver}'/>`);
    const q = full.getChild("query", R)!;
    assert.equal(q.attrs["ver"], "2");
    assert.deepEqual(q.getChildren("item").map((i) => i.attrs["jid"]).sort(), ["carol@example.org", "dave@example.org"]);
  }
});

test("roster set errors: more than one item, no jid, bad groups and names, own JID, full JID", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  const cases: [string, string][] = [
    [`<item jid='c@example.org'/><item jid='d@example.org'/>`, "bad-request"],
    [``, "bad-request"],
    [`<item name='x'/>`, "bad-request"],
    [`<item jid='@@'/>`, "jid-malformed"],
    [`<item jid='c@example.org'><group></group></item>`, "not-acceptable"],
    [`<item jid='c@example.org' name='${"n".repeat(1025)}'/>`, "not-acceptable"],
    [`<item jid='c@example.org'><group>${"g".repeat(1025)}</group></item>`, "not-acceptable"],
    [`<item jid='c@example.org'><group>A</group><group>A</group></item>`, "bad-request"],
    [`<item jid='alice@localhost'/>`, "not-allowed"],
    [`<item jid='c@example.org/res'/>`, "bad-request"],
  ];
  for (const [inner, cond] of cases) {
    assert.equal(condition(await iq(h, a, "set", `<query xmlns='${R}'>${inner}</query>`)), cond, inner);
  }
  assert.equal((await h.storage.rosters.get("localhost", "alice")).items.length, 0);
});

test("another user's roster can be neither read nor changed (forbidden)", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  assert.equal(condition(await iq(h, a, "get", `<query xmlns='${R}'/>`, "bob@localhost")), "forbidden");
  assert.equal(condition(await iq(h, a, "set", `<query xmlns='${R}'><item jid='c@example.org'/></query>`, "bob@localhost")), "forbidden");
});

test("roster.max_items: a new item beyond the limit is not-allowed, updates still work", async () => {
  const h = await setup({ roster: { max_items: 1 } });
  const a = h.login("alice@localhost/a");
  assert.equal((await iq(h, a, "set", `<query xmlns='${R}'><item jid='c@example.org'/></query>`)).attrs["type"], "result");
  assert.equal(condition(await iq(h, a, "set", `<query xmlns='${R}'><item jid='d@example.org'/></query>`)), "not-allowed");
  assert.equal((await iq(h, a, "set", `<query xmlns='${R}'><item jid='c@example.org' name='C'/></query>`)).attrs["type"], "result");
  await h.send(a, `<presence type='subscribe' to='d@example.org'/>`);
  const err = a.take().find((e) => e.name === "presence" && e.attrs["type"] === "error");
  assert.ok(err, "a subscribe that would add an item beyond the limit bounces");
  assert.equal(h.remote.length, 0);
  // Approving a pending request would add an item too: refused the same way, and the request stays pending.
  const b = h.login("bob@localhost/b");
  await h.send(b, `<presence type='subscribe' to='alice@localhost'/>`);
  assert.equal((await h.storage.rosters.pendingIn("localhost", "alice")).length, 1);
  a.take();
  await h.send(a, `<presence type='subscribed' to='bob@localhost'/>`);
  const refused = a.take().find((e) => e.name === "presence" && e.attrs["type"] === "error");
  assert.equal(refused?.getChild("error")?.elements[0]?.name, "not-allowed");
  assert.equal(await h.storage.rosters.count("localhost", "alice"), 1);
  assert.equal((await h.storage.rosters.pendingIn("localhost", "alice")).length, 1);
  assert.ok(!b.take().some((e) => e.name === "presence" && e.attrs["type"] === "subscribed"), "bob is not told he was approved");
});

test("removing a missing item is item-not-found; removing an item pushes it and ends the subscription both ways", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  await iq(h, a, "get", `<query xmlns='${R}'/>`);
  assert.equal(condition(await iq(h, a, "set", `<query xmlns='${R}'><item jid='c@example.org' subscription='remove'/></query>`)), "item-not-found");
  await h.storage.rosters.setItem("localhost", "alice", { jid: "carol@remote.example", subscription: "both", ask: false, approved: false, groups: [] });
  await h.send(a, `<presence/>`);
  a.take();
  assert.equal((await iq(h, a, "set", `<query xmlns='${R}'><item jid='carol@remote.example' subscription='remove'/></query>`)).attrs["type"], "result");
  const [p] = pushes(a);
  assert.equal(p!.getChild("item")!.attrs["subscription"], "remove");
  // Remote contacts are reached by address only.
  assert.deepEqual(h.remote.map((e) => `${e.attrs["type"] ?? "available"} ${e.attrs["from"]} ${e.attrs["to"]}`), [
    "unsubscribe alice@localhost carol@remote.example",
    "unsubscribed alice@localhost carol@remote.example",
    "unavailable alice@localhost/a carol@remote.example",
  ]);
  assert.equal(await h.storage.rosters.getItem("localhost", "alice", "carol@remote.example"), undefined);
});

test("a subscription request to a remote contact is stamped with the bare JID and routed by address", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  await iq(h, a, "get", `<query xmlns='${R}'/>`);
  await h.send(a, `<presence type='subscribe' to='carol@remote.example/phone' id='s1'><status>hi</status></presence>`);
  assert.equal(h.remote.length, 1);
  const sent = h.remote[0]!;
  assert.equal(sent.attrs["from"], "alice@localhost");
  assert.equal(sent.attrs["to"], "carol@remote.example");
  assert.equal(sent.getChildText("status"), "hi");
  const item = pushes(a)[0]!.getChild("item")!;
  assert.equal(item.attrs["ask"], "subscribe");
  assert.equal(item.attrs["subscription"], "none");
});

test("local subscribe, approve and mutual subscription update both rosters", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  const b = h.login("bob@localhost/b");
  for (const s of [a, b]) {
    await iq(h, s, "get", `<query xmlns='${R}'/>`);
    await h.send(s, `<presence/>`);
    s.take();
  }
  await h.send(a, `<presence type='subscribe' to='bob@localhost'/>`);
  const got = b.take();
  const req = got.find((e) => e.name === "presence")!;
  assert.equal(req.attrs["type"], "subscribe");
  assert.equal(req.attrs["from"], "alice@localhost");
  assert.deepEqual(got.filter((e) => e.name === "iq"), [], "a pending-in request creates no roster item");
  assert.equal(pushes(a)[0]!.getChild("item")!.attrs["ask"], "subscribe");

  await h.send(b, `<presence type='subscribed' to='alice@localhost'/>`);
  assert.equal(pushes(b)[0]!.getChild("item")!.attrs["subscription"], "from");
  const aGot = a.take();
  assert.ok(aGot.some((e) => e.name === "presence" && e.attrs["type"] === "subscribed" && e.attrs["from"] === "bob@localhost"));
  assert.ok(aGot.some((e) => e.name === "presence" && e.attrs["type"] === undefined && e.attrs["from"] === "bob@localhost/b"), "approval sends presence");
  const push = aGot.find((e) => e.name === "iq")!.getChild("query", R)!.getChild("item")!;
  assert.equal(push.attrs["subscription"], "to");
  assert.equal(push.attrs["ask"], undefined);

  await h.send(b, `<presence type='subscribe' to='alice@localhost'/>`);
  await h.send(a, `<presence type='subscribed' to='bob@localhost'/>`);
  assert.equal((await h.storage.rosters.getItem("localhost", "alice", "bob@localhost"))!.subscription, "both");
  assert.equal((await h.storage.rosters.getItem("localhost", "bob", "alice@localhost"))!.subscription, "both");
  assert.deepEqual(await h.storage.rosters.pendingIn("localhost", "alice"), []);
  assert.deepEqual(await h.storage.rosters.pendingIn("localhost", "bob"), []);
});

test("a request to an offline user is kept and delivered on the next initial presence until answered", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  await h.send(a, `<presence/>`);
  await h.send(a, `<presence type='subscribe' to='bob@localhost'><status>it is alice</status></presence>`);
  for (let i = 0; i < 2; i++) {
    const b = h.login("bob@localhost/b");
    await h.send(b, `<presence/>`);
    const req = b.take().find((e) => e.attrs["type"] === "subscribe")!;
    assert.equal(req.attrs["from"], "alice@localhost");
    assert.equal(req.getChildText("status"), "it is alice");
    await h.end(b);
  }
  const b = h.login("bob@localhost/b");
  await h.send(b, `<presence type='unsubscribed' to='alice@localhost'/>`);
  assert.ok(a.take().some((e) => e.attrs["type"] === "unsubscribed"));
  assert.equal((await h.storage.rosters.getItem("localhost", "alice", "bob@localhost"))!.ask, false);
  await h.send(b, `<presence/>`);
  assert.deepEqual(b.take().filter((e) => e.attrs["type"] === "subscribe"), []);
});

test("§3.4 pre-approval: a later request is approved at once and never shown to the user", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  const b = h.login("bob@localhost/b");
  await h.send(a, `<presence/>`);
  a.take();
  await iq(h, b, "get", `<query xmlns='${R}'/>`);
  await h.send(b, `<presence/>`);
  b.take();
  await h.send(b, `<presence type='subscribed' to='alice@localhost'/>`);
  assert.deepEqual(a.take(), [], "a pre-approval is not routed");
  const item = pushes(b)[0]!.getChild("item")!;
  assert.equal(item.attrs["approved"], "true");
  assert.equal(item.attrs["subscription"], "none");
  await h.send(a, `<presence type='subscribe' to='bob@localhost'/>`);
  assert.ok(a.take().some((e) => e.attrs["type"] === "subscribed" && e.attrs["from"] === "bob@localhost"));
  const bGot = b.take();
  assert.deepEqual(bGot.filter((e) => e.name === "presence"), []);
  const after = bGot.find((e) => e.name === "iq")!.getChild("query", R)!.getChild("item")!;
  assert.equal(after.attrs["subscription"], "from");
  assert.equal(after.attrs["approved"], undefined);
});

test("unsubscribe and unsubscribed end each direction and the contact sees the user go offline", async () => {
  const h = await setup();
  for (const [u, c] of [["alice", "bob"], ["bob", "alice"]]) {
    await h.storage.rosters.setItem("localhost", u!, { jid: `${c}@localhost`, subscription: "both", ask: false, approved: false, groups: [] });
  }
  const a = h.login("alice@localhost/a");
  const b = h.login("bob@localhost/b");
  await h.send(a, `<presence/>`);
  await h.send(b, `<presence/>`);
  a.take();
  b.take();
  // Alice stops watching Bob: Bob's server tells Alice that Bob is offline.
  await h.send(a, `<presence type='unsubscribe' to='bob@localhost'/>`);
  assert.equal((await h.storage.rosters.getItem("localhost", "alice", "bob@localhost"))!.subscription, "from");
  assert.equal((await h.storage.rosters.getItem("localhost", "bob", "alice@localhost"))!.subscription, "to");
  assert.ok(b.take().some((e) => e.attrs["type"] === "unsubscribe"));
  assert.ok(a.take().some((e) => e.attrs["type"] === "unavailable" && e.attrs["from"] === "bob@localhost/b"));
  // Alice stops Bob watching her: her resources go offline for him.
  await h.send(a, `<presence type='unsubscribed' to='bob@localhost'/>`);
  assert.equal((await h.storage.rosters.getItem("localhost", "alice", "bob@localhost"))!.subscription, "none");
  assert.equal((await h.storage.rosters.getItem("localhost", "bob", "alice@localhost"))!.subscription, "none");
  const bGot = b.take();
  assert.ok(bGot.some((e) => e.attrs["type"] === "unsubscribed"));
  assert.ok(bGot.some((e) => e.attrs["type"] === "unavailable" && e.attrs["from"] === "alice@localhost/a"));
});

test("a request to a user that does not exist is answered with unsubscribed", async () => {
  const h = await setup();
  const a = h.login("alice@localhost/a");
  await h.send(a, `<presence/>`);
  await h.send(a, `<presence type='subscribe' to='nobody@localhost'/>`);
  assert.ok(a.take().some((e) => e.attrs["type"] === "unsubscribed" && e.attrs["from"] === "nobody@localhost"));
});

test("a repeated request from a contact that is already subscribed is answered in the user's name", async () => {
  const h = await setup();
  await h.storage.rosters.setItem("localhost", "bob", { jid: "alice@localhost", subscription: "from", ask: false, approved: false, groups: [] });
  const a = h.login("alice@localhost/a");
  const b = h.login("bob@localhost/b");
  await h.send(a, `<presence/>`);
  await h.send(b, `<presence/>`);
  b.take();
  await h.send(a, `<presence type='subscribe' to='bob@localhost'/>`);
  assert.deepEqual(b.take().filter((e) => e.name === "presence"), []);
  const aGot = a.take();
  assert.ok(aGot.some((e) => e.attrs["type"] === "subscribed"));
  assert.equal((await h.storage.rosters.getItem("localhost", "alice", "bob@localhost"))!.subscription, "to");
});
