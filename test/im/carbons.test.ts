// XEP-0280 Message Carbons over real sockets: enable/disable, received and sent copies, bare-JID delivery,
// <private/> and <no-copy/>, and which message types are never copied.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseXml } from "../../src/xml/parser.ts";
import type { Element } from "../../src/xml/element.ts";

const PASSWORD = "secret";
const CARBONS = "urn:xmpp:carbons:2";
let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: { "cara@localhost": PASSWORD, "dan@localhost": PASSWORD } });
});
after(async () => {
  await ts.stop();
});

let seq = 0;
async function iq(c: RawClient, inner: string, type = "set", to?: string): Promise<string> {
  const id = `c${++seq}`;
  c.send(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ""}>${inner}</iq>`);
  return (await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*(?:/>|>[\\s\\S]*?</iq>)`)))[0];
}
async function online(user: string, resource: string, priority = 0, carbons = true): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, PASSWORD, resource);
  client.send(`<presence><priority>${priority}</priority></presence>`);
  if (carbons) assert.match(await iq(client, `<enable xmlns='${CARBONS}'/>`), /type='result'/);
  else await iq(client, "<ping xmlns='urn:xmpp:ping'/>", "get", "localhost");
  client.buffer = "";
  return client;
}
/** The top-level messages received since the buffer was last cleared (copies nest a message inside a message). */
const messages = (c: RawClient): Element[] =>
  parseXml(`<r xmlns='jabber:client'>${c.buffer}</r>`).elements.filter((e) => e.name === "message");
/** Round trip to the server, so that anything routed before has arrived. */
const sync = (c: RawClient) => iq(c, "<ping xmlns='urn:xmpp:ping'/>", "get", "localhost");

test("the server advertises carbons", async () => {
  const c = await online("cara", "disco", 0, false);
  assert.match(await iq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", "localhost"), /<feature var='urn:xmpp:carbons:2'\/>/);
  c.close();
});

test("received and sent copies reach the user's other enabled resources, and only those", async () => {
  const phone = await online("cara", "phone");
  const laptop = await online("cara", "laptop");
  const plain = await online("cara", "plain", 0, false);
  const dan = await online("dan", "x", 0, false);

  // §7: Dan writes to Cara's phone; the laptop gets a <received/> copy, the resource without carbons gets nothing.
  dan.send("<message to='cara@localhost/phone' type='chat' id='in1'><body>hi phone</body></message>");
  await phone.waitFor(/hi phone/);
  await laptop.waitFor(/<received xmlns='urn:xmpp:carbons:2'>/);
  const [rcv] = messages(laptop);
  assert.equal(rcv!.attrs["from"], "cara@localhost");
  assert.equal(rcv!.attrs["to"], "cara@localhost/laptop");
  const inner = rcv!.getChild("received", CARBONS)!.getChild("forwarded", "urn:xmpp:forward:0")!.getChild("message")!;
  assert.equal(inner.attrs["from"], "dan@localhost/x");
  assert.equal(inner.attrs["to"], "cara@localhost/phone");
  assert.equal(inner.getChildText("body"), "hi phone");
  assert.equal(messages(phone).length, 1, "the addressed resource gets the message once, not a copy too");

  // §8: Cara answers from the phone; the laptop gets a <sent/> copy, the phone none.
  phone.buffer = "";
  laptop.buffer = "";
  phone.send("<message to='dan@localhost/x' type='chat' id='out1'><body>hi dan</body></message>");
  await dan.waitFor(/hi dan/);
  await laptop.waitFor(/<sent xmlns='urn:xmpp:carbons:2'>[\s\S]*hi dan/);
  const sentInner = messages(laptop)[0]!.getChild("sent", CARBONS)!.getChild("forwarded", "urn:xmpp:forward:0")!.getChild("message")!;
  assert.equal(sentInner.attrs["from"], "cara@localhost/phone");
  assert.equal(sentInner.attrs["to"], "dan@localhost/x");
  await sync(phone);
  await sync(plain);
  assert.equal(messages(phone).length, 0);
  assert.equal(messages(plain).length, 0);

  // §9: <private/> is not copied and is removed before delivery; <no-copy/> is not copied either.
  laptop.buffer = "";
  dan.buffer = "";
  phone.send(`<message to='dan@localhost/x' type='chat'><body>just us</body><private xmlns='${CARBONS}'/></message>`);
  dan.send("<message to='cara@localhost/phone' type='chat'><body>no copies</body><no-copy xmlns='urn:xmpp:hints'/></message>");
  await dan.waitFor(/just us/);
  await phone.waitFor(/no copies/);
  assert.doesNotMatch(dan.buffer, /private/);
  // Headlines and errors are never copied.
  dan.send("<message to='cara@localhost/phone' type='headline'><body>news</body></message>");
  await phone.waitFor(/news/);
  await sync(laptop);
  assert.equal(messages(laptop).length, 0, laptop.buffer);

  // §5: after disable, the laptop gets nothing more.
  assert.match(await iq(laptop, `<disable xmlns='${CARBONS}'/>`), /type='result'/);
  dan.send("<message to='cara@localhost/phone' type='chat'><body>after disable</body></message>");
  await phone.waitFor(/after disable/);
  await sync(laptop);
  assert.equal(messages(laptop).length, 0);
  for (const c of [phone, laptop, plain, dan]) c.close();
});

test("a message to the bare JID goes to the highest priority resource and is copied to the other enabled ones", async () => {
  const high = await online("cara", "high", 5);
  const low = await online("cara", "low", 1);
  const dan = await online("dan", "y", 0, false);
  dan.send("<message to='cara@localhost' type='chat'><body>to the bare jid</body></message>");
  await high.waitFor(/to the bare jid/);
  await low.waitFor(/<received xmlns='urn:xmpp:carbons:2'>[\s\S]*to the bare jid/);
  assert.doesNotMatch(high.buffer, /<received/);
  for (const c of [high, low, dan]) c.close();
});

test("enabling carbons for someone else's account is forbidden", async () => {
  const c = await online("cara", "meddler", 0, false);
  assert.match(await iq(c, `<enable xmlns='${CARBONS}'/>`, "set", "dan@localhost"), /type='error'[\s\S]*<forbidden/);
  c.close();
});

test("a message to a resource that is gone reaches the only other session once, as the original and not as a copy", async () => {
  // RFC 6121 §8.5.3.2.1 sends it on as if to the bare JID; carbons used to copy it there first (message/full fired
  // before the router found the resource gone), so the session got a <received/> copy and then the original.
  const only = await online("cara", "only");
  const dan = await online("dan", "y", 0, false);
  dan.send("<message to='cara@localhost/gone' type='chat' id='g1'><body>where did you go</body></message>");
  await only.waitFor(/where did you go/);
  await sync(only);
  const got = messages(only);
  assert.equal(got.length, 1, only.buffer);
  assert.equal(got[0]!.getChild("received", CARBONS), undefined, only.buffer);
  assert.equal(got[0]!.getChildText("body"), "where did you go");
  only.close();
  dan.close();
});
