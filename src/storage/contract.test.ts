// Storage contract suite: the same cases run against every implementation of src/storage/types.ts.
// COMITY_TEST_STORAGE=memory|sqlite|postgres (comma-separated) narrows the run. PostgreSQL runs against
// COMITY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), one throwaway schema per test; when the
// server is unreachable its cases are skipped with the reason, except under CI=true, where they fail.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { createMemoryStorage } from "./memory.ts";
import { LATEST_SCHEMA_VERSION } from "./sqlite/migrations.ts";
import { openSqliteStorage, SQLITE_FILE_NAME } from "./sqlite/store.ts";
import { PG_LATEST_SCHEMA_VERSION } from "./postgres/migrations.ts";
import { openPostgresStorage } from "./postgres/store.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName, withTestClient } from "./postgres/test-db.ts";
import type { RosterItem, ServerRosterEntry, Storage, StoredCredentials } from "./types.ts";

/** One open store under test plus what the suite may do with it beyond the Storage interface. */
interface StorageFixture {
  storage: Storage;
  /** Close `storage` and open the same database again (persistent backends only). */
  reopen?: () => Promise<Storage>;
  /** Direct access to the schema_migrations bookkeeping (backends with migrations only). */
  schema?: {
    latest: number;
    version(): Promise<number>;
    /** Record a version as applied, as a newer release would; call with the storage closed. */
    record(version: number, name: string): Promise<void>;
  };
  /** Release everything (the current storage included) and delete temporary files. */
  cleanup(): Promise<void>;
}

interface StorageFactory {
  name: string;
  create(): Promise<StorageFixture>;
  /** Why this backend cannot run here (its cases are skipped), or false. */
  skip?: string | false;
}

const memoryFactory: StorageFactory = {
  name: "memory",
  async create() {
    const storage = createMemoryStorage();
    return { storage, cleanup: () => storage.close() };
  },
};

const sqliteFactory: StorageFactory = {
  name: "sqlite",
  async create() {
    const dir = mkdtempSync(join(tmpdir(), "comity-storage-"));
    const path = join(dir, SQLITE_FILE_NAME);
    let current = openSqliteStorage({ path });
    const raw = <T>(fn: (db: Database.Database) => T): T => {
      const db = new Database(path);
      try {
        return fn(db);
      } finally {
        db.close();
      }
    };
    const fixture: StorageFixture = {
      storage: current,
      async reopen() {
        await current.close();
        current = openSqliteStorage({ path });
        return current;
      },
      schema: {
        latest: LATEST_SCHEMA_VERSION,
        async version() {
          return raw((db) => db.prepare<[], number>("SELECT max(version) FROM schema_migrations").pluck().get() ?? 0);
        },
        async record(version, name) {
          raw((db) => db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(version, name, Date.now()));
        },
      },
      async cleanup() {
        await current.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return fixture;
  },
};

const postgresFactory: StorageFactory = {
  name: "postgres",
  skip: await postgresSkip(),
  async create() {
    const schema = testSchemaName();
    const open = () => openPostgresStorage({ url: TEST_POSTGRES_URL, schema, poolSize: 4 });
    let current = await open();
    return {
      storage: current,
      async reopen() {
        await current.close();
        current = await open();
        return current;
      },
      schema: {
        latest: PG_LATEST_SCHEMA_VERSION,
        async version() {
          return withTestClient(async (c) => (await c.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${schema}.schema_migrations`)).rows[0]?.v ?? 0);
        },
        async record(version, name) {
          await withTestClient((c) => c.query(`INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [version, name, Date.now()]));
        },
      },
      async cleanup() {
        await current.close();
        await dropTestSchema(schema);
      },
    };
  },
};

const FACTORIES: StorageFactory[] = [memoryFactory, sqliteFactory, postgresFactory];

function selectedFactories(): StorageFactory[] {
  const wanted = process.env["COMITY_TEST_STORAGE"]?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (wanted === undefined || wanted.length === 0) return FACTORIES;
  const unknown = wanted.filter((w) => !FACTORIES.some((f) => f.name === w));
  // A typo must not turn into a green run that tested nothing.
  if (unknown.length > 0) throw new Error(`COMITY_TEST_STORAGE names unknown backends: ${unknown.join(", ")}`);
  return FACTORIES.filter((f) => wanted.includes(f.name));
}

function creds(tag: string): StoredCredentials {
  const key = Buffer.from(tag).toString("base64");
  return {
    scram: {
      "SHA-1": { salt: `salt-${key}`, iterations: 4096, storedKey: `sk1-${key}`, serverKey: `srv1-${key}` },
      "SHA-256": { salt: `salt-${key}`, iterations: 4096, storedKey: `sk256-${key}`, serverKey: `srv256-${key}` },
    },
  };
}

/** Assert a promise rejects with a StorageError of `code`. */
async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code);
    return true;
  });
}

const H = "montague.lit";
const H2 = "capulet.lit";

/** A roster item with defaults for the fields a case does not care about. */
function item(jid: string, extra: Partial<RosterItem> = {}): RosterItem {
  return { jid, subscription: "none", ask: false, approved: false, groups: [], ...extra };
}

/** Push `stanza` with a generous quota and a fixed stamp. */
const PUSH = { stamp: 1_700_000_000_000, quota: 100 };

for (const factory of selectedFactories()) {
  describe(`storage contract: ${factory.name}`, { skip: factory.skip ?? false }, () => {
    let fx: StorageFixture;
    let s: Storage;
    beforeEach(async () => {
      fx = await factory.create();
      s = fx.storage;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    describe("accounts", () => {
      it("reports a missing account as undefined and count 0", async () => {
        assert.equal(await s.accounts.get(H, "romeo"), undefined);
        assert.equal(await s.accounts.count(H), 0);
        assert.deepEqual(await s.accounts.list(H), []);
      });

      it("creates an account and reads it back", async () => {
        const before = Date.now();
        assert.equal(await s.accounts.create(H, "romeo", creds("r")), true);
        const account = await s.accounts.get(H, "romeo");
        assert.ok(account);
        assert.equal(account.host, H);
        assert.equal(account.username, "romeo");
        assert.deepEqual(account.credentials, creds("r"));
        assert.ok(account.createdAt >= before && account.createdAt <= Date.now());
      });

      it("keeps plain passwords when the caller stores them", async () => {
        const c: StoredCredentials = { plain: "pässwörd", scram: {} };
        await s.accounts.create(H, "juliet", c);
        assert.deepEqual((await s.accounts.get(H, "juliet"))?.credentials, c);
      });

      it("refuses to create an existing account and leaves it unchanged", async () => {
        await s.accounts.create(H, "romeo", creds("first"));
        assert.equal(await s.accounts.create(H, "romeo", creds("second")), false);
        assert.deepEqual((await s.accounts.get(H, "romeo"))?.credentials, creds("first"));
        assert.equal(await s.accounts.count(H), 1);
      });

      it("stores usernames exactly as given", async () => {
        await s.accounts.create(H, "Romeo", creds("upper"));
        assert.equal(await s.accounts.get(H, "romeo"), undefined);
        assert.equal(await s.accounts.create(H, "romeo", creds("lower")), true);
        assert.deepEqual(await s.accounts.list(H), ["Romeo", "romeo"]);
      });

      it("createMany skips existing accounts by default", async () => {
        await s.accounts.create(H, "alice", creds("old"));
        const n = await s.accounts.createMany(H, [
          { username: "alice", credentials: creds("new") },
          { username: "bob", credentials: creds("b") },
          { username: "carol", credentials: creds("c") },
        ]);
        assert.equal(n, 2);
        assert.deepEqual((await s.accounts.get(H, "alice"))?.credentials, creds("old"));
        assert.deepEqual((await s.accounts.get(H, "bob"))?.credentials, creds("b"));
        assert.equal(await s.accounts.count(H), 3);
      });

      it("createMany counts a username repeated within one batch once when skipping", async () => {
        const n = await s.accounts.createMany(H, [
          { username: "bob", credentials: creds("1") },
          { username: "bob", credentials: creds("2") },
        ]);
        assert.equal(n, 1);
        assert.deepEqual((await s.accounts.get(H, "bob"))?.credentials, creds("1"));
      });

      it("createMany with replace overwrites credentials but keeps the creation time", async () => {
        await s.accounts.create(H, "alice", creds("old"));
        const createdAt = (await s.accounts.get(H, "alice"))?.createdAt;
        const n = await s.accounts.createMany(
          H,
          [
            { username: "alice", credentials: creds("new") },
            { username: "dave", credentials: creds("d") },
          ],
          { replace: true },
        );
        assert.equal(n, 2, "replaced plus created");
        const alice = await s.accounts.get(H, "alice");
        assert.deepEqual(alice?.credentials, creds("new"));
        assert.equal(alice?.createdAt, createdAt);
        assert.equal(await s.accounts.count(H), 2);
      });

      it("createMany accepts any iterable, including an empty one", async () => {
        assert.equal(await s.accounts.createMany(H, []), 0);
        function* gen() {
          for (let i = 0; i < 3; i++) yield { username: `u${i}`, credentials: creds(`u${i}`) };
        }
        assert.equal(await s.accounts.createMany(H, gen()), 3);
        assert.deepEqual(await s.accounts.list(H), ["u0", "u1", "u2"]);
      });

      it("createMany is all or nothing when the input fails half way", async () => {
        function* failing() {
          yield { username: "x1", credentials: creds("x1") };
          throw new Error("input broke");
        }
        await assert.rejects(s.accounts.createMany(H, failing()), /input broke/);
        assert.equal(await s.accounts.count(H), 0);
      });

      it("createMany writes 10,000 accounts", async () => {
        const c = creds("bulk");
        const entries = Array.from({ length: 10_000 }, (_, i) => ({ username: `user${i}`, credentials: c }));
        assert.equal(await s.accounts.createMany(H, entries), 10_000);
        assert.equal(await s.accounts.count(H), 10_000);
        assert.deepEqual((await s.accounts.get(H, "user9999"))?.credentials, c);
      });

      it("setCredentials on a missing account resolves false and creates nothing", async () => {
        assert.equal(await s.accounts.setCredentials(H, "ghost", creds("g")), false);
        assert.equal(await s.accounts.get(H, "ghost"), undefined);
        assert.equal(await s.accounts.count(H), 0);
      });

      it("setCredentials replaces the credentials of an existing account", async () => {
        await s.accounts.create(H, "romeo", creds("old"));
        assert.equal(await s.accounts.setCredentials(H, "romeo", creds("new")), true);
        assert.deepEqual((await s.accounts.get(H, "romeo"))?.credentials, creds("new"));
      });

      it("delete removes the account and every keyval row of that user on that host", async () => {
        await s.accounts.create(H, "romeo", creds("r"));
        await s.accounts.create(H, "juliet", creds("j"));
        await s.accounts.create(H2, "romeo", creds("r2"));
        const priv = s.keyval("private");
        const vcard = s.keyval("vcard");
        await priv.set(H, "romeo", "k", "romeo-private");
        await vcard.set(H, "romeo", "k", "romeo-vcard");
        await priv.set(H, "juliet", "k", "juliet-private");
        await priv.set(H2, "romeo", "k", "other-host-romeo");
        await priv.set(H, "", "k", "host-wide");

        assert.equal(await s.accounts.delete(H, "romeo"), true);
        assert.equal(await s.accounts.get(H, "romeo"), undefined);
        assert.equal(await priv.get(H, "romeo", "k"), undefined);
        assert.equal(await vcard.get(H, "romeo", "k"), undefined);
        assert.equal(await priv.get(H, "juliet", "k"), "juliet-private");
        assert.equal(await priv.get(H2, "romeo", "k"), "other-host-romeo");
        assert.equal(await priv.get(H, "", "k"), "host-wide");
        assert.ok(await s.accounts.get(H2, "romeo"));
        assert.equal(await s.accounts.count(H), 1);
      });

      it("delete removes the user's roster, pending requests and offline messages; the version moves past them", async () => {
        for (const [host, user] of [[H, "romeo"], [H, "juliet"], [H2, "romeo"]] as const) {
          await s.accounts.create(host, user, creds(user));
          await s.rosters.setItem(host, user, item("nurse@capulet.lit"));
          await s.rosters.setItem(host, user, item("tybalt@capulet.lit"));
          await s.rosters.setPendingIn(host, user, "benvolio@montague.lit", "<presence type='subscribe'/>");
          await s.offline.push(host, user, "<message/>", PUSH);
        }

        assert.equal(await s.accounts.delete(H, "romeo"), true);
        // Not 0 and not 2: a client that cached version 2 of the old account must get the new, empty roster in full.
        assert.deepEqual(await s.rosters.get(H, "romeo"), { version: 3, items: [] });
        assert.equal(await s.rosters.count(H, "romeo"), 0);
        assert.deepEqual(await s.rosters.pendingIn(H, "romeo"), []);
        assert.deepEqual(await s.offline.list(H, "romeo"), []);
        assert.equal(await s.offline.count(H, "romeo"), 0);
        for (const [host, user] of [[H, "juliet"], [H2, "romeo"]] as const) {
          assert.deepEqual(await s.rosters.get(host, user).then((r) => [r.version, r.items.length]), [2, 2], `${user}@${host} roster`);
          assert.equal((await s.rosters.pendingIn(host, user)).length, 1);
          assert.equal(await s.offline.count(host, user), 1);
        }
        await s.accounts.create(H, "romeo", creds("romeo"));
        await s.rosters.setItem(H, "romeo", item("mercutio@montague.lit"));
        assert.equal((await s.rosters.get(H, "romeo")).version, 4, "a re-created account counts on");
      });

      it("delete of a missing account resolves false", async () => {
        assert.equal(await s.accounts.delete(H, "ghost"), false);
      });

      it("list and count see only their own host", async () => {
        await s.accounts.createMany(H, ["romeo", "benvolio", "mercutio"].map((u) => ({ username: u, credentials: creds(u) })));
        await s.accounts.createMany(H2, ["juliet", "tybalt"].map((u) => ({ username: u, credentials: creds(u) })));
        assert.deepEqual(await s.accounts.list(H), ["benvolio", "mercutio", "romeo"]);
        assert.deepEqual(await s.accounts.list(H2), ["juliet", "tybalt"]);
        assert.equal(await s.accounts.count(H), 3);
        assert.equal(await s.accounts.count(H2), 2);
        assert.equal(await s.accounts.get(H2, "romeo"), undefined);
        assert.equal(await s.accounts.count("verona.lit"), 0);
      });

      it("lists usernames in UTF-8 byte order", async () => {
        for (const u of ["\u{1F3AD}", "\uFF21", "a", "B"]) await s.accounts.create(H, u, creds(u));
        assert.deepEqual(await s.accounts.list(H), ["B", "a", "\uFF21", "\u{1F3AD}"]);
      });

      it("hands out copies: mutating a returned account changes nothing stored", async () => {
        await s.accounts.create(H, "romeo", creds("r"));
        const a = await s.accounts.get(H, "romeo");
        assert.ok(a);
        a.credentials.plain = "leaked";
        assert.deepEqual((await s.accounts.get(H, "romeo"))?.credentials, creds("r"));
      });
    });

    describe("keyval", () => {
      it("reads a missing key as undefined", async () => {
        assert.equal(await s.keyval("private").get(H, "romeo", "nothing"), undefined);
      });

      it("sets, overwrites and deletes a value (set undefined)", async () => {
        const kv = s.keyval("private");
        await kv.set(H, "romeo", "k", "v1");
        assert.equal(await kv.get(H, "romeo", "k"), "v1");
        await kv.set(H, "romeo", "k", "v2");
        assert.equal(await kv.get(H, "romeo", "k"), "v2");
        await kv.set(H, "romeo", "k", undefined);
        assert.equal(await kv.get(H, "romeo", "k"), undefined);
        await kv.set(H, "romeo", "k", undefined); // deleting twice is harmless
      });

      it("keeps stores, hosts, users and keys apart", async () => {
        await s.keyval("a").set(H, "romeo", "k", "a");
        await s.keyval("b").set(H, "romeo", "k", "b");
        await s.keyval("a").set(H2, "romeo", "k", "a-h2");
        await s.keyval("a").set(H, "juliet", "k", "a-juliet");
        await s.keyval("a").set(H, "romeo", "k2", "a-k2");
        assert.equal(await s.keyval("a").get(H, "romeo", "k"), "a");
        assert.equal(await s.keyval("b").get(H, "romeo", "k"), "b");
        assert.equal(await s.keyval("a").get(H2, "romeo", "k"), "a-h2");
        assert.equal(await s.keyval("a").get(H, "juliet", "k"), "a-juliet");
        assert.equal(await s.keyval("a").get(H, "romeo", "k2"), "a-k2");
      });

      it("stores empty strings, Unicode and large values unchanged", async () => {
        const kv = s.keyval("docs");
        const big = "<query xmlns='jabber:iq:private'>" + "ü🎭".repeat(100_000) + "</query>";
        await kv.set(H, "romeo", "empty", "");
        await kv.set(H, "romeo", "big", big);
        assert.equal(await kv.get(H, "romeo", "empty"), "");
        assert.equal(await kv.get(H, "romeo", "big"), big);
      });

      it("holds host-wide documents under the empty user", async () => {
        await s.keyval("server-roster").set(H, "", "capulet.lit", "both");
        assert.equal(await s.keyval("server-roster").get(H, "", "capulet.lit"), "both");
      });

      it("rejects an empty store name and non-string values", async () => {
        assert.throws(() => s.keyval(""), (err: unknown) => (err as { code?: string }).code === "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.keyval("x").set(H, "u", "k", 42 as unknown as string), "COMITY_ERR_STORAGE_INVALID");
      });
    });

    describe("rosters", () => {
      it("reads an unknown user's roster as empty at version 0", async () => {
        assert.deepEqual(await s.rosters.get(H, "romeo"), { version: 0, items: [] });
        assert.equal(await s.rosters.getItem(H, "romeo", "juliet@capulet.lit"), undefined);
        assert.equal(await s.rosters.count(H, "romeo"), 0);
      });

      it("bumps the version by one on every change and returns it", async () => {
        assert.equal(await s.rosters.setItem(H, "romeo", item("juliet@capulet.lit")), 1);
        assert.equal(await s.rosters.setItem(H, "romeo", item("mercutio@montague.lit")), 2);
        assert.equal(await s.rosters.setItem(H, "romeo", item("juliet@capulet.lit", { subscription: "to" })), 3);
        assert.equal(await s.rosters.removeItem(H, "romeo", "mercutio@montague.lit"), 4);
        assert.equal((await s.rosters.get(H, "romeo")).version, 4);
      });

      it("keeps a separate version per user and per host", async () => {
        await s.rosters.setItem(H, "romeo", item("a@x"));
        await s.rosters.setItem(H, "romeo", item("b@x"));
        assert.equal(await s.rosters.setItem(H, "juliet", item("a@x")), 1);
        assert.equal(await s.rosters.setItem(H2, "romeo", item("a@x")), 1);
        assert.equal((await s.rosters.get(H, "romeo")).version, 2);
        assert.equal((await s.rosters.get(H, "juliet")).version, 1);
        assert.deepEqual((await s.rosters.get(H2, "romeo")).items, [item("a@x")]);
        assert.equal(await s.rosters.count(H, "romeo"), 2);
        assert.equal(await s.rosters.count(H2, "romeo"), 1);
      });

      it("setItem replaces an existing item as a whole", async () => {
        await s.rosters.setItem(H, "romeo", item("juliet@capulet.lit", { name: "Juliet", subscription: "both", ask: true, approved: true, groups: ["Lovers", "Capulets"] }));
        await s.rosters.setItem(H, "romeo", item("juliet@capulet.lit", { subscription: "from" }));
        assert.deepEqual(await s.rosters.getItem(H, "romeo", "juliet@capulet.lit"), item("juliet@capulet.lit", { subscription: "from" }));
        assert.equal(await s.rosters.count(H, "romeo"), 1);
      });

      it("removeItem of a missing item resolves undefined and leaves the version alone", async () => {
        assert.equal(await s.rosters.removeItem(H, "romeo", "nobody@x"), undefined);
        assert.equal((await s.rosters.get(H, "romeo")).version, 0);
        await s.rosters.setItem(H, "romeo", item("juliet@capulet.lit"));
        assert.equal(await s.rosters.removeItem(H, "romeo", "nobody@x"), undefined);
        assert.equal(await s.rosters.removeItem(H, "juliet", "juliet@capulet.lit"), undefined, "another user's item");
        assert.equal((await s.rosters.get(H, "romeo")).version, 1);
        assert.equal(await s.rosters.removeItem(H, "romeo", "juliet@capulet.lit"), 2);
        assert.equal(await s.rosters.removeItem(H, "romeo", "juliet@capulet.lit"), undefined, "removing twice");
        assert.deepEqual(await s.rosters.get(H, "romeo"), { version: 2, items: [] });
      });

      it("round-trips names, groups, subscription states and flags", async () => {
        const items: RosterItem[] = [
          item("a@x", { name: "Nurse 🎭", groups: ["Capulets", "Staff", "ü"] }),
          item("b@x", { subscription: "to", ask: true }),
          item("c@x", { subscription: "from", approved: true, name: "" }),
          item("d@x", { subscription: "both", groups: [""] }),
        ];
        for (const it of items) await s.rosters.setItem(H, "romeo", it);
        assert.deepEqual((await s.rosters.get(H, "romeo")).items, items);
        for (const it of items) assert.deepEqual(await s.rosters.getItem(H, "romeo", it.jid), it);
        const noName = await s.rosters.getItem(H, "romeo", "b@x");
        assert.ok(noName && !("name" in noName), "an absent name stays absent");
      });

      it("lists items in UTF-8 byte order of their JIDs", async () => {
        for (const jid of ["\u{1F3AD}@x", "\uFF21@x", "b@x", "B@x"]) await s.rosters.setItem(H, "romeo", item(jid));
        assert.deepEqual((await s.rosters.get(H, "romeo")).items.map((i) => i.jid), ["B@x", "b@x", "\uFF21@x", "\u{1F3AD}@x"]);
      });

      it("hands out copies and keeps none of the caller's objects", async () => {
        const mine = item("juliet@capulet.lit", { groups: ["Lovers"] });
        await s.rosters.setItem(H, "romeo", mine);
        mine.groups.push("edited-after");
        const got = await s.rosters.getItem(H, "romeo", "juliet@capulet.lit");
        assert.deepEqual(got?.groups, ["Lovers"]);
        got?.groups.push("leaked");
        const all = await s.rosters.get(H, "romeo");
        all.items[0]?.groups.push("leaked");
        assert.deepEqual((await s.rosters.getItem(H, "romeo", "juliet@capulet.lit"))?.groups, ["Lovers"]);
      });

      it("rejects malformed items without bumping the version", async () => {
        const bad: unknown[] = [
          { ...item("a@x"), subscription: "pending" },
          { ...item("a@x"), groups: "Friends" },
          { ...item("a@x"), groups: [1] },
          { ...item("a@x"), ask: 1 },
          { ...item("a@x"), name: null },
          item(""),
        ];
        for (const b of bad) await rejectsWithCode(s.rosters.setItem(H, "romeo", b as RosterItem), "COMITY_ERR_STORAGE_INVALID");
        assert.deepEqual(await s.rosters.get(H, "romeo"), { version: 0, items: [] });
      });

      it("records, replaces, lists and clears pending inbound requests", async () => {
        assert.deepEqual(await s.rosters.pendingIn(H, "romeo"), []);
        await s.rosters.setPendingIn(H, "romeo", "juliet@capulet.lit", "<presence type='subscribe' n='1'/>");
        await s.rosters.setPendingIn(H, "romeo", "nurse@capulet.lit", "<presence type='subscribe' n='2'/>");
        await s.rosters.setPendingIn(H, "juliet", "romeo@montague.lit", "<presence type='subscribe' n='3'/>");
        await s.rosters.setPendingIn(H, "romeo", "juliet@capulet.lit", "<presence type='subscribe' n='4'/>");
        const pending = await s.rosters.pendingIn(H, "romeo");
        assert.deepEqual(
          [...pending].sort((a, b) => a.jid.localeCompare(b.jid)),
          [
            { jid: "juliet@capulet.lit", stanza: "<presence type='subscribe' n='4'/>" },
            { jid: "nurse@capulet.lit", stanza: "<presence type='subscribe' n='2'/>" },
          ],
        );
        await s.rosters.setPendingIn(H, "romeo", "juliet@capulet.lit", undefined);
        await s.rosters.setPendingIn(H, "romeo", "never@x", undefined); // clearing a missing one is harmless
        assert.deepEqual(await s.rosters.pendingIn(H, "romeo"), [{ jid: "nurse@capulet.lit", stanza: "<presence type='subscribe' n='2'/>" }]);
        assert.equal((await s.rosters.pendingIn(H, "juliet")).length, 1);
        assert.equal((await s.rosters.get(H, "romeo")).version, 0, "pending requests are not roster items");
      });
    });

    describe("offline", () => {
      it("pushes below the quota and refuses at it, storing nothing", async () => {
        const quota = { stamp: 1, quota: 2 };
        assert.equal(await s.offline.push(H, "romeo", "<message n='1'/>", quota), true);
        assert.equal(await s.offline.push(H, "romeo", "<message n='2'/>", quota), true);
        assert.equal(await s.offline.push(H, "romeo", "<message n='3'/>", quota), false);
        assert.equal(await s.offline.count(H, "romeo"), 2);
        assert.deepEqual((await s.offline.list(H, "romeo")).map((m) => m.stanza), ["<message n='1'/>", "<message n='2'/>"]);
        assert.equal(await s.offline.push(H, "romeo", "<message n='4'/>", { stamp: 1, quota: 3 }), true, "a larger quota makes room");
        assert.equal(await s.offline.push(H, "romeo", "<message/>", { stamp: 1, quota: 0 }), false);
      });

      it("counts the quota per user", async () => {
        const one = { stamp: 1, quota: 1 };
        assert.equal(await s.offline.push(H, "romeo", "<a/>", one), true);
        assert.equal(await s.offline.push(H, "juliet", "<b/>", one), true);
        assert.equal(await s.offline.push(H2, "romeo", "<c/>", one), true);
        assert.equal(await s.offline.push(H, "romeo", "<d/>", one), false);
      });

      it("lists oldest first with increasing ids and the given stamps", async () => {
        for (let i = 0; i < 5; i++) await s.offline.push(H, "romeo", `<message n='${i}'/>`, { stamp: 1_000 + i, quota: 10 });
        const list = await s.offline.list(H, "romeo");
        assert.deepEqual(list.map((m) => [m.stanza, m.stamp]), [0, 1, 2, 3, 4].map((i) => [`<message n='${i}'/>`, 1_000 + i]));
        for (let i = 1; i < list.length; i++) assert.ok((list[i]?.id ?? 0) > (list[i - 1]?.id ?? 0));
      });

      it("deletes by id, only the user's own messages, and never reuses an id", async () => {
        for (let i = 0; i < 4; i++) await s.offline.push(H, "romeo", `<m n='${i}'/>`, PUSH);
        await s.offline.push(H, "juliet", "<m j='1'/>", PUSH);
        const [first, second, third, fourth] = await s.offline.list(H, "romeo");
        const juliet = (await s.offline.list(H, "juliet"))[0];
        assert.ok(first && second && third && fourth && juliet);
        await s.offline.delete(H, "romeo", [first.id, third.id, juliet.id, 999_999]);
        assert.deepEqual((await s.offline.list(H, "romeo")).map((m) => m.stanza), ["<m n='1'/>", "<m n='3'/>"]);
        assert.equal(await s.offline.count(H, "juliet"), 1, "another user's id is ignored");
        await s.offline.delete(H, "romeo", []);
        await s.offline.delete(H, "romeo", [fourth.id]);
        await s.offline.push(H, "romeo", "<m n='new'/>", PUSH);
        const newest = (await s.offline.list(H, "romeo")).at(-1);
        assert.ok(newest && newest.id > fourth.id, "a deleted newest id is not handed out again");
        assert.equal(await s.offline.count(H, "romeo"), 2);
      });

      it("keeps stanzas with Unicode and large bodies unchanged", async () => {
        const big = `<message><body>${"ü🎭".repeat(50_000)}</body></message>`;
        await s.offline.push(H, "romeo", big, PUSH);
        assert.equal((await s.offline.list(H, "romeo"))[0]?.stanza, big);
      });

      it("hands out copies", async () => {
        await s.offline.push(H, "romeo", "<m/>", PUSH);
        const list = await s.offline.list(H, "romeo");
        if (list[0]) list[0].stanza = "<leaked/>";
        list.pop();
        assert.deepEqual((await s.offline.list(H, "romeo")).map((m) => m.stanza), ["<m/>"]);
      });

      it("rejects a bad quota, stamp, stanza or id list", async () => {
        await rejectsWithCode(s.offline.push(H, "romeo", "<m/>", { stamp: 1, quota: -1 }), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.offline.push(H, "romeo", "<m/>", { stamp: 1, quota: 1.5 }), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.offline.push(H, "romeo", "<m/>", { stamp: Number.NaN, quota: 1 }), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.offline.push(H, "romeo", 42 as unknown as string, PUSH), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.offline.delete(H, "romeo", ["1"] as unknown as number[]), "COMITY_ERR_STORAGE_INVALID");
        assert.equal(await s.offline.count(H, "romeo"), 0);
      });
    });

    describe("archive", () => {
      const msg = (n: number, withJid = "juliet@capulet.lit", direction: "in" | "out" = "in") => ({
        with: withJid, direction, stanza: `<message n='${n}'><body>${n}</body></message>`, timestamp: 1_000 + n,
      });
      const ns = (page: { items: { stanza: string }[] } | undefined) => page?.items.map((m) => Number(/n='(\d+)'/.exec(m.stanza)?.[1]));

      it("appends with increasing opaque ids and pages forward", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(await s.archive.append(H, "romeo", msg(i)));
        assert.equal(new Set(ids).size, 5);
        for (const id of ids) assert.equal(typeof id, "string");
        const p1 = await s.archive.query(H, "romeo", { max: 2 });
        assert.deepEqual(ns(p1), [0, 1]);
        assert.equal(p1?.first, ids[0]);
        assert.equal(p1?.last, ids[1]);
        assert.equal(p1?.complete, false);
        assert.equal(p1?.count, 5);
        assert.deepEqual(p1?.items[0], { id: ids[0], ...msg(0) });
        const p2 = await s.archive.query(H, "romeo", { max: 2, after: p1!.last! });
        assert.deepEqual(ns(p2), [2, 3]);
        const p3 = await s.archive.query(H, "romeo", { max: 2, after: p2!.last! });
        assert.deepEqual(ns(p3), [4]);
        assert.equal(p3?.complete, true);
        const p4 = await s.archive.query(H, "romeo", { max: 2, after: p3!.last! });
        assert.deepEqual(ns(p4), []);
        assert.equal(p4?.first, undefined);
        assert.equal(p4?.complete, true);
      });

      it("replaces one message's stanza (a tombstone) and keeps the rest of it", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) ids.push(await s.archive.append(H, "romeo", msg(i)));
        const before = await s.archive.replace(H, "romeo", ids[1]!, (m) => m.stanza.replace(/<body>.*<\/body>/, "<gone/>"));
        assert.deepEqual(before, { id: ids[1], ...msg(1) });
        const page = await s.archive.query(H, "romeo", { max: 10 });
        assert.deepEqual(page?.items.map((m) => m.stanza), [msg(0).stanza, "<message n='1'><gone/></message>", msg(2).stanza]);
        assert.deepEqual({ ...page!.items[1]!, stanza: "" }, { id: ids[1], ...msg(1), stanza: "" });
        assert.equal(await s.archive.replace(H, "juliet", ids[1]!, () => "x"), undefined, "another user's id");
        assert.equal(await s.archive.replace(H, "romeo", "999999999", () => "x"), undefined, "an unknown id");
        assert.equal(await s.archive.replace(H, "romeo", "not-an-id", () => "x"), undefined, "not an id at all");
      });

      it("pages backward from the end and before an id", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(await s.archive.append(H, "romeo", msg(i)));
        const last = await s.archive.query(H, "romeo", { max: 2, before: "" });
        assert.deepEqual(ns(last), [3, 4]);
        assert.equal(last?.complete, false);
        const prev = await s.archive.query(H, "romeo", { max: 2, before: last!.first! });
        assert.deepEqual(ns(prev), [1, 2]);
        const first = await s.archive.query(H, "romeo", { max: 2, before: prev!.first! });
        assert.deepEqual(ns(first), [0]);
        assert.equal(first?.complete, true);
        const all = await s.archive.query(H, "romeo", { max: 10, before: "" });
        assert.deepEqual(ns(all), [0, 1, 2, 3, 4]);
        assert.equal(all?.complete, true);
        const none = await s.archive.query(H, "romeo", { max: 0 });
        assert.deepEqual(ns(none), []);
        assert.equal(none?.count, 5);
      });

      it("filters by with, start and end, per user and host", async () => {
        await s.archive.append(H, "romeo", msg(0));
        await s.archive.append(H, "romeo", msg(1, "nurse@capulet.lit", "out"));
        await s.archive.append(H, "romeo", msg(2));
        await s.archive.append(H, "romeo", msg(3));
        await s.archive.append(H, "juliet", msg(4));
        await s.archive.append(H2, "romeo", msg(5));
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 10, with: "juliet@capulet.lit" })), [0, 2, 3]);
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 10, with: "nurse@capulet.lit" })), [1]);
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 10, start: 1_001, end: 1_002 })), [1, 2]);
        const filtered = await s.archive.query(H, "romeo", { max: 1, with: "juliet@capulet.lit", start: 1_001 });
        assert.deepEqual(ns(filtered), [2]);
        assert.equal(filtered?.count, 2);
        assert.equal(filtered?.complete, false);
        assert.deepEqual(ns(await s.archive.query(H, "juliet", { max: 10 })), [4]);
        assert.deepEqual(ns(await s.archive.query(H2, "romeo", { max: 10 })), [5]);
      });

      it("answers undefined for an id that is not in the user's archive", async () => {
        const mine = await s.archive.append(H, "romeo", msg(0));
        const theirs = await s.archive.append(H, "juliet", msg(1));
        assert.equal(await s.archive.query(H, "romeo", { max: 5, after: theirs }), undefined);
        assert.equal(await s.archive.query(H, "romeo", { max: 5, before: "nonsense" }), undefined);
        assert.equal(await s.archive.query(H, "romeo", { max: 5, after: "999999999" }), undefined);
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 5, after: mine })), []);
      });

      it("trims to the newest messages and by age, and clears", async () => {
        for (let i = 0; i < 6; i++) await s.archive.append(H, "romeo", msg(i));
        await s.archive.append(H, "juliet", msg(9));
        assert.equal(await s.archive.trim(H, "romeo", { keep: 4 }), 2);
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 10 })), [2, 3, 4, 5]);
        assert.equal(await s.archive.trim(H, "romeo", { keep: 10 }), 0);
        assert.equal(await s.archive.trim(H, "romeo", { before: 1_004 }), 2);
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 10 })), [4, 5]);
        await s.archive.clear(H, "romeo");
        assert.equal((await s.archive.query(H, "romeo", { max: 10 }))?.count, 0);
        assert.equal((await s.archive.query(H, "juliet", { max: 10 }))?.count, 1);
      });

      // appendNow is optional (PostgreSQL has none); where present it shares append's id sequence and checks.
      if (factory.name !== "postgres") it("appendNow returns the id at once, in append's sequence", async () => {
        const appendNow = s.archive.appendNow?.bind(s.archive);
        if (appendNow === undefined) throw new Error(`${factory.name} has no appendNow`);
        const a = await s.archive.append(H, "romeo", msg(0));
        const b = appendNow(H, "romeo", msg(1));
        const c = await s.archive.append(H, "romeo", msg(2));
        assert.equal(typeof b, "string");
        assert.ok(Number(a) < Number(b) && Number(b) < Number(c));
        const page = await s.archive.query(H, "romeo", { max: 10 });
        assert.deepEqual(ns(page), [0, 1, 2]);
        assert.deepEqual(page?.items.map((m) => m.id), [a, b, c]);
        assert.throws(() => appendNow(H, "romeo", { ...msg(3), direction: "sideways" as "in" }), { code: "COMITY_ERR_STORAGE_INVALID" });
      });

      it("is removed with the account", async () => {
        assert.equal(await s.accounts.create(H, "romeo", creds("r")), true);
        await s.archive.append(H, "romeo", msg(0));
        await s.archive.append(H, "juliet", msg(1));
        assert.equal(await s.accounts.delete(H, "romeo"), true);
        assert.equal((await s.archive.query(H, "romeo", { max: 10 }))?.count, 0);
        assert.equal((await s.archive.query(H, "juliet", { max: 10 }))?.count, 1);
      });

      // The memory backend keeps nothing across a reopen: this case exists only for persistent backends.
      if (factory.name !== "memory") it("keeps appended messages across a reopen, and ids keep increasing", async () => {
        if (fx.reopen === undefined) throw new Error(`${factory.name} has no reopen`);
        const first = await s.archive.append(H, "romeo", msg(0));
        const second = await s.archive.append(H, "romeo", msg(1));
        s = await fx.reopen();
        assert.deepEqual(ns(await s.archive.query(H, "romeo", { max: 10 })), [0, 1]);
        await s.archive.trim(H, "romeo", { keep: 0 });
        const third = await s.archive.append(H, "romeo", msg(2));
        assert.ok(Number(third) > Number(second) && Number(second) > Number(first), "ids are not reused after a reopen");
        assert.deepEqual((await s.archive.query(H, "romeo", { max: 10 }))?.items.map((m) => m.id), [third]);
      });

      it("rejects bad input", async () => {
        await rejectsWithCode(s.archive.append(H, "romeo", { ...msg(0), direction: "sideways" as "in" }), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.archive.append(H, "romeo", { ...msg(0), timestamp: Number.NaN }), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.archive.query(H, "romeo", { max: -1 }), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.archive.trim(H, "romeo", { keep: 1.5 }), "COMITY_ERR_STORAGE_INVALID");
      });
    });

    describe("server roster", () => {
      const P = "prosody.example";
      /** A fresh entry for `peer` with the fields a case does not care about. */
      const entry = (peer: string, extra: Partial<ServerRosterEntry> = {}): ServerRosterEntry => ({
        host: H, peer, subscription: "none", pendingIn: false, pendingInSince: null, pendingOut: false, pendingOutSince: null,
        preApproved: false, peerImplementsServerRosters: null, peerAvailable: null, peerStatus: null, peerPresenceAt: null,
        since: 1_700_000_000_000, decidedBy: null, decidedVia: null, note: null, ...extra,
      });
      const audit = { action: "request", actor: "cli:root", via: "cli" };

      it("starts empty, stores an entry with every field, and lists by host then peer", async () => {
        assert.deepEqual(await s.serverRoster.list(), []);
        assert.equal(await s.serverRoster.get(H, P), undefined);
        const full = entry(P, {
          subscription: "to", pendingIn: true, pendingInSince: 5, pendingOut: true, pendingOutSince: 6, preApproved: true,
          peerImplementsServerRosters: false, peerAvailable: true, peerStatus: "up ✓", peerPresenceAt: 7, decidedBy: "admin@montague.lit",
          decidedVia: "xmpp", note: "partner's server",
        });
        const r = await s.serverRoster.update(H, P, () => ({ entry: full, audit }));
        assert.equal(r.changed, true);
        assert.equal(r.before, undefined);
        assert.deepEqual(r.after, full);
        assert.deepEqual(await s.serverRoster.get(H, P), full);
        await s.serverRoster.update(H, "a.example", () => ({ entry: entry("a.example") }));
        await s.serverRoster.update(H2, "b.example", () => ({ entry: { ...entry("b.example"), host: H2 } }));
        assert.deepEqual((await s.serverRoster.list()).map((e) => `${e.host} ${e.peer}`), [`${H2} b.example`, `${H} a.example`, `${H} ${P}`]);
        assert.deepEqual((await s.serverRoster.list(H)).map((e) => e.peer), ["a.example", P]);
      });

      it("keeps nullable booleans apart: null, false and true", async () => {
        for (const [peer, v] of [["n.example", null], ["f.example", false], ["t.example", true]] as const) {
          await s.serverRoster.update(H, peer, () => ({ entry: entry(peer, { peerImplementsServerRosters: v, peerAvailable: v }) }));
          const got = await s.serverRoster.get(H, peer);
          assert.equal(got?.peerImplementsServerRosters, v);
          assert.equal(got?.peerAvailable, v);
        }
      });

      it("hands `decide` the stored entry and changes nothing when it returns undefined", async () => {
        await s.serverRoster.update(H, P, () => ({ entry: entry(P, { pendingIn: true, pendingInSince: 1 }), audit }));
        let seen: ServerRosterEntry | undefined;
        const r = await s.serverRoster.update(H, P, (cur) => {
          seen = cur;
          return undefined;
        });
        assert.equal(seen?.pendingIn, true);
        assert.equal(r.changed, false);
        assert.deepEqual(r.after, r.before);
        assert.equal((await s.serverRoster.audit(H)).length, 1);
      });

      it("serialises concurrent check-and-set decisions: the same request approved twice is one approval", async () => {
        await s.serverRoster.update(H, P, () => ({ entry: entry(P, { pendingIn: true, pendingInSince: 1 }), audit: { ...audit, action: "inbound-subscribe" } }));
        const approve = () =>
          s.serverRoster.update(H, P, (cur) =>
            cur?.pendingIn === true ? { entry: { ...cur, pendingIn: false, pendingInSince: null, subscription: "from" }, audit: { ...audit, action: "approve" } } : undefined,
          );
        const results = await Promise.all([approve(), approve(), approve()]);
        assert.equal(results.filter((r) => r.changed).length, 1);
        assert.equal((await s.serverRoster.get(H, P))?.subscription, "from");
        assert.equal((await s.serverRoster.audit(H, { peer: P })).filter((a) => a.action === "approve").length, 1);
      });

      it("deletes an entry when `decide` returns entry undefined, keeping its audit lines", async () => {
        await s.serverRoster.update(H, P, () => ({ entry: entry(P), audit }));
        const r = await s.serverRoster.update(H, P, () => ({ entry: undefined, audit: { ...audit, action: "remove", detail: "no longer needed" } }));
        assert.equal(r.after, undefined);
        assert.equal(await s.serverRoster.get(H, P), undefined);
        const lines = await s.serverRoster.audit(H, { peer: P });
        assert.deepEqual(lines.map((a) => a.action), ["remove", "request"]);
        assert.equal(lines[0]?.detail, "no longer needed");
        assert.equal(lines[1]?.detail, null);
        assert.equal(lines[0]?.host, H);
        assert.equal(typeof lines[0]?.at, "number");
        assert.ok(lines[0]!.id > lines[1]!.id);
      });

      it("appends audit lines without entries, filters by host and peer, newest first, with a limit", async () => {
        for (let i = 0; i < 5; i++) await s.serverRoster.appendAudit(H, i % 2 === 0 ? P : "x.example", { ...audit, detail: `n${i}`, at: 100 + i });
        await s.serverRoster.appendAudit(H2, P, audit);
        assert.deepEqual((await s.serverRoster.audit(H)).map((a) => a.detail), ["n4", "n3", "n2", "n1", "n0"]);
        assert.deepEqual((await s.serverRoster.audit(H, { peer: P })).map((a) => a.detail), ["n4", "n2", "n0"]);
        assert.deepEqual((await s.serverRoster.audit(H, { limit: 2 })).map((a) => a.at), [104, 103]);
        assert.equal((await s.serverRoster.audit(H2)).length, 1);
        await rejectsWithCode(s.serverRoster.audit(H, { limit: 0 }), "COMITY_ERR_STORAGE_INVALID");
      });

      it("rolls back when `decide` throws, and rejects malformed entries and audit lines", async () => {
        await assert.rejects(s.serverRoster.update(H, P, () => {
          throw new Error("boom");
        }), /boom/);
        assert.equal(await s.serverRoster.get(H, P), undefined);
        await rejectsWithCode(s.serverRoster.update(H, P, () => ({ entry: entry("other.example") })), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.serverRoster.update(H, P, () => ({ entry: entry(P, { subscription: "maybe" as "to" }) })), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.serverRoster.update(H, P, () => ({ entry: entry(P, { pendingIn: 1 as unknown as boolean }) })), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.serverRoster.update(H, P, () => ({ entry: entry(P), audit: { ...audit, actor: "" } })), "COMITY_ERR_STORAGE_INVALID");
        await rejectsWithCode(s.serverRoster.appendAudit(H, P, { ...audit, via: 3 as unknown as string }), "COMITY_ERR_STORAGE_INVALID");
        assert.equal(await s.serverRoster.get(H, P), undefined);
        assert.deepEqual(await s.serverRoster.audit(H), []);
      });

      it("copies entries in and out, so callers cannot alias stored state", async () => {
        const e = entry(P, { note: "first" });
        await s.serverRoster.update(H, P, () => ({ entry: e }));
        e.note = "edited-after";
        const got = (await s.serverRoster.get(H, P))!;
        got.note = "edited-copy";
        assert.equal((await s.serverRoster.get(H, P))?.note, "first");
      });

      it("survives a reopen (persistent backends)", async () => {
        if (!fx.reopen) return;
        await s.serverRoster.update(H, P, () => ({ entry: entry(P, { subscription: "both", note: "kept" }), audit }));
        s = await fx.reopen();
        assert.equal((await s.serverRoster.get(H, P))?.note, "kept");
        assert.equal((await s.serverRoster.audit(H)).length, 1);
      });

      it("rejects use after close", async () => {
        await s.close();
        await rejectsWithCode(s.serverRoster.list(), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.serverRoster.update(H, P, () => undefined), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.serverRoster.audit(H), "COMITY_ERR_STORAGE_CLOSED");
      });
    });

    describe("lifecycle", () => {
      it("rejects use after close, and closing twice is harmless", async () => {
        await s.accounts.create(H, "romeo", creds("r"));
        const kv = s.keyval("private");
        await s.close();
        await s.close();
        await rejectsWithCode(s.accounts.get(H, "romeo"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.accounts.createMany(H, [{ username: "x", credentials: creds("x") }]), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.accounts.delete(H, "romeo"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(kv.set(H, "romeo", "k", "v"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.rosters.get(H, "romeo"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.rosters.setItem(H, "romeo", item("a@x")), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.rosters.removeItem(H, "romeo", "a@x"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.rosters.setPendingIn(H, "romeo", "a@x", "<p/>"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.offline.push(H, "romeo", "<m/>", PUSH), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.offline.list(H, "romeo"), "COMITY_ERR_STORAGE_CLOSED");
        await rejectsWithCode(s.offline.delete(H, "romeo", [1]), "COMITY_ERR_STORAGE_CLOSED");
      });

      // The memory backend keeps nothing across a reopen and has no schema: those cases exist only for SQLite.
      if (factory.name !== "memory") it("keeps data across a reopen", async () => {
        assert.ok(fx.reopen, `${factory.name} fixture must support reopen`);
        await s.accounts.create(H, "romeo", creds("r"));
        await s.keyval("private").set(H, "romeo", "k", "v");
        const again = await fx.reopen();
        assert.deepEqual((await again.accounts.get(H, "romeo"))?.credentials, creds("r"));
        assert.equal(await again.keyval("private").get(H, "romeo", "k"), "v");
        assert.equal(await again.accounts.count(H), 1);
      });

      if (factory.name !== "memory") it("keeps rosters, versions, pending requests and offline messages across a reopen", async () => {
        assert.ok(fx.reopen);
        const juliet = item("juliet@capulet.lit", { name: "Juliet", subscription: "both", groups: ["Lovers"] });
        await s.rosters.setItem(H, "romeo", juliet);
        await s.rosters.setItem(H, "romeo", item("tybalt@capulet.lit"));
        await s.rosters.removeItem(H, "romeo", "tybalt@capulet.lit");
        await s.rosters.setPendingIn(H, "romeo", "nurse@capulet.lit", "<presence type='subscribe'/>");
        await s.offline.push(H, "romeo", "<message n='1'/>", { stamp: 42, quota: 10 });
        await s.offline.push(H, "romeo", "<message n='2'/>", { stamp: 43, quota: 10 });
        const before = await s.offline.list(H, "romeo");

        const again = await fx.reopen();
        assert.deepEqual(await again.rosters.get(H, "romeo"), { version: 3, items: [juliet] });
        assert.deepEqual(await again.rosters.pendingIn(H, "romeo"), [{ jid: "nurse@capulet.lit", stanza: "<presence type='subscribe'/>" }]);
        assert.deepEqual(await again.offline.list(H, "romeo"), before);
        assert.equal(await again.rosters.setItem(H, "romeo", item("mercutio@montague.lit")), 4, "the version continues");
        assert.equal(await again.offline.push(H, "romeo", "<message n='3'/>", { stamp: 44, quota: 2 }), false, "the quota counts stored messages");
      });
    });

    if (factory.name !== "memory") describe("schema", () => {
      it("records the latest migration version on open", async () => {
        assert.ok(fx.schema);
        assert.ok(fx.schema.latest >= 1);
        assert.equal(await fx.schema.version(), fx.schema.latest);
      });

      it("does not re-apply migrations when reopened", async () => {
        assert.ok(fx.schema && fx.reopen);
        await s.accounts.create(H, "romeo", creds("r"));
        await fx.reopen();
        assert.equal(await fx.schema.version(), fx.schema.latest);
      });

      it("refuses to open a database with a newer schema version", async () => {
        assert.ok(fx.schema && fx.reopen);
        await s.close();
        await fx.schema.record(fx.schema.latest + 1, "from-the-future");
        await rejectsWithCode(fx.reopen(), "COMITY_ERR_STORAGE_SCHEMA_TOO_NEW");
      });
    });
  });
}
