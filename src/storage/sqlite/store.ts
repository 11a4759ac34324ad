// SQLite implementation of the Storage interfaces (src/storage/types.ts) on better-sqlite3; see docs/storage.md.
import { closeSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { assertKeyvalValue, assertStoreName, StorageError } from "../errors.ts";
import type { Account, AccountStore, KeyValueStore, Storage, StoredCredentials } from "../types.ts";
import { MIGRATIONS, type Migration } from "./migrations.ts";

/** File name of the database inside the data directory. */
export const SQLITE_FILE_NAME = "comity.sqlite";

/** Options of {@link openSqliteStorage}. */
export interface SqliteStorageOptions {
  /** Database file path (normally `<dataDir>/comity.sqlite`). */
  path: string;
  /** How long a writer waits for another connection's lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
  /** Migration list to apply; only tests pass their own. Defaults to {@link MIGRATIONS}. */
  migrations?: readonly Migration[];
}

type Db = Database.Database;

/** Open (creating if needed) the SQLite database at `opts.path`, migrate it, and return it as Storage. */
export function openSqliteStorage(opts: SqliteStorageOptions): Storage {
  const migrations = opts.migrations ?? MIGRATIONS;
  checkMigrationList(migrations);
  // Create the file owner-only before SQLite does; SQLite gives the -wal and -shm files the same mode.
  closeSync(openSync(opts.path, "a", 0o600));
  const db = new Database(opts.path);
  try {
    configure(db, opts.busyTimeoutMs ?? 5000);
    migrate(db, migrations);
    return new SqliteStorage(db);
  } catch (err) {
    db.close();
    throw err;
  }
}

function configure(db: Db, busyTimeoutMs: number): void {
  // Set first so the pragmas below and the migrations wait for a concurrent opener instead of failing.
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  db.pragma("journal_mode = WAL");
  // A resolved write promise must mean "on disk". In WAL mode synchronous=NORMAL fsyncs the WAL only at
  // checkpoints, so a power loss or OS crash can roll back transactions that were already acknowledged
  // (they survive a mere process crash). FULL fsyncs the WAL on every commit: one fsync per transaction,
  // which is why bulk writes go through createMany's single transaction.
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
}

function checkMigrationList(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isSafeInteger(m.id) || m.id <= previous) {
      throw new StorageError("COMITY_ERR_STORAGE_MIGRATION", `migration ids must be increasing positive integers; ${m.id} (${m.name}) follows ${previous}`);
    }
    previous = m.id;
  }
}

/** Apply every migration newer than the database's version, each in its own immediate transaction. */
function migrate(db: Db, migrations: readonly Migration[]): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const latestKnown = migrations.at(-1)?.id ?? 0;
  const currentVersion = db.prepare<[], number | null>("SELECT max(version) FROM schema_migrations").pluck();
  const record = db.prepare<[number, string, number]>("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");

  const checkNotNewer = (version: number): void => {
    if (version > latestKnown) {
      throw new StorageError(
        "COMITY_ERR_STORAGE_SCHEMA_TOO_NEW",
        `database ${db.name} has schema version ${version}, but this Comity knows versions up to ${latestKnown}; ` +
          `it was written by a newer release: upgrade Comity (or restore a backup) instead of downgrading`,
      );
    }
  };
  checkNotNewer(currentVersion.get() ?? 0);

  for (const m of migrations) {
    // IMMEDIATE takes the write lock before reading the version, so two processes opening the same
    // file at once cannot both apply a migration.
    const step = db.transaction((): void => {
      const version = currentVersion.get() ?? 0;
      checkNotNewer(version);
      if (m.id <= version) return;
      db.exec(m.sql);
      record.run(m.id, m.name, Date.now());
    });
    try {
      step.immediate();
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError("COMITY_ERR_STORAGE_MIGRATION", `migration ${m.id} (${m.name}) failed on ${db.name}: ${String(err)}`, { cause: err });
    }
  }
}

interface AccountRow {
  username: string;
  credentials: string;
  created_at: number;
}

/** Every statement the store runs, prepared once when the store opens. */
function prepareStatements(db: Db) {
  return {
    getAccount: db.prepare<[string, string], AccountRow>("SELECT username, credentials, created_at FROM accounts WHERE host = ? AND username = ?"),
    insertAccount: db.prepare<[string, string, string, number]>(
      "INSERT INTO accounts (host, username, credentials, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (host, username) DO NOTHING",
    ),
    upsertAccount: db.prepare<[string, string, string, number]>(
      "INSERT INTO accounts (host, username, credentials, created_at) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (host, username) DO UPDATE SET credentials = excluded.credentials",
    ),
    updateCredentials: db.prepare<[string, string, string]>("UPDATE accounts SET credentials = ? WHERE host = ? AND username = ?"),
    deleteAccount: db.prepare<[string, string]>("DELETE FROM accounts WHERE host = ? AND username = ?"),
    deleteUserKeyval: db.prepare<[string, string]>("DELETE FROM keyval WHERE host = ? AND username = ?"),
    listAccounts: db.prepare<[string], string>("SELECT username FROM accounts WHERE host = ? ORDER BY username").pluck(),
    countAccounts: db.prepare<[string], number>("SELECT count(*) FROM accounts WHERE host = ?").pluck(),
    kvGet: db.prepare<[string, string, string, string], string>("SELECT value FROM keyval WHERE store = ? AND host = ? AND username = ? AND key = ?").pluck(),
    kvSet: db.prepare<[string, string, string, string, string]>(
      "INSERT INTO keyval (store, host, username, key, value) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (store, host, username, key) DO UPDATE SET value = excluded.value",
    ),
    kvDelete: db.prepare<[string, string, string, string]>("DELETE FROM keyval WHERE store = ? AND host = ? AND username = ? AND key = ?"),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

class SqliteStorage implements Storage {
  readonly kind = "sqlite";
  readonly accounts: AccountStore;
  readonly #db: Db;
  readonly #keyvals = new Map<string, KeyValueStore>();
  /** The cached statements, or a StorageError once closed (better-sqlite3's own error would be a TypeError). */
  readonly #live: () => Statements;
  #closed = false;

  constructor(db: Db) {
    this.#db = db;
    const st = prepareStatements(db);
    this.#live = () => {
      if (this.#closed) throw new StorageError("COMITY_ERR_STORAGE_CLOSED", `storage ${db.name} is closed`);
      return st;
    };
    this.accounts = sqliteAccounts(db, this.#live);
  }

  keyval(name: string): KeyValueStore {
    assertStoreName(name);
    let kv = this.#keyvals.get(name);
    if (kv === undefined) {
      kv = sqliteKeyval(name, this.#live);
      this.#keyvals.set(name, kv);
    }
    return kv;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

function toAccount(host: string, row: AccountRow): Account {
  return { host, username: row.username, credentials: JSON.parse(row.credentials) as StoredCredentials, createdAt: row.created_at };
}

function sqliteAccounts(db: Db, live: () => Statements): AccountStore {
  const createBatch = db.transaction(
    (host: string, entries: Iterable<{ username: string; credentials: StoredCredentials }>, replace: boolean): number => {
      const st = live();
      const insert = replace ? st.upsertAccount : st.insertAccount;
      const now = Date.now();
      let written = 0;
      for (const { username, credentials } of entries) {
        written += insert.run(host, username, JSON.stringify(credentials), now).changes;
      }
      return written;
    },
  );
  const deleteWithData = db.transaction((host: string, username: string): boolean => {
    const st = live();
    if (st.deleteAccount.run(host, username).changes === 0) return false;
    st.deleteUserKeyval.run(host, username);
    return true;
  });

  return {
    async get(host, username) {
      const row = live().getAccount.get(host, username);
      return row === undefined ? undefined : toAccount(host, row);
    },
    async create(host, username, credentials) {
      return live().insertAccount.run(host, username, JSON.stringify(credentials), Date.now()).changes === 1;
    },
    async createMany(host, entries, opts) {
      live(); // a closed database must fail with our error, before better-sqlite3's TypeError
      return createBatch(host, entries, opts?.replace === true);
    },
    async setCredentials(host, username, credentials) {
      return live().updateCredentials.run(JSON.stringify(credentials), host, username).changes === 1;
    },
    async delete(host, username) {
      live();
      return deleteWithData(host, username);
    },
    async list(host) {
      return live().listAccounts.all(host);
    },
    async count(host) {
      return live().countAccounts.get(host) ?? 0;
    },
  };
}

function sqliteKeyval(store: string, live: () => Statements): KeyValueStore {
  return {
    async get(host, user, key) {
      return live().kvGet.get(store, host, user, key);
    },
    async set(host, user, key, value) {
      assertKeyvalValue(value);
      const st = live();
      if (value === undefined) st.kvDelete.run(store, host, user, key);
      else st.kvSet.run(store, host, user, key, value);
    },
  };
}
