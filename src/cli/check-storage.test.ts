// `comity check` storage findings against real SQLite files and a real PostgreSQL server (COMITY_TEST_POSTGRES_URL,
// skipped with the reason when unreachable, failing under CI=true like the storage contract suite).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { normalizeConfig } from "../core/config/load.ts";
import type { Config } from "../core/config/schema.ts";
import { openStorage, storageOptions } from "../storage/open.ts";
import { LATEST_SCHEMA_VERSION } from "../storage/sqlite/migrations.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName } from "../storage/postgres/test-db.ts";
import { checkStorage } from "./check-storage.ts";

function configFor(dataDir: string, storage: Record<string, unknown> = {}): Config {
  return normalizeConfig({ hosts: [{ domain: "localhost" }], data_dir: dataDir, storage }, { baseDir: dataDir });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "comity-check-storage-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("SQLite: a data_dir that does not exist yet is fine, the database is created at first start", async () => {
  await withDir(async (dir) => {
    const findings = await checkStorage(configFor(join(dir, "not-yet", "data")));
    assert.deepEqual(findings.map((f) => f.severity), ["info"]);
    assert.match(findings[0]!.message, /created at the first start/);
  });
});

test("SQLite: a migrated database reports its schema version and accounts; a newer one is an error", async () => {
  await withDir(async (dir) => {
    const config = configFor(dir);
    const storage = await openStorage(storageOptions(config));
    await storage.accounts.create("localhost", "alice", { scram: {}, plain: "x" });
    await storage.close();
    const ok = await checkStorage(config);
    assert.deepEqual(ok.map((f) => [f.severity, f.message]), [["ok", `SQLite database ${join(dir, "comity.sqlite")}: schema version ${LATEST_SCHEMA_VERSION}, 1 account`]]);

    const db = new Database(join(dir, "comity.sqlite"));
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)").run(LATEST_SCHEMA_VERSION + 1);
    db.close();
    const newer = await checkStorage(config);
    assert.equal(newer[0]!.severity, "error");
    assert.match(newer[0]!.message, /newer than this release knows/);
    assert.ok(newer[0]!.fix);
  });
});

test("SQLite: a file that is not a Comity database, and a data_dir that is a file, are reported", async () => {
  await withDir(async (dir) => {
    const other = new Database(join(dir, "comity.sqlite"));
    other.exec("CREATE TABLE notes (t TEXT)");
    other.close();
    const foreign = await checkStorage(configFor(dir));
    assert.deepEqual(foreign.map((f) => f.severity), ["warning"]);
    assert.match(foreign[0]!.message, /no Comity schema/);

    writeFileSync(join(dir, "plain-file"), "x");
    const notDir = await checkStorage(configFor(join(dir, "plain-file")));
    assert.deepEqual(notDir.map((f) => f.severity), ["error"]);
    assert.match(notDir[0]!.message, /is not a directory/);
  });
});

test("PostgreSQL: an unreachable server is an error naming the address without the password", async () => {
  await withDir(async (dir) => {
    const findings = await checkStorage(configFor(dir, { backend: "postgres", postgres_url: "postgres://comity:s3cret@127.0.0.1:1/comity" }), { timeoutMs: 3000 });
    assert.equal(findings.length, 1);
    assert.equal(findings[0]!.severity, "error");
    assert.match(findings[0]!.message, /cannot reach PostgreSQL at postgres:\/\/comity@127\.0\.0\.1:1\/comity \(ECONNREFUSED\)/);
    assert.doesNotMatch(JSON.stringify(findings), /s3cret/);
    assert.match(findings[0]!.fix ?? "", /postgres_url/);
  });
});

const pgSkip = await postgresSkip();

test("PostgreSQL: an empty schema is created at first start; after it the schema version and accounts are reported", { skip: pgSkip }, async () => {
  await withDir(async (dir) => {
    const schema = testSchemaName();
    const config = configFor(dir, { backend: "postgres", postgres_url: TEST_POSTGRES_URL, postgres_schema: schema });
    try {
      const before = await checkStorage(config);
      assert.deepEqual(before.map((f) => f.severity), ["ok", "info"]);
      assert.match(before[0]!.message, /^PostgreSQL \d+/);
      assert.match(before[1]!.message, /holds no Comity tables yet/);

      const storage = await openStorage(storageOptions(config));
      await storage.accounts.create("localhost", "alice", { scram: {}, plain: "x" });
      await storage.accounts.create("localhost", "bob", { scram: {}, plain: "y" });
      await storage.close();
      const after = await checkStorage(config);
      assert.deepEqual(after.map((f) => f.severity), ["ok", "ok"]);
      assert.match(after[1]!.message, new RegExp(`^schema ${schema}: schema version \\d+, 2 accounts$`));
    } finally {
      await dropTestSchema(schema);
    }
  });
});

test("PostgreSQL: a database that does not exist is an error that says to create it", { skip: pgSkip }, async () => {
  await withDir(async (dir) => {
    const url = new URL(TEST_POSTGRES_URL);
    url.pathname = "/comity_no_such_database";
    const findings = await checkStorage(configFor(dir, { backend: "postgres", postgres_url: url.toString() }));
    assert.equal(findings[0]!.severity, "error");
    assert.match(findings[0]!.fix ?? "", /createdb/);
  });
});
