// XMPP over BOSH (XEP-0124 / XEP-0206) at /http-bind, driven with raw HTTP requests: session creation and its
// attributes, login with a stream restart, chat between two BOSH sessions (a held long-poll answered when a message
// arrives), an idle long-poll answered empty after 'wait', rids out of order within the window answered in rid order,
// a repeated rid answered from the cache, every terminal condition we send (item-not-found, bad-request,
// policy-violation for overactivity and too-frequent polling, remote-stream-error), body limits, client
// termination, the inactivity timeout (the contact sees the user go offline), encryption rules, CORS and host-meta.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { BoshClient, closeBoshAgents, httpCall, type BoshReply } from "../kit/bosh-client.ts";
import type { Element } from "../../src/xml/element.ts";

const INACTIVITY = 3;
let ts: TestServer;
let httpsUrl: string;
let httpUrl: string;

before(async () => {
  ts = await createTestServer(
    {
      http: { tls_listen: ["127.0.0.1:0"], listen: ["127.0.0.1:0"], trusted_proxies: ["127.0.0.1"], bosh: { inactivity: INACTIVITY, max_wait: 10, polling: 2, max_queued_stanzas: 20 } },
    },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder", "carol@localhost": "singer", "dave@localhost": "diver" } },
  );
  httpsUrl = `https://127.0.0.1:${ts.server.addresses.https[0]!.port}/http-bind`;
  httpUrl = `http://127.0.0.1:${ts.server.addresses.http[0]!.port}/http-bind`;
});
after(async () => {
  closeBoshAgents();
  await ts.stop();
});

const terminated = (r: BoshReply, condition: string) => {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body?.attrs["type"], "terminate", r.text);
  assert.equal(r.body?.attrs["condition"], condition, r.text);
};
/** A streams-namespace element (stream:features, stream:error), whichever way the parser names the prefixed element. */
const isStream = (el: Element | undefined, local: string) => el !== undefined && el.xmlns === "http://etherx.jabber.org/streams" && el.name.replace(/^stream:/, "") === local;
/** Give a request sent on another connection time to reach the server first (requests here are in flight at once). */
const settle = () => new Promise((r) => setTimeout(r, 500));
const ids = (els: Element[]) => els.filter((e) => e.name === "iq").map((e) => e.attrs["id"]);

test("session creation answers with the session's attributes and the stream features (XEP-0124 §7.2, XEP-0206 §4)", async () => {
  const c = new BoshClient(httpsUrl);
  const r = await c.create({ wait: 120, hold: 3 });
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^text\/xml; charset=utf-8/);
  assert.equal(r.headers["access-control-allow-origin"], "*");
  const b = r.body!;
  assert.ok(b.attrs["sid"] && b.attrs["sid"].length >= 20, "an unpredictable sid");
  assert.equal(b.attrs["wait"], "10", "wait lowered to http.bosh.max_wait");
  assert.equal(b.attrs["hold"], "1", "hold lowered to http.bosh.max_hold");
  assert.equal(b.attrs["requests"], "2");
  assert.equal(b.attrs["inactivity"], String(INACTIVITY));
  assert.equal(b.attrs["polling"], "2");
  assert.equal(b.attrs["ver"], "1.6", "the client's version when it is below ours");
  assert.equal(b.attrs["from"], "localhost");
  assert.equal(b.attrs["xmpp:version"], "1.0");
  assert.equal(b.attrs["xmpp:restartlogic"], "true");
  assert.equal(b.attrs["ack"], String(c.rid - 1), "acks announced on the creation response");
  assert.ok(b.attrs["authid"], "the stream id");
  const features = b.elements[0]!;
  assert.ok(isStream(features, "features"), r.text);
  const mechs = features.getChild("mechanisms")!.getChildren("mechanism").map((m) => m.text());
  assert.ok(mechs.includes("PLAIN") && mechs.includes("SCRAM-SHA-256"), mechs.join());
  assert.ok(!mechs.some((m) => m.endsWith("-PLUS")), "no channel binding: a BOSH session has no TLS connection of its own");
  assert.equal(features.getChild("starttls"), undefined, "no STARTTLS over BOSH");
  await c.send("", { type: "terminate" });
});

test("two BOSH users log in with a stream restart and chat; a held request is answered when the message arrives", async () => {
  const alice = new BoshClient(httpsUrl);
  const bob = new BoshClient(httpsUrl);
  assert.equal(await alice.login("alice", "wonderland"), "alice@localhost/bosh");
  assert.equal(await bob.login("bob", "builder"), "bob@localhost/bosh");
  assert.ok(ts.server.sessions.get((await import("../../src/xmpp/jid.ts")).parseJid("alice@localhost/bosh")), "a bound c2s session");
  const sm = (alice.received.find((e) => isStream(e, "features") && e.getChild("bind")) as Element).getChild("sm");
  assert.equal(sm, undefined, "stream management is not offered over BOSH");

  // bob's long-poll is held; alice's message reaches it at once, long before 'wait' (5 s) runs out.
  const started = Date.now();
  const poll = bob.send();
  await settle();
  void alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'><body>Hello over BOSH</body></message>`);
  const got = await poll;
  assert.ok(Date.now() - started < 4000, `answered when the message arrived (${Date.now() - started} ms)`);
  const msg = got.body!.elements.find((e) => e.name === "message")!;
  assert.ok(msg, got.text);
  assert.equal(msg.attrs["from"], "alice@localhost/bosh");
  assert.equal(msg.getChildText("body"), "Hello over BOSH");
  assert.match(got.text, /<message xmlns='jabber:client'/, "stanzas carry jabber:client (XEP-0206)");

  // and back, stanzas written without xmlns inside the wrapper count as jabber:client.
  const back = alice.until("bob's reply", (e) => e.name === "message" && e.getChildText("body") === "Hi Alice");
  await bob.send(`<message to='alice@localhost' type='chat'><body>Hi Alice</body></message>`);
  assert.equal((await back).attrs["from"], "bob@localhost/bosh");
  await alice.send(`<presence type='unavailable' xmlns='jabber:client'/>`, { type: "terminate" });
  await bob.send("", { type: "terminate" });
});

test("an idle long-poll is answered with an empty body after 'wait' seconds", async () => {
  const c = new BoshClient(httpsUrl);
  await c.create({ wait: 1 });
  const started = Date.now();
  const r = await c.send();
  const took = Date.now() - started;
  assert.equal(r.status, 200);
  assert.equal(r.text, "<body xmlns='http://jabber.org/protocol/httpbind'/>");
  assert.ok(took >= 900 && took < 5000, `held about 1 s (${took} ms)`);
  await c.send("", { type: "terminate" });
});

test("requests out of order within the window are handled and answered in rid order; a repeated rid gets the same answer", async () => {
  const c = new BoshClient(httpsUrl);
  await c.login("carol", "singer", { presence: false });
  const r1 = c.rid;
  const r2 = c.rid + 1;
  c.rid += 2;
  const ping = (id: string) => `<iq xmlns='jabber:client' type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`;
  // r2 arrives first: nothing is handled until r1 is there.
  const second = c.at(r2, ping("second"));
  await settle();
  const first = await c.at(r1, ping("first"));
  const secondReply = await second;
  assert.equal(first.body!.attrs["ack"], String(r2), "the answer to r1 says r2 was received (§9.1)");
  const order = [...ids(first.body!.elements), ...ids(secondReply.body!.elements)];
  assert.deepEqual(order, ["first", "second"], `handled in rid order: ${first.text} / ${secondReply.text}`);
  // The connection broke before the answer arrived: the client sends r1 again and gets the same answer (§14.3).
  const again = await c.at(r1, ping("first"));
  assert.equal(again.text, first.text);
  // Beyond the window: the session ends with item-not-found, and its sid is then unknown.
  terminated(await c.at(c.rid + 5), "item-not-found");
  terminated(await c.send(), "item-not-found");
});

test("a repeated rid that is still held takes the answer over; answers the client acknowledged are forgotten (§9.2, §14.3)", async () => {
  const c = new BoshClient(httpsUrl);
  await c.login("carol", "singer", { presence: false });
  const rid = c.rid++;
  const lost = c.at(rid); // held; pretend its connection broke
  await settle();
  const retry = c.at(rid);
  assert.equal((await lost).text, "<body xmlns='http://jabber.org/protocol/httpbind'/>", "the abandoned request is let go");
  await settle();
  const sent = await c.send(`<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const retried = await retry;
  assert.deepEqual([...ids(retried.body!.elements), ...ids(sent.body!.elements)], ["p1"], `${retried.text} / ${sent.text}`);
  // The client says it has every answer up to the last one: a repeat of it is no longer answered from the cache.
  const last = c.rid - 1;
  const next = c.send(`<iq xmlns='jabber:client' type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, { ack: last });
  assert.deepEqual(ids((await next).body!.elements), ["p2"]);
  terminated(await c.at(last), "item-not-found");
});

test("a client that stops collecting its stanzas is cut off at http.bosh.max_queued_stanzas", async () => {
  const sender = new BoshClient(httpsUrl);
  await sender.login("bob", "builder", { presence: false });
  const idle = new BoshClient(httpsUrl);
  const jid = await idle.login("dave", "diver", { presence: false });
  const idleSince = Date.now();
  const { parseJid } = await import("../../src/xmpp/jid.ts");
  const payload = Array.from({ length: 25 }, (_, i) => `<message xmlns='jabber:client' to='${jid}' type='chat'><body>n${i}</body></message>`).join("");
  await sender.send(payload, { type: "terminate" });
  const deadline = Date.now() + 15_000;
  while (ts.server.sessions.get(parseJid(jid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(ts.server.sessions.get(parseJid(jid)), undefined, "the session ended");
  const took = Date.now() - idleSince;
  assert.ok(took < (INACTIVITY - 1) * 1000, `ended by the queue cap, not by inactivity (${took} ms)`);
  terminated(await idle.send(), "item-not-found");
});

test("unknown sid, missing rid, non-BOSH and oversized requests get clear errors", async () => {
  const c = new BoshClient(httpsUrl);
  c.sid = "no-such-session";
  terminated(await c.send(), "item-not-found");

  const noRid = await c.raw(`<body xmlns='http://jabber.org/protocol/httpbind' to='localhost' wait='5' hold='1'/>`);
  terminated(noRid, "bad-request");

  const notXml = await c.raw("hello");
  assert.equal(notXml.status, 400);
  assert.equal(notXml.body?.attrs["condition"], "bad-request");
  const wrongRoot = await c.raw(`<stream xmlns='jabber:client'/>`);
  assert.equal(wrongRoot.status, 400);
  const doctype = await c.raw(`<!DOCTYPE body><body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='5' hold='1'/>`);
  assert.equal(doctype.status, 400, "restricted XML: no DOCTYPE");

  const big = await c.raw(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>${"x".repeat(ts.config.c2s.max_stanza_size + 70_000)}</body>`);
  assert.equal(big.status, 413);

  const unknownHost = new BoshClient(httpsUrl);
  terminated(await unknownHost.create({ to: "elsewhere.example" }), "host-unknown");
  const noTo = await unknownHost.raw(`<body xmlns='http://jabber.org/protocol/httpbind' rid='5' wait='5' hold='1'/>`);
  terminated(noTo, "improper-addressing");
  const badWait = new BoshClient(httpsUrl);
  terminated(await badWait.create({ wait: "soon" }), "bad-request");

  const get = await httpCall(httpsUrl, undefined, { method: "GET" });
  assert.equal(get.status, 405);
  assert.match(String(get.headers["allow"]), /POST/);
});

test("inside a session, a stream error ends it with remote-stream-error carrying the stream error", async () => {
  const c = new BoshClient(httpsUrl);
  await c.create();
  // Before authentication, stanzas are limited to c2s.max_stanza_size_preauth bytes.
  const r = await c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${"A".repeat(ts.config.c2s.max_stanza_size_preauth + 10)}</auth>`);
  terminated(r, "remote-stream-error");
  assert.ok(isStream(r.body!.elements[0], "error"), r.text);
  assert.equal(r.body!.elements[0]!.elements[0]!.name, "policy-violation");
  terminated(await c.send(), "item-not-found");

  const d = new BoshClient(httpsUrl);
  await d.create();
  const early = await d.send(`<message xmlns='jabber:client' to='bob@localhost'><body>too soon</body></message>`);
  terminated(early, "remote-stream-error");
  assert.equal(early.body!.elements[0]!.elements[0]!.name, "not-authorized");

  const e = new BoshClient(httpsUrl);
  await e.create();
  const broken = await e.raw(e.wrap({ sid: e.sid, rid: e.rid++ }, "<message><body>unclosed</message>"));
  terminated(broken, "remote-stream-error");
  assert.equal(broken.body!.elements[0]!.elements[0]!.name, "not-well-formed");
});

test("too many simultaneous requests, and polling too often, end the session with policy-violation (§11, §12)", async () => {
  const c = new BoshClient(httpsUrl);
  await c.create({ wait: 5 });
  const held = c.send(); // held: 1 of 2
  await settle();
  const r3 = c.at(c.rid + 1); // early, in the window
  await settle();
  const r2 = await c.at(c.rid, `<iq xmlns='jabber:client' type='get' id='x'/>`); // a third unanswered request
  terminated(r2, "policy-violation");
  terminated(await held, "policy-violation");
  terminated(await r3, "policy-violation");

  const p = new BoshClient(httpsUrl);
  await p.create({ hold: 0, wait: 0 });
  assert.equal(p.creation!.body!.attrs["requests"], "1", "a polling session");
  const first = await p.send();
  assert.equal(first.text, "<body xmlns='http://jabber.org/protocol/httpbind'/>");
  terminated(await p.send(), "policy-violation");
});

test("the client terminates its session (§13): its last payloads are handled, held requests answered, the sid forgotten", async () => {
  const watcher = new BoshClient(httpsUrl);
  await watcher.login("bob", "builder");
  const c = new BoshClient(httpsUrl);
  await c.login("dave", "diver", { presence: false });
  const poll = c.send();
  await settle();
  const bye = await c.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>bye</body></message>`, { type: "terminate" });
  assert.equal(bye.body?.attrs["type"], "terminate", bye.text);
  assert.equal(bye.body?.attrs["condition"], undefined, "a normal end carries no condition");
  assert.equal((await poll).status, 200);
  await watcher.until("dave's last message", (e) => e.name === "message" && e.getChildText("body") === "bye");
  terminated(await c.send(), "item-not-found");
  await watcher.send("", { type: "terminate" });
});

test("a session with no request for 'inactivity' seconds ends: its contact sees it go offline", async () => {
  // alice and bob are contacts, so bob receives alice's presence.
  for (const [owner, contact] of [["alice", "bob"], ["bob", "alice"]] as const) {
    await ts.server.storage.rosters.setItem("localhost", owner, { jid: `${contact}@localhost`, subscription: "both", ask: false, approved: false, groups: [] });
  }
  const bob = new BoshClient(httpsUrl);
  await bob.login("bob", "builder");
  const alice = new BoshClient(httpsUrl);
  await alice.login("alice", "wonderland");
  const idleSince = Date.now();
  await bob.until("alice online", (e) => e.name === "presence" && e.attrs["from"] === "alice@localhost/bosh" && e.attrs["type"] === undefined);
  // alice sends no request from now on (nothing of hers is held: her last request was answered); bob keeps polling.
  const off = await bob.until("alice offline", (e) => e.name === "presence" && e.attrs["from"] === "alice@localhost/bosh" && e.attrs["type"] === "unavailable", 30_000);
  assert.ok(off);
  const took = Date.now() - idleSince;
  assert.ok(took >= (INACTIVITY - 1) * 1000, `not before the inactivity period (${took} ms)`);
  terminated(await alice.send(), "item-not-found");
  await bob.send("", { type: "terminate" });
});

test("a closed tab (its held request's connection gone) goes offline after 'inactivity', not 'wait' + 'inactivity'", async () => {
  for (const [owner, contact] of [["alice", "bob"], ["bob", "alice"]] as const) {
    await ts.server.storage.rosters.setItem("localhost", owner, { jid: `${contact}@localhost`, subscription: "both", ask: false, approved: false, groups: [] });
  }
  const bob = new BoshClient(httpsUrl);
  await bob.login("bob", "builder");
  const alice = new BoshClient(httpsUrl);
  await alice.login("alice", "wonderland", { wait: 10 });
  await bob.until("alice online", (e) => e.name === "presence" && e.attrs["from"] === "alice@localhost/bosh" && e.attrs["type"] === undefined);
  const drop = alice.drop(); // held for up to 10 s
  await settle();
  drop();
  const closed = Date.now();
  await bob.until("alice offline", (e) => e.name === "presence" && e.attrs["from"] === "alice@localhost/bosh" && e.attrs["type"] === "unavailable", 30_000);
  const took = Date.now() - closed;
  assert.ok(took >= (INACTIVITY - 1) * 1000 && took < 9000, `offline after the inactivity period, before 'wait' ran out (${took} ms)`);
  await bob.send("", { type: "terminate" });
});

test("over plain http with c2s.encryption required the stream is refused; https and a trusted TLS proxy are not", async () => {
  const plain = new BoshClient(httpUrl);
  const r = await plain.create();
  terminated(r, "remote-stream-error");
  assert.equal(r.body!.elements[0]!.elements[0]!.name, "policy-violation");
  assert.match(r.text, /https:\/\//);
  const proxied = new BoshClient(httpUrl);
  const p = await proxied.raw(proxied.wrap({ to: "localhost", rid: proxied.rid++, wait: 5, hold: 1, ver: "1.11", "xmpp:version": "1.0" }), { "x-forwarded-proto": "https", "x-forwarded-for": "192.0.2.7" });
  assert.equal(p.body?.attrs["type"], undefined, p.text);
  assert.ok(p.body?.elements[0]?.getChild("mechanisms"), "SASL offered behind a TLS-terminating proxy");
  proxied.sid = p.body!.attrs["sid"]!;
  await proxied.send("", { type: "terminate" });
});

test("CORS: preflight and answers name the allowed origin; host-meta lists the BOSH endpoint", async () => {
  const pre = await httpCall(httpsUrl, undefined, { method: "OPTIONS", headers: { origin: "http://127.0.0.1:9", "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers["access-control-allow-origin"], "*");
  assert.match(String(pre.headers["access-control-allow-methods"]), /POST/);
  assert.match(String(pre.headers["access-control-allow-headers"]), /content-type/i);

  const xrd = await httpCall(httpsUrl.replace("/http-bind", "/.well-known/host-meta"), undefined, { method: "GET" });
  assert.match(xrd.text, new RegExp(`<Link rel="urn:xmpp:alt-connections:xbosh" href="${httpsUrl.replace(/\//g, "\\/")}"/>`));
  const jrd = await httpCall(httpsUrl.replace("/http-bind", "/.well-known/host-meta.json"), undefined, { method: "GET" });
  assert.ok((JSON.parse(jrd.text) as { links: { rel: string; href: string }[] }).links.some((l) => l.rel === "urn:xmpp:alt-connections:xbosh" && l.href === httpsUrl));
  const plainXrd = await httpCall(httpUrl.replace("/http-bind", "/.well-known/host-meta"), undefined, { method: "GET" });
  assert.doesNotMatch(plainXrd.text, /xbosh/, "no plaintext BOSH URL while encryption is required");

  const t = await createTestServer({ http: { tls_listen: ["127.0.0.1:0"], bosh: { origins: ["https://chat.example"] } } });
  try {
    const url = `https://127.0.0.1:${t.server.addresses.https[0]!.port}/http-bind`;
    const ok = await httpCall(url, undefined, { method: "OPTIONS", headers: { origin: "https://chat.example" } });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers["access-control-allow-origin"], "https://chat.example");
    const bad = await httpCall(url, `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='5' hold='1'/>`, { headers: { origin: "https://evil.example" } });
    assert.equal(bad.status, 403);
    const tool = new BoshClient(url);
    const r = await tool.create();
    assert.ok(r.body?.attrs["sid"], "a client without Origin (not a browser) is not restricted");
    await tool.send("", { type: "terminate" });
  } finally {
    await t.stop();
  }
});

test("server shutdown answers held requests with system-shutdown", async () => {
  const t = await createTestServer({ http: { tls_listen: ["127.0.0.1:0"] } }, { users: { "alice@localhost": "wonderland" } });
  const c = new BoshClient(`https://127.0.0.1:${t.server.addresses.https[0]!.port}/http-bind`);
  await c.login("alice", "wonderland");
  const held = c.send();
  await settle();
  await t.stop();
  const r = await held;
  assert.equal(r.body?.attrs["type"], "terminate", r.text);
  assert.equal(r.body?.attrs["condition"], "system-shutdown", r.text);
});
