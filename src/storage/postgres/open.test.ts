// openStorage and storageOptions with the postgres backend (src/storage/open.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openStorage, storageOptions } from "../open.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName } from "./test-db.ts";

const skip = await postgresSkip();

describe("openStorage: postgres", () => {
  it("turns the storage section of a configuration into options", () => {
    assert.deepEqual(storageOptions({ data_dir: "/d", storage: { backend: "sqlite", postgres_pool_size: 10 } }), { dataDir: "/d", kind: "sqlite" });
    assert.deepEqual(
      storageOptions({ data_dir: "/d", storage: { backend: "postgres", postgres_url: "postgres://c@h/db", postgres_schema: "comity", postgres_pool_size: 3 } }),
      { dataDir: "/d", kind: "postgres", postgres: { url: "postgres://c@h/db", poolSize: 3, schema: "comity" } },
    );
  });

  it("refuses kind postgres without a URL", async () => {
    await assert.rejects(openStorage({ dataDir: "/nonexistent", kind: "postgres" }), (err: unknown) => (err as { code?: string }).code === "COMITY_ERR_STORAGE_INVALID");
  });

  it("opens PostgreSQL storage in the configured schema", { skip }, async () => {
    const schema = testSchemaName();
    const s = await openStorage({ dataDir: "/nonexistent", kind: "postgres", postgres: { url: TEST_POSTGRES_URL, schema } });
    try {
      assert.equal(s.kind, "postgres");
      assert.equal(await s.accounts.create("montague.lit", "romeo", { scram: {} }), true);
    } finally {
      await s.close();
      await dropTestSchema(schema);
    }
  });
});
