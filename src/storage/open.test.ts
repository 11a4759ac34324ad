// Tests of openStorage: data directory creation and backend choice (docs/storage.md).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { openStorage } from "./open.ts";

describe("openStorage", () => {
  const root = mkdtempSync(join(tmpdir(), "comity-open-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("creates a missing data directory (owner-only) and the SQLite file in it", async () => {
    const dataDir = join(root, "nested", "data");
    const s = await openStorage({ dataDir });
    try {
      assert.equal(s.kind, "sqlite");
      assert.equal(statSync(dataDir).mode & 0o777, 0o700);
      assert.ok(existsSync(join(dataDir, "comity.sqlite")));
    } finally {
      await s.close();
    }
  });

  it("opens an existing data directory again with its data", async () => {
    const dataDir = join(root, "again");
    const first = await openStorage({ dataDir, kind: "sqlite" });
    await first.accounts.create("montague.lit", "romeo", { scram: {} });
    await first.close();
    const second = await openStorage({ dataDir });
    try {
      assert.equal(await second.accounts.count("montague.lit"), 1);
    } finally {
      await second.close();
    }
  });

  it("opens memory storage without touching the data directory", async () => {
    const dataDir = join(root, "never-created");
    const s = await openStorage({ dataDir, kind: "memory" });
    assert.equal(s.kind, "memory");
    assert.equal(existsSync(dataDir), false);
    await s.close();
  });

  it("rejects an unknown kind with a storage error code", async () => {
    await assert.rejects(openStorage({ dataDir: root, kind: "mongo" as never }), (err: unknown) => (err as { code?: string }).code === "COMITY_ERR_STORAGE_INVALID");
  });
});
