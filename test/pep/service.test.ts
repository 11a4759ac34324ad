// The standalone publish-subscribe service of a host (hosts[].pubsub) on real sockets: discovery, creation by local
// users with a configuration, subscriptions and notifications from the service's domain, affiliations, owner-only
// actions, the node limit, and deletion telling subscribers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { errorOf, event, iq, online, OWNER, PASSWORD, PUBSUB } from "./kit.ts";

const SVC = "pubsub.localhost";
let ts: TestServer;
before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", admins: ["admin@localhost"], pubsub: { domain: SVC, max_nodes: 2 } }] },
    { users: { "pa@localhost": PASSWORD, "pb@localhost": PASSWORD, "pc@localhost": PASSWORD, "admin@localhost": PASSWORD } },
  );
});
after(async () => {
  await ts.stop();
});

const configure = (fields: Record<string, string>) =>
  `<configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>${Object.entries(fields)
    .map(([k, v]) => `<field var='pubsub#${k}'><value>${v}</value></field>`)
    .join("")}</x></configure>`;

test("the host lists the service, which shows the pubsub/service identity", async () => {
  const c = await online(ts, "pa", "d");
  const items = await iq(c, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", "localhost");
  assert.ok(items.getChild("query")!.getChildren("item").some((i) => i.attrs["jid"] === SVC));
  const info = await iq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", SVC);
  const q = info.getChild("query")!;
  assert.ok(q.getChildren("identity").some((i) => i.attrs["category"] === "pubsub" && i.attrs["type"] === "service"));
  assert.ok(q.getChildren("feature").some((f) => f.attrs["var"] === `${PUBSUB}#publish`));
  assert.equal((await iq(c, "<ping xmlns='urn:xmpp:ping'/>", "get", SVC)).attrs["type"], "result");
  c.close();
});

test("a user creates a node, another subscribes and is notified, affiliations decide who publishes", async () => {
  const pa = await online(ts, "pa", "a");
  const pb = await online(ts, "pb", "b");
  const created = await iq(pa, `<pubsub xmlns='${PUBSUB}'><create node='news'/>${configure({ access_model: "open", max_items: "10" })}</pubsub>`, "set", SVC);
  assert.equal(created.attrs["type"], "result", created.toString());
  assert.equal(errorOf(await iq(pa, `<pubsub xmlns='${PUBSUB}'><create node='news'/></pubsub>`, "set", SVC)).condition, "conflict");
  const sub = await iq(pb, `<pubsub xmlns='${PUBSUB}'><subscribe node='news' jid='pb@localhost/b'/></pubsub>`, "set", SVC);
  assert.equal(sub.getChild("pubsub", PUBSUB)?.getChild("subscription", PUBSUB)?.attrs["subscription"], "subscribed");

  const pub = await iq(pa, `<pubsub xmlns='${PUBSUB}'><publish node='news'><item id='n1'><entry xmlns='http://www.w3.org/2005/Atom'><title>First</title></entry></item></publish></pubsub>`, "set", SVC);
  assert.equal(pub.attrs["type"], "result", pub.toString());
  const ev = await event(pb, "news", /First/);
  assert.equal(ev.attrs["from"], SVC);

  // pb may not publish until the owner makes it a publisher; never may it delete.
  const denied = await iq(pb, `<pubsub xmlns='${PUBSUB}'><publish node='news'><item id='x'><entry xmlns='http://www.w3.org/2005/Atom'/></item></publish></pubsub>`, "set", SVC);
  assert.equal(errorOf(denied).condition, "forbidden");
  await iq(pa, `<pubsub xmlns='${OWNER}'><affiliations node='news'><affiliation jid='pb@localhost' affiliation='publisher'/></affiliations></pubsub>`, "set", SVC);
  const affs = await iq(pa, `<pubsub xmlns='${OWNER}'><affiliations node='news'/></pubsub>`, "get", SVC);
  assert.match(affs.toString(), /jid='pa@localhost' affiliation='owner'/);
  assert.match(affs.toString(), /jid='pb@localhost' affiliation='publisher'/);
  assert.equal((await iq(pb, `<pubsub xmlns='${PUBSUB}'><publish node='news'><item id='n2'><entry xmlns='http://www.w3.org/2005/Atom'><title>Second</title></entry></item></publish></pubsub>`, "set", SVC)).attrs["type"], "result");
  await event(pb, "news", /Second/);
  assert.equal(errorOf(await iq(pb, `<pubsub xmlns='${OWNER}'><delete node='news'/></pubsub>`, "set", SVC)).condition, "forbidden");

  const got = await iq(pb, `<pubsub xmlns='${PUBSUB}'><items node='news' max_items='1'/></pubsub>`, "get", SVC);
  assert.match(got.toString(), /id='n2'/);
  const listed = await iq(pb, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", SVC);
  assert.ok(listed.getChild("query")!.getChildren("item").some((i) => i.attrs["node"] === "news"));

  assert.equal((await iq(pa, `<pubsub xmlns='${OWNER}'><delete node='news'/></pubsub>`, "set", SVC)).attrs["type"], "result");
  await event(pb, "news", /<delete node='news'/);
  pa.close();
  pb.close();
});

test("publishing to a missing node is item-not-found (no auto-create); the node limit is resource-constraint", async () => {
  const pc = await online(ts, "pc", "c");
  assert.equal(errorOf(await iq(pc, `<pubsub xmlns='${PUBSUB}'><publish node='nope'><item><p xmlns='urn:t'/></item></publish></pubsub>`, "set", SVC)).condition, "item-not-found");
  for (const n of ["one", "two"]) assert.equal((await iq(pc, `<pubsub xmlns='${PUBSUB}'><create node='${n}'/></pubsub>`, "set", SVC)).attrs["type"], "result");
  assert.deepEqual(errorOf(await iq(pc, `<pubsub xmlns='${PUBSUB}'><create node='three'/></pubsub>`, "set", SVC)), { type: "error", condition: "resource-constraint", app: "max-nodes-exceeded" });
  // An admin owns every node of the service.
  const admin = await online(ts, "admin", "x");
  assert.equal((await iq(admin, `<pubsub xmlns='${OWNER}'><delete node='one'/></pubsub>`, "set", SVC)).attrs["type"], "result");
  assert.equal(errorOf(await iq(pc, "<query xmlns='jabber:iq:version'/>", "get", SVC)).condition, "service-unavailable");
  pc.close();
  admin.close();
});
