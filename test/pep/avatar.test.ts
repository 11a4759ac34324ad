// XEP-0398 avatar conversion and the XEP-0153 hash in presence on real sockets: a vCard photo becomes the PEP avatar
// (and contacts that want avatar metadata are told), a PEP avatar becomes the vCard photo, disabling the avatar
// clears the photo, and the owner's presence carries the current hash.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { befriend, event, iq, online, PASSWORD, PUBSUB } from "./kit.ts";

const META = "urn:xmpp:avatar:metadata";
let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "av@localhost": PASSWORD, "aw@localhost": PASSWORD, "ax@localhost": PASSWORD } });
  await befriend(ts, "av", "aw");
});
after(async () => {
  await ts.stop();
});

const IMAGE = Buffer.from("\x89PNG\r\n\x1a\n" + "pixels".repeat(50), "latin1");
const SHA1 = createHash("sha1").update(IMAGE).digest("hex");

test("the account advertises vCard conversion", async () => {
  const c = await online(ts, "av", "disco");
  const r = await iq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get");
  assert.ok(r.getChild("query")!.getChildren("feature").some((f) => f.attrs["var"] === "urn:xmpp:pep-vcard-conversion:0"));
  c.close();
});

test("a vCard photo becomes the PEP avatar, contacts are told, and presence carries the hash", async () => {
  const aw = await online(ts, "aw", "a", { notify: [META] });
  const av = await online(ts, "av", "a");
  const set = await iq(av, `<vCard xmlns='vcard-temp'><FN>Av</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>${IMAGE.toString("base64")}</BINVAL></PHOTO></vCard>`);
  assert.equal(set.attrs["type"], "result", set.toString());
  const ev = await event(aw, META, new RegExp(SHA1));
  assert.match(ev.toString(), /type='image\/png'/);
  const data = await iq(aw, `<pubsub xmlns='${PUBSUB}'><items node='urn:xmpp:avatar:data'><item id='${SHA1}'/></items></pubsub>`, "get", "av@localhost");
  assert.equal(data.getChild("pubsub", PUBSUB)!.getChild("items", PUBSUB)!.getChild("item", PUBSUB)!.elements[0]!.text(), IMAGE.toString("base64"));
  // XEP-0153: the next presence of the owner carries the hash, whatever the client put there.
  av.buffer = "";
  av.send("<presence><x xmlns='vcard-temp:x:update'><photo>stale</photo></x></presence>");
  await av.waitFor(new RegExp(`<photo>${SHA1}</photo>`));
  assert.doesNotMatch(av.buffer, /stale/);
  av.close();
  aw.close();
});

test("a PEP avatar becomes the vCard photo; disabling the avatar clears it", async () => {
  const ax = await online(ts, "ax", "a");
  await iq(ax, "<vCard xmlns='vcard-temp'><FN>Ax</FN></vCard>");
  const b64 = IMAGE.toString("base64");
  assert.equal((await iq(ax, `<pubsub xmlns='${PUBSUB}'><publish node='urn:xmpp:avatar:data'><item id='${SHA1}'><data xmlns='urn:xmpp:avatar:data'>${b64}</data></item></publish></pubsub>`)).attrs["type"], "result");
  assert.equal((await iq(ax, `<pubsub xmlns='${PUBSUB}'><publish node='${META}'><item id='${SHA1}'><metadata xmlns='${META}'><info id='${SHA1}' bytes='${IMAGE.length}' type='image/png'/></metadata></item></publish></pubsub>`)).attrs["type"], "result");
  let vcard = await iq(ax, "<vCard xmlns='vcard-temp'/>", "get");
  const card = vcard.getChild("vCard", "vcard-temp")!;
  assert.equal(card.getChildText("FN", "vcard-temp"), "Ax", "the rest of the vCard is kept");
  assert.equal(card.getChild("PHOTO", "vcard-temp")?.getChildText("BINVAL", "vcard-temp"), b64);
  assert.equal(card.getChild("PHOTO", "vcard-temp")?.getChildText("TYPE", "vcard-temp"), "image/png");
  // An empty metadata item disables the avatar (XEP-0084 §4.2): the photo goes, the presence hash is empty.
  await iq(ax, `<pubsub xmlns='${PUBSUB}'><publish node='${META}'><item id='off'><metadata xmlns='${META}'/></item></publish></pubsub>`);
  vcard = await iq(ax, "<vCard xmlns='vcard-temp'/>", "get");
  assert.equal(vcard.getChild("vCard", "vcard-temp")!.getChild("PHOTO", "vcard-temp"), undefined);
  ax.buffer = "";
  ax.send("<presence><show>away</show></presence>");
  await ax.waitFor(/<photo\/>/);
  ax.close();
});
