// Unit tests of XEP-0050 on the host: command list visibility (§2.2), command info (§2.3), single- and
// multi-stage execution with prev/next/complete/cancel (§3-§4), notes, and the §4.6 errors, on a real Host.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../../xml/element.ts";
import { xml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS } from "../../xmpp/ns.ts";
import { normalizeConfig } from "../../core/config/load.ts";
import { silentLogger } from "../../core/log.ts";
import { Host } from "../../core/host.ts";
import { Events } from "../../core/events.ts";
import { SessionRegistry } from "../../core/sessions.ts";
import { defineModule } from "../../core/module-api.ts";
import { createMemoryStorage } from "../../storage/memory.ts";
import { discoModule } from "../disco/mod.ts";
import adhoc, { NS_COMMANDS } from "./mod.ts";
import { AdhocEngine } from "./engine.ts";
import type { Adhoc } from "./api.ts";
import { buildForm, textValue } from "../../xmpp/data-forms.ts";

const ADMIN = "admin@localhost/desk";
const USER = "juliet@localhost/balcony";

/** A module registering test commands, loaded after adhoc as feature modules are. */
const commands = defineModule({
  name: "test-commands",
  setup(ctx) {
    const api = ctx.use<Adhoc>("adhoc")!;
    api.register({
      node: "urn:test:uptime",
      name: "Uptime",
      adminOnly: false,
      handler: () => ({ status: "completed", notes: [{ type: "info", text: "up" }] }),
    });
    api.register({
      node: "urn:test:wizard",
      name: "Wizard",
      adminOnly: true,
      handler: (req) => {
        if (req.stage === 0) {
          return { status: "executing", actions: ["next"], form: buildForm({ type: "form", fields: [{ var: "name", type: "text-single", required: true }] }) };
        }
        if (req.stage === 1) {
          req.state["name"] = textValue(req.form!, "name");
          return { status: "executing", form: buildForm({ type: "form", fields: [{ var: "peer", type: "jid-single", required: true }] }) };
        }
        return { status: "completed", notes: [{ type: "info", text: `${String(req.state["name"])} ${textValue(req.form!, "peer") ?? ""}` }] };
      },
    });
    api.register({
      node: "urn:test:refuse",
      name: "Refuse",
      adminOnly: true,
      handler: () => ({ status: "completed", notes: [{ type: "error", text: "no such peer" }] }),
    });
  },
});

async function setup() {
  const config = normalizeConfig({ hosts: [{ domain: "localhost", admins: ["admin@localhost"] }], data_dir: "/tmp" }, { baseDir: "/tmp" });
  const host = new Host(config.hosts[0]!);
  const deps = { config, storage: createMemoryStorage(), log: silentLogger(), events: new Events(), sessions: new SessionRegistry(), send: () => {} };
  for (const m of [discoModule(host), adhoc, commands]) await host.load(m, deps);
  /** Run an IQ to the host as the router would. */
  const iq = async (from: string, stanza: Element): Promise<Element> => {
    const payload = stanza.elements[0]!;
    const handler = host.iqHandler(stanza.attrs["type"]!, "host", payload.xmlns, payload.name);
    assert.ok(handler, "handler registered");
    const f = parseJid(from);
    return ((await handler(stanza, { from: f, to: parseJid("localhost"), origin: { kind: "c2s", jid: f }, payload })) ?? undefined)!;
  };
  return { host, iq };
}

const condition = (c: string, app?: string) => (err: unknown) =>
  err instanceof StanzaError && err.condition === c && (app === undefined || (err.app?.name === app && err.app.xmlns === NS_COMMANDS));

const exec = (node: string, extra = "") => xml`<iq type='set' id='e'><command xmlns='http://jabber.org/protocol/commands' node='${node}' ${extra}/></iq>`;

function submit(node: string, sid: string, action: string | undefined, fields: Record<string, string>): Element {
  const el = xml`<iq type='set' id='s'><command xmlns='http://jabber.org/protocol/commands' node='${node}' sessionid='${sid}'/></iq>`;
  const cmd = el.elements[0]!;
  if (action !== undefined) cmd.attrs["action"] = action;
  const x = cmd.c("x", { type: "submit" }, NS_DATA);
  for (const [k, v] of Object.entries(fields)) x.c("field", { var: k }).c("value").t(v);
  return el;
}

test("the host advertises the commands feature", async () => {
  const { host } = await setup();
  assert.ok(host.features.host.has(NS_COMMANDS));
});

test("admins see every command in the list; users only the ones not admin-only; remote JIDs none", async () => {
  const { iq } = await setup();
  const list = (from: string) => iq(from, xml`<iq type='get' id='d'><query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/></iq>`);
  const admin = await list(ADMIN);
  assert.equal(admin.attrs["node"], NS_COMMANDS);
  assert.deepEqual(admin.getChildren("item").map((i) => [i.attrs["jid"], i.attrs["node"], i.attrs["name"]]), [
    ["localhost", "ping", "Ping"],
    ["localhost", "urn:test:uptime", "Uptime"],
    ["localhost", "urn:test:wizard", "Wizard"],
    ["localhost", "urn:test:refuse", "Refuse"],
  ]);
  assert.deepEqual((await list(USER)).getChildren("item").map((i) => i.attrs["node"]), ["ping", "urn:test:uptime"]);
  assert.deepEqual((await list("romeo@montague.example/x")).getChildren("item"), []);
});

test("disco#info of the list and of a command node; non-admins are forbidden the admin node", async () => {
  const { iq } = await setup();
  const info = (from: string, node: string) => iq(from, xml`<iq type='get' id='i'><query xmlns='${NS_DISCO_INFO}' node='${node}'/></iq>`);
  const list = await info(USER, NS_COMMANDS);
  assert.equal(list.getChild("identity")!.attrs["type"], "command-list");
  const node = await info(ADMIN, "urn:test:wizard");
  assert.deepEqual({ ...node.getChild("identity")!.attrs }, { category: "automation", type: "command-node", name: "Wizard" });
  assert.deepEqual(node.getChildren("feature").map((f) => f.attrs["var"]), [NS_COMMANDS, NS_DATA]);
  await assert.rejects(info(USER, "urn:test:wizard"), condition("forbidden"));
  await assert.rejects(info(ADMIN, "urn:test:nothing"), condition("item-not-found"));
});

test("a single-stage command completes at once with its note and a sessionid", async () => {
  const { iq } = await setup();
  const r = await iq(USER, exec("urn:test:uptime"));
  assert.equal(r.attrs["status"], "completed");
  assert.ok(r.attrs["sessionid"]);
  assert.equal(r.getChild("actions"), undefined);
  assert.equal(r.getChild("note")!.attrs["type"], "info");
  assert.equal(r.getChildText("note"), "up");
});

test("a non-admin executing an admin command gets forbidden; an unknown node item-not-found", async () => {
  const { iq } = await setup();
  await assert.rejects(iq(USER, exec("urn:test:wizard")), condition("forbidden"));
  await assert.rejects(iq("romeo@montague.example/x", exec("urn:test:uptime")), condition("forbidden"));
  await assert.rejects(iq(ADMIN, exec("urn:test:nothing")), condition("item-not-found"));
});

test("a multi-stage command goes next, back with prev, and completes with the state it kept", async () => {
  const { iq } = await setup();
  const first = await iq(ADMIN, exec("urn:test:wizard"));
  assert.equal(first.attrs["status"], "executing");
  const sid = first.attrs["sessionid"]!;
  assert.equal(first.getChild("actions")!.toString(), `<actions xmlns='${NS_COMMANDS}' execute='next'><next/></actions>`);
  assert.equal(first.getChild("x", NS_DATA)!.attrs["type"], "form");
  const second = await iq(ADMIN, submit("urn:test:wizard", sid, "next", { name: "nurse" }));
  assert.equal(second.attrs["sessionid"], sid);
  assert.equal(second.getChild("actions")!.toString(), `<actions xmlns='${NS_COMMANDS}' execute='complete'><prev/><complete/></actions>`);
  // prev shows the first screen again; then a new name goes forward.
  const back = await iq(ADMIN, submit("urn:test:wizard", sid, "prev", {}));
  assert.equal(back.getChild("x", NS_DATA)!.getChild("field")!.attrs["var"], "name");
  await iq(ADMIN, submit("urn:test:wizard", sid, undefined, { name: "friar" })); // no action: execute = the default (next)
  const done = await iq(ADMIN, submit("urn:test:wizard", sid, "complete", { peer: "verona.example" }));
  assert.equal(done.attrs["status"], "completed");
  assert.equal(done.getChildText("note"), "friar verona.example");
  // The session is over.
  await assert.rejects(iq(ADMIN, submit("urn:test:wizard", sid, "complete", { peer: "x.example" })), condition("not-allowed", "session-expired"));
});

test("cancel ends a session with status canceled", async () => {
  const { iq } = await setup();
  const sid = (await iq(ADMIN, exec("urn:test:wizard"))).attrs["sessionid"]!;
  const r = await iq(ADMIN, xml`<iq type='set' id='c'><command xmlns='${NS_COMMANDS}' node='urn:test:wizard' sessionid='${sid}' action='cancel'/></iq>`);
  assert.equal(r.attrs["status"], "canceled");
  await assert.rejects(iq(ADMIN, submit("urn:test:wizard", sid, "next", { name: "x" })), condition("not-allowed", "session-expired"));
});

test("errors of §4.6: malformed-action, bad-action, bad-sessionid, bad-payload", async () => {
  const { iq } = await setup();
  await assert.rejects(iq(ADMIN, exec("urn:test:wizard", "action='dance'")), (e: unknown) => condition("bad-request", "malformed-action")(e) && (e as StanzaError).type === "modify");
  const sid = (await iq(ADMIN, exec("urn:test:wizard"))).attrs["sessionid"]!;
  // complete and prev are not offered on the first screen (only next).
  await assert.rejects(iq(ADMIN, submit("urn:test:wizard", sid, "complete", { name: "x" })), condition("bad-request", "bad-action"));
  await assert.rejects(iq(ADMIN, submit("urn:test:wizard", sid, "prev", {})), condition("bad-request", "bad-action"));
  // A missing required field, an unknown session, another requester's session, another node's session.
  await assert.rejects(iq(ADMIN, submit("urn:test:wizard", sid, "next", {})), condition("bad-request", "bad-payload"));
  await assert.rejects(iq(ADMIN, submit("urn:test:wizard", "nope", "next", { name: "x" })), condition("bad-request", "bad-sessionid"));
  await assert.rejects(iq("admin@localhost/phone", submit("urn:test:wizard", sid, "next", { name: "x" })), condition("bad-request", "bad-sessionid"));
  await assert.rejects(iq(ADMIN, submit("urn:test:refuse", sid, "next", { name: "x" })), condition("bad-request", "bad-sessionid"));
  await assert.rejects(iq(ADMIN, exec("urn:test:wizard", "action='next'")), condition("bad-request", "bad-sessionid"));
  // After a bad-payload the session is still there.
  const ok = await iq(ADMIN, submit("urn:test:wizard", sid, "next", { name: "x" }));
  assert.equal(ok.attrs["status"], "executing");
});

test("a command can finish with an error note and status completed", async () => {
  const { iq } = await setup();
  const r = await iq(ADMIN, exec("urn:test:refuse"));
  assert.equal(r.attrs["status"], "completed");
  assert.equal(r.getChild("note")!.attrs["type"], "error");
});

test("a second registration of a node is refused", async () => {
  const { host } = await setup();
  const api = host.provided.get("adhoc") as Adhoc;
  assert.throws(() => api.register({ node: "urn:test:uptime", name: "again", adminOnly: false, handler: () => ({ status: "completed" }) }), /already registered/);
});

test("sessions expire after their idle time; requesters' session counts are capped", async () => {
  let now = 1_000_000;
  const engine = new AdhocEngine({ host: "localhost", isAdmin: () => true, sessionTtlMs: 60_000, maxSessionsPerRequester: 2, now: () => now });
  engine.register({ node: "n", name: "N", adminOnly: true, handler: () => ({ status: "executing", form: buildForm({ type: "form", fields: [] }) }) });
  const from = parseJid(ADMIN);
  const start = async () => (await engine.execute(xml`<command xmlns='${NS_COMMANDS}' node='n'/>`, from)).attrs["sessionid"]!;
  const cont = (sid: string) => engine.execute(xml`<command xmlns='${NS_COMMANDS}' node='n' sessionid='${sid}' action='cancel'/>`, from);
  const a = await start();
  now += 61_000;
  await assert.rejects(cont(a), condition("not-allowed", "session-expired"));
  const b = await start();
  await start();
  await start(); // the third drops the oldest (b)
  assert.equal(engine.openSessions, 2);
  await assert.rejects(cont(b), condition("not-allowed", "session-expired"));
});

test("completing without sending the form counts as an empty submission (bad-payload)", async () => {
  const { iq } = await setup();
  const sid = (await iq(ADMIN, exec("urn:test:wizard"))).attrs["sessionid"]!;
  await assert.rejects(iq(ADMIN, xml`<iq type='set'><command xmlns='${NS_COMMANDS}' node='urn:test:wizard' sessionid='${sid}' action='next'/></iq>`), condition("bad-request", "bad-payload"));
});
