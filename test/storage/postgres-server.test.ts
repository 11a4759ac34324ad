// End to end on PostgreSQL (storage.backend: postgres): a real server logs a user in, stores a roster item and an
// offline message, is stopped (its data directory deleted), and a new server on the same schema still has them.
// Skipped with the reason when PostgreSQL is unreachable, except under CI=true (src/storage/postgres/test-db.ts).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError, normalizeConfig } from "../../src/core/config/load.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName, withTestClient } from "../../src/storage/postgres/test-db.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const skip = await postgresSkip();
const PASSWORD = "secret";
const schema = testSchemaName();
const storage = { backend: "postgres", postgres_url: TEST_POSTGRES_URL, postgres_schema: schema, postgres_pool_size: 4 };

after(async () => {
  if (!skip) await dropTestSchema(schema);
});

let seq = 0;

/** An IQ and its answer (the whole <iq/> element as text). */
async function iq(c: RawClient, type: "get" | "set", payload: string): Promise<string> {
  const id = `q${++seq}`;
  c.send(`<iq type='${type}' id='${id}'>${payload}</iq>`);
  return (await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*(?:/>|>[\\s\\S]*?</iq>)`)))[0];
}

test("a server on PostgreSQL keeps accounts, rosters and offline messages across a restart", { skip, timeout: 60_000 }, async () => {
  let first: TestServer | undefined;
  let second: TestServer | undefined;
  try {
    first = await createTestServer({ storage }, { users: { "romeo@localhost": PASSWORD, "juliet@localhost": PASSWORD } });
    assert.equal(first.server.storage.kind, "postgres");
    const romeo = (await RawClient.login(first.c2sPort, "romeo", PASSWORD, "orchard")).client;
    const set = await iq(romeo, "set", "<query xmlns='jabber:iq:roster'><item jid='juliet@localhost' name='Juliet'><group>Capulets</group></item></query>");
    assert.match(set, /type='result'/);
    // Juliet is not online: the message is stored, then the server goes away with its data directory.
    romeo.send("<message to='juliet@localhost' type='chat' id='m1'><body>meet me at dawn</body></message>");
    await iq(romeo, "get", "<ping xmlns='urn:xmpp:ping'/>");
    assert.equal(await first.server.storage.offline.count("localhost", "juliet"), 1);
    romeo.close();
    const firstDir = first.dataDir;
    await first.stop();
    first = undefined;
    assert.equal(existsSync(firstDir), false);

    second = await createTestServer({ storage });
    assert.equal(existsSync(join(second.dataDir, "comity.sqlite")), false, "nothing went to SQLite");
    const juliet = (await RawClient.login(second.c2sPort, "juliet", PASSWORD, "balcony")).client;
    juliet.send("<presence/>");
    const m = (await juliet.waitFor(/<message\b[\s\S]*?<\/message>/))[0];
    assert.match(m, /<body>meet me at dawn<\/body>/);
    assert.match(m, /from='romeo@localhost\/orchard'/);
    assert.match(m, /<delay[^>]*urn:xmpp:delay/);
    juliet.close();

    const again = (await RawClient.login(second.c2sPort, "romeo", PASSWORD, "home")).client;
    const roster = await iq(again, "get", "<query xmlns='jabber:iq:roster'/>");
    assert.match(roster, /<item[^>]*jid='juliet@localhost'[^>]*>/);
    assert.match(roster, /name='Juliet'/);
    assert.match(roster, /<group>Capulets<\/group>/);
    again.close();

    const rows = await withTestClient(async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.accounts WHERE host = 'localhost'`)).rows[0]?.n);
    assert.equal(rows, 2);
    assert.equal(await second.server.storage.offline.count("localhost", "juliet"), 0, "delivered messages are deleted");
  } finally {
    await first?.stop();
    await second?.stop();
  }
});

test("the configuration says what is missing when the backend is postgres without a URL", () => {
  const problems = (storageSection: Record<string, unknown>): string[] => {
    try {
      normalizeConfig({ hosts: [{ domain: "localhost" }], storage: storageSection }, { baseDir: "/" });
      return [];
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
  };
  assert.deepEqual(problems({ backend: "postgres" }), [
    "storage.postgres_url: required when storage.backend is postgres (e.g. postgres://comity@127.0.0.1:5432/comity)",
  ]);
  assert.match(problems({ backend: "postgres", postgres_url: "mysql://db/comity" })[0] ?? "", /^storage\.postgres_url: expected a postgres:\/\//);
  assert.match(problems({ backend: "mongo" })[0] ?? "", /^storage\.backend: must be one of "sqlite", "postgres"/);
  assert.deepEqual(problems({ backend: "postgres", postgres_url: "postgres://comity@127.0.0.1:5432/comity" }), []);
  assert.deepEqual(problems({}), [], "sqlite needs nothing more");
});
