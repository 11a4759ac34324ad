// XEP-0267 trust between two Comity servers on loopback, decided by people through XEP-0050 with a real client:
// A's admin requests trust of B with the server-buddy command (slixmpp); B's admin (slixmpp) is told by message
// and approves with the pending command; both server rosters end 'both'; A's admin then removes B and both
// rosters are back to none.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { ServerRoster } from "../../src/modules/server-buddies/api.ts";
import { NODE_PENDING, NODE_REMOVE, NODE_SERVER_BUDDY } from "../../src/modules/buddies-adhoc/mod.ts";
import { killSlix, runSlix, slixmppProblem, startSlix, type SlixEvent } from "./slix.ts";

let a: TestServer;
let b: TestServer;
let problem: string | undefined;

before(async () => {
  problem = slixmppProblem();
  const s2s = { listen: ["127.0.0.1:0"], verify_certificates: false };
  a = await createTestServer({ hosts: [{ domain: "a.localhost", admins: ["admin@a.localhost"] }], s2s }, { users: { "admin@a.localhost": "pw-a" } });
  b = await createTestServer({ hosts: [{ domain: "b.localhost", admins: ["admin@b.localhost"] }], s2s }, { users: { "admin@b.localhost": "pw-b" } });
  a.config.s2s.routes["b.localhost"] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes["a.localhost"] = `127.0.0.1:${a.s2sPort}`;
});
after(async () => {
  killSlix();
  await a?.stop();
  await b?.stop();
});

/** The host's server roster as the modules see it; fails clearly when the server-buddies module is not loaded. */
function rosterOf(ts: TestServer, domain: string): ServerRoster {
  const r = ts.server.hosts.get(domain)?.provided.get("server-roster") as ServerRoster | undefined;
  assert.ok(r, `server-roster is missing on ${domain}: the server-buddies module (src/modules/server-buddies) is not loaded by src/modules/builtin.ts`);
  return r;
}

/** Wait until `check` holds (polling), or fail with `what`. */
async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const commands = (events: SlixEvent[]) => events.filter((e) => e.event === "command");

test("admin A requests through ad-hoc, B's admin is told and approves through ad-hoc, both rosters end 'both'; remove brings both to none", async () => {
  assert.equal(problem, undefined, problem);
  const ra = rosterOf(a, "a.localhost");
  const rb = rosterOf(b, "b.localhost");

  // B's admin is online, waits for the notification, then approves A's request with the pending command.
  const bAdmin = startSlix({
    port: b.c2sPort,
    jid: "admin@b.localhost/slix",
    password: "pw-b",
    timeoutS: 120, // it lives through A's whole run (another Python start, login, command, s2s link)
    steps: [{ wait_message: 1 }, { execute: NODE_PENDING, then: [{ action: "complete", fields: { peers: ["a.localhost"], action: "approve", note: "known to us" } }] }],
  });
  await bAdmin.waitFor("presence_sent");

  const aRun = await runSlix({
    port: a.c2sPort,
    jid: "admin@a.localhost/slix",
    password: "pw-a",
    steps: [{ execute: NODE_SERVER_BUDDY, then: [{ action: "complete", fields: { peerjid: "b.localhost" } }] }],
  });
  assert.equal(aRun.code, 0, `${JSON.stringify(aRun.events)}\n${aRun.stderr}`);
  const requested = commands(aRun.events)[1]!;
  assert.equal(requested["status"], "completed", JSON.stringify(requested));
  assert.equal((requested["notes"] as { type: string }[])[0]?.type, "info", JSON.stringify(requested));
  assert.equal(ra.get("b.localhost")?.pendingOut, true);

  const message = await bAdmin.waitFor("message");
  assert.equal(message["from"], "b.localhost");
  assert.match(String(message["body"]), /a\.localhost/);
  const bRun = await bAdmin.done;
  assert.equal(bRun.code, 0, `${JSON.stringify(bRun.events)}\n${bRun.stderr}`);
  const [pendingForm, approved] = commands(bRun.events);
  const peers = (pendingForm!["form"] as { fields: { var: string; options: string[] }[] }).fields.find((f) => f.var === "peers");
  assert.deepEqual(peers?.options, ["a.localhost"], JSON.stringify(pendingForm));
  assert.equal(approved!["status"], "completed", JSON.stringify(approved));
  assert.match((approved!["notes"] as { type: string; text: string }[])[0]!.text, /^Approved a\.localhost/);

  await until("both rosters 'both'", () => ra.get("b.localhost")?.subscription === "both" && rb.get("a.localhost")?.subscription === "both");
  // The audit logs name the people and the surface they used.
  const approvals = (await rb.audit("a.localhost")).filter((r) => r.action === "approve");
  assert.deepEqual(approvals.map((r) => `${r.actor} ${r.via}`), ["admin@b.localhost xmpp"]);
  const requests = (await ra.audit("b.localhost")).filter((r) => r.action === "request");
  assert.deepEqual(requests.map((r) => `${r.actor} ${r.via}`), ["admin@a.localhost xmpp"]);
  assert.ok(ra.isMutual("b.localhost") && rb.isMutual("a.localhost"));

  // A's admin removes B: A drops the entry and tells B, whose entry falls back to none.
  const rm = await runSlix({
    port: a.c2sPort,
    jid: "admin@a.localhost/slix",
    password: "pw-a",
    steps: [{ execute: NODE_REMOVE, then: [{ action: "complete", fields: { peers: ["b.localhost"] } }] }],
  });
  assert.equal(rm.code, 0, `${JSON.stringify(rm.events)}\n${rm.stderr}`);
  assert.equal(commands(rm.events)[1]?.["status"], "completed", JSON.stringify(rm.events));
  await until("both rosters back to none", () => ra.get("b.localhost") === undefined && (rb.get("a.localhost")?.subscription ?? "none") === "none");
  assert.ok(!ra.trusts("b.localhost") && !rb.trusts("a.localhost") && !rb.isTrustedBy("a.localhost"));
});
