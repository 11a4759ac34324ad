// PEP (XEP-0163) over XEP-0060 on real sockets: discovery, auto-create, +notify from XEP-0115 caps, notifications to
// contacts, last item on presence, access models, XEP-0223 publish-options, retract/purge/delete/configure, items by
// max_items and id, limits and bad input with their XEP-0060 errors, and account deletion.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { HEADER, RawClient } from "../kit/raw-client.ts";
import { parseXml } from "../../src/xml/parser.ts";
import { capsVer } from "../../src/xmpp/caps.ts";
import { befriend, errorOf, event, events, iq, online, OWNER, PASSWORD, PUBSUB } from "./kit.ts";

const USERS = ["ana", "ben", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kim", "lu"];
let ts: TestServer;
before(async () => {
  ts = await createTestServer(
    { pubsub: { max_item_bytes: 2048, max_nodes_per_account: 4, max_subscriptions_per_node: 2, max_items_per_node: 5 } },
    { users: Object.fromEntries(USERS.map((u) => [`${u}@localhost`, PASSWORD])) },
  );
});
after(async () => {
  await ts.stop();
});

const publish = (node: string, id: string, payload: string, options = "") =>
  `<pubsub xmlns='${PUBSUB}'><publish node='${node}'><item id='${id}'>${payload}</item></publish>${options}</pubsub>`;
const publishOptions = (fields: Record<string, string>) =>
  `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>${Object.entries(
    fields,
  )
    .map(([k, v]) => `<field var='pubsub#${k}'><value>${v}</value></field>`)
    .join("")}</x></publish-options>`;
const items = (node: string, attrs = "", inner = "") => `<pubsub xmlns='${PUBSUB}'><items node='${node}'${attrs}>${inner}</items></pubsub>`;
const itemIds = (r: { getChild: (n: string, ns?: string) => { getChild: (n: string, ns?: string) => { getChildren: (n: string) => { attrs: Record<string, string> }[] } | undefined } | undefined }) =>
  r.getChild("pubsub", PUBSUB)?.getChild("items", PUBSUB)?.getChildren("item").map((i) => i.attrs["id"]) ?? [];

test("the account advertises PEP: the pubsub/pep identity and the pubsub features", async () => {
  const c = await online(ts, "ana", "disco");
  const r = await iq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", "ana@localhost");
  const q = r.getChild("query")!;
  assert.ok(q.getChildren("identity").some((i) => i.attrs["category"] === "pubsub" && i.attrs["type"] === "pep"));
  const features = q.getChildren("feature").map((f) => f.attrs["var"]);
  for (const f of ["publish", "publish-options", "auto-create", "retrieve-items", "access-presence", "access-open", "filtered-notifications"]) {
    assert.ok(features.includes(`${PUBSUB}#${f}`), f);
  }
  c.close();
});

test("the server's own XEP-0115 caps are in the stream features and verify against its disco#info", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER("localhost"));
  await c.waitFor(/<\/stream:features>/);
  await c.starttls("localhost");
  c.send(HEADER("localhost"));
  await c.waitFor(/<\/stream:features>/);
  assert.ok(await c.authPlain("cy", PASSWORD));
  const m = c.buffer.match(/<c xmlns='http:\/\/jabber.org\/protocol\/caps' hash='sha-1' node='([^']+)' ver='([^']+)'\/>/);
  assert.ok(m, c.buffer);
  c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
  await c.waitFor(/<jid>/);
  const info = await iq(c, `<query xmlns='http://jabber.org/protocol/disco#info' node='${m[1]}#${m[2]}'/>`, "get", "localhost");
  const q = info.getChild("query")!;
  assert.equal(q.attrs["node"], `${m[1]}#${m[2]}`);
  assert.equal(capsVer(parseXml(q.toString())), m[2]);
  c.close();
});

test("a publish auto-creates the node; a contact that wants it is notified; strangers may not read it", async () => {
  await befriend(ts, "ana", "ben");
  const ben = await online(ts, "ben", "phone", { notify: ["urn:xmpp:tune"] });
  const ana = await online(ts, "ana", "laptop", { notify: ["urn:xmpp:tune"] });
  const r = await iq(ana, publish("urn:xmpp:tune", "t1", "<tune xmlns='urn:xmpp:tune'><title>One</title></tune>"));
  assert.equal(r.attrs["type"], "result", r.toString());
  assert.equal(r.getChild("pubsub", PUBSUB)?.getChild("publish", PUBSUB)?.getChild("item", PUBSUB)?.attrs["id"], "t1");
  const ev = await event(ben, "urn:xmpp:tune", /One/);
  assert.equal(ev.attrs["from"], "ana@localhost");
  assert.equal(ev.attrs["type"], "headline");
  await event(ana, "urn:xmpp:tune", /One/); // the owner's own resource wants it too (XEP-0163 §4.3)

  // Ben reads it as a contact with a presence subscription; Cy, a stranger, is refused (presence access, §4.5).
  const got = await iq(ben, items("urn:xmpp:tune"), "get", "ana@localhost");
  assert.deepEqual(itemIds(got), ["t1"]);
  const cy = await online(ts, "cy", "x");
  const refused = await iq(cy, items("urn:xmpp:tune"), "get", "ana@localhost");
  assert.deepEqual(errorOf(refused), { type: "error", condition: "not-authorized", app: "presence-subscription-required" });
  // Cy's disco#items of Ana shows nothing: not a contact.
  assert.equal(errorOf(await iq(cy, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", "ana@localhost")).condition, "service-unavailable");
  const listed = await iq(ben, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", "ana@localhost");
  assert.ok(listed.getChild("query")!.getChildren("item").some((i) => i.attrs["node"] === "urn:xmpp:tune"));
  for (const c of [ana, ben, cy]) c.close();
});

test("a contact coming online gets the last published item; one without +notify gets nothing", async () => {
  await befriend(ts, "dee", "eve");
  await befriend(ts, "dee", "fay");
  const dee = await online(ts, "dee", "a");
  await iq(dee, publish("urn:xmpp:mood", "m1", "<mood xmlns='http://jabber.org/protocol/mood'><happy/></mood>"));
  await iq(dee, publish("urn:xmpp:mood", "m2", "<mood xmlns='http://jabber.org/protocol/mood'><sad/></mood>"));
  const eve = await online(ts, "eve", "a", { notify: ["urn:xmpp:mood"] });
  const ev = await event(eve, "urn:xmpp:mood", /sad/);
  assert.doesNotMatch(ev.toString(), /happy/, "only the last item");
  const fay = await online(ts, "fay", "a");
  await iq(fay, "<ping xmlns='urn:xmpp:ping'/>", "get", "localhost");
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(events(fay, "urn:xmpp:mood").length, 0);
  for (const c of [dee, eve, fay]) c.close();
});

test("publish-options: an OMEMO device list with open access is readable by anyone; a conflicting option is precondition-not-met", async () => {
  const DL = "eu.siacs.conversations.axolotl.devicelist";
  const gus = await online(ts, "gus", "a");
  const list = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/></list>";
  const r = await iq(gus, publish(DL, "current", list, publishOptions({ access_model: "open" })));
  assert.equal(r.attrs["type"], "result", r.toString());
  // Same options again: fine (preconditions met), and "max" equals the limit.
  assert.equal((await iq(gus, publish(DL, "current", list, publishOptions({ access_model: "open", max_items: "1" })))).attrs["type"], "result");
  const conflict = await iq(gus, publish(DL, "current", list, publishOptions({ access_model: "presence" })));
  assert.deepEqual(errorOf(conflict), { type: "error", condition: "conflict", app: "precondition-not-met" });
  const hal = await online(ts, "hal", "a"); // no roster relation at all
  const got = await iq(hal, items(DL), "get", "gus@localhost");
  assert.deepEqual(itemIds(got), ["current"]);
  assert.match(got.toString(), /device id='1234'/);
  // The owner reconfigures (what clients do after precondition-not-met), then the publish goes through.
  const conf = await iq(gus, `<pubsub xmlns='${OWNER}'><configure node='${DL}'/></pubsub>`, "get");
  assert.match(conf.toString(), /pubsub#access_model/);
  const set = await iq(
    gus,
    `<pubsub xmlns='${OWNER}'><configure node='${DL}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>presence</value></field><field var='pubsub#max_items'><value>max</value></field></x></configure></pubsub>`,
  );
  assert.equal(set.attrs["type"], "result", set.toString());
  assert.equal((await iq(gus, publish(DL, "current", list, publishOptions({ access_model: "presence", max_items: "max" })))).attrs["type"], "result");
  assert.equal(errorOf(await iq(hal, items(DL), "get", "gus@localhost")).condition, "not-authorized");
  gus.close();
  hal.close();
});

test("items by id and max_items, max_items trims the oldest, retract and purge notify, delete removes the node", async () => {
  await befriend(ts, "ivy", "jo");
  const jo = await online(ts, "jo", "a", { notify: ["n"] });
  const ivy = await online(ts, "ivy", "a");
  const opts = publishOptions({ max_items: "3" });
  for (const id of ["a", "b", "c", "d"]) assert.equal((await iq(ivy, publish("n", id, `<p xmlns='urn:t'>${id}</p>`, opts))).attrs["type"], "result");
  assert.deepEqual(itemIds(await iq(ivy, items("n"), "get")), ["d", "c", "b"], "newest first, the oldest trimmed");
  assert.deepEqual(itemIds(await iq(ivy, items("n", " max_items='2'"), "get")), ["d", "c"]);
  assert.deepEqual(itemIds(await iq(ivy, items("n", "", "<item id='b'/><item id='a'/>"), "get")), ["b"]);
  // A republished id becomes the newest.
  await iq(ivy, publish("n", "b", "<p xmlns='urn:t'>b2</p>", opts));
  assert.deepEqual(itemIds(await iq(ivy, items("n"), "get")), ["b", "d", "c"]);

  assert.equal((await iq(ivy, `<pubsub xmlns='${PUBSUB}'><retract node='n' notify='true'><item id='d'/></retract></pubsub>`)).attrs["type"], "result");
  await event(jo, "n", /<retract id='d'/);
  assert.equal(errorOf(await iq(ivy, `<pubsub xmlns='${PUBSUB}'><retract node='n'><item id='zzz'/></retract></pubsub>`)).condition, "item-not-found");
  assert.equal(errorOf(await iq(jo, `<pubsub xmlns='${PUBSUB}'><retract node='n'><item id='c'/></retract></pubsub>`, "set", "ivy@localhost")).condition, "forbidden");

  assert.equal((await iq(ivy, `<pubsub xmlns='${OWNER}'><purge node='n'/></pubsub>`)).attrs["type"], "result");
  await event(jo, "n", /<purge/);
  assert.deepEqual(itemIds(await iq(ivy, items("n"), "get")), []);

  assert.equal(errorOf(await iq(jo, `<pubsub xmlns='${OWNER}'><delete node='n'/></pubsub>`, "set", "ivy@localhost")).condition, "forbidden");
  assert.equal((await iq(ivy, `<pubsub xmlns='${OWNER}'><delete node='n'/></pubsub>`)).attrs["type"], "result");
  await event(jo, "n", /<delete node='n'/);
  assert.equal(errorOf(await iq(ivy, items("n"), "get")).condition, "item-not-found");
  ivy.close();
  jo.close();
});

test("explicit subscriptions: subscribe gets the last item, only one's own JID, at most the node's limit", async () => {
  const kim = await online(ts, "kim", "a");
  await iq(kim, publish("open-node", "x1", "<p xmlns='urn:t'>hello</p>", publishOptions({ access_model: "open" })));
  const lu = await online(ts, "lu", "a");
  const sub = await iq(lu, `<pubsub xmlns='${PUBSUB}'><subscribe node='open-node' jid='lu@localhost'/></pubsub>`, "set", "kim@localhost");
  assert.equal(sub.getChild("pubsub", PUBSUB)?.getChild("subscription", PUBSUB)?.attrs["subscription"], "subscribed", sub.toString());
  await event(lu, "open-node", /hello/);
  const bad = await iq(lu, `<pubsub xmlns='${PUBSUB}'><subscribe node='open-node' jid='kim@localhost'/></pubsub>`, "set", "kim@localhost");
  assert.deepEqual(errorOf(bad), { type: "error", condition: "bad-request", app: "invalid-jid" });
  await iq(kim, `<pubsub xmlns='${PUBSUB}'><subscribe node='open-node' jid='kim@localhost/a'/></pubsub>`);
  const third = await iq(lu, `<pubsub xmlns='${PUBSUB}'><subscribe node='open-node' jid='lu@localhost/a'/></pubsub>`, "set", "kim@localhost");
  assert.deepEqual(errorOf(third), { type: "error", condition: "policy-violation", app: "too-many-subscriptions" });
  // A new item reaches the subscriber.
  await iq(kim, publish("open-node", "x2", "<p xmlns='urn:t'>again</p>"));
  await event(lu, "open-node", /again/);
  const mine = await iq(lu, `<pubsub xmlns='${PUBSUB}'><subscriptions/></pubsub>`, "get", "kim@localhost");
  assert.equal(mine.getChild("pubsub", PUBSUB)?.getChild("subscriptions", PUBSUB)?.getChildren("subscription").length, 1);
  assert.equal((await iq(lu, `<pubsub xmlns='${PUBSUB}'><unsubscribe node='open-node' jid='lu@localhost'/></pubsub>`, "set", "kim@localhost")).attrs["type"], "result");
  assert.deepEqual(errorOf(await iq(lu, `<pubsub xmlns='${PUBSUB}'><unsubscribe node='open-node' jid='lu@localhost'/></pubsub>`, "set", "kim@localhost")).app, "not-subscribed");
  kim.close();
  lu.close();
});

test("limits and bad input get XEP-0060 errors, never a crash", async () => {
  const c = await online(ts, "hal", "limits");
  const big = `<p xmlns='urn:t'>${"x".repeat(3000)}</p>`;
  assert.deepEqual(errorOf(await iq(c, publish("big", "1", big))), { type: "error", condition: "not-acceptable", app: "payload-too-big" });
  for (let i = 0; i < 4; i++) assert.equal((await iq(c, publish(`node${i}`, "1", "<p xmlns='urn:t'/>"))).attrs["type"], "result");
  assert.deepEqual(errorOf(await iq(c, publish("node-too-many", "1", "<p xmlns='urn:t'/>"))), { type: "error", condition: "resource-constraint", app: "max-nodes-exceeded" });
  assert.deepEqual(errorOf(await iq(c, publish("node0", "1", "<p xmlns='urn:t'/>", publishOptions({ max_items: "6" })))).app, "precondition-not-met");
  const tooMany = `<pubsub xmlns='${OWNER}'><configure node='node0'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#max_items'><value>6</value></field></x></configure></pubsub>`;
  assert.deepEqual(errorOf(await iq(c, tooMany)), { type: "error", condition: "not-acceptable", app: "invalid-options" });
  assert.deepEqual(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'><publish><item><p xmlns='urn:t'/></item></publish></pubsub>`)), { type: "error", condition: "bad-request", app: "nodeid-required" });
  assert.deepEqual(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'><publish node='node0'><item><a xmlns='urn:t'/><b xmlns='urn:t'/></item></publish></pubsub>`)).app, "invalid-payload");
  assert.deepEqual(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'><publish node='node0'><item id='e'/></publish></pubsub>`)).app, "payload-required");
  assert.equal(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'><bogus node='node0'/></pubsub>`)).condition, "feature-not-implemented");
  assert.equal(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'/>`)).condition, "bad-request");
  assert.equal(errorOf(await iq(c, items("node0", " max_items='-1'"), "get")).condition, "bad-request");
  const manyIds = Array.from({ length: 300 }, (_, i) => `<item id='${i}'/>`).join("");
  assert.equal(errorOf(await iq(c, items("node0", "", manyIds), "get")).condition, "not-acceptable");
  assert.equal(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'><retract node='node0'>${manyIds}</retract></pubsub>`)).condition, "not-acceptable");
  assert.equal(errorOf(await iq(c, `<pubsub xmlns='${PUBSUB}'><create node='node0'/></pubsub>`)).condition, "conflict");
  assert.equal(errorOf(await iq(c, items("node0"), "get", "nobody@localhost")).condition, "service-unavailable");
  // Still alive and answering.
  assert.deepEqual(itemIds(await iq(c, items("node0"), "get")), ["1"]);
  c.close();
});

test("deleting an account deletes its nodes, items and subscriptions", async () => {
  await ts.addUser("gone@localhost", PASSWORD);
  const c = await online(ts, "gone", "a");
  await iq(c, publish("urn:xmpp:avatar:metadata", "h", "<metadata xmlns='urn:xmpp:avatar:metadata'/>"));
  c.close();
  const maps = ts.server.storage;
  assert.deepEqual(await maps.map("pubsub-nodes").owners("localhost", { prefix: "gone" }), ["gone"]);
  assert.equal(await maps.accounts.delete("localhost", "gone"), true);
  assert.deepEqual(await maps.map("pubsub-nodes").owners("localhost", { prefix: "gone" }), []);
  assert.deepEqual(await maps.map("pubsub-items").owners("localhost", { prefix: "gone/" }), []);
});
