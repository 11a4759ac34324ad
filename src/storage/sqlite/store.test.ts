// SQLite-only storage tests: migrations, pragmas and file permissions (contract cases live in ../contract.test.ts).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { LATEST_SCHEMA_VERSION, MIGRATIONS, type Migration } from "./migrations.ts";
import { openSqliteStorage, SQLITE_FILE_NAME } from "./store.ts";

const CREDS = { scram: {} };
const FIXTURE = new URL("./push-worker.fixture.ts", import.meta.url);
const TSX_API = import.meta.resolve("tsx/esm/api");

function hasCode(code: string) {
  return (err: unknown): boolean => (err as { code?: unknown }).code === code;
}

describe("sqlite storage", () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "comity-sqlite-"));
    path = join(dir, SQLITE_FILE_NAME);
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function raw<T>(fn: (db: Database.Database) => T): T {
    const db = new Database(path);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  it("creates the database file readable by its owner only", async () => {
    const s = openSqliteStorage({ path });
    await s.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it("leaves the database in WAL mode", async () => {
    const s = openSqliteStorage({ path });
    await s.close();
    assert.equal(raw((db) => db.pragma("journal_mode", { simple: true })), "wal");
  });

  it("records each applied migration with its name and time", async () => {
    const before = Date.now();
    const s = openSqliteStorage({ path });
    await s.close();
    const rows = raw((db) => db.prepare<[], { version: number; name: string; applied_at: number }>("SELECT * FROM schema_migrations ORDER BY version").all());
    assert.deepEqual(
      rows.map((r) => [r.version, r.name]),
      MIGRATIONS.map((m) => [m.id, m.name]),
    );
    for (const r of rows) assert.ok(r.applied_at >= before);
    assert.equal(rows.at(-1)?.version, LATEST_SCHEMA_VERSION);
  });

  it("applies only the migrations a database lacks", async () => {
    const next = LATEST_SCHEMA_VERSION + 1;
    const extra: Migration = { id: next, name: "extra", sql: "CREATE TABLE extra (y TEXT)" };
    const first = openSqliteStorage({ path });
    await first.accounts.create("montague.lit", "romeo", CREDS);
    await first.close();
    const second = openSqliteStorage({ path, migrations: [...MIGRATIONS, extra] });
    try {
      assert.equal(await second.accounts.count("montague.lit"), 1);
    } finally {
      await second.close();
    }
    const versions = raw((db) => db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all());
    assert.deepEqual(versions, [...MIGRATIONS.map((m) => m.id), next]);
    assert.equal(raw((db) => db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").pluck().get()), 1);
  });

  it("rolls a failing migration back, keeps the earlier ones, and reports it", () => {
    const good: Migration = { id: LATEST_SCHEMA_VERSION + 1, name: "good", sql: "CREATE TABLE t1 (x TEXT)" };
    const bad: Migration = { id: LATEST_SCHEMA_VERSION + 2, name: "bad", sql: "CREATE TABLE t2 (y TEXT); THIS IS NOT SQL" };
    assert.throws(() => openSqliteStorage({ path, migrations: [...MIGRATIONS, good, bad] }), hasCode("COMITY_ERR_STORAGE_MIGRATION"));
    assert.equal(raw((db) => db.prepare("SELECT max(version) FROM schema_migrations").pluck().get()), LATEST_SCHEMA_VERSION + 1);
    assert.equal(raw((db) => db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 't2'").pluck().get()), 0);
  });

  it("rejects a migration list whose ids do not increase", () => {
    const list: Migration[] = [
      { id: 2, name: "b", sql: "" },
      { id: 1, name: "a", sql: "" },
    ];
    assert.throws(() => openSqliteStorage({ path, migrations: list }), hasCode("COMITY_ERR_STORAGE_MIGRATION"));
  });

  it("names both versions when the database is newer than the code", async () => {
    await openSqliteStorage({ path }).close();
    raw((db) => db.prepare("INSERT INTO schema_migrations VALUES (?, 'future', 0)").run(LATEST_SCHEMA_VERSION + 5));
    assert.throws(
      () => openSqliteStorage({ path }),
      (err: unknown) => {
        assert.ok(hasCode("COMITY_ERR_STORAGE_SCHEMA_TOO_NEW")(err));
        const msg = (err as Error).message;
        assert.ok(msg.includes(String(LATEST_SCHEMA_VERSION + 5)) && msg.includes(String(LATEST_SCHEMA_VERSION)));
        return true;
      },
    );
  });

  it("lets two connections to one file see each other's writes", async () => {
    const a = openSqliteStorage({ path });
    const b = openSqliteStorage({ path });
    try {
      await a.accounts.create("montague.lit", "romeo", CREDS);
      assert.ok(await b.accounts.get("montague.lit", "romeo"));
      await b.keyval("k").set("montague.lit", "romeo", "x", "y");
      assert.equal(await a.keyval("k").get("montague.lit", "romeo", "x"), "y");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("rejects credentials that are not JSON-serialisable objects at the database", async () => {
    const s = openSqliteStorage({ path });
    try {
      // JSON.stringify(undefined) is undefined: the bind fails instead of storing garbage.
      await assert.rejects(s.accounts.create("montague.lit", "romeo", undefined as never));
      assert.equal(await s.accounts.count("montague.lit"), 0);
    } finally {
      await s.close();
    }
  });

  it("upgrades a version-1 database in place, keeping its accounts", async () => {
    const v1 = MIGRATIONS.find((m) => m.id === 1);
    assert.ok(v1);
    raw((db) => {
      db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
      db.exec(v1.sql);
      db.prepare("INSERT INTO schema_migrations VALUES (1, ?, 0)").run(v1.name);
      db.prepare("INSERT INTO accounts VALUES ('montague.lit', 'romeo', '{\"scram\":{}}', 0)").run();
    });
    const s = openSqliteStorage({ path });
    try {
      assert.equal(await s.accounts.count("montague.lit"), 1);
      assert.equal(await s.rosters.setItem("montague.lit", "romeo", { jid: "juliet@capulet.lit", subscription: "none", ask: false, approved: false, groups: [] }), 1);
      assert.equal(await s.offline.push("montague.lit", "romeo", "<message/>", { stamp: 0, quota: 1 }), true);
    } finally {
      await s.close();
    }
    assert.equal(raw((db) => db.prepare("SELECT max(version) FROM schema_migrations").pluck().get()), LATEST_SCHEMA_VERSION);
  });

  it("enforces the database's own checks on roster rows written behind the store's back", async () => {
    await openSqliteStorage({ path }).close();
    assert.throws(() =>
      raw((db) => db.prepare("INSERT INTO roster_items VALUES ('h', 'u', 'j', NULL, 'pending', 0, 0, '[]')").run()),
    );
    assert.throws(() => raw((db) => db.prepare("INSERT INTO roster_items VALUES ('h', 'u', 'j', NULL, 'none', 0, 0, '{}')").run()));
  });

  it("never exceeds the offline quota when connections in several threads push at once", async () => {
    await openSqliteStorage({ path }).close();
    const quota = 150;
    const pushes = 100;
    const workers = Array.from({ length: 3 }, () =>
      new Promise<number>((resolve, reject) => {
        // Node 20 workers ignore a loader given by --import for their entry file, so a tiny CommonJS
        // entry registers tsx first and then imports the TypeScript fixture.
        const entry = `import(${JSON.stringify(TSX_API)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(FIXTURE.href)}); });`;
        const w = new Worker(entry, { eval: true, workerData: { path, pushes, quota } });
        w.once("message", (n: number) => resolve(n));
        w.once("error", reject);
        w.once("exit", (code) => {
          if (code !== 0) reject(new Error(`worker exited with ${code}`));
        });
      }),
    );
    const accepted = await Promise.all(workers);
    assert.equal(accepted.reduce((a, b) => a + b, 0), quota);
    assert.equal(raw((db) => db.prepare("SELECT count(*) FROM offline_messages").pluck().get()), quota);
  });
});
