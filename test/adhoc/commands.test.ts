// The server-roster admin commands (XEP-0267 over XEP-0050) on a real Host with a fake server roster: request
// trust (Metronome's node and peerjid field), list, approve/deny pending, cancel, remove, errors and visibility.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../src/xml/element.ts";
import { xml } from "../../src/xml/parser.ts";
import { StanzaError } from "../../src/xmpp/errors.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import { NS_DATA, NS_DISCO_ITEMS } from "../../src/xmpp/ns.ts";
import { normalizeConfig } from "../../src/core/config/load.ts";
import { silentLogger } from "../../src/core/log.ts";
import { Host } from "../../src/core/host.ts";
import { Events } from "../../src/core/events.ts";
import { SessionRegistry } from "../../src/core/sessions.ts";
import type { ModuleDefinition } from "../../src/core/module-api.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import { discoModule } from "../../src/modules/disco/mod.ts";
import adhoc, { NS_COMMANDS } from "../../src/modules/adhoc/mod.ts";
import buddiesAdhoc, { NODE_CANCEL, NODE_LIST, NODE_PENDING, NODE_REMOVE, NODE_SERVER_BUDDY } from "../../src/modules/buddies-adhoc/mod.ts";
import { FakeRoster, fakeRosterModule } from "./fake-roster.ts";

const ADMIN = "admin@localhost/desk";
const USER = "juliet@localhost/balcony";

async function setup(opts: { withRoster?: boolean } = {}) {
  const config = normalizeConfig({ hosts: [{ domain: "localhost", admins: ["admin@localhost"] }], data_dir: "/tmp" }, { baseDir: "/tmp" });
  const host = new Host(config.hosts[0]!);
  const deps = { config, storage: createMemoryStorage(), log: silentLogger(), events: new Events(), sessions: new SessionRegistry(), send: () => {} };
  const rosters = new Map<string, FakeRoster>();
  const mods: ModuleDefinition[] = [discoModule(host), adhoc, buddiesAdhoc];
  // The roster module loads after the commands: they look it up when run, not at setup.
  if (opts.withRoster !== false) mods.push(fakeRosterModule(rosters));
  for (const m of mods) await host.load(m, deps);
  const iq = async (from: string, stanza: Element): Promise<Element> => {
    const payload = stanza.elements[0]!;
    const handler = host.iqHandler(stanza.attrs["type"]!, "host", payload.xmlns, payload.name);
    assert.ok(handler);
    const f = parseJid(from);
    return ((await handler(stanza, { from: f, to: parseJid("localhost"), origin: { kind: "c2s", jid: f }, payload })) ?? undefined)!;
  };
  const run = (from: string, node: string) => iq(from, xml`<iq type='set'><command xmlns='${NS_COMMANDS}' node='${node}' action='execute'/></iq>`);
  const submit = (from: string, node: string, sid: string, fields: Record<string, string | string[]>) => {
    const el = xml`<iq type='set'><command xmlns='${NS_COMMANDS}' node='${node}' sessionid='${sid}' action='complete'/></iq>`;
    const x = el.elements[0]!.c("x", { type: "submit" }, NS_DATA);
    for (const [k, v] of Object.entries(fields)) {
      const f = x.c("field", { var: k });
      for (const one of Array.isArray(v) ? v : [v]) f.c("value").t(one);
    }
    return iq(from, el);
  };
  return { iq, run, submit, roster: () => rosters.get("localhost")! };
}

const notes = (cmd: Element) => cmd.getChildren("note").map((n) => `${n.attrs["type"]}: ${n.text()}`);
const condition = (c: string) => (err: unknown) => err instanceof StanzaError && err.condition === c;

test("admins see ping and the five server-roster commands; other users see only ping and are forbidden the rest", async () => {
  const { iq, run } = await setup();
  const items = async (from: string) =>
    (await iq(from, xml`<iq type='get'><query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/></iq>`)).getChildren("item").map((i) => i.attrs["node"]);
  assert.deepEqual(await items(ADMIN), ["ping", NODE_SERVER_BUDDY, NODE_LIST, NODE_PENDING, NODE_CANCEL, NODE_REMOVE]);
  assert.deepEqual(await items(USER), ["ping"]);
  for (const node of [NODE_SERVER_BUDDY, NODE_LIST, NODE_PENDING, NODE_CANCEL, NODE_REMOVE]) await assert.rejects(run(USER, node), condition("forbidden"));
});

test("server-buddy asks for peerjid, then requests trust as the admin via xmpp", async () => {
  const { run, submit, roster } = await setup();
  const form = await run(ADMIN, NODE_SERVER_BUDDY);
  assert.equal(form.attrs["status"], "executing");
  const x = form.getChild("x", NS_DATA)!;
  const peerjid = x.getChildren("field").find((f) => f.attrs["var"] === "peerjid")!;
  assert.equal(peerjid.attrs["type"], "jid-single");
  assert.ok(peerjid.getChild("required"));
  const r = await submit(ADMIN, NODE_SERVER_BUDDY, form.attrs["sessionid"]!, { peerjid: "capulet.example", note: "the other house" });
  assert.equal(r.attrs["status"], "completed");
  assert.match(notes(r)[0]!, /^info: Asked capulet\.example to trust localhost/);
  assert.deepEqual(roster().calls, [{ action: "request", peer: "capulet.example", decision: { actor: "admin@localhost", via: "xmpp", note: "the other house", mutual: true } }]);
  assert.equal(roster().get("capulet.example")?.pendingOut, true);
});

test("server-buddy reports a roster refusal as an error note; a missing peerjid is bad-payload", async () => {
  const { run, submit } = await setup();
  const sid = (await run(ADMIN, NODE_SERVER_BUDDY)).attrs["sessionid"]!;
  await assert.rejects(submit(ADMIN, NODE_SERVER_BUDDY, sid, { note: "x" }), (e: unknown) => condition("bad-request")(e) && (e as StanzaError).app?.name === "bad-payload");
  const r = await submit(ADMIN, NODE_SERVER_BUDDY, sid, { peerjid: "localhost" });
  assert.equal(r.attrs["status"], "completed");
  assert.match(notes(r)[0]!, /^error: .*COMITY_ERR_BUDDY_INVALID_PEER/);
});

test("the list shows one row per peer with its state", async () => {
  const { run, roster } = await setup();
  const empty = await run(ADMIN, NODE_LIST);
  assert.deepEqual(notes(empty), ["info: The server roster of localhost is empty."]);
  roster().seed("a.example", { subscription: "both", peerImplementsServerRosters: true, peerAvailable: true, peerStatus: "up" });
  roster().seed("b.example", { pendingIn: true, pendingInSince: 1_700_000_000_000 });
  const r = await run(ADMIN, NODE_LIST);
  assert.equal(r.attrs["status"], "completed");
  const x = r.getChild("x", NS_DATA)!;
  assert.equal(x.attrs["type"], "result");
  assert.deepEqual(x.getChild("reported")!.getChildren("field").map((f) => f.attrs["var"]), ["peer", "subscription", "pending", "implements", "available", "since"]);
  const rows = x.getChildren("item").map((i) => Object.fromEntries(i.getChildren("field").map((f) => [f.attrs["var"], f.getChildText("value")])));
  assert.deepEqual(rows, [
    { peer: "a.example", subscription: "both", pending: "no", implements: "yes", available: "yes (up)", since: "2023-11-14T22:13:20Z" },
    { peer: "b.example", subscription: "none", pending: "in (waiting for us)", implements: "unknown", available: "unknown", since: "2023-11-14T22:13:20Z" },
  ]);
});

test("pending lists inbound requests and applies approve or deny to the chosen peers", async () => {
  const { run, submit, roster } = await setup();
  assert.deepEqual(notes(await run(ADMIN, NODE_PENDING)), ["info: No server is waiting for localhost's approval."]);
  roster().seed("a.example", { pendingIn: true, pendingInSince: 1 });
  roster().seed("b.example", { pendingIn: true, pendingInSince: 2, subscription: "to" });
  roster().seed("c.example", { pendingOut: true });
  const form = await run(ADMIN, NODE_PENDING);
  const fields = form.getChild("x", NS_DATA)!.getChildren("field");
  const peers = fields.find((f) => f.attrs["var"] === "peers")!;
  assert.equal(peers.attrs["type"], "list-multi");
  assert.deepEqual(peers.getChildren("option").map((o) => o.getChildText("value")), ["a.example", "b.example"]);
  const action = fields.find((f) => f.attrs["var"] === "action")!;
  assert.deepEqual(action.getChildren("option").map((o) => o.getChildText("value")), ["approve", "deny"]);
  const r = await submit(ADMIN, NODE_PENDING, form.attrs["sessionid"]!, { peers: ["b.example"], action: "approve" });
  assert.equal(r.attrs["status"], "completed");
  assert.match(notes(r)[0]!, /^info: Approved b\.example\. b\.example: subscription both/);
  assert.equal(roster().get("b.example")?.subscription, "both");

  const again = await run(ADMIN, NODE_PENDING);
  const denied = await submit(ADMIN, NODE_PENDING, again.attrs["sessionid"]!, { peers: ["a.example", "z.example"], action: "deny" });
  assert.deepEqual(notes(denied).map((n) => n.split(":")[0]), ["info", "error"]);
  assert.deepEqual(roster().calls.map((c) => `${c.action} ${c.peer} ${c.decision.actor} ${c.decision.via}`), [
    "approve b.example admin@localhost xmpp",
    "deny a.example admin@localhost xmpp",
    "deny z.example admin@localhost xmpp",
  ]);
});

test("cancel withdraws our pending requests; remove drops peers", async () => {
  const { run, submit, roster } = await setup();
  roster().seed("ejabberd.example", { pendingOut: true, pendingOutSince: 5 });
  roster().seed("a.example", { subscription: "both" });
  const c = await run(ADMIN, NODE_CANCEL);
  const cf = c.getChild("x", NS_DATA)!.getChildren("field").find((f) => f.attrs["var"] === "peers")!;
  assert.deepEqual(cf.getChildren("option").map((o) => o.getChildText("value")), ["ejabberd.example"]);
  const cr = await submit(ADMIN, NODE_CANCEL, c.attrs["sessionid"]!, { peers: ["ejabberd.example"] });
  assert.match(notes(cr)[0]!, /^info: Withdrew the request to ejabberd\.example/);
  const rm = await run(ADMIN, NODE_REMOVE);
  const rr = await submit(ADMIN, NODE_REMOVE, rm.attrs["sessionid"]!, { peers: ["a.example"] });
  assert.match(notes(rr)[0]!, /^info: Removed a\.example/);
  assert.equal(roster().get("a.example"), undefined);
});

test("without a server roster the commands answer service-unavailable", async () => {
  const { run } = await setup({ withRoster: false });
  await assert.rejects(run(ADMIN, NODE_LIST), condition("service-unavailable"));
  await assert.rejects(run(ADMIN, NODE_SERVER_BUDDY), condition("service-unavailable"));
});
