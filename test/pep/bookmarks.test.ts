// XEP-0402 §3 bookmark compatibility on real sockets: XEP-0048 bookmarks written to private XML storage appear as
// XEP-0402 items (one per room) and in the XEP-0048 PEP node; XEP-0402 publishes and retractions are written back to
// private XML storage (keeping <url/> entries); a client's other resource is told.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { event, iq, online, PASSWORD, PUBSUB } from "./kit.ts";

const B2 = "urn:xmpp:bookmarks:1";
let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "bk@localhost": PASSWORD, "bl@localhost": PASSWORD } });
});
after(async () => {
  await ts.stop();
});

const legacy = (rooms: string) => `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>${rooms}<url name='Site' url='https://example.org'/></storage></query>`;
const B2_OPTIONS =
  "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
  "<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>" +
  "<field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>";

test("the account advertises bookmark compatibility", async () => {
  const c = await online(ts, "bk", "disco");
  const r = await iq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get");
  const features = r.getChild("query")!.getChildren("feature").map((f) => f.attrs["var"]);
  assert.ok(features.includes(`${B2}#compat`));
  assert.ok(features.includes(`${B2}#compat-pep`));
  c.close();
});

test("private XML bookmarks become XEP-0402 items and back, both ways, and other resources hear of it", async () => {
  const modern = await online(ts, "bk", "modern", { notify: [B2] });
  const old = await online(ts, "bk", "old");
  // An old client (XEP-0048 in private XML) writes two rooms.
  const set = await iq(
    old,
    legacy("<conference jid='tea@rooms.example' autojoin='true' name='Tea'><nick>bk</nick></conference><conference jid='cake@rooms.example' name='Cake'/>"),
  );
  assert.equal(set.attrs["type"], "result", set.toString());
  await event(modern, B2, /tea@rooms\.example/);
  const items = await iq(modern, `<pubsub xmlns='${PUBSUB}'><items node='${B2}'/></pubsub>`, "get");
  const byId = new Map(items.getChild("pubsub", PUBSUB)!.getChild("items", PUBSUB)!.getChildren("item").map((i) => [i.attrs["id"], i.elements[0]!]));
  assert.deepEqual([...byId.keys()].sort(), ["cake@rooms.example", "tea@rooms.example"]);
  assert.equal(byId.get("tea@rooms.example")!.attrs["autojoin"], "true");
  assert.equal(byId.get("tea@rooms.example")!.getChildText("nick"), "bk");
  assert.equal(byId.get("cake@rooms.example")!.attrs["name"], "Cake");
  const pep48 = await iq(modern, `<pubsub xmlns='${PUBSUB}'><items node='storage:bookmarks'/></pubsub>`, "get");
  assert.match(pep48.toString(), /cake@rooms\.example/, "the XEP-0048 PEP node has them too");

  // A modern client adds a room (with XEP-0402's publish-options: the node created by the sync meets them).
  const pub = await iq(
    modern,
    `<pubsub xmlns='${PUBSUB}'><publish node='${B2}'><item id='pie@rooms.example'><conference xmlns='${B2}' name='Pie' autojoin='1'><nick>k</nick></conference></item></publish>${B2_OPTIONS}</pubsub>`,
  );
  assert.equal(pub.attrs["type"], "result", pub.toString());
  let priv = await iq(old, "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", "get");
  let confs = priv.getChild("query")!.getChild("storage", "storage:bookmarks")!;
  assert.deepEqual(confs.getChildren("conference").map((c) => c.attrs["jid"]).sort(), ["cake@rooms.example", "pie@rooms.example", "tea@rooms.example"]);
  assert.equal(confs.getChildren("conference").find((c) => c.attrs["jid"] === "pie@rooms.example")!.attrs["autojoin"], "true");
  assert.equal(confs.getChildren("url").length, 1, "url bookmarks survive");

  // ...and retracts one.
  await iq(modern, `<pubsub xmlns='${PUBSUB}'><retract node='${B2}' notify='true'><item id='cake@rooms.example'/></retract></pubsub>`);
  priv = await iq(old, "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", "get");
  confs = priv.getChild("query")!.getChild("storage", "storage:bookmarks")!;
  assert.deepEqual(confs.getChildren("conference").map((c) => c.attrs["jid"]).sort(), ["pie@rooms.example", "tea@rooms.example"]);

  // The old client removes everything but one room: the XEP-0402 node follows, with retractions announced.
  modern.buffer = "";
  await iq(old, legacy("<conference jid='tea@rooms.example' autojoin='false' name='Tea'/>"));
  await event(modern, B2, /<retract id='pie@rooms\.example'/);
  const left = await iq(modern, `<pubsub xmlns='${PUBSUB}'><items node='${B2}'/></pubsub>`, "get");
  const ids = left.getChild("pubsub", PUBSUB)!.getChild("items", PUBSUB)!.getChildren("item");
  assert.deepEqual(ids.map((i) => i.attrs["id"]), ["tea@rooms.example"]);
  assert.equal(ids[0]!.elements[0]!.attrs["autojoin"], "false");
  modern.close();
  old.close();
});

test("XEP-0048 bookmarks published over PEP reach private XML storage and the XEP-0402 node", async () => {
  const c = await online(ts, "bl", "a");
  const pub = await iq(
    c,
    `<pubsub xmlns='${PUBSUB}'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'><conference jid='soup@rooms.example' autojoin='true' name='Soup'/></storage></item></publish></pubsub>`,
  );
  assert.equal(pub.attrs["type"], "result", pub.toString());
  const priv = await iq(c, "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", "get");
  assert.match(priv.toString(), /soup@rooms\.example/);
  const items = await iq(c, `<pubsub xmlns='${PUBSUB}'><items node='${B2}'/></pubsub>`, "get");
  assert.match(items.toString(), /item id='soup@rooms\.example'/);
  c.close();
});
