// Tests of the in-memory Storage beyond the shared contract (../storage/contract.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryStorage } from "./memory.ts";
import type { StoredCredentials } from "./types.ts";

describe("memory storage", () => {
  it("says it is the memory kind", () => {
    assert.equal(createMemoryStorage().kind, "memory");
  });

  it("copies credentials on the way in, so later caller edits are not stored", async () => {
    const s = createMemoryStorage();
    const c: StoredCredentials = { scram: {} };
    await s.accounts.create("montague.lit", "romeo", c);
    c.plain = "edited-after";
    assert.equal((await s.accounts.get("montague.lit", "romeo"))?.credentials.plain, undefined);
  });

  it("lists usernames in UTF-8 byte order, as SQLite does", async () => {
    const s = createMemoryStorage();
    // UTF-16 code units would put U+1F3AD (a surrogate pair, 0xD83C...) before U+FF21; UTF-8 bytes put it after.
    for (const u of ["\u{1F3AD}", "\uFF21", "a", "B"]) await s.accounts.create("h", u, { scram: {} });
    assert.deepEqual(await s.accounts.list("h"), ["B", "a", "\uFF21", "\u{1F3AD}"]);
  });

  it("gives two storages separate data", async () => {
    const a = createMemoryStorage();
    const b = createMemoryStorage();
    await a.accounts.create("h", "u", { scram: {} });
    assert.equal(await b.accounts.count("h"), 0);
  });
});
