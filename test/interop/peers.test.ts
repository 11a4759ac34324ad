// Interop with real Prosody 0.12 and ejabberd 23.01 from ../shared/peers (started by .ci/run): a Comity
// server for comity.test on 127.0.0.10:25269 (the address the peers' DNS publishes) exchanges messages,
// IQs and presence subscriptions with users on both, in both directions. The peers authenticate with
// dialback over STARTTLS (self-signed certificates, so s2s.verify_certificates is false here).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient, closeRawClients } from "../kit/raw-client.ts";

const PEERS = [
  { name: "Prosody", domain: "prosody.test", host: "127.0.0.2", c2s: 25122 },
  { name: "ejabberd", domain: "ejabberd.test", host: "127.0.0.3", c2s: 25322 },
];

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

const up = (await Promise.all(PEERS.map((p) => reachable(p.host, p.c2s)))).every(Boolean);
// In CI the peers must be running (.ci/run starts them): a missing peer is a failure, not a skip.
const skip = !up && process.env["CI"] !== "true" ? "peer servers not running: start them with ../shared/peers/up.sh (.ci/run does)" : false;

let ts: TestServer;
before(async () => {
  if (skip) return;
  assert.ok(up, "Prosody and ejabberd from ../shared/peers must be running (../shared/peers/up.sh)");
  ts = await createTestServer(
    {
      hosts: [{ domain: "comity.test", admins: ["admin@comity.test"] }],
      c2s: { listen: ["127.0.0.10:0"], direct_tls: [] },
      s2s: { listen: ["127.0.0.10:25269"], verify_certificates: false, dns_servers: ["127.0.0.1:25053"] },
    },
    { users: { "alice@comity.test": "comity-pass", "bob@comity.test": "comity-pass" } },
  );
});
after(async () => {
  // Sockets to Prosody and ejabberd stay open after a failed test; they would keep this process alive.
  closeRawClients();
  await ts?.stop();
});

let syncs = 0;

/** A roster get round trip (every server answers it): the server has handled what this client sent before. */
async function sync(c: RawClient): Promise<void> {
  const id = `sync${++syncs}`;
  c.send(`<iq type='get' id='${id}'><query xmlns='jabber:iq:roster'/></iq>`);
  await c.waitFor(new RegExp(`id=['"]${id}['"]`), 30_000);
}

async function comityLogin(user: string, resource: string): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, "comity-pass", resource, { host: "127.0.0.10", domain: "comity.test" });
  client.send("<presence/>");
  return client;
}

async function peerLogin(peer: (typeof PEERS)[number], user: string, resource: string): Promise<RawClient> {
  const { client } = await RawClient.login(peer.c2s, user, `${user}-pass`, resource, { host: peer.host, domain: peer.domain });
  client.send("<presence/>");
  return client;
}

for (const peer of PEERS) {
  test(`messages cross between Comity and ${peer.name} in both directions`, { skip, timeout: 60_000 }, async () => {
    const ours = await comityLogin("alice", `m-${peer.name}`);
    const theirs = await peerLogin(peer, "alice", "m");
    await sync(ours);
    await sync(theirs);
    ours.send(`<message to='alice@${peer.domain}/m' type='chat' id='to-${peer.name}'><body>hello ${peer.name}, from Comity</body></message>`);
    await theirs.waitFor(new RegExp(`hello ${peer.name}, from Comity`), 30_000);
    assert.match(theirs.buffer, /from=['"]alice@comity\.test\/m-/);
    theirs.send(`<message to='alice@comity.test/m-${peer.name}' type='chat' id='from-${peer.name}'><body>hello Comity, from ${peer.name}</body></message>`);
    await ours.waitFor(new RegExp(`hello Comity, from ${peer.name}`), 30_000);
    assert.match(ours.buffer, new RegExp(`from='alice@${peer.domain}/m'`));
    ours.close();
    theirs.close();
  });

  test(`IQs and disco cross to ${peer.name}, and its errors come back`, { skip, timeout: 60_000 }, async () => {
    const ours = await comityLogin("alice", `iq-${peer.name}`);
    ours.send(`<iq type='get' to='${peer.domain}' id='disco'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    await ours.waitFor(/id=['"]disco['"][\s\S]*?<identity[^>]*category=['"]server['"]/, 30_000);
    ours.send(`<message to='nobody-here@${peer.domain}' type='chat' id='nobody'><body>anyone?</body></message>`);
    await ours.waitFor(/id=['"]nobody['"][\s\S]*?<service-unavailable/, 30_000);
    ours.close();
  });
}

for (const peer of PEERS) {
  test(`presence subscriptions between Comity and ${peer.name}, both directions, with presence after approval`, { skip, timeout: 90_000 }, async () => {
    const contact = `bob@${peer.domain}`;
    const theirs = await peerLogin(peer, "bob", `sub-${Date.now()}`);
    // Peer rosters persist across runs: start from no subscription with bob@comity.test.
    theirs.send(`<iq type='set' id='clean'><query xmlns='jabber:iq:roster'><item jid='bob@comity.test' subscription='remove'/></query></iq>`);
    await theirs.waitFor(/id=['"]clean['"]/, 30_000);
    theirs.send("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>");
    await theirs.waitFor(/id=['"]r0['"]/, 30_000);
    const ours = await comityLogin("bob", `sub-${peer.name}`);
    ours.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    await ours.waitFor(/id='r1'/);
    await sync(theirs);

    // Comity → peer: subscribe, approved by the peer's user; our roster shows 'to' and their presence arrives.
    theirs.buffer = "";
    ours.send(`<presence to='${contact}' type='subscribe'/>`);
    await theirs.waitFor(/<presence[^>]*type=['"]subscribe['"][^>]*>|<presence[^>]*from=['"]bob@comity\.test['"][^>]*type=['"]subscribe/, 30_000);
    assert.match(theirs.buffer, /from=['"]bob@comity\.test['"]/);
    theirs.send(`<presence to='bob@comity.test' type='subscribed'/>`);
    await ours.waitFor(new RegExp(`<item[^>]*jid='${contact}'[^>]*subscription='to'|<item[^>]*subscription='to'[^>]*jid='${contact}'`), 30_000);
    await ours.waitFor(new RegExp(`<presence[^>]*from='${contact}/sub-`), 30_000);

    // Peer → Comity: subscribe, approved by our user; the peer's user sees our presence.
    ours.buffer = "";
    theirs.buffer = "";
    theirs.send(`<presence to='bob@comity.test' type='subscribe'/>`);
    await ours.waitFor(new RegExp(`<presence[^>]*from='${contact}'[^>]*type='subscribe'|<presence[^>]*type='subscribe'[^>]*from='${contact}'`), 30_000);
    ours.send(`<presence to='${contact}' type='subscribed'/>`);
    await ours.waitFor(new RegExp(`<item[^>]*subscription='both'`), 30_000);
    await theirs.waitFor(/<presence[^>]*from=['"]bob@comity\.test\/sub-/, 30_000);

    // Both ways off again: the peer removes us (unsubscribe + unsubscribed reach Comity).
    ours.buffer = "";
    theirs.send(`<iq type='set' id='bye'><query xmlns='jabber:iq:roster'><item jid='bob@comity.test' subscription='remove'/></query></iq>`);
    await ours.waitFor(new RegExp(`<item[^>]*subscription='none'|<presence[^>]*from='${contact}[^']*'[^>]*type='unavailable'`), 30_000);
    ours.close();
    theirs.close();
  });
}
