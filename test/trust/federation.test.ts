// What server trust is used for, over real sockets (docs/trust-uses.md): three Comity servers on loopback; trust
// comes from a stand-in server roster here (test/trust/roster.test.ts runs the real one): XEP-0268 incidents,
// XEP-0191 blocking with a real client, XEP-0377 report forwarding, and the buddies-only federation policy.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { x } from "../../src/xml/element.ts";
import type { ServerRoster } from "../../src/modules/server-buddies/api.ts";
import type { IncidentRecord } from "../../src/storage/types.ts";

let a: TestServer;
let b: TestServer;
let c: TestServer;
const trusted = { a: new Set<string>(), b: new Set<string>(), c: new Set<string>() };

/** A stand-in for the server-buddies module: only the three questions the consumers ask. */
function fakeRoster(set: Set<string>): ServerRoster {
  const no = (): never => {
    throw new Error("not in the fake roster");
  };
  return {
    trusts: (p) => set.has(p),
    isTrustedBy: (p) => set.has(p),
    isMutual: (p) => set.has(p),
    get: () => undefined,
    list: () => [],
    audit: no,
    request: no,
    approve: no,
    deny: no,
    cancel: no,
    remove: no,
    onChange: () => () => {},
  };
}

const IODEF = `<Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0' purpose='reporting'>
  <IncidentID name='a.localhost'>INC-42</IncidentID><ReportTime>2026-01-01T00:00:00Z</ReportTime>
  <Description>registration spam from 192.0.2.1</Description></Incident>`;

async function call(ts: TestServer, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const fn = ts.server.control.get(method);
  assert.ok(fn, `control method ${method}`);
  return await fn(params);
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function login(ts: TestServer, user: string, domain: string, resource: string): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, "pw", resource, { domain });
  client.send("<presence/>");
  await client.sync(domain); // the presence was handled and its echo has arrived: nothing stale after the clear
  client.buffer = "";
  return client;
}

before(async () => {
  const s2s = { listen: ["127.0.0.1:0"], verify_certificates: false };
  a = await createTestServer(
    { hosts: [{ domain: "a.localhost", admins: ["admin@a.localhost"] }], s2s },
    { users: { "alice@a.localhost": "pw", "bob@a.localhost": "pw", "admin@a.localhost": "pw" } },
  );
  b = await createTestServer(
    { hosts: [{ domain: "b.localhost", admins: ["admin@b.localhost"], contact: { abuse: ["mailto:abuse@b.localhost", "xmpp:abuse@b.localhost"] } }], s2s },
    { users: { "spammer@b.localhost": "pw", "abuse@b.localhost": "pw", "admin@b.localhost": "pw" } },
  );
  c = await createTestServer(
    { hosts: [{ domain: "c.localhost" }], s2s, federation: { policy: "buddies-only", trusted_limits: { max_stanza_size: 1048576 }, untrusted_limits: { max_stanza_size: 65536 } } },
    { users: { "carol@c.localhost": "pw" } },
  );
  const all = { "a.localhost": a, "b.localhost": b, "c.localhost": c };
  for (const ts of Object.values(all)) {
    for (const [d, other] of Object.entries(all)) if (other !== ts) ts.config.s2s.routes[d] = `127.0.0.1:${other.s2sPort}`;
  }
  a.server.hosts.get("a.localhost")!.provided.set("server-roster", fakeRoster(trusted.a));
  b.server.hosts.get("b.localhost")!.provided.set("server-roster", fakeRoster(trusted.b));
  c.server.hosts.get("c.localhost")!.provided.set("server-roster", fakeRoster(trusted.c));
});

after(async () => {
  await a?.stop();
  await b?.stop();
  await c?.stop();
});

test("an incident report from a peer we do not trust is refused with forbidden", async () => {
  await assert.rejects(() => call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF }), /not a trusted peer/);
  const rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF, force: true })) as IncidentRecord;
  assert.equal(rec.status, "failed");
  assert.equal(rec.note, "forbidden");
  assert.deepEqual(await call(b, "incidents.list"), []);
});

test("an incident report from a trusted peer is stored, listed, shown, and admins are told", async () => {
  trusted.a.add("b.localhost");
  trusted.b.add("a.localhost");
  const rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF })) as IncidentRecord;
  assert.equal(rec.status, "sent");
  const list = (await call(b, "incidents.list")) as Omit<IncidentRecord, "payload">[];
  assert.equal(list.length, 1);
  assert.equal(list[0]!.peer, "a.localhost");
  assert.equal(list[0]!.kind, "report");
  assert.equal(list[0]!.status, "accepted");
  assert.equal(list[0]!.incidentId, "INC-42");
  const shown = (await call(b, "incidents.show", { id: list[0]!.id })) as IncidentRecord;
  assert.match(shown.payload, /<IncidentID name='a.localhost'>INC-42<\/IncidentID>/);
  // The admin is offline: the notice waits in offline storage.
  await eventually(async () => (await b.server.storage.offline.list("b.localhost", "admin")).some((m) => /Incident report from a\.localhost/.test(m.stanza)));
  // The CLI reads the same list from the running server.
  const file = join(b.dataDir, "comity.yaml");
  writeFileSync(file, `hosts: [{domain: b.localhost}]\ndata_dir: ${b.dataDir}\n`);
  const run = async (...args: string[]) =>
    (await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args, "--config", file], { encoding: "utf8", timeout: 60_000 })).stdout;
  const json = JSON.parse(await run("incidents", "list", "--json")) as { id: number; peer: string }[];
  assert.equal(json[0]?.peer, "a.localhost");
  assert.match(await run("incidents", "list"), /^ID\s+DIR\s+PEER/m);
  assert.match(await run("incidents", "show", String(json[0]!.id)), /INC-42/);
});

test("with incidents.untrusted: hold, an untrusted peer's inquiry is held for review, then accepted by an admin", async () => {
  trusted.b.delete("a.localhost");
  b.config.incidents.untrusted = "hold";
  try {
    const rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "inquiry", payload: IODEF })) as IncidentRecord;
    assert.equal(rec.status, "sent");
    const held = (await call(b, "incidents.list", { status: "held" })) as IncidentRecord[];
    assert.equal(held.length, 1);
    assert.equal(held[0]!.kind, "inquiry");
    const accepted = (await call(b, "incidents.accept", { id: held[0]!.id })) as IncidentRecord;
    assert.equal(accepted.status, "accepted");
    await assert.rejects(() => call(b, "incidents.accept", { id: held[0]!.id }), /not held/);
  } finally {
    b.config.incidents.untrusted = "refuse";
    trusted.b.add("a.localhost");
  }
});

test("blocking: list, block with a push, enforcement both ways, persistence, unblock all", async () => {
  const alice = await login(a, "alice", "a.localhost", "home");
  const bob = await login(a, "bob", "a.localhost", "desk");
  alice.send("<iq type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
  await alice.waitFor(/id='bl1'[^>]*type='result'|type='result'[^>]*id='bl1'/);
  assert.match(alice.buffer, /<blocklist xmlns='urn:xmpp:blocking'\/>/);
  alice.buffer = "";

  alice.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@a.localhost'/></block></iq>");
  await alice.waitFor(/<iq[^>]*type='set'[^>]*>\s*<block xmlns='urn:xmpp:blocking'><item jid='bob@a.localhost'\/><\/block>/);
  await alice.waitFor(/id='b1'/);
  assert.equal(await a.server.storage.keyval("blocklist").get("a.localhost", "alice", "items"), JSON.stringify(["bob@a.localhost"]));

  // §3.6: the blocked contact's message bounces with service-unavailable and is not delivered.
  bob.send("<message to='alice@a.localhost' id='m1' type='chat'><body>let me in</body></message>");
  await bob.waitFor(/id='m1'[\s\S]*?<service-unavailable/);
  // §3.7: the user cannot write to the blocked contact.
  alice.send("<message to='bob@a.localhost' id='m2' type='chat'><body>hi</body></message>");
  await alice.waitFor(/id='m2'[\s\S]*?<not-acceptable[\s\S]*?<blocked xmlns='urn:xmpp:blocking:errors'\/>/);
  assert.doesNotMatch(alice.buffer, /let me in/);
  assert.doesNotMatch(bob.buffer, /<body>hi<\/body>/);

  alice.send("<iq type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
  await alice.waitFor(/<blocklist xmlns='urn:xmpp:blocking'><item jid='bob@a.localhost'\/><\/blocklist>/);

  // Malformed and empty requests.
  alice.send("<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'/></iq>");
  await alice.waitFor(/id='b2'[\s\S]*?<bad-request/);
  alice.send("<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'><item jid='@@bad'/></block></iq>");
  await alice.waitFor(/id='b3'[\s\S]*?<jid-malformed/);

  alice.buffer = "";
  alice.send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>");
  await alice.waitFor(/<unblock xmlns='urn:xmpp:blocking'\/>/);
  await alice.waitFor(/id='u1'/);
  bob.send("<message to='alice@a.localhost' id='m3' type='chat'><body>friends again</body></message>");
  await alice.waitFor(/friends again/);
  assert.equal(await a.server.storage.keyval("blocklist").get("a.localhost", "alice", "items"), undefined);
  alice.close();
  bob.close();
});

async function blockAndReport(alice: RawClient, jid: string, id: string, origin: boolean): Promise<void> {
  alice.send(
    `<iq type='set' id='${id}'><block xmlns='urn:xmpp:blocking'><item jid='${jid}'>` +
      `<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'><text xml:lang='en'>buy pills</text>${origin ? "<report-origin/>" : ""}</report>` +
      `</item></block></iq>`,
  );
  await alice.waitFor(new RegExp(`id='${id}'[^>]*type='result'|type='result'[^>]*id='${id}'`));
}

const counts = async (ts: TestServer) => ((await call(ts, "abuse.list")) as { counts: { account: string; count: number }[] }).counts;

test("an abuse report with report-origin is forwarded to a trusted peer's abuse address, and counted there", async () => {
  trusted.a.add("b.localhost");
  trusted.b.add("a.localhost");
  const mailbox = await login(b, "abuse", "b.localhost", "inbox");
  const alice = await login(a, "alice", "a.localhost", "report");
  await blockAndReport(alice, "spammer@b.localhost", "r1", true);
  // B published xmpp:abuse@b.localhost (XEP-0157): the report goes there, is counted, and reaches the mailbox.
  await mailbox.waitFor(/<message[^>]*from='a.localhost'[\s\S]*?<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>[\s\S]*?<jid xmlns='urn:xmpp:jid:0'>spammer@b.localhost<\/jid>/);
  assert.doesNotMatch(mailbox.buffer, /alice/);
  assert.doesNotMatch(mailbox.buffer, /report-origin/);
  await eventually(async () => (await counts(b)).some((c) => c.account === "spammer@b.localhost" && c.count === 1));
  const list = (await call(b, "abuse.list", { account: "spammer@b.localhost" })) as { reports: { peer: string; text: string | null }[] };
  assert.equal(list.reports[0]?.peer, "a.localhost");
  assert.equal(list.reports[0]?.text, "buy pills");
  mailbox.close();
  alice.close();
});

test("abuse reports are not forwarded without report-origin or to an untrusted peer, and untrusted ones are not counted", async () => {
  const mailbox = await login(b, "abuse", "b.localhost", "inbox2");
  const alice = await login(a, "alice", "a.localhost", "report2");
  await blockAndReport(alice, "quiet@b.localhost", "r2", false);
  trusted.a.delete("b.localhost");
  await blockAndReport(alice, "other@b.localhost", "r3", true);
  // A trusts B again, but B no longer trusts A: the report arrives and is only logged.
  trusted.a.add("b.localhost");
  trusted.b.delete("a.localhost");
  await blockAndReport(alice, "third@b.localhost", "r4", true);
  await mailbox.waitFor(/third@b.localhost/);
  // r2 and r3 were handled before r4 on alice's stream, and anything A forwarded crosses the same link before r4,
  // so B has seen them all by now; the 300 ms only cover B storing a (wrong) count.
  await new Promise((r) => setTimeout(r, 300));
  const accounts = (await counts(b)).map((c) => c.account);
  assert.ok(!accounts.includes("quiet@b.localhost"));
  assert.ok(!accounts.includes("other@b.localhost"));
  assert.ok(!accounts.includes("third@b.localhost"));
  assert.doesNotMatch(mailbox.buffer, /quiet@b.localhost|other@b.localhost/);
  trusted.b.add("a.localhost");
  mailbox.close();
  alice.close();
});

test("buddies-only refuses a non-buddy's message both ways while the trust handshake still goes through", async () => {
  const seen: string[] = [];
  c.server.events.on("presence/host", ({ stanza }) => void seen.push(`${stanza.attrs["from"]} ${stanza.attrs["type"] ?? "available"}`), 1000);
  const alice = await login(a, "alice", "a.localhost", "policy");
  const carol = await login(c, "carol", "c.localhost", "home");
  alice.send("<message to='carol@c.localhost' id='p1' type='chat'><body>hello stranger</body></message>");
  await alice.waitFor(/id='p1'[\s\S]*?<policy-violation/, 15000);
  carol.send("<message to='alice@a.localhost' id='p2' type='chat'><body>hello back</body></message>");
  await carol.waitFor(/id='p2'[\s\S]*?<policy-violation/);
  assert.doesNotMatch(carol.buffer, /hello stranger/);

  // The handshake: a domain-to-domain subscribe and a disco#info query cross.
  a.server.router.send(x("presence", "jabber:client", { from: "a.localhost", to: "c.localhost", type: "subscribe" }));
  await eventually(() => seen.includes("a.localhost subscribe"));
  const info = await a.server.router.request(x("iq", "jabber:client", { type: "get", from: "a.localhost", to: "c.localhost" }, x("query", "http://jabber.org/protocol/disco#info")));
  assert.match(info.toString(), /urn:xmpp:incident:2/);

  // Once C's admins approve A, messages flow.
  trusted.c.add("a.localhost");
  alice.buffer = "";
  alice.send("<message to='carol@c.localhost' id='p3' type='chat'><body>now we are buddies</body></message>");
  await carol.waitFor(/now we are buddies/);
  trusted.c.delete("a.localhost");
  alice.close();
  carol.close();
});

test("per-peer limits: trusted peers get trusted_limits when their link authenticates, others untrusted_limits", async () => {
  const sizes: number[] = [];
  const fire = (remote: string) =>
    c.server.events.fire("s2s/authenticated", { local: "c.localhost", remote, direction: "in", host: "c.localhost", setMaxStanzaSize: (n) => void sizes.push(n) });
  trusted.c.add("a.localhost");
  await fire("a.localhost");
  trusted.c.delete("a.localhost");
  await fire("a.localhost");
  assert.deepEqual(sizes, [1048576, 65536]);
});
