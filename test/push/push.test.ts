// XEP-0357 push notifications over real sockets, with the app server run by the test: a second Comity whose standalone
// publish-subscribe service (hosts[].pubsub) receives the notifications over s2s and tells a subscriber, as a real app
// server's pubsub service would. Covers enable/disable and their errors, offline and hibernated (XEP-0198) triggers, a
// call proposal, the summary form, coalescing, the error policy (gone, retried, disabled) and a restart.
import { test, before, after } from "node:test";
import { createServer, type AddressInfo, type Server } from "node:net";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { Element } from "../../src/xml/element.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import { errorOf, event, events, iq, online, PASSWORD, PUBSUB } from "../pep/kit.ts";

const A = "a.localhost";
const B = "b.localhost";
const SVC = "pubsub.b.localhost";
const PUSH = "urn:xmpp:push:0";
const DATA = "jabber:x:data";
const SM = "urn:xmpp:sm:3";
/** Fields of the enable form: publish-options the node satisfies (so forwarding them is checked by the app server). */
const OPEN_OPTIONS = `<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#publish_model'><value>open</value></field>`;
const ASK_BODY = `<field var='urn:xmpp:push:summary#last-message-body'><value>true</value></field>`;
const USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];

let a: TestServer;
let b: TestServer;
let app: RawClient;
let aDataDir: string;
let aS2sPort: number;

const PUSH_CONFIG = { min_interval_ms: 1000, retries: 1, retry_base_ms: 200, include_body: true, max_failures: 2, timeout_ms: 10_000 };

async function startA(dataDir?: string, s2sPort = 0): Promise<TestServer> {
  const ts = await createTestServer(
    { hosts: [{ domain: A }], s2s: { listen: [`127.0.0.1:${s2sPort}`], verify_certificates: false }, push: PUSH_CONFIG },
    dataDir === undefined ? { users: Object.fromEntries(USERS.map((u) => [`${u}@${A}`, PASSWORD])) } : { dataDir },
  );
  ts.config.s2s.routes[B] = `127.0.0.1:${b.s2sPort}`;
  ts.config.s2s.routes[SVC] = `127.0.0.1:${b.s2sPort}`;
  // An app server whose address accepts TCP and hangs up at once (a passing error, retried); it counts the attempts.
  ts.config.s2s.routes["push.nowhere.localhost"] = `127.0.0.1:${deadPort}`;
  return ts;
}

/** Create an app-server node anyone may publish to, and subscribe the app server's user to it. */
async function appNode(node: string): Promise<void> {
  const created = await iq(
    app,
    `<pubsub xmlns='${PUBSUB}'><create node='${node}'/><configure><x xmlns='${DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#publish_model'><value>open</value></field></x></configure></pubsub>`,
    "set",
    SVC,
  );
  assert.equal(created.attrs["type"], "result", created.toString());
  const sub = await iq(app, `<pubsub xmlns='${PUBSUB}'><subscribe node='${node}' jid='app@${B}'/></pubsub>`, "set", SVC);
  assert.equal(sub.attrs["type"], "result", sub.toString());
}

/** The fields of the summary form in a notification event. */
function summaryOf(ev: Element): Record<string, string> {
  const x = ev.getChild("event", "http://jabber.org/protocol/pubsub#event")?.getChild("items")?.getChild("item")?.getChild("notification", PUSH)?.getChild("x", DATA);
  assert.ok(x, `no notification form in ${ev.toString()}`);
  const out: Record<string, string> = {};
  for (const f of x.getChildren("field", DATA)) out[f.attrs["var"]!] = f.getChild("value", DATA)?.text() ?? "";
  return out;
}

async function until(f: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const regs = (user: string) => a.server.storage.map("push").entries(A, user);

/** Log in, enable push to `node` (with `form` fields), log out; waits until the session is gone. */
async function enableAndLeave(user: string, node: string, form = OPEN_OPTIONS + ASK_BODY, jid = SVC): Promise<void> {
  const c = await online(a, user, "setup", { domain: A });
  const r = await iq(c, `<enable xmlns='${PUSH}' jid='${jid}' node='${node}'><x xmlns='${DATA}' type='submit'>${form}</x></enable>`);
  assert.equal(r.attrs["type"], "result", r.toString());
  c.close();
  await until(() => a.server.sessions.ofBare(`${user}@${A}`).size === 0, `${user} offline`);
}

let bob: RawClient;
let deadPort: number;
let deadServer: Server;
let deadConnections = 0;

before(async () => {
  deadServer = createServer((s) => {
    deadConnections++;
    s.destroy();
  });
  await new Promise<void>((r) => deadServer.listen(0, "127.0.0.1", r));
  deadPort = (deadServer.address() as AddressInfo).port;
  b = await createTestServer({ hosts: [{ domain: B, pubsub: { domain: SVC } }], s2s: { listen: ["127.0.0.1:0"], verify_certificates: false } }, { users: { [`app@${B}`]: PASSWORD } });
  a = await startA();
  aDataDir = a.dataDir;
  aS2sPort = a.s2sPort;
  b.config.s2s.routes[A] = `127.0.0.1:${aS2sPort}`;
  app = await online(b, "app", "server", { domain: B });
  bob = await online(a, "bob", "phone", { domain: A });
});
after(async () => {
  app?.close();
  bob?.close();
  await a?.stop();
  await b?.stop();
  await new Promise((r) => deadServer?.close(r));
});

test("the account advertises urn:xmpp:push:0; malformed or foreign enables and disables get XEP/RFC 6120 errors", { timeout: 60_000 }, async () => {
  const alice = await online(a, "alice", "desk", { domain: A });
  const info = await iq(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", `alice@${A}`);
  assert.match(info.toString(), /var='urn:xmpp:push:0'/);
  const cases: [string, string][] = [
    [`<enable xmlns='${PUSH}' node='n'/>`, "bad-request"], // no app server
    [`<enable xmlns='${PUSH}' jid='${SVC}'/>`, "bad-request"], // no node
    [`<enable xmlns='${PUSH}' jid='a@@b' node='n'/>`, "jid-malformed"],
    [`<enable xmlns='${PUSH}' jid='${SVC}' node='n'><x xmlns='${DATA}' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></enable>`, "bad-request"],
    [`<enable xmlns='${PUSH}' jid='${SVC}' node='n'><x xmlns='${DATA}' type='submit'>${OPEN_OPTIONS}<field var='urn:xmpp:push:summary#last-message-body'><value>maybe</value></field></x></enable>`, "bad-request"],
    [`<enable xmlns='${PUSH}' jid='${SVC}' node='${"n".repeat(2000)}'/>`, "not-acceptable"],
    [`<disable xmlns='${PUSH}'/>`, "bad-request"],
  ];
  for (const [payload, condition] of cases) assert.equal(errorOf(await iq(alice, payload)).condition, condition, payload.slice(0, 80));
  // Another user cannot register (or remove) devices on alice's account.
  const foreign = await iq(bob, `<enable xmlns='${PUSH}' jid='${SVC}' node='x'/>`, "set", `alice@${A}`);
  assert.equal(errorOf(foreign).condition, "forbidden");
  assert.equal((await regs("alice")).length, 0, "nothing was stored by the refused requests");
  alice.close();
  await until(() => a.server.sessions.ofBare(`alice@${A}`).size === 0, "alice offline");
});

test("an offline message with a body is pushed to the app server over s2s with sender and body; a chat state alone is not", { timeout: 60_000 }, async () => {
  await appNode("n-alice");
  await enableAndLeave("alice", "n-alice");
  bob.send(`<message type='chat' to='alice@${A}'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
  bob.send(`<message type='chat' to='alice@${A}' id='m1'><body>Wherefore art thou?</body></message>`);
  const ev = await event(app, "n-alice", /Wherefore/);
  assert.equal(ev.attrs["from"], SVC);
  const s = summaryOf(ev);
  assert.equal(s["FORM_TYPE"], "urn:xmpp:push:summary");
  assert.equal(s["message-count"], "1", "the chat state was neither stored nor counted");
  assert.equal(s["last-message-sender"], `bob@${A}/phone`);
  assert.equal(s["last-message-body"], "Wherefore art thou?");
  // The client's own field never reaches the app server; its publish-options do (the node checked them).
  assert.doesNotMatch(ev.toString(), /urn:xmpp:push:summary#last-message-body/);
});

test("a burst is folded into at most two notifications, the last one counting every pending message", { timeout: 60_000 }, async () => {
  await appNode("n-grace");
  // grace does not ask for bodies: none is sent although the operator allows them.
  await enableAndLeave("grace", "n-grace", OPEN_OPTIONS);
  bob.send([1, 2, 3, 4, 5].map((i) => `<message type='chat' to='grace@${A}' id='g${i}'><body>burst ${i}</body></message>`).join(""));
  await until(() => events(app, "n-grace").some((e) => summaryOf(e)["message-count"] === "5"), "a notification counting 5");
  // Another interval passes: nothing more comes.
  await new Promise((r) => setTimeout(r, 2500));
  const all = events(app, "n-grace");
  assert.ok(all.length <= 2, `5 messages in one burst gave ${all.length} notifications`);
  for (const e of all) assert.equal(summaryOf(e)["last-message-body"], undefined, "no body unless the client asked");
  assert.equal(summaryOf(all.at(-1)!)["message-count"], "5");
});

test("a message or call for a session hibernated by stream management wakes the device that enabled push, not the others", { timeout: 60_000 }, async () => {
  await appNode("n-carol-laptop");
  await appNode("n-carol-phone");
  await enableAndLeave("carol", "n-carol-laptop");
  const { client: phone } = await RawClient.login(a.c2sPort, "carol", PASSWORD, "phone", { domain: A });
  phone.send(`<enable xmlns='${SM}' resume='true'/>`);
  await phone.waitFor(/<enabled [^>]*\/>/);
  const r = await iq(phone, `<enable xmlns='${PUSH}' jid='${SVC}' node='n-carol-phone'><x xmlns='${DATA}' type='submit'>${OPEN_OPTIONS}</x></enable>`);
  assert.equal(r.attrs["type"], "result", r.toString());
  phone.send("<presence/>");
  await phone.sync(A);
  // Delivered while connected (no push), never acknowledged: the client may not have seen it when the link died.
  bob.send(`<message type='chat' to='carol@${A}' id='q1'><body>are you there?</body></message>`);
  await phone.waitFor(/are you there\?/);
  assert.equal(events(app, "n-carol-phone").length, 0, "a connected session is not pushed");
  phone.close(); // the TCP connection dies without a closing stream: the session hibernates
  const session = () => a.server.sessions.get(parseJid(`carol@${A}/phone`)) as C2sSession | undefined;
  await until(() => session()?.hibernating === true, "hibernation");
  const first = summaryOf(await event(app, "n-carol-phone"));
  assert.equal(first["message-count"], "1", "the unacknowledged message wakes the phone");
  assert.equal(first["last-message-sender"], `bob@${A}/phone`);
  // A chat state alone is queued for the session but wakes nobody (the call's notification counts 2, not 3).
  bob.send(`<message type='chat' to='carol@${A}'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
  bob.send(`<message type='chat' to='carol@${A}' id='call1'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>`);
  await until(() => events(app, "n-carol-phone").length >= 2, "the call's notification");
  const call = summaryOf(events(app, "n-carol-phone")[1]!);
  assert.equal(call["message-count"], "2");
  assert.equal(call["last-message-body"], undefined, "carol did not ask for bodies (and a call has none)");
  assert.equal(session()?.hibernating, true, "the session still waits for resumption");
  bob.send(`<message type='chat' to='carol@${A}' id='c2'><body>pick up</body></message>`);
  await until(() => events(app, "n-carol-phone").some((e) => summaryOf(e)["message-count"] === "3"), "the third notification");
  assert.equal(events(app, "n-carol-laptop").length, 0, "the laptop's registration was not the hibernating session's");
});

test("an app server answering item-not-found loses the registration at once; an unreachable one is retried, then disabled", { timeout: 60_000 }, async () => {
  // The node does not exist on the app server: XEP-0060 item-not-found, i.e. the device is gone.
  await enableAndLeave("frank", "no-such-node", OPEN_OPTIONS);
  assert.equal((await regs("frank")).length, 1);
  bob.send(`<message type='chat' to='frank@${A}'><body>hello?</body></message>`);
  await until(async () => (await regs("frank")).length === 0, "frank's registration removed");

  await enableAndLeave("erin", "dev", OPEN_OPTIONS, "push.nowhere.localhost");
  bob.send(`<message type='chat' to='erin@${A}'><body>one</body></message>`);
  // One retry (retry_base_ms later), then the notification counts as failed: the registration stays, with the count.
  await until(async () => (await regs("erin"))[0]?.value.includes(`"failures":1`) === true, "a first counted failure");
  const firstNotification = deadConnections;
  assert.ok(firstNotification >= 2, `the notification was tried ${firstNotification} time(s), expected a retry`);
  bob.send(`<message type='chat' to='erin@${A}'><body>two</body></message>`);
  await until(async () => (await regs("erin")).length === 0, "erin's registration disabled after max_failures");
  assert.ok(deadConnections > firstNotification, "the second notification was tried too");
  // Disabled: a third message tries nothing.
  const before3 = deadConnections;
  bob.send(`<message type='chat' to='erin@${A}'><body>three</body></message>`);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(deadConnections, before3);
});

test("disable removes one node or every node of an app server; deleting an account removes its registrations", { timeout: 60_000 }, async () => {
  const c = await online(a, "dave", "desk", { domain: A });
  for (const n of ["d1", "d2", "d3"]) assert.equal((await iq(c, `<enable xmlns='${PUSH}' jid='${SVC}' node='${n}'/>`)).attrs["type"], "result");
  assert.equal((await iq(c, `<enable xmlns='${PUSH}' jid='other.${B}' node='d1'/>`)).attrs["type"], "result");
  assert.equal((await regs("dave")).length, 4);
  assert.equal((await iq(c, `<disable xmlns='${PUSH}' jid='${SVC}' node='d2'/>`)).attrs["type"], "result");
  assert.deepEqual((await regs("dave")).map((e) => JSON.parse(e.value).node).sort(), ["d1", "d1", "d3"]);
  assert.equal((await iq(c, `<disable xmlns='${PUSH}' jid='${SVC}'/>`)).attrs["type"], "result");
  assert.deepEqual((await regs("dave")).map((e) => JSON.parse(e.value).jid), [`other.${B}`]);
  c.close();
  await until(() => a.server.sessions.ofBare(`dave@${A}`).size === 0, "dave offline");
  // `comity deluser` deletes through the account store, which drops the account's data of every generic kind.
  assert.equal(await a.server.storage.accounts.delete(A, "dave"), true);
  assert.equal((await regs("dave")).length, 0);
});

test("registrations survive a restart: an offline message after it still triggers a push", { timeout: 90_000 }, async () => {
  await appNode("n-restart");
  await enableAndLeave("alice", "n-restart");
  bob.close();
  await a.server.stop(); // keeps the data directory
  a = await startA(aDataDir, aS2sPort);
  bob = await online(a, "bob", "phone", { domain: A });
  bob.send(`<message type='chat' to='alice@${A}'><body>after the restart</body></message>`);
  const ev = await event(app, "n-restart", /after the restart/);
  assert.equal(summaryOf(ev)["last-message-sender"], `bob@${A}/phone`);
  // The registration from before the restart (n-alice) is there too and was told as well.
  await event(app, "n-alice", /after the restart/);
});
