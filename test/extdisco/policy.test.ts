// XEP-0215 policy over real sockets and the real router, no TURN server needed: only this host's own users learn the
// services and get credentials; a user of another host of the same server and a remote user (over s2s) get
// `forbidden`; a host with nothing configured offers no feature and answers `service-unavailable`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseXml } from "../../src/xml/parser.ts";
import { serialize, type Element } from "../../src/xml/element.ts";
import { parseJid } from "../../src/xmpp/jid.ts";

const NS = "urn:xmpp:extdisco:2";
let ts: TestServer;
const clients: RawClient[] = [];

before(async () => {
  ts = await createTestServer(
    {
      hosts: [
        { domain: "localhost", external_services: [{ type: "turn", host: "turn.localhost", port: 3478, transport: "udp", secret: "0123456789abcdef0123" }] },
        { domain: "other.localhost" },
      ],
    },
    { users: { "alice@localhost": "pw", "bob@other.localhost": "pw" } },
  );
});
after(async () => {
  for (const c of clients) c.close();
  await ts.stop();
});

async function iq(c: RawClient, id: string, to: string, payload: string): Promise<string> {
  c.send(`<iq type='get' id='${id}' to='${to}'>${payload}</iq>`);
  return (await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*(?:/>|>[\\s\\S]*?</iq>)`)))[0];
}

test("a local user gets credentials; a user of another host of this server gets forbidden", async () => {
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "pw", "a");
  clients.push(alice);
  assert.match(await iq(alice, "a1", "localhost", `<services xmlns='${NS}'/>`), /username='\d+:alice@localhost'/);
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", "pw", "b", { domain: "other.localhost" });
  clients.push(bob);
  const r = await iq(bob, "b1", "localhost", `<services xmlns='${NS}'/>`);
  assert.match(r, /type='error'[\s\S]*<forbidden /);
  assert.doesNotMatch(r, /password=/);
  assert.match(await iq(bob, "b2", "localhost", `<credentials xmlns='${NS}'><service host='turn.localhost' type='turn'/></credentials>`), /<forbidden /);
});

test("a host with no external services offers no feature and answers service-unavailable", async () => {
  const { client } = await RawClient.login(ts.c2sPort, "bob", "pw", "b3", { domain: "other.localhost" });
  clients.push(client);
  assert.doesNotMatch(await iq(client, "d1", "other.localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>"), /extdisco/);
  assert.match(await iq(client, "s1", "other.localhost", `<services xmlns='${NS}'/>`), /<service-unavailable /);
});

test("a remote user asking over s2s gets forbidden and no credentials", async () => {
  const router = ts.server.router;
  const sent: Element[] = [];
  const original = router.remote;
  router.remote = (stanza) => void sent.push(stanza);
  try {
    const req = parseXml(`<iq xmlns='jabber:client' type='get' id='r1' from='eve@remote.example/x' to='localhost'><services xmlns='${NS}'/></iq>`);
    await router.route(req, parseJid("eve@remote.example/x"), parseJid("localhost"), { kind: "s2s", jid: parseJid("remote.example") });
    assert.equal(sent.length, 1);
    const reply = serialize(sent[0]!);
    assert.match(reply, /type='error'/);
    assert.match(reply, /<forbidden /);
    assert.doesNotMatch(reply, /password=/);
  } finally {
    router.remote = original;
  }
});
