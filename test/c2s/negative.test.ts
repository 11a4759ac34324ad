// Hostile and malformed input over real sockets: every RFC 6120 restriction and limit gets its stream or
// stanza error, and the server keeps serving.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { HEADER, RawClient } from "../kit/raw-client.ts";

let ts: TestServer;
before(async () => {
  ts = await createTestServer({ c2s: { max_stanza_size_preauth: 2000, max_stanza_size: 20000 }, limits: { max_depth: 10, max_children: 50 } }, {
    users: { "alice@localhost": "wonderland", "bob@localhost": "builder" },
  });
});
after(async () => {
  await ts.stop();
});

/** Open a stream (optionally over direct TLS) and wait for its features. */
async function opened(opts: { tls?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(opts.tls ? ts.directTlsPort : ts.c2sPort, opts);
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  return c;
}

async function expectStreamError(c: RawClient, condition: string): Promise<void> {
  await c.waitFor(new RegExp(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`));
  await c.waitFor(/<\/stream:stream>/);
  await c.waitClosed();
}

const streamLevel: [string, string, string][] = [
  ["a DOCTYPE (not allowed inside an element at all)", "<!DOCTYPE x [<!ENTITY a 'b'>]>", "not-well-formed"],
  ["a comment", "<!-- hello -->", "restricted-xml"],
  ["a processing instruction", "<?php echo 1; ?>", "restricted-xml"],
  ["an undefined entity", "<message to='bob@localhost'><body>&lol;</body></message>", "not-well-formed"],
  ["a mismatched end tag", "<message></iq>", "not-well-formed"],
  ["an unbound prefix", "<x:message/>", "not-well-formed"],
];
for (const [what, input, condition] of streamLevel) {
  test(`${what} after the header gives <${condition}/>`, async () => {
    const c = await opened();
    c.send(input);
    await expectStreamError(c, condition);
  });
}

test("a DOCTYPE before the stream header gives <restricted-xml/>, with our header sent first", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  c.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol 'lol'>]>" + HEADER().replace("<?xml version='1.0'?>", ""));
  await c.waitFor(/^<\?xml version='1.0'\?><stream:stream /);
  await expectStreamError(c, "restricted-xml");
});

test("invalid UTF-8 gives <not-well-formed/>", async () => {
  const c = await opened();
  c.send(Buffer.from([0x3c, 0x6d, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x6d, 0x3e]));
  await expectStreamError(c, "not-well-formed");
});

test("a non-UTF-8 encoding declaration gives <unsupported-encoding/>", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER().replace("version='1.0'?>", "version='1.0' encoding='ISO-8859-1'?>"));
  await expectStreamError(c, "unsupported-encoding");
});

test("a wrong stream namespace gives <invalid-namespace/>, an unknown host <host-unknown/>", async () => {
  const a = await RawClient.connect(ts.c2sPort);
  a.send(HEADER().replace("xmlns='jabber:client'", "xmlns='jabber:server'"));
  await expectStreamError(a, "invalid-namespace");
  const b = await RawClient.connect(ts.c2sPort);
  b.send(HEADER("elsewhere.example"));
  await expectStreamError(b, "host-unknown");
  const v = await RawClient.connect(ts.c2sPort);
  v.send(HEADER().replace(" version='1.0'>", ">"));
  await expectStreamError(v, "unsupported-version");
});

test("a stanza over the pre-authentication limit gives <policy-violation/>", async () => {
  const c = await opened();
  c.send(`<message><body>${"x".repeat(3000)}</body></message>`);
  await expectStreamError(c, "policy-violation");
});

test("a stanza over the post-authentication limit gives <policy-violation/>, one under it is delivered", async () => {
  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", "builder", "b");
  bob.send("<presence/>");
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "a");
  alice.send(`<message to='bob@localhost' id='ok1'><body>${"y".repeat(15000)}</body></message>`);
  await bob.waitFor(/id='ok1'/);
  alice.send(`<message to='bob@localhost'><body>${"z".repeat(25000)}</body></message>`);
  await expectStreamError(alice, "policy-violation");
  bob.close();
});

test("nesting deeper than the limit and too many children give <policy-violation/>", async () => {
  const { client: a } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "deep");
  a.send("<message>" + "<x xmlns='urn:x'>".repeat(12));
  await expectStreamError(a, "policy-violation");
  const { client: b } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "wide");
  b.send("<message>" + "<x xmlns='urn:x'/>".repeat(60) + "</message>");
  await expectStreamError(b, "policy-violation");
});

test("TLS is required by default: SASL before STARTTLS fails with encryption-required, stanzas with not-authorized", async () => {
  const c = await opened();
  assert.match(c.buffer, /<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required\/><\/starttls>/);
  assert.doesNotMatch(c.buffer, /<mechanisms/);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0wonderland").toString("base64")}</auth>`);
  await c.waitFor(/<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required\/><\/failure>/);
  c.send("<message to='bob@localhost'><body>sneaky</body></message>");
  await expectStreamError(c, "not-authorized");
});

test("PLAIN is not offered without TLS even when encryption is optional", async () => {
  const t = await createTestServer({ c2s: { encryption: "optional" } }, { users: { "alice@localhost": "wonderland" } });
  try {
    const c = await RawClient.connect(t.c2sPort);
    c.send(HEADER());
    const m = await c.waitFor(/<mechanisms[^>]*>(.*?)<\/mechanisms>/);
    assert.doesNotMatch(m[1]!, /PLAIN/);
    assert.match(m[1]!, /SCRAM-SHA-256/);
    assert.doesNotMatch(m[1]!, /-PLUS/);
    c.close();
  } finally {
    await t.stop();
  }
});

test("data pipelined after <starttls/> in plaintext is never processed", async () => {
  const c = await opened();
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='inject'><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.waitFor(/<proceed/);
  c.buffer = c.buffer.replace(/[\s\S]*<proceed[^>]*\/>/, "");
  // Continue with TLS as a client would and check no reply to the injected iq ever arrives.
  const { connect } = await import("node:tls");
  const secure = connect({ socket: c.socket, rejectUnauthorized: false, servername: "localhost" });
  let text = "";
  secure.setEncoding("utf8");
  secure.on("data", (d: string) => (text += d));
  await new Promise((r) => secure.once("secureConnect", r));
  secure.write(HEADER());
  const deadline = Date.now() + 15_000; // a TLS handshake and a stream open: seconds on a loaded machine
  while (!text.includes("</stream:features>") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(text, /<mechanisms/);
  assert.doesNotMatch(c.buffer + text, /inject/);
  secure.destroy();
});

test("wrong passwords: not-authorized each time, then the stream is closed", async () => {
  const c = await RawClient.connect(ts.c2sPort);
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  await c.starttls();
  c.send(HEADER());
  await c.waitFor(/<\/stream:features>/);
  for (let i = 0; i < 2; i++) {
    assert.equal(await c.authPlain("alice", "nope" + i), false);
    assert.match(c.buffer, /<not-authorized\/>/);
  }
  c.buffer = "";
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0bad").toString("base64")}</auth>`);
  await c.waitFor(/<not-authorized\/>/);
  await expectStreamError(c, "policy-violation");
});

test("an unknown mechanism is invalid-mechanism, bad base64 incorrect-encoding", async () => {
  const c = await opened({ tls: true });
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'/>");
  await c.waitFor(/<invalid-mechanism\/>/);
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!not base64!!!</auth>");
  await c.waitFor(/<incorrect-encoding\/>/);
  c.close();
});

test("stanzas before resource binding give <not-authorized/>", async () => {
  const c = await opened({ tls: true });
  assert.ok(await c.authPlain("alice", "wonderland"));
  c.send("<message to='bob@localhost'><body>early</body></message>");
  await expectStreamError(c, "not-authorized");
});

test("a stream restart cannot change the domain", async () => {
  const t = await createTestServer({ hosts: [{ domain: "localhost" }, { domain: "other.localhost" }] }, { users: { "alice@localhost": "wonderland" } });
  try {
    const c = await RawClient.connect(t.directTlsPort, { tls: true });
    c.send(HEADER());
    await c.waitFor(/<\/stream:features>/);
    const b64 = Buffer.from("\0alice\0wonderland").toString("base64");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64}</auth>`);
    await c.waitFor(/<success/);
    c.send(HEADER("other.localhost"));
    await expectStreamError(c, "host-unknown");
  } finally {
    await t.stop();
  }
});

test("binding: generated resource, conflict replaces the old session, invalid resource is bad-request", async () => {
  const c = await opened({ tls: true });
  assert.ok(await c.authPlain("alice", "wonderland"));
  c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
  const m = await c.waitFor(/<jid>alice@localhost\/([^<]+)<\/jid>/);
  assert.ok(m[1]!.length >= 8);
  c.close();

  const { client: first } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "same");
  const { client: second, jid } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "same");
  assert.equal(jid, "alice@localhost/same");
  await expectStreamError(first, "conflict");
  second.close();

  const d = await opened({ tls: true });
  assert.ok(await d.authPlain("alice", "wonderland"));
  d.send("<iq type='set' id='bad'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>\u0080c1-control</resource></bind></iq>");
  await d.waitFor(/type='error'[\s\S]*<bad-request/);
  d.close();
});

test("addressing: bad to is jid-malformed; iq rules give bad-request", async () => {
  const { client: c, jid } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "addr");
  c.send("<message to='alice@localhost/nowhere' to2='x'><body/></message>");
  c.send("<iq type='get' to='a@b@c' id='m1'><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.waitFor(/id='m1'[\s\S]*?<jid-malformed/);
  c.send("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.waitFor(/<iq type='error' to='[^']+'><ping[\s\S]*?<bad-request/);
  c.send("<iq type='get' to='localhost' id='two'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.waitFor(/id='two'[\s\S]*?<bad-request/);
  c.send("<iq type='get' to='localhost' id='zero'/>");
  await c.waitFor(/id='zero'[\s\S]*?<bad-request/);
  c.send("<iq type='error' to='localhost' id='err'><error type='cancel'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
  c.send(`<iq type='get' id='self' from='${jid}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.waitFor(/id='self'[^>]*type='result'|type='result'[^>]*id='self'/);
  assert.doesNotMatch(c.buffer, /id='err'/);
  c.close();
});

test("a forged or mistaken from is overridden with the session's JID and delivered, and the session lives on", async () => {
  // RFC 6120 §8.1.2.1: the server stamps the real sender. Closing the stream (as Comity once did) made clients that
  // fill in a stale `from` lose their session; Prosody overrides and delivers.
  const { client: alice, jid } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "forger");
  const { client: bob, jid: bobJid } = await RawClient.login(ts.c2sPort, "bob", "builder", "victim");
  alice.send(`<message from='bob@localhost/x' to='${bobJid}' id='f1'><body>forged</body></message>`);
  alice.send(`<message from='not a jid@@' to='${bobJid}' id='f2'><body>malformed</body></message>`);
  alice.send(`<message from='alice@localhost/other' to='${bobJid}' id='f3'><body>stale</body></message>`);
  const got = await bob.waitFor(/<message[^>]*id='f3'[\s\S]*?<\/message>/);
  for (const id of ["f1", "f2", "f3"]) {
    const m = new RegExp(`<message[^>]*id='${id}'[^>]*>`).exec(bob.buffer);
    assert.ok(m, `message ${id} delivered`);
    assert.match(m[0], new RegExp(`from='${jid.replace(/[/.]/g, "\\$&")}'`), m[0]);
  }
  assert.ok(got);
  assert.doesNotMatch(bob.buffer, /from='bob@localhost\/x'|not a jid|alice@localhost\/other/);
  alice.send("<iq type='get' to='localhost' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>");
  await alice.waitFor(/id='alive'/);
  assert.doesNotMatch(alice.buffer, /stream:error/);
  alice.close();
  bob.close();
});

test("the legacy session request is answered after binding too (Strophe.js / Converse.js send it then)", async () => {
  const { client: c } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "legacy");
  c.send("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
  await c.waitFor(/<iq type='result' id='sess1'\/>/);
  c.send("<iq type='set' id='sess2' to='localhost'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
  await c.waitFor(/<iq[^>]*id='sess2'[^>]*\/>/);
  assert.match(c.buffer, /<iq(?=[^>]*type='result')(?=[^>]*from='localhost')[^>]*id='sess2'/);
  c.close();
});

test("a keepalive ping to the own account (no to, or the bare JID) is answered by the server", async () => {
  // profanity's autoping sends exactly the first one and turns keepalive off when it gets an error.
  const { client: c, jid } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "keepalive");
  c.send("<iq type='get' id='kp1'><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.waitFor(/<iq[^>]*id='kp1'[^>]*\/>|<iq[^>]*id='kp1'[\s\S]*?<\/iq>/);
  c.send(`<iq type='get' id='kp2' to='${jid.split("/")[0]}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.waitFor(/<iq[^>]*id='kp2'[^>]*\/>|<iq[^>]*id='kp2'[\s\S]*?<\/iq>/);
  assert.doesNotMatch(c.buffer, /type='error'/);
  assert.match(c.buffer, /<iq(?=[^>]*type='result')[^>]*id='kp1'/);
  assert.match(c.buffer, /<iq(?=[^>]*type='result')[^>]*id='kp2'/);
  // Someone else pinging alice's bare JID gets no answer on her behalf.
  const { client: b } = await RawClient.login(ts.c2sPort, "bob", "builder", "pinger");
  b.send("<iq type='get' id='kp3' to='alice@localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await b.waitFor(/<iq[^>]*id='kp3'[\s\S]*?<\/iq>/);
  assert.match(b.buffer, /type='error'[\s\S]*<service-unavailable/);
  c.close();
  b.close();
});

test("a non-stanza element after binding gives <unsupported-stanza-type/>", async () => {
  const { client: c } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "ust");
  c.send("<foo/>");
  await expectStreamError(c, "unsupported-stanza-type");
});

test("the server is still healthy after all of the above", async () => {
  const { client: c } = await RawClient.login(ts.c2sPort, "alice", "wonderland", "final");
  c.send("<iq type='get' to='localhost' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");
  await c.waitFor(/type='result'/);
  c.close();
});
