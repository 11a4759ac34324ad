// The trust consumers against the real server roster (XEP-0267 server-buddies module): two Comity servers on
// loopback establish trust through the `buddies.*` control methods; incidents follow the roster's answers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { ServerRoster } from "../../src/modules/server-buddies/api.ts";
import type { IncidentRecord } from "../../src/storage/types.ts";

let a: TestServer;
let b: TestServer;

const IODEF = `<Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0' purpose='reporting'><IncidentID name='a.localhost'>R-1</IncidentID></Incident>`;

async function call(ts: TestServer, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const fn = ts.server.control.get(method);
  assert.ok(fn, `control method ${method}`);
  return await fn(params);
}

function roster(ts: TestServer, domain: string): ServerRoster {
  const r = ts.server.hosts.get(domain)!.provided.get("server-roster") as ServerRoster | undefined;
  assert.ok(r, "the server-buddies module provides server-roster");
  return r;
}

async function eventually(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  const s2s = { listen: ["127.0.0.1:0"], verify_certificates: false };
  a = await createTestServer({ hosts: [{ domain: "a.localhost", admins: ["admin@a.localhost"] }], s2s });
  b = await createTestServer({ hosts: [{ domain: "b.localhost", admins: ["admin@b.localhost"] }], s2s });
  a.config.s2s.routes["b.localhost"] = `127.0.0.1:${b.s2sPort}`;
  b.config.s2s.routes["a.localhost"] = `127.0.0.1:${a.s2sPort}`;
});

after(async () => {
  await a?.stop();
  await b?.stop();
});

test("incidents follow the real server roster: refused before approval, stored after, refused again after removal", async () => {
  const ra = roster(a, "a.localhost");
  const rb = roster(b, "b.localhost");
  let rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF, force: true })) as IncidentRecord;
  assert.equal(rec.note, "forbidden");

  await call(a, "buddies.request", { peer: "b.localhost", actor: "admin@a.localhost" });
  await eventually(() => rb.get("a.localhost")?.pendingIn === true);
  assert.equal(rb.trusts("a.localhost"), false, "a pending request is not trust");
  await call(b, "buddies.approve", { peer: "a.localhost", actor: "admin@b.localhost" });
  await eventually(() => rb.trusts("a.localhost") && ra.trusts("b.localhost"));

  rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF })) as IncidentRecord;
  assert.equal(rec.status, "sent");
  const list = (await call(b, "incidents.list")) as IncidentRecord[];
  assert.equal(list[0]?.incidentId, "R-1");
  assert.equal(list[0]?.status, "accepted");

  await call(b, "buddies.remove", { peer: "a.localhost", actor: "admin@b.localhost" });
  await eventually(() => !rb.trusts("a.localhost"));
  rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF, force: true })) as IncidentRecord;
  assert.equal(rec.note, "forbidden");
});

test("buddies-only with the real roster: the trust handshake crosses, other traffic only once trust exists", async () => {
  a.config.federation.policy = "buddies-only";
  b.config.federation.policy = "buddies-only";
  try {
    const ra = roster(a, "a.localhost");
    const rb = roster(b, "b.localhost");
    const before = ((await call(b, "incidents.list")) as IncidentRecord[]).length;
    // A's own filter refuses it, and the request settles at once with policy-violation (no timeout).
    const t0 = Date.now();
    let rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF, force: true, timeout_ms: 30_000 })) as IncidentRecord;
    assert.equal(rec.status, "failed");
    assert.match(rec.note ?? "", /policy-violation/);
    // Half the request timeout: a local refusal takes milliseconds even on a loaded machine, a timeout 30 s.
    assert.ok(Date.now() - t0 < 15_000, "refused locally, not timed out");
    assert.equal(((await call(b, "incidents.list")) as IncidentRecord[]).length, before);
    await call(a, "buddies.request", { peer: "b.localhost", actor: "admin@a.localhost" });
    await eventually(() => rb.get("a.localhost")?.pendingIn === true);
    await call(b, "buddies.approve", { peer: "a.localhost", actor: "admin@b.localhost" });
    await eventually(() => rb.isMutual("a.localhost") && ra.isMutual("b.localhost"));
    rec = (await call(a, "incidents.send", { peer: "b.localhost", kind: "report", payload: IODEF })) as IncidentRecord;
    assert.equal(rec.status, "sent");
  } finally {
    a.config.federation.policy = "open";
    b.config.federation.policy = "open";
  }
});
