// PEP and the standalone service across two Comity servers: a remote contact's caps are learnt over s2s (the disco#info
// query and its answer cross the link), its notifications and the last item leave over s2s, it reads the owner's items
// with a presence subscription, and a remote user subscribes to a standalone service and is notified.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { answerCapsQuery, event, iq, online, PASSWORD, PUBSUB } from "./kit.ts";

let a: TestServer;
let b: TestServer;
before(async () => {
  a = await createTestServer(
    { hosts: [{ domain: "a.localhost", pubsub: { domain: "pubsub.a.localhost" } }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } },
    { users: { "alice@a.localhost": PASSWORD } },
  );
  b = await createTestServer({ hosts: [{ domain: "b.localhost" }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } }, { users: { "bob@b.localhost": PASSWORD } });
  a.config.s2s.routes["b.localhost"] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes["a.localhost"] = `127.0.0.1:${a.s2sPort}`;
  b.config.s2s.routes["pubsub.a.localhost"] = `127.0.0.1:${a.s2sPort}`;
  const item = (jid: string) => ({ jid, subscription: "both" as const, ask: false, approved: false, groups: [] });
  await a.server.storage.rosters.setItem("a.localhost", "alice", item("bob@b.localhost"));
  await b.server.storage.rosters.setItem("b.localhost", "bob", item("alice@a.localhost"));
});
after(async () => {
  await a.stop();
  await b.stop();
});

test("a remote contact's +notify is learnt over s2s; it gets notifications, the last item and reads the node", { timeout: 60_000 }, async () => {
  const alice = await online(a, "alice", "home", { domain: "a.localhost" });
  await iq(alice, `<pubsub xmlns='${PUBSUB}'><publish node='urn:xmpp:tune'><item id='t0'><tune xmlns='urn:xmpp:tune'><title>Before</title></tune></item></publish></pubsub>`);
  // Bob's available presence reaches alice's account over s2s; a.localhost asks bob's client what it wants.
  const bob = await online(b, "bob", "phone", { domain: "b.localhost", notify: ["urn:xmpp:tune"] });
  await answerCapsQuery(bob, "a.localhost", ["urn:xmpp:tune"]);
  await event(bob, "urn:xmpp:tune", /Before/); // the last item, once the caps are known
  await iq(alice, `<pubsub xmlns='${PUBSUB}'><publish node='urn:xmpp:tune'><item id='t1'><tune xmlns='urn:xmpp:tune'><title>Remote</title></tune></item></publish></pubsub>`);
  const ev = await event(bob, "urn:xmpp:tune", /Remote/);
  assert.equal(ev.attrs["from"], "alice@a.localhost");
  const got = await iq(bob, `<pubsub xmlns='${PUBSUB}'><items node='urn:xmpp:tune' max_items='1'/></pubsub>`, "get", "alice@a.localhost");
  assert.match(got.toString(), /id='t1'/);
  alice.close();
  bob.close();
});

test("a remote user subscribes to a standalone service and is notified over s2s", { timeout: 60_000 }, async () => {
  const SVC = "pubsub.a.localhost";
  const alice = await online(a, "alice", "svc", { domain: "a.localhost" });
  const created = await iq(alice, `<pubsub xmlns='${PUBSUB}'><create node='feed'/></pubsub>`, "set", SVC);
  assert.equal(created.attrs["type"], "result", created.toString());
  const bob = await online(b, "bob", "svc", { domain: "b.localhost" });
  const sub = await iq(bob, `<pubsub xmlns='${PUBSUB}'><subscribe node='feed' jid='bob@b.localhost'/></pubsub>`, "set", SVC);
  assert.equal(sub.getChild("pubsub", PUBSUB)?.getChild("subscription", PUBSUB)?.attrs["subscription"], "subscribed", sub.toString());
  await iq(alice, `<pubsub xmlns='${PUBSUB}'><publish node='feed'><item id='f1'><entry xmlns='http://www.w3.org/2005/Atom'><title>Over the wire</title></entry></item></publish></pubsub>`, "set", SVC);
  const ev = await event(bob, "feed", /Over the wire/);
  assert.equal(ev.attrs["from"], SVC);
  alice.close();
  bob.close();
});
