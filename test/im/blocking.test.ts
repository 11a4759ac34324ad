// XEP-0191 blocking between local users over real sockets: the list, pushes, and what happens to messages,
// presence and IQs in both directions (§3.6 inbound, §3.7 outbound), until unblocked.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const PASSWORD = "secret";
const NS = "urn:xmpp:blocking";
let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "ann@localhost": PASSWORD, "ben@localhost": PASSWORD, "cat@localhost": PASSWORD, "dan@localhost": PASSWORD } });
});
after(async () => {
  await ts.stop();
});

let seq = 0;
async function iq(c: RawClient, type: "get" | "set", inner: string, to?: string): Promise<string> {
  const id = `b${++seq}`;
  c.send(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ""}>${inner}</iq>`);
  const m = await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*(?:/>|>[\\s\\S]*?</iq>)`));
  return m[0];
}

async function online(user: string, resource: string): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, PASSWORD, resource);
  client.send("<presence/>");
  await iq(client, "get", "<ping xmlns='urn:xmpp:ping'/>", "localhost");
  return client;
}

test("a blocked local user's messages, presence and IQs do not reach the user, and the user cannot reach them", async () => {
  const ann = await online("ann", "a");
  const ben = await online("ben", "b");
  assert.match(await iq(ann, "get", `<blocklist xmlns='${NS}'/>`), /type='result'[\s\S]*<blocklist xmlns='urn:xmpp:blocking'\/>|type='result'[\s\S]*<blocklist xmlns='urn:xmpp:blocking'><\/blocklist>/);
  // Ann blocks Ben; her session gets the push.
  ann.buffer = "";
  assert.match(await iq(ann, "set", `<block xmlns='${NS}'><item jid='ben@localhost'/></block>`), /type='result'/);
  await ann.waitFor(/<iq[^>]*type='set'[^>]*>\s*<block xmlns='urn:xmpp:blocking'><item jid='ben@localhost'\/><\/block>/);

  // Inbound (§3.6): a message bounces with service-unavailable; an IQ get too, to her full JID and her bare JID.
  ben.buffer = "";
  ben.send("<message to='ann@localhost/a' id='m1' type='chat'><body>hello?</body></message>");
  await ben.waitFor(/<message(?=[^>]*id='m1')(?=[^>]*type='error')[^>]*>[\s\S]*?<service-unavailable/);
  assert.match(await iq(ben, "get", "<ping xmlns='urn:xmpp:ping'/>", "ann@localhost/a"), /type='error'[\s\S]*<service-unavailable/);
  assert.match(await iq(ben, "get", "<vCard xmlns='vcard-temp'/>", "ann@localhost"), /type='error'[\s\S]*<service-unavailable/);
  assert.doesNotMatch(ann.buffer, /hello\?|from='ben@localhost\/b'[^>]*type='get'/);

  // Outbound (§3.7): Ann's message and IQ to Ben are refused with not-acceptable and <blocked/>.
  ann.send("<message to='ben@localhost/b' id='m2' type='chat'><body>go away</body></message>");
  await ann.waitFor(/<message(?=[^>]*id='m2')(?=[^>]*type='error')[^>]*>[\s\S]*?<not-acceptable[\s\S]*?<blocked xmlns='urn:xmpp:blocking:errors'\/>/);
  assert.match(await iq(ann, "get", "<ping xmlns='urn:xmpp:ping'/>", "ben@localhost/b"), /type='error'[\s\S]*<not-acceptable[\s\S]*<blocked xmlns='urn:xmpp:blocking:errors'\/>/);
  assert.doesNotMatch(ben.buffer, /go away/);
  // Her own server and her own account are not the blocked party: they still answer.
  assert.match(await iq(ann, "get", "<ping xmlns='urn:xmpp:ping'/>", "localhost"), /type='result'/);

  // Unblocked, everything flows again.
  assert.match(await iq(ann, "set", `<unblock xmlns='${NS}'><item jid='ben@localhost'/></unblock>`), /type='result'/);
  ben.send("<message to='ann@localhost/a' id='m3' type='chat'><body>friends again</body></message>");
  await ann.waitFor(/friends again/);
  ben.send("<iq type='get' id='p9' to='ann@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>");
  await ann.waitFor(/<iq(?=[^>]*id='p9')(?=[^>]*from='ben@localhost\/b')[^>]*>/);
  ann.close();
  ben.close();
});

test("unblocking a contact shows it the user's current presence again and probes the contact's", async () => {
  // Prosody does this on unblock; without it the contact kept seeing the user offline until her next presence change.
  const item = (jid: string) => ({ jid, subscription: "both" as const, ask: false, approved: false, groups: [] });
  await ts.server.storage.rosters.setItem("localhost", "cat", item("dan@localhost"));
  await ts.server.storage.rosters.setItem("localhost", "dan", item("cat@localhost"));
  const dan = await online("dan", "d");
  const cat = await RawClient.login(ts.c2sPort, "cat", PASSWORD, "c").then((r) => r.client);
  cat.send("<presence><show>dnd</show><status>writing</status></presence>");
  await dan.waitFor(/<presence[^>]*from='cat@localhost\/c'[^>]*>[\s\S]*?<status>writing<\/status>/);
  await cat.waitFor(/<presence[^>]*from='dan@localhost\/d'/);

  assert.match(await iq(cat, "set", `<block xmlns='${NS}'><item jid='dan@localhost'/></block>`), /type='result'/);
  await dan.waitFor(/<presence(?=[^>]*from='cat@localhost\/c')(?=[^>]*type='unavailable')[^>]*\/>/);
  dan.buffer = "";
  cat.buffer = "";

  assert.match(await iq(cat, "set", `<unblock xmlns='${NS}'><item jid='dan@localhost'/></unblock>`), /type='result'/);
  // Dan sees Cat as she is (her last broadcast, not a bare available), and Cat's probe brings Dan's presence back.
  await dan.waitFor(/<presence(?![^>]*type=)[^>]*from='cat@localhost\/c'[^>]*>[\s\S]*?<show>dnd<\/show>[\s\S]*?<\/presence>/);
  await cat.waitFor(/<presence(?![^>]*type=)[^>]*from='dan@localhost\/d'/);
  cat.close();
  dan.close();
});
