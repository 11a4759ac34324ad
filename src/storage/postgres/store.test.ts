// PostgreSQL-only storage tests: migrations and their lock, concurrency across pools, error mapping (contract cases live
// in ../contract.test.ts). Each test uses its own throwaway schema; skipped with the reason when PostgreSQL is
// unreachable, except under CI=true.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { ServerRosterEntry, Storage } from "../types.ts";
import { PG_LATEST_SCHEMA_VERSION, PG_MIGRATIONS, type Migration } from "./migrations.ts";
import { openPostgresStorage, redactPostgresUrl } from "./store.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName, withTestClient } from "./test-db.ts";

const CREDS = { scram: {} };
const H = "montague.lit";
const skip = await postgresSkip();

function hasCode(code: string) {
  return (err: unknown): boolean => (err as { code?: unknown }).code === code;
}

/** `url` with its userinfo, host, port or path replaced. */
function variant(change: (u: URL) => void): string {
  const u = new URL(TEST_POSTGRES_URL);
  change(u);
  return u.toString();
}

describe("postgres storage", { skip }, () => {
  let schema: string;
  const open = (extra: { migrations?: readonly Migration[]; poolSize?: number } = {}) => openPostgresStorage({ url: TEST_POSTGRES_URL, schema, ...extra });
  const sql = <T extends object>(text: string, values: unknown[] = []) =>
    withTestClient(async (c) => (await c.query<T & Record<string, unknown>>(text.replaceAll("$schema", schema), values)).rows);

  beforeEach(() => {
    schema = testSchemaName();
  });
  afterEach(async () => {
    await dropTestSchema(schema);
  });

  it("creates its schema and records each migration with its name and time", async () => {
    const before = Date.now();
    await (await open()).close();
    const rows = await sql<{ version: number; name: string; applied_at: string }>("SELECT * FROM $schema.schema_migrations ORDER BY version");
    assert.deepEqual(rows.map((r) => [r.version, r.name]), PG_MIGRATIONS.map((m) => [m.id, m.name]));
    for (const r of rows) assert.ok(Number(r.applied_at) >= before);
    assert.equal(rows.at(-1)?.version, PG_LATEST_SCHEMA_VERSION);
  });

  it("declares every key column with the byte-order collation", async () => {
    await (await open()).close();
    const rows = await sql<{ table_name: string; column_name: string; collation_name: string | null }>(
      "SELECT table_name, column_name, collation_name FROM information_schema.columns WHERE table_schema = $1 AND column_name IN ('host', 'username', 'jid', 'peer', 'key', 'store', 'account')",
      [schema],
    );
    assert.ok(rows.length >= 15);
    for (const r of rows) assert.equal(r.collation_name, "C", `${r.table_name}.${r.column_name}`);
  });

  it("applies only the migrations a database lacks", async () => {
    const next = PG_LATEST_SCHEMA_VERSION + 1;
    const first = await open();
    await first.accounts.create(H, "romeo", CREDS);
    await first.close();
    const second = await open({ migrations: [...PG_MIGRATIONS, { id: next, name: "extra", sql: "CREATE TABLE extra (y text)" }] });
    try {
      assert.equal(await second.accounts.count(H), 1);
    } finally {
      await second.close();
    }
    const versions = await sql<{ version: number }>("SELECT version FROM $schema.schema_migrations ORDER BY version");
    assert.deepEqual(versions.map((r) => r.version), [...PG_MIGRATIONS.map((m) => m.id), next]);
    assert.equal((await sql("SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'extra'", [schema])).length, 1);
  });

  it("rolls a failing migration back, keeps the earlier ones, and reports it", async () => {
    const good: Migration = { id: PG_LATEST_SCHEMA_VERSION + 1, name: "good", sql: "CREATE TABLE t1 (x text)" };
    const bad: Migration = { id: PG_LATEST_SCHEMA_VERSION + 2, name: "bad", sql: "CREATE TABLE t2 (y text); THIS IS NOT SQL" };
    await assert.rejects(open({ migrations: [...PG_MIGRATIONS, good, bad] }), hasCode("COMITY_ERR_STORAGE_MIGRATION"));
    assert.equal((await sql<{ v: number }>("SELECT max(version) AS v FROM $schema.schema_migrations"))[0]?.v, PG_LATEST_SCHEMA_VERSION + 1);
    assert.equal((await sql("SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 't2'", [schema])).length, 0);
  });

  it("rejects a migration list whose ids do not increase", async () => {
    const list: Migration[] = [
      { id: 2, name: "b", sql: "" },
      { id: 1, name: "a", sql: "" },
    ];
    await assert.rejects(open({ migrations: list }), hasCode("COMITY_ERR_STORAGE_MIGRATION"));
  });

  it("names both versions and the database when the schema is newer than the code", async () => {
    await (await open()).close();
    await sql("INSERT INTO $schema.schema_migrations VALUES ($1, 'future', 0)", [PG_LATEST_SCHEMA_VERSION + 5]);
    await assert.rejects(open(), (err: unknown) => {
      assert.ok(hasCode("COMITY_ERR_STORAGE_SCHEMA_TOO_NEW")(err));
      const msg = (err as Error).message;
      assert.ok(msg.includes(String(PG_LATEST_SCHEMA_VERSION + 5)) && msg.includes(String(PG_LATEST_SCHEMA_VERSION)), msg);
      assert.ok(msg.includes(schema), msg);
      return true;
    });
  });

  it("lets servers that start at the same moment migrate a fresh schema once, in turn", async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open({ poolSize: 2 })));
    try {
      await stores[0]!.accounts.create(H, "romeo", CREDS);
      for (const s of stores) assert.equal(await s.accounts.count(H), 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    const rows = await sql<{ version: number }>("SELECT version FROM $schema.schema_migrations ORDER BY version");
    assert.deepEqual(rows.map((r) => r.version), PG_MIGRATIONS.map((m) => m.id));
  });

  it("upgrades a version-1 schema in place, keeping its accounts", async () => {
    const v1 = PG_MIGRATIONS.find((m) => m.id === 1);
    assert.ok(v1);
    await withTestClient(async (c) => {
      await c.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema}`);
      await c.query("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
      await c.query(v1.sql);
      await c.query("INSERT INTO schema_migrations VALUES (1, $1, 0)", [v1.name]);
      await c.query(`INSERT INTO accounts VALUES ('${H}', 'romeo', '{"scram":{}}', 0)`);
    });
    const s = await open();
    try {
      assert.equal(await s.accounts.count(H), 1);
      assert.equal(await s.rosters.setItem(H, "romeo", { jid: "juliet@capulet.lit", subscription: "none", ask: false, approved: false, groups: [] }), 1);
      assert.equal(await s.offline.push(H, "romeo", "<message/>", { stamp: 0, quota: 1 }), true);
    } finally {
      await s.close();
    }
    assert.equal((await sql<{ v: number }>("SELECT max(version) AS v FROM $schema.schema_migrations"))[0]?.v, PG_LATEST_SCHEMA_VERSION);
  });

  it("enforces the database's own checks on roster rows written behind the store's back", async () => {
    await (await open()).close();
    await assert.rejects(sql("INSERT INTO $schema.roster_items VALUES ('h', 'u', 'j', NULL, 'pending', false, false, '{}')"));
    await assert.rejects(sql("INSERT INTO $schema.roster_items VALUES ('h', 'u', 'j', NULL, 'none', false, false, '{{a},{b}}')"));
    await assert.rejects(sql("INSERT INTO $schema.roster_items VALUES ('h', 'u', 'j', NULL, 'none', false, false, '{a,NULL}')"));
  });

  describe("with several servers (pools) on one schema", () => {
    let stores: Storage[];
    beforeEach(async () => {
      await (await open()).close();
      stores = await Promise.all(Array.from({ length: 3 }, () => open({ poolSize: 4 })));
    });
    afterEach(async () => {
      await Promise.all(stores.map((s) => s.close()));
    });

    it("never exceeds the offline quota when they push at once", async () => {
      const quota = 150;
      const results = await Promise.all(
        stores.flatMap((s, w) => Array.from({ length: 100 }, (_, i) => s.offline.push(H, "romeo", `<m w='${w}' i='${i}'/>`, { stamp: i, quota }))),
      );
      assert.equal(results.filter(Boolean).length, quota);
      assert.equal(await stores[0]!.offline.count(H, "romeo"), quota);
    });

    it("gives concurrent roster changes of one user consecutive versions, each exactly once", async () => {
      const versions = await Promise.all(
        stores.flatMap((s, w) =>
          Array.from({ length: 30 }, (_, i) => s.rosters.setItem(H, "romeo", { jid: `c${i % 7}-${w}@x`, subscription: "none", ask: false, approved: false, groups: [] })),
        ),
      );
      assert.deepEqual([...versions].sort((a, b) => a - b), Array.from({ length: 90 }, (_, i) => i + 1));
      const removed = await Promise.all(stores.map((s) => s.rosters.removeItem(H, "romeo", "c0-0@x")));
      assert.deepEqual(removed.filter((v) => v !== undefined), [91], "one removal counts");
      assert.equal((await stores[1]!.rosters.get(H, "romeo")).version, 91);
    });

    it("approves the same server-roster request once when every server decides at once", async () => {
      const P = "prosody.example";
      const entry: ServerRosterEntry = {
        host: H, peer: P, subscription: "none", pendingIn: true, pendingInSince: 1, pendingOut: false, pendingOutSince: null, preApproved: false,
        peerImplementsServerRosters: null, peerAvailable: null, peerStatus: null, peerPresenceAt: null, since: 1, decidedBy: null, decidedVia: null, note: null,
      };
      const audit = { action: "approve", actor: "admin@montague.lit", via: "xmpp" };
      await stores[0]!.serverRoster.update(H, P, () => ({ entry, audit: { ...audit, action: "inbound-subscribe" } }));
      const results = await Promise.all(
        stores.flatMap((s) =>
          Array.from({ length: 5 }, () =>
            s.serverRoster.update(H, P, (cur) =>
              cur?.pendingIn === true ? { entry: { ...cur, pendingIn: false, pendingInSince: null, subscription: "from" }, audit } : undefined,
            ),
          ),
        ),
      );
      assert.equal(results.filter((r) => r.changed).length, 1);
      assert.equal((await stores[2]!.serverRoster.audit(H, { peer: P })).filter((a) => a.action === "approve").length, 1);
    });

    it("creates a missing server-roster entry once when servers race to create it", async () => {
      const P = "new.example";
      const results = await Promise.all(
        stores.map((s, i) =>
          s.serverRoster.update(H, P, (cur) =>
            cur === undefined
              ? {
                  entry: {
                    host: H, peer: P, subscription: "none", pendingIn: false, pendingInSince: null, pendingOut: true, pendingOutSince: i, preApproved: false,
                    peerImplementsServerRosters: null, peerAvailable: null, peerStatus: null, peerPresenceAt: null, since: i, decidedBy: null, decidedVia: null, note: `by ${i}`,
                  },
                  audit: { action: "request", actor: `cli:${i}`, via: "cli" },
                }
              : undefined,
          ),
        ),
      );
      assert.equal(results.filter((r) => r.changed).length, 1);
      assert.equal((await stores[0]!.serverRoster.audit(H)).length, 1);
    });
  });

  it("refuses a NUL character (PostgreSQL text cannot hold it) as invalid input, storing nothing", async () => {
    const s = await open();
    try {
      await assert.rejects(s.keyval("private").set(H, "romeo", "k", "a\u0000b"), hasCode("COMITY_ERR_STORAGE_INVALID"));
      await assert.rejects(s.offline.push(H, "romeo", "<m>\u0000</m>", { stamp: 1, quota: 5 }), hasCode("COMITY_ERR_STORAGE_INVALID"));
      assert.equal(await s.offline.count(H, "romeo"), 0);
    } finally {
      await s.close();
    }
  });

  it("answers incident and abuse-report queries like SQLite: negative limit is none, a fractional id matches nothing", async () => {
    const s = await open();
    try {
      const rec = { host: H, peer: "p.example", direction: "in", kind: "report", incidentId: "x-1", status: "held", payload: "<Incident/>", at: 1.5, note: null } as const;
      const a = await s.incidents.add(rec);
      const b = await s.incidents.add({ ...rec, status: "accepted", at: 2 });
      assert.deepEqual(a, { ...rec, id: a.id });
      assert.deepEqual((await s.incidents.list(H)).map((r) => r.id), [b.id, a.id]);
      assert.deepEqual((await s.incidents.list(H, { limit: -1 })).length, 2);
      assert.deepEqual((await s.incidents.list(H, { status: "held", limit: 1 })).map((r) => r.id), [a.id]);
      assert.equal(await s.incidents.get(H, 1.5), undefined);
      assert.equal(await s.incidents.setStatus(H, a.id, "accepted", "ok"), true);
      assert.equal((await s.incidents.get(H, a.id))?.note, "ok");
      assert.equal(await s.incidents.setStatus(H, a.id, "sent"), true);
      assert.equal((await s.incidents.get(H, a.id))?.note, "ok", "no note keeps the old one");
      await assert.rejects(s.incidents.add({ ...rec, direction: "sideways" as "in" }), hasCode("COMITY_ERR_STORAGE_INVALID"));
      for (const [account, at] of [["romeo@montague.lit", 1], ["juliet@montague.lit", 5], ["romeo@montague.lit", 3]] as const) {
        await s.abuseReports.add({ host: H, account, peer: "p.example", reason: "urn:xmpp:reporting:spam", text: null, payload: "<report/>", at });
      }
      assert.deepEqual(await s.abuseReports.counts(H), [
        { account: "romeo@montague.lit", count: 2, last: 3 },
        { account: "juliet@montague.lit", count: 1, last: 5 },
      ]);
      assert.equal((await s.abuseReports.list(H, { account: "romeo@montague.lit" })).length, 2);
    } finally {
      await s.close();
    }
  });

  it("rejects a schema name that would need quoting", async () => {
    await assert.rejects(openPostgresStorage({ url: TEST_POSTGRES_URL, schema: "Robert'); DROP" }), hasCode("COMITY_ERR_STORAGE_INVALID"));
  });

  it("keeps options given in the URL and adds its own", async () => {
    const url = variant((u) => u.searchParams.set("options", "-c statement_timeout=5000"));
    const s = await openPostgresStorage({ url, schema });
    try {
      await s.accounts.create(H, "romeo", CREDS);
      assert.equal(await s.accounts.count(H), 1);
    } finally {
      await s.close();
    }
  });
});

describe("postgres storage: unreachable or refused", { skip }, () => {
  const unavailable = (url: string) => (err: unknown): boolean => {
    assert.ok(hasCode("COMITY_ERR_STORAGE_UNAVAILABLE")(err), String(err));
    const msg = (err as Error).message;
    assert.ok(!msg.includes("s3cret"), `no password in: ${msg}`);
    assert.ok(msg.includes(redactPostgresUrl(url)), `names the URL: ${msg}`);
    return true;
  };

  it("reports a refused connection, naming the URL without the password", async () => {
    const url = variant((u) => {
      u.password = "s3cret";
      u.port = "1";
    });
    await assert.rejects(openPostgresStorage({ url }), unavailable(url));
  });

  it("reports an unknown database", async () => {
    const url = variant((u) => {
      u.pathname = "/comity_no_such_database";
      u.password = "s3cret";
    });
    await assert.rejects(openPostgresStorage({ url }), (err: unknown) => unavailable(url)(err) && /no such database/.test((err as Error).message));
  });

  it("reports a login the server refuses", async () => {
    const url = variant((u) => {
      u.username = "comity_no_such_role";
      u.password = "s3cret";
    });
    await assert.rejects(openPostgresStorage({ url }), (err: unknown) => unavailable(url)(err) && /login refused|authentication/.test((err as Error).message));
  });

  it("redacts passwords in userinfo and parameters, and hides what it cannot parse", () => {
    assert.equal(redactPostgresUrl("postgres://comity:pw@db.example:5432/comity"), "postgres://comity@db.example:5432/comity");
    assert.equal(redactPostgresUrl("postgres://db.example/comity?password=pw&sslmode=require"), "postgres://db.example/comity?password=***&sslmode=require");
    assert.equal(redactPostgresUrl("not a url pw"), "(unparsable PostgreSQL URL)");
  });
});
