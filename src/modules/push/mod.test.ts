// XEP-0357: which messages wake a device, and the shape of the §7 publish (the socket tests are test/push/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../xml/parser.ts";
import { notificationIq, wantsPush, NS_PUSH, NS_PUSH_SUMMARY } from "./mod.ts";

const msg = (inner: string, type = "chat") => parseXml(`<message xmlns='jabber:client' type='${type}' from='juliet@capulet.example/balcony' to='romeo@montague.example'>${inner}</message>`);

test("a body or a call proposal wakes the device; chat states, carbons, groupchat, headline and errors do not", () => {
  assert.equal(wantsPush(msg("<body>Wherefore art thou, Romeo?</body>")), true);
  assert.equal(wantsPush(msg("<body>hi</body>", "normal")), true);
  assert.equal(wantsPush(msg("<propose xmlns='urn:xmpp:jingle-message:0' id='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>")), true);
  assert.equal(wantsPush(msg("<composing xmlns='http://jabber.org/protocol/chatstates'/>")), false);
  assert.equal(wantsPush(msg("<received xmlns='urn:xmpp:receipts' id='x'/>")), false);
  assert.equal(wantsPush(msg("<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>x</body></message></forwarded></received>")), false);
  assert.equal(wantsPush(msg("<body>x</body>", "groupchat")), false);
  assert.equal(wantsPush(msg("<body>x</body>", "headline")), false);
  assert.equal(wantsPush(msg("<body>x</body>", "error")), false);
  assert.equal(wantsPush(parseXml("<presence xmlns='jabber:client'><status>x</status></presence>")), false);
});

test("the notification publishes the summary form to the node, with the client's publish-options, the body only when allowed", () => {
  const options = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>eruio234vzxc2kla-91</value></field></x>";
  const reg = { jid: "push-5.client.example", node: "yxs32uqsflafdk3iuqo", options, wantsBody: true, failures: 0 };
  const summary = { count: 2, sender: "juliet@capulet.example/balcony", body: "Wherefore art thou, Romeo?" };
  const iq = notificationIq("romeo@montague.example", reg, summary, true);
  assert.equal(iq.attrs["type"], "set");
  assert.equal(iq.attrs["from"], "romeo@montague.example");
  assert.equal(iq.attrs["to"], "push-5.client.example");
  const pubsub = iq.getChild("pubsub", "http://jabber.org/protocol/pubsub")!;
  assert.equal(pubsub.getChild("publish")?.attrs["node"], "yxs32uqsflafdk3iuqo");
  const x = pubsub.getChild("publish")?.getChild("item")?.getChild("notification", NS_PUSH)?.getChild("x", "jabber:x:data");
  const fields = Object.fromEntries(x!.getChildren("field").map((f) => [f.attrs["var"], f.getChildText("value")]));
  assert.deepEqual(fields, {
    FORM_TYPE: NS_PUSH_SUMMARY,
    "message-count": "2",
    "last-message-sender": "juliet@capulet.example/balcony",
    "last-message-body": "Wherefore art thou, Romeo?",
  });
  assert.match(pubsub.getChild("publish-options")!.toString(), /eruio234vzxc2kla-91/);
  const { options: _forwarded, ...noOptions } = reg;
  const without = notificationIq("romeo@montague.example", noOptions, summary, false);
  assert.doesNotMatch(without.toString(), /last-message-body|publish-options/);
});
