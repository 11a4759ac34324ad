// Contract suite of the generic map kind (types.ts MapStore): the same cases on memory, SQLite and PostgreSQL.
// COMITY_TEST_STORAGE narrows the backends as in contract.test.ts; PostgreSQL is skipped with the reason when it is
// unreachable, except under CI=true, where its cases fail.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createMemoryStorage } from "./memory.ts";
import { openSqliteStorage, SQLITE_FILE_NAME } from "./sqlite/store.ts";
import { openPostgresStorage } from "./postgres/store.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName } from "./postgres/test-db.ts";
import type { Storage } from "./types.ts";

interface Fixture {
  storage: Storage;
  reopen?: () => Promise<Storage>;
  cleanup(): Promise<void>;
}

const BACKENDS: { name: string; skip: string | false; create(): Promise<Fixture> }[] = [
  {
    name: "memory",
    skip: false,
    async create() {
      const storage = createMemoryStorage();
      return { storage, cleanup: () => storage.close() };
    },
  },
  {
    name: "sqlite",
    skip: false,
    async create() {
      const dir = mkdtempSync(join(tmpdir(), "comity-map-"));
      const path = join(dir, SQLITE_FILE_NAME);
      let current = openSqliteStorage({ path });
      return {
        storage: current,
        async reopen() {
          await current.close();
          return (current = openSqliteStorage({ path }));
        },
        async cleanup() {
          await current.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "postgres",
    skip: await postgresSkip(),
    async create() {
      const schema = testSchemaName();
      const open = () => openPostgresStorage({ url: TEST_POSTGRES_URL, schema, poolSize: 2 });
      let current = await open();
      return {
        storage: current,
        async reopen() {
          await current.close();
          return (current = await open());
        },
        async cleanup() {
          await current.close();
          await dropTestSchema(schema);
        },
      };
    },
  },
];

const wanted = process.env["COMITY_TEST_STORAGE"]?.split(",").map((s) => s.trim()).filter((s) => s !== "");
const H = "montague.lit";
const invalid = (err: unknown): boolean => (err as { code?: string }).code === "COMITY_ERR_STORAGE_INVALID";

for (const backend of BACKENDS) {
  if (wanted !== undefined && wanted.length > 0 && !wanted.includes(backend.name)) continue;
  describe(`map kind: ${backend.name}`, { skip: backend.skip }, () => {
    let fx: Fixture;
    let s: Storage;
    beforeEach(async () => {
      fx = await backend.create();
      s = fx.storage;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it("gets what was set, and undefined for a missing key", async () => {
      const m = s.map("items");
      assert.equal(await m.get(H, "romeo", "k"), undefined);
      await m.set(H, "romeo", "k", "<item>ü</item>");
      assert.equal(await m.get(H, "romeo", "k"), "<item>ü</item>");
      await m.set(H, "romeo", "k", "");
      assert.equal(await m.get(H, "romeo", "k"), "", "an empty value is a value");
    });

    it("keeps stores, hosts and owners apart", async () => {
      await s.map("a").set(H, "romeo", "k", "a");
      await s.map("b").set(H, "romeo", "k", "b");
      await s.map("a").set("capulet.lit", "romeo", "k", "a-h2");
      await s.map("a").set(H, "romeo/node", "k", "a-node");
      assert.equal(await s.map("a").get(H, "romeo", "k"), "a");
      assert.equal(await s.map("b").get(H, "romeo", "k"), "b");
      assert.equal(await s.map("a").get("capulet.lit", "romeo", "k"), "a-h2");
      assert.equal(await s.map("a").get(H, "romeo/node", "k"), "a-node");
      assert.equal(await s.map("a").count(H, "romeo"), 1);
      assert.equal(await s.keyval("a").get(H, "romeo", "k"), undefined, "maps are not keyval documents");
    });

    it("orders entries by last write, oldest first or newest first, with a limit", async () => {
      const m = s.map("items");
      for (const k of ["a", "b", "c", "d"]) await m.set(H, "romeo", k, `v-${k}`);
      await m.set(H, "romeo", "b", "v-b2"); // rewritten: now the newest
      assert.deepEqual(await m.keys(H, "romeo"), ["a", "c", "d", "b"]);
      assert.deepEqual(await m.keys(H, "romeo", { newestFirst: true }), ["b", "d", "c", "a"]);
      assert.deepEqual(await m.keys(H, "romeo", { newestFirst: true, limit: 2 }), ["b", "d"]);
      assert.deepEqual(await m.keys(H, "romeo", { limit: 0 }), []);
      const entries = await m.entries(H, "romeo", { limit: 1, newestFirst: true });
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.key, "b");
      assert.equal(entries[0]!.value, "v-b2");
      assert.ok(Math.abs(entries[0]!.updatedAt - Date.now()) < 60_000);
      assert.equal(await m.count(H, "romeo"), 4);
    });

    it("reads several keys at once, leaving out missing ones", async () => {
      const m = s.map("items");
      await m.set(H, "romeo", "a", "1");
      await m.set(H, "romeo", "b", "2");
      const got = await m.getMany(H, "romeo", ["b", "missing", "a"]);
      assert.deepEqual([...got].sort(), [["a", "1"], ["b", "2"]]);
      assert.equal((await m.getMany(H, "romeo", [])).size, 0);
    });

    it("deletes one key and says whether it was there", async () => {
      const m = s.map("items");
      await m.set(H, "romeo", "a", "1");
      assert.equal(await m.delete(H, "romeo", "a"), true);
      assert.equal(await m.delete(H, "romeo", "a"), false);
      assert.equal(await m.count(H, "romeo"), 0);
    });

    it("trims to the newest entries and returns the removed keys", async () => {
      const m = s.map("items");
      for (const k of ["a", "b", "c", "d", "e"]) await m.set(H, "romeo", k, k);
      await m.set(H, "juliet", "a", "a");
      assert.deepEqual((await m.trim(H, "romeo", 2)).sort(), ["a", "b", "c"]);
      assert.deepEqual(await m.keys(H, "romeo"), ["d", "e"]);
      assert.deepEqual(await m.trim(H, "romeo", 5), []);
      assert.deepEqual((await m.trim(H, "romeo", 0)).sort(), ["d", "e"]);
      assert.equal(await m.count(H, "juliet"), 1, "other owners are untouched");
    });

    it("clears one owner and lists owners by prefix in byte order", async () => {
      const m = s.map("items");
      await m.set(H, "romeo/n1", "a", "1");
      await m.set(H, "romeo/n1", "b", "1");
      await m.set(H, "romeo/n2", "a", "1");
      await m.set(H, "romeo2/n", "a", "1");
      await m.set(H, "Benvolio/n", "a", "1");
      await m.set("capulet.lit", "romeo/x", "a", "1");
      assert.deepEqual(await m.owners(H), ["Benvolio/n", "romeo/n1", "romeo/n2", "romeo2/n"]);
      assert.deepEqual(await m.owners(H, { prefix: "romeo/" }), ["romeo/n1", "romeo/n2"]);
      assert.equal(await m.clear(H, "romeo/n1"), 2);
      assert.equal(await m.clear(H, "romeo/n1"), 0);
      assert.deepEqual(await m.owners(H, { prefix: "romeo/" }), ["romeo/n2"]);
      assert.deepEqual(await s.map("other").owners(H), []);
    });

    it("account deletion removes the user's rows of every map store, and nobody else's", async () => {
      await s.accounts.create(H, "romeo", { scram: {} });
      await s.map("a").set(H, "romeo", "k", "1");
      await s.map("b").set(H, "romeo/node", "k", "1");
      await s.map("b").set(H, "romeo/", "k", "1");
      await s.map("a").set(H, "romeo0", "k", "keep");
      await s.map("a").set(H, "romeox/n", "k", "keep");
      await s.map("a").set(H, "", "k", "keep");
      await s.map("a").set("capulet.lit", "romeo/node", "k", "keep");
      assert.equal(await s.accounts.delete(H, "romeo"), true);
      assert.equal(await s.map("a").count(H, "romeo"), 0);
      assert.deepEqual(await s.map("b").owners(H), []);
      assert.deepEqual(await s.map("a").owners(H), ["", "romeo0", "romeox/n"]);
      assert.equal(await s.map("a").count("capulet.lit", "romeo/node"), 1);
    });

    it("refuses input every backend cannot keep the same way", async () => {
      const m = s.map("items");
      assert.throws(() => s.map(""), invalid);
      await assert.rejects(m.set(H, "romeo", "k", 42 as unknown as string), invalid);
      await assert.rejects(m.set(H, "romeo", "k\u0000", "v"), invalid);
      await assert.rejects(m.set(H, "romeo", "k", "v\u0000"), invalid);
      await assert.rejects(m.keys(H, "romeo", { limit: -1 }), invalid);
      await assert.rejects(m.trim(H, "romeo", 1.5), invalid);
      await assert.rejects(m.getMany(H, "romeo", Array.from({ length: 1001 }, (_, i) => String(i))), invalid);
    });

    it("fails with the closed code after close", async () => {
      await s.close();
      await assert.rejects(s.map("items").get(H, "romeo", "k"), (err: unknown) => (err as { code?: string }).code === "COMITY_ERR_STORAGE_CLOSED");
    });

    if (backend.name !== "memory") it("keeps entries and their order across a reopen", async () => {
      const m = s.map("items");
      for (const k of ["a", "b", "c"]) await m.set(H, "romeo", k, k);
      await m.set(H, "romeo", "a", "a2");
      const again = await fx.reopen!();
      assert.deepEqual(await again.map("items").keys(H, "romeo"), ["b", "c", "a"]);
      await again.map("items").set(H, "romeo", "b", "b2");
      assert.deepEqual(await again.map("items").keys(H, "romeo"), ["c", "a", "b"], "new writes land after the stored ones");
    });
  });
}
