// A real XEP-0050 client (slixmpp 1.8.3, xep_0050 + xep_0004) against Comity over sockets: an admin lists the
// commands and requests trust of a server on the XEP-0267 node; a non-admin sees no command and gets <forbidden/>.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { ServerRoster } from "../../src/modules/server-buddies/api.ts";
import { NODE_CANCEL, NODE_LIST, NODE_PENDING, NODE_REMOVE, NODE_SERVER_BUDDY } from "../../src/modules/buddies-adhoc/mod.ts";
import { FakeRoster } from "./fake-roster.ts";
import { killSlix, runSlix, slixmppProblem, type SlixEvent } from "./slix.ts";

let ts: TestServer;
let roster: ServerRoster;
let problem: string | undefined;

before(async () => {
  problem = slixmppProblem();
  ts = await createTestServer({}, { users: { "admin@localhost": "adminpass", "juliet@localhost": "balcony" } });
  const host = ts.server.hosts.get("localhost")!;
  // The real server roster when the server-buddies module is loaded; a fake one otherwise.
  if (!host.provided.has("server-roster")) host.provided.set("server-roster", new FakeRoster("localhost"));
  roster = host.provided.get("server-roster") as ServerRoster;
});
after(async () => {
  killSlix();
  await ts?.stop();
});

const run = (jid: string, password: string, steps: unknown[]) => {
  if (problem) throw new Error(problem);
  return runSlix({ port: ts.c2sPort, jid, password, steps });
};
const ofEvent = (events: SlixEvent[], name: string) => events.filter((e) => e.event === name);

test("slixmpp with XEP-0050 is installed for /usr/bin/python3", () => {
  assert.equal(problem, undefined, problem);
});

test("an admin lists the commands and reads a command node's disco#info", async () => {
  const r = await run("admin@localhost/slix", "adminpass", [{ list: true }, { info: NODE_SERVER_BUDDY }]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const [commands] = ofEvent(r.events, "commands");
  assert.equal(commands!["ok"], true, JSON.stringify(commands));
  const nodes = (commands!["items"] as { jid: string; node: string }[]).map((i) => i.node);
  for (const n of [NODE_SERVER_BUDDY, NODE_LIST, NODE_PENDING, NODE_CANCEL, NODE_REMOVE]) assert.ok(nodes.includes(n), n);
  assert.ok((commands!["items"] as { jid: string }[]).every((i) => i.jid === "localhost"));
  const [info] = ofEvent(r.events, "command_info");
  assert.equal(info!["ok"], true, JSON.stringify(info));
  assert.deepEqual((info!["identities"] as { category: string; type: string }[]).map((i) => `${i.category}/${i.type}`), ["automation/command-node"]);
  assert.deepEqual(info!["features"], ["http://jabber.org/protocol/commands", "jabber:x:data"]);
});

test("an admin requests trust of a server through the server-buddy command (form, peerjid, completed note)", async () => {
  const r = await run("admin@localhost/slix", "adminpass", [
    { execute: NODE_SERVER_BUDDY, then: [{ action: "complete", fields: { peerjid: "capulet.example", note: "from slixmpp" } }] },
  ]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const [form, result] = ofEvent(r.events, "command");
  assert.equal(form!["status"], "executing", JSON.stringify(form));
  assert.deepEqual(form!["actions"], ["complete"]);
  const fields = (form!["form"] as { fields: { var: string; type: string; required: boolean }[] }).fields;
  const peerjid = fields.find((f) => f.var === "peerjid");
  assert.equal(peerjid?.type, "jid-single");
  assert.equal(peerjid?.required, true);
  assert.equal(result!["status"], "completed", JSON.stringify(result));
  assert.equal(result!["sessionid"], form!["sessionid"]);
  const notes = result!["notes"] as { type: string; text: string }[];
  assert.equal(notes[0]?.type, "info", JSON.stringify(notes));
  assert.match(notes[0]!.text, /Asked capulet\.example to trust localhost/);
  const entry = roster.get("capulet.example");
  assert.equal(entry?.pendingOut, true);
  assert.equal(entry?.subscription, "none");
});

test("an admin lists the server roster as a result table", async () => {
  const r = await run("admin@localhost/slix", "adminpass", [{ execute: NODE_LIST }]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const [list] = ofEvent(r.events, "command");
  assert.equal(list!["status"], "completed");
  const form = list!["form"] as { type: string; reported: string[]; items: Record<string, string[]>[] };
  assert.equal(form.type, "result");
  assert.deepEqual(form.reported, ["peer", "subscription", "pending", "implements", "available", "since"]);
  const row = form.items.find((i) => i["peer"]?.[0] === "capulet.example");
  assert.ok(row, JSON.stringify(form.items));
  assert.match(row["pending"]![0]!, /out/);
});

test("a non-admin sees only the user commands (ping) and gets forbidden when executing an admin one", async () => {
  const r = await run("juliet@localhost/slix", "balcony", [{ list: true }, { info: NODE_SERVER_BUDDY }, { execute: NODE_SERVER_BUDDY }, { execute: NODE_LIST }]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const [commands] = ofEvent(r.events, "commands");
  assert.equal(commands!["ok"], true);
  assert.deepEqual((commands!["items"] as { node: string }[]).map((i) => i.node), ["ping"]);
  const [info] = ofEvent(r.events, "command_info");
  assert.equal(info!["condition"], "forbidden");
  for (const ev of ofEvent(r.events, "command")) {
    assert.equal(ev["ok"], false, JSON.stringify(ev));
    assert.equal(ev["condition"], "forbidden");
    assert.equal(ev["type"], "auth");
  }
  assert.equal(ofEvent(r.events, "command").length, 2);
});

test("XEP-0050 errors reach slixmpp: a missing required field (bad-payload) and an action not offered (bad-action)", async () => {
  const r = await run("admin@localhost/slix", "adminpass", [
    { execute: NODE_SERVER_BUDDY, then: [{ action: "complete", fields: { note: "no peer" } }] },
    { execute: NODE_SERVER_BUDDY, then: [{ action: "prev" }] },
  ]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const errors = ofEvent(r.events, "command").filter((e) => e["ok"] === false);
  assert.deepEqual(errors.map((e) => `${String(e["type"])} ${String(e["condition"])} ${String(e["app_condition"])}`), [
    "modify bad-request bad-payload",
    "modify bad-request bad-action",
  ]);
});
