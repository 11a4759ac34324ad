// The HTTP API's view of PEP (/api/pep, /api/pep/<account>): host admins see which accounts keep nodes and each node's
// name, access model and size, never a payload; other hosts' accounts and non-admins are refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { iq, online, PASSWORD, PUBSUB } from "./kit.ts";

let ts: TestServer;
let base: string;
before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", admins: ["boss@localhost"] }, { domain: "other.localhost", admins: ["chief@other.localhost"] }], http: { listen: ["127.0.0.1:0"], websocket: false } },
    { users: { "boss@localhost": PASSWORD, "pa@localhost": PASSWORD, "chief@other.localhost": PASSWORD } },
  );
  base = `http://127.0.0.1:${ts.server.addresses.http[0]!.port}`;
});
after(async () => {
  await ts.stop();
});

const get = async (path: string, jid: string) => {
  const r = await fetch(base + path, { headers: { authorization: `Basic ${Buffer.from(`${jid}:${PASSWORD}`).toString("base64")}` } });
  return { status: r.status, body: (await r.json()) as unknown };
};

test("host admins list accounts with PEP nodes and see one account's nodes without payloads", async () => {
  const c = await online(ts, "pa", "a");
  await iq(c, `<pubsub xmlns='${PUBSUB}'><publish node='urn:xmpp:avatar:data'><item id='h'><data xmlns='urn:xmpp:avatar:data'>U0VDUkVU</data></item></publish></pubsub>`);
  c.close();
  let r = await get("/api/pep", "boss@localhost");
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, [{ host: "localhost", account: "pa@localhost", nodes: 1 }]);
  r = await get(`/api/pep/${encodeURIComponent("pa@localhost")}`, "boss@localhost");
  assert.equal(r.status, 200);
  const body = r.body as { account: string; nodes: { node: string; access_model: string; items: number; bytes: number }[] };
  assert.equal(body.account, "pa@localhost");
  assert.equal(body.nodes[0]!.node, "urn:xmpp:avatar:data");
  assert.equal(body.nodes[0]!.access_model, "presence");
  assert.equal(body.nodes[0]!.items, 1);
  assert.ok(body.nodes[0]!.bytes > 0);
  assert.doesNotMatch(JSON.stringify(r.body), /U0VDUkVU/, "never the payload");
  // Another host's admin may not look; a non-admin may not log in; a malformed JID is a 400.
  assert.equal((await get(`/api/pep/pa@localhost`, "chief@other.localhost")).status, 403);
  assert.equal((await get("/api/pep", "pa@localhost")).status, 403);
  assert.equal((await get(`/api/pep/${encodeURIComponent("no-user-part")}`, "boss@localhost")).status, 400);
});
