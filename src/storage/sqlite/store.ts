// SQLite implementation of the Storage interfaces (src/storage/types.ts) on better-sqlite3; see docs/storage.md.
import { toIncident, type ArchiveRow, type IncidentRow } from "../rows.ts";
import { closeSync, openSync } from "node:fs";
import type { Worker } from "node:worker_threads";
import { startArchiveWriter } from "./archive-writer.ts";
import { sqliteMaps } from "./map.ts";
import Database from "better-sqlite3";
import { assertIds, assertKeyvalValue, assertOfflinePush, assertRosterItem, assertStoreName, StorageError } from "../errors.ts";
import { archiveSeq, assertArchiveMessage, assertArchiveQuery, assertArchiveTrim } from "../archive.ts";
import type {
  ArchivedMessage,
  ArchiveStore,
  AbuseReport,
  AbuseReportStore,
  IncidentStore,
  Account,
  AccountStore,
  KeyValueStore,
  MapStore,
  OfflineStore,
  RosterItem,
  RosterStore,
  ServerRosterAuditRecord,
  ServerRosterEntry,
  ServerRosterStore,
  Storage,
  StoredCredentials,
  Subscription,
} from "../types.ts";
import { MIGRATIONS, type Migration } from "./migrations.ts";
import { assertAudit, assertServerRosterEntry, auditLimit, copyServerRosterEntry } from "../server-roster.ts";

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
    return new SqliteStorage(db, opts.busyTimeoutMs ?? 5000);
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

interface RosterRow {
  jid: string;
  name: string | null;
  subscription: Subscription;
  ask: number;
  approved: number;
  groups: string;
}

type Owner = [host: string, username: string];

interface ServerRosterRow {
  host: string;
  peer: string;
  subscription: Subscription;
  pending_in: number;
  pending_in_since: number | null;
  pending_out: number;
  pending_out_since: number | null;
  pre_approved: number;
  peer_implements: number | null;
  peer_available: number | null;
  peer_status: string | null;
  peer_presence_at: number | null;
  since: number;
  decided_by: string | null;
  decided_via: string | null;
  note: string | null;
}

type ServerRosterParams = [
  string, string, Subscription, number, number | null, number, number | null, number,
  number | null, number | null, string | null, number | null, number, string | null, string | null, string | null,
];

const SR_COLUMNS =
  "host, peer, subscription, pending_in, pending_in_since, pending_out, pending_out_since, pre_approved, " +
  "peer_implements, peer_available, peer_status, peer_presence_at, since, decided_by, decided_via, note";

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
    deleteUserKeyval: db.prepare<Owner>("DELETE FROM keyval WHERE host = ? AND username = ?"),
    deleteUserRoster: db.prepare<Owner>("DELETE FROM roster_items WHERE host = ? AND username = ?"),
    // The version outlives the account (one step past its last roster): a re-created account must never show a version
    // a client cached from the old one with other items (RFC 6121 §2.6).
    retireUserRosterVersion: db.prepare<Owner>("UPDATE roster_versions SET version = version + 1 WHERE host = ? AND username = ?"),
    deleteUserPendingIn: db.prepare<Owner>("DELETE FROM roster_pending_in WHERE host = ? AND username = ?"),
    deleteUserOffline: db.prepare<Owner>("DELETE FROM offline_messages WHERE host = ? AND username = ?"),
    deleteUserArchive: db.prepare<Owner>("DELETE FROM archive_messages WHERE host = ? AND username = ?"),
    // The user's rows of every map store: owner = username, or a module-built owner "username/..." (the range
    // ["username/", "username0") holds exactly those in byte order, since "0" follows "/").
    deleteUserMaps: db.prepare<[string, string, string, string]>(
      "DELETE FROM map_entries WHERE host = ? AND (owner = ? OR (owner >= ? AND owner < ?))",
    ),
    listAccounts: db.prepare<[string], string>("SELECT username FROM accounts WHERE host = ? ORDER BY username").pluck(),
    countAccounts: db.prepare<[string], number>("SELECT count(*) FROM accounts WHERE host = ?").pluck(),
    kvGet: db.prepare<[string, string, string, string], string>("SELECT value FROM keyval WHERE store = ? AND host = ? AND username = ? AND key = ?").pluck(),
    kvSet: db.prepare<[string, string, string, string, string]>(
      "INSERT INTO keyval (store, host, username, key, value) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (store, host, username, key) DO UPDATE SET value = excluded.value",
    ),
    kvDelete: db.prepare<[string, string, string, string]>("DELETE FROM keyval WHERE store = ? AND host = ? AND username = ? AND key = ?"),
    rosterVersion: db.prepare<Owner, number>("SELECT version FROM roster_versions WHERE host = ? AND username = ?").pluck(),
    bumpRosterVersion: db
      .prepare<Owner, number>(
        "INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1) " +
          "ON CONFLICT (host, username) DO UPDATE SET version = version + 1 RETURNING version",
      )
      .pluck(),
    rosterItems: db.prepare<Owner, RosterRow>(
      "SELECT jid, name, subscription, ask, approved, groups FROM roster_items WHERE host = ? AND username = ? ORDER BY jid",
    ),
    rosterItem: db.prepare<[string, string, string], RosterRow>(
      "SELECT jid, name, subscription, ask, approved, groups FROM roster_items WHERE host = ? AND username = ? AND jid = ?",
    ),
    upsertRosterItem: db.prepare<[string, string, string, string | null, Subscription, number, number, string]>(
      "INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?) " +
        "ON CONFLICT (host, username, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription, " +
        "ask = excluded.ask, approved = excluded.approved, groups = excluded.groups",
    ),
    deleteRosterItem: db.prepare<[string, string, string]>("DELETE FROM roster_items WHERE host = ? AND username = ? AND jid = ?"),
    countRosterItems: db.prepare<Owner, number>("SELECT count(*) FROM roster_items WHERE host = ? AND username = ?").pluck(),
    pendingIn: db.prepare<Owner, { jid: string; stanza: string }>(
      "SELECT jid, stanza FROM roster_pending_in WHERE host = ? AND username = ? ORDER BY created_at, jid",
    ),
    // A repeated request replaces the stanza but keeps its place (original arrival time) in the queue.
    setPendingIn: db.prepare<[string, string, string, string, number]>(
      "INSERT INTO roster_pending_in (host, username, jid, stanza, created_at) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza",
    ),
    clearPendingIn: db.prepare<[string, string, string]>("DELETE FROM roster_pending_in WHERE host = ? AND username = ? AND jid = ?"),
    countOffline: db.prepare<Owner, number>("SELECT count(*) FROM offline_messages WHERE host = ? AND username = ?").pluck(),
    insertOffline: db.prepare<[string, string, string, number]>("INSERT INTO offline_messages (host, username, stanza, stamp) VALUES (?, ?, ?, ?)"),
    listOffline: db.prepare<Owner, { id: number; stanza: string; stamp: number }>(
      "SELECT id, stanza, stamp FROM offline_messages WHERE host = ? AND username = ? ORDER BY id",
    ),
    // json_each takes the whole id list as one parameter: no statement per id, no bound-variable limit.
    deleteOffline: db.prepare<[string, string, string]>(
      "DELETE FROM offline_messages WHERE host = ? AND username = ? AND id IN (SELECT value FROM json_each(?))",
    ),
    srList: db.prepare<[], ServerRosterRow>(`SELECT ${SR_COLUMNS} FROM server_roster ORDER BY host, peer`),
    srListHost: db.prepare<[string], ServerRosterRow>(`SELECT ${SR_COLUMNS} FROM server_roster WHERE host = ? ORDER BY peer`),
    srGet: db.prepare<[string, string], ServerRosterRow>(`SELECT ${SR_COLUMNS} FROM server_roster WHERE host = ? AND peer = ?`),
    srUpsert: db.prepare<ServerRosterParams>(
      `INSERT OR REPLACE INTO server_roster (${SR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    srDelete: db.prepare<[string, string]>("DELETE FROM server_roster WHERE host = ? AND peer = ?"),
    srAudit: db.prepare<[string, string, string, string, string, string | null, number]>(
      "INSERT INTO server_roster_audit (host, peer, action, actor, via, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ),
    srAuditHost: db.prepare<[string, number], ServerRosterAuditRecord>(
      "SELECT id, host, peer, action, actor, via, detail, at FROM server_roster_audit WHERE host = ? ORDER BY id DESC LIMIT ?",
    ),
    srAuditPeer: db.prepare<[string, string, number], ServerRosterAuditRecord>(
      "SELECT id, host, peer, action, actor, via, detail, at FROM server_roster_audit WHERE host = ? AND peer = ? ORDER BY id DESC LIMIT ?",
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

class SqliteStorage implements Storage {
  readonly kind = "sqlite";
  readonly accounts: AccountStore;
  readonly rosters: RosterStore;
  readonly offline: OfflineStore;
  readonly serverRoster: ServerRosterStore;
  readonly incidents: IncidentStore;
  readonly abuseReports: AbuseReportStore;
  readonly archive: ArchiveStore;
  readonly #stopArchive: () => Promise<void>;
  readonly #db: Db;
  readonly #keyvals = new Map<string, KeyValueStore>();
  readonly #maps: (name: string) => MapStore;
  /** The cached statements, or a StorageError once closed (better-sqlite3's own error would be a TypeError). */
  readonly #live: () => Statements;
  #closed = false;

  constructor(db: Db, busyTimeoutMs: number) {
    this.#db = db;
    const st = prepareStatements(db);
    this.#live = () => {
      if (this.#closed) throw new StorageError("COMITY_ERR_STORAGE_CLOSED", `storage ${db.name} is closed`);
      return st;
    };
    const archive = sqliteArchive(db, this.#live, { busyTimeoutMs });
    this.archive = archive;
    this.#stopArchive = archive.stop;
    this.accounts = sqliteAccounts(db, this.#live, archive.drain);
    this.rosters = sqliteRosters(db, this.#live);
    this.offline = sqliteOffline(db, this.#live);
    this.serverRoster = sqliteServerRoster(db, this.#live);
    ({ incidents: this.incidents, abuseReports: this.abuseReports } = sqliteIncidentStores(db, this.#live));
    this.#maps = sqliteMaps(db, this.#live);
  }

  map(name: string): MapStore {
    assertStoreName(name);
    return this.#maps(name);
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
    await this.#stopArchive().catch(() => undefined); // a failed commit was already reported or is lost with the close
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

function toAccount(host: string, row: AccountRow): Account {
  return { host, username: row.username, credentials: JSON.parse(row.credentials) as StoredCredentials, createdAt: row.created_at };
}

function sqliteAccounts(db: Db, live: () => Statements, drainArchive: () => Promise<void>): AccountStore {
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
    st.deleteUserRoster.run(host, username);
    st.retireUserRosterVersion.run(host, username);
    st.deleteUserPendingIn.run(host, username);
    st.deleteUserOffline.run(host, username);
    st.deleteUserArchive.run(host, username);
    st.deleteUserMaps.run(host, username, `${username}/`, `${username}0`);
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
      await drainArchive(); // queued archive rows of this user must not land after the delete
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

function toRosterItem(row: RosterRow): RosterItem {
  const item: RosterItem = {
    jid: row.jid,
    subscription: row.subscription,
    ask: row.ask === 1,
    approved: row.approved === 1,
    groups: JSON.parse(row.groups) as string[],
  };
  if (row.name !== null) item.name = row.name;
  return item;
}

function sqliteRosters(db: Db, live: () => Statements): RosterStore {
  // Reads of items and version share one transaction so they describe the same state of the roster.
  const read = db.transaction((host: string, username: string) => {
    const st = live();
    return { version: st.rosterVersion.get(host, username) ?? 0, items: st.rosterItems.all(host, username).map(toRosterItem) };
  });
  // Item change and version bump commit together: a client never sees a version without its change.
  const set = db.transaction((host: string, username: string, item: RosterItem): number => {
    const st = live();
    st.upsertRosterItem.run(host, username, item.jid, item.name ?? null, item.subscription, item.ask ? 1 : 0, item.approved ? 1 : 0, JSON.stringify(item.groups));
    return st.bumpRosterVersion.get(host, username) as number;
  });
  const remove = db.transaction((host: string, username: string, jid: string): number | undefined => {
    const st = live();
    if (st.deleteRosterItem.run(host, username, jid).changes === 0) return undefined;
    return st.bumpRosterVersion.get(host, username) as number;
  });

  return {
    async get(host, username) {
      live();
      return read(host, username);
    },
    async getItem(host, username, jid) {
      const row = live().rosterItem.get(host, username, jid);
      return row === undefined ? undefined : toRosterItem(row);
    },
    async setItem(host, username, item) {
      live();
      assertRosterItem(item);
      // IMMEDIATE: take the write lock up front, so another connection cannot slip in between.
      return set.immediate(host, username, item);
    },
    async removeItem(host, username, jid) {
      live();
      return remove.immediate(host, username, jid);
    },
    async count(host, username) {
      return live().countRosterItems.get(host, username) ?? 0;
    },
    async pendingIn(host, username) {
      return live().pendingIn.all(host, username);
    },
    async setPendingIn(host, username, jid, stanza) {
      const st = live();
      if (stanza === undefined) st.clearPendingIn.run(host, username, jid);
      else if (typeof stanza === "string") st.setPendingIn.run(host, username, jid, stanza, Date.now());
      else throw new StorageError("COMITY_ERR_STORAGE_INVALID", `pending-in stanza must be a string or undefined, got ${typeof stanza}`);
    },
  };
}

function sqliteOffline(db: Db, live: () => Statements): OfflineStore {
  // Quota check and insert in one IMMEDIATE transaction: the write lock is held from the count on, so two
  // pushes (from this or another connection) cannot both see room for the last slot.
  const push = db.transaction((host: string, username: string, stanza: string, stamp: number, quota: number): boolean => {
    const st = live();
    if ((st.countOffline.get(host, username) ?? 0) >= quota) return false;
    st.insertOffline.run(host, username, stanza, stamp);
    return true;
  });

  return {
    async push(host, username, stanza, opts) {
      live();
      assertOfflinePush(stanza, opts);
      return push.immediate(host, username, stanza, opts.stamp, opts.quota);
    },
    async list(host, username) {
      return live().listOffline.all(host, username);
    },
    async delete(host, username, ids) {
      const st = live();
      assertIds(ids);
      if (ids.length > 0) st.deleteOffline.run(host, username, JSON.stringify(ids));
    },
    async count(host, username) {
      return live().countOffline.get(host, username) ?? 0;
    },
  };
}

const nullableBool = (v: number | null): boolean | null => (v === null ? null : v === 1);
const bit = (v: boolean | null): number | null => (v === null ? null : v ? 1 : 0);

function toServerRosterEntry(r: ServerRosterRow): ServerRosterEntry {
  return {
    host: r.host,
    peer: r.peer,
    subscription: r.subscription,
    pendingIn: r.pending_in === 1,
    pendingInSince: r.pending_in_since,
    pendingOut: r.pending_out === 1,
    pendingOutSince: r.pending_out_since,
    preApproved: r.pre_approved === 1,
    peerImplementsServerRosters: nullableBool(r.peer_implements),
    peerAvailable: nullableBool(r.peer_available),
    peerStatus: r.peer_status,
    peerPresenceAt: r.peer_presence_at,
    since: r.since,
    decidedBy: r.decided_by,
    decidedVia: r.decided_via,
    note: r.note,
  };
}

function serverRosterParams(e: ServerRosterEntry): ServerRosterParams {
  return [
    e.host, e.peer, e.subscription, e.pendingIn ? 1 : 0, e.pendingInSince, e.pendingOut ? 1 : 0, e.pendingOutSince, e.preApproved ? 1 : 0,
    bit(e.peerImplementsServerRosters), bit(e.peerAvailable), e.peerStatus, e.peerPresenceAt, e.since, e.decidedBy, e.decidedVia, e.note,
  ];
}

function sqliteServerRoster(db: Db, live: () => Statements): ServerRosterStore {
  type Decide = Parameters<ServerRosterStore["update"]>[2];
  // Read, decide and write under one IMMEDIATE transaction: two decisions on the same request (from this or
  // another connection) are serialised, and the second one sees the first one's result.
  const update = db.transaction((host: string, peer: string, decide: Decide) => {
    const st = live();
    const row = st.srGet.get(host, peer);
    const before = row === undefined ? undefined : toServerRosterEntry(row);
    const change = decide(before === undefined ? undefined : copyServerRosterEntry(before));
    if (change === undefined) return { before, after: before, changed: false };
    if (change.entry !== undefined) assertServerRosterEntry(change.entry, host, peer);
    if (change.audit !== undefined) assertAudit(change.audit);
    if (change.entry === undefined) st.srDelete.run(host, peer);
    else st.srUpsert.run(...serverRosterParams(change.entry));
    if (change.audit !== undefined) {
      const a = change.audit;
      st.srAudit.run(host, peer, a.action, a.actor, a.via, a.detail ?? null, a.at ?? Date.now());
    }
    const after = change.entry === undefined ? undefined : copyServerRosterEntry(change.entry);
    return { before, after, changed: true };
  });

  return {
    async list(host) {
      const st = live();
      return (host === undefined ? st.srList.all() : st.srListHost.all(host)).map(toServerRosterEntry);
    },
    async get(host, peer) {
      const row = live().srGet.get(host, peer);
      return row === undefined ? undefined : toServerRosterEntry(row);
    },
    async update(host, peer, decide) {
      live();
      return update.immediate(host, peer, decide);
    },
    async appendAudit(host, peer, record) {
      const st = live();
      assertAudit(record);
      return Number(st.srAudit.run(host, peer, record.action, record.actor, record.via, record.detail ?? null, record.at ?? Date.now()).lastInsertRowid);
    },
    async audit(host, opts) {
      const st = live();
      const limit = auditLimit(opts?.limit);
      return opts?.peer === undefined ? st.srAuditHost.all(host, limit) : st.srAuditPeer.all(host, opts.peer, limit);
    },
  };
}


/** XEP-0268 incidents and XEP-0377 abuse reports (migration 4; docs/trust-uses.md). */
function sqliteIncidentStores(db: Db, live: () => unknown): { incidents: IncidentStore; abuseReports: AbuseReportStore } {
  const cols = "id, host, peer, direction, kind, incident_id, status, payload, at, note";
  const st = {
    add: db.prepare<[string, string, string, string, string | null, string, string, number, string | null], IncidentRow>(
      `INSERT INTO incidents (host, peer, direction, kind, incident_id, status, payload, at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${cols}`,
    ),
    get: db.prepare<[string, number], IncidentRow>(`SELECT ${cols} FROM incidents WHERE host = ? AND id = ?`),
    // -1 as LIMIT means "no limit" in SQLite.
    list: db.prepare<[string, number], IncidentRow>(`SELECT ${cols} FROM incidents WHERE host = ? ORDER BY id DESC LIMIT ?`),
    listStatus: db.prepare<[string, string, number], IncidentRow>(`SELECT ${cols} FROM incidents WHERE host = ? AND status = ? ORDER BY id DESC LIMIT ?`),
    setStatus: db.prepare<[string, string | null, string, number]>("UPDATE incidents SET status = ?, note = coalesce(?, note) WHERE host = ? AND id = ?"),
    addReport: db.prepare<[string, string, string, string, string | null, string, number], AbuseReport>(
      "INSERT INTO abuse_reports (host, account, peer, reason, text, payload, at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id, host, account, peer, reason, text, payload, at",
    ),
    listReports: db.prepare<[string, number], AbuseReport>(
      "SELECT id, host, account, peer, reason, text, payload, at FROM abuse_reports WHERE host = ? ORDER BY id DESC LIMIT ?",
    ),
    listAccountReports: db.prepare<[string, string, number], AbuseReport>(
      "SELECT id, host, account, peer, reason, text, payload, at FROM abuse_reports WHERE host = ? AND account = ? ORDER BY id DESC LIMIT ?",
    ),
    counts: db.prepare<[string], { account: string; count: number; last: number }>(
      "SELECT account, count(*) AS count, max(at) AS last FROM abuse_reports WHERE host = ? GROUP BY account ORDER BY count DESC, last DESC, account",
    ),
  };
  return {
    incidents: {
      async add(r) {
        live();
        return toIncident(st.add.get(r.host, r.peer, r.direction, r.kind, r.incidentId, r.status, r.payload, r.at, r.note) as IncidentRow);
      },
      async get(host, id) {
        live();
        const row = st.get.get(host, id);
        return row === undefined ? undefined : toIncident(row);
      },
      async list(host, opts) {
        live();
        const limit = opts?.limit ?? -1;
        const rows = opts?.status === undefined ? st.list.all(host, limit) : st.listStatus.all(host, opts.status, limit);
        return rows.map(toIncident);
      },
      async setStatus(host, id, status, note) {
        live();
        return st.setStatus.run(status, note ?? null, host, id).changes === 1;
      },
    },
    abuseReports: {
      async add(r) {
        live();
        return st.addReport.get(r.host, r.account, r.peer, r.reason, r.text, r.payload, r.at) as AbuseReport;
      },
      async list(host, opts) {
        live();
        const limit = opts?.limit ?? -1;
        return opts?.account === undefined ? st.listReports.all(host, limit) : st.listAccountReports.all(host, opts.account, limit);
      },
      async counts(host) {
        live();
        return st.counts.all(host);
      },
    },
  };
}


/** How long a queued archive row may wait for its commit, and how many rows are committed at once at most. */
const ARCHIVE_FLUSH_MS = 20;
const ARCHIVE_FLUSH_ROWS = 1000;

/** XEP-0313 user archives (migration 5). */
function sqliteArchive(db: Db, live: () => unknown, opts: { busyTimeoutMs: number }): ArchiveStore & { drain(): Promise<void>; stop(): Promise<void> } {
  const FILTER =
    "host = @host AND username = @user AND (@with IS NULL OR with_jid = @with) AND (@start IS NULL OR stamp >= @start) AND (@end IS NULL OR stamp <= @end)";
  const COLS = "id, with_jid, direction, stanza, stamp";
  type Params = { host: string; user: string; with: string | null; start: number | null; end: number | null; anchor: number; lim: number };
  const st = {
    exists: db.prepare<[string, string, number], number>("SELECT 1 FROM archive_messages WHERE host = ? AND username = ? AND id = ?").pluck(),
    forward: db.prepare<Params, ArchiveRow>(`SELECT ${COLS} FROM archive_messages WHERE ${FILTER} AND id > @anchor ORDER BY id LIMIT @lim`),
    backward: db.prepare<Params, ArchiveRow>(`SELECT ${COLS} FROM archive_messages WHERE ${FILTER} AND id < @anchor ORDER BY id DESC LIMIT @lim`),
    count: db.prepare<Omit<Params, "anchor" | "lim">, number>(`SELECT count(*) FROM archive_messages WHERE ${FILTER}`).pluck(),
    trimKeep: db.prepare<[string, string, string, string, number]>(
      "DELETE FROM archive_messages WHERE host = ? AND username = ? AND id <= " +
        "(SELECT id FROM archive_messages WHERE host = ? AND username = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
    ),
    trimBefore: db.prepare<[string, string, number]>("DELETE FROM archive_messages WHERE host = ? AND username = ? AND stamp < ?"),
    clear: db.prepare<[string, string]>("DELETE FROM archive_messages WHERE host = ? AND username = ?"),
    one: db.prepare<[string, string, number], ArchiveRow>(`SELECT ${COLS} FROM archive_messages WHERE host = ? AND username = ? AND id = ?`),
    setStanza: db.prepare<[string, number]>("UPDATE archive_messages SET stanza = ? WHERE id = ?"),
  };
  const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: String(r.id), with: r.with_jid, direction: r.direction, stanza: r.stanza, timestamp: r.stamp });
  // One read transaction: the page and the count come from the same snapshot.
  const read = db.transaction((host: string, user: string, q: Parameters<ArchiveStore["query"]>[2]) => {
    const anchorId = q.after ?? (q.before === "" ? undefined : q.before);
    let anchor: number | undefined;
    if (anchorId !== undefined) {
      anchor = archiveSeq(anchorId);
      if (anchor === undefined || st.exists.get(host, user, anchor) === undefined) return undefined;
    }
    const filter = { host, user, with: q.with ?? null, start: q.start ?? null, end: q.end ?? null };
    const lim = q.max + 1;
    const backward = q.before !== undefined;
    let rows = backward
      ? st.backward.all({ ...filter, anchor: anchor ?? Number.MAX_SAFE_INTEGER, lim }).reverse()
      : st.forward.all({ ...filter, anchor: anchor ?? 0, lim });
    const complete = rows.length <= q.max;
    if (!complete) rows = backward ? rows.slice(1) : rows.slice(0, q.max);
    const items = rows.map(toMessage);
    return { items, first: items[0]?.id, last: items.at(-1)?.id, complete, count: st.count.get(filter) ?? 0 };
  });
  const trim = db.transaction((host: string, user: string, opts: { keep?: number; before?: number }): number => {
    let removed = 0;
    if (opts.before !== undefined) removed += st.trimBefore.run(host, user, opts.before).changes;
    if (opts.keep !== undefined) removed += st.trimKeep.run(host, user, host, user, opts.keep).changes;
    return removed;
  });
  // Write-behind: append hands out the next id at once and queues the row; queued rows are committed together, one
  // transaction (one fsync with synchronous = FULL) at most ARCHIVE_FLUSH_MS after the first of them, or as soon as
  // ARCHIVE_FLUSH_ROWS are waiting. The commit runs on a writer thread with its own connection (archive-writer.ts), so
  // message routing never waits for it; every read, trim, account deletion and close first waits until the writer has
  // committed what was queued before it. Ids are allocated in this process (after SQLite's AUTOINCREMENT high mark), so
  // only one process may append to an archive: the server. A failed commit is reported by the next call. An in-memory
  // database (tests) commits on this thread instead.
  type Pending = [id: number, host: string, user: string, with_jid: string, direction: string, stanza: string, stamp: number];
  let pending: Pending[] = [];
  let nextId: number | undefined;
  let failure: unknown;
  const insertExplicit = db.prepare<Pending>(
    "INSERT INTO archive_messages (id, host, username, with_jid, direction, stanza, stamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const highMark = db.prepare<[], number | null>(
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'archive_messages'), 0), coalesce((SELECT max(id) FROM archive_messages), 0))",
  ).pluck();
  const insertBatch = db.transaction((batch: Pending[]): void => {
    for (const row of batch) insertExplicit.run(...row);
  });
  let writer: Worker | undefined;
  let posted = 0;
  let acked = 0;
  let waiters: { seq: number; resolve: () => void }[] = [];
  const wake = (): void => {
    const ready = waiters.filter((w) => w.seq <= acked);
    waiters = waiters.filter((w) => w.seq > acked);
    for (const w of ready) w.resolve();
  };
  const startWriter = (): Worker => {
    const w = startArchiveWriter(db.name, opts.busyTimeoutMs);
    w.unref();
    w.on("message", (m: { done: number } | { failed: number; message: string }) => {
      if ("failed" in m) {
        failure = new Error(m.message);
        acked = Math.max(acked, m.failed);
      } else acked = Math.max(acked, m.done);
      if (acked >= posted) w.unref(); // idle: the thread alone must not keep the process alive
      wake();
    });
    w.on("error", (err) => {
      failure = err;
      acked = posted; // nothing more will be acknowledged: let every waiter see the failure
      writer = undefined;
      wake();
    });
    return w;
  };
  const flush = (): void => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    if (db.memory) {
      try {
        insertBatch(batch);
      } catch (err) {
        failure = err;
      }
      return;
    }
    writer ??= startWriter();
    writer.ref(); // rows in flight: keep the process alive until they are committed
    writer.postMessage({ seq: ++posted, rows: batch });
  };
  /** Flush and wait until the writer committed everything queued so far. */
  const drain = async (): Promise<void> => {
    flush();
    if (acked >= posted) return;
    const seq = posted;
    await new Promise<void>((resolve) => waiters.push({ seq, resolve }));
  };
  /** Drain, then stop the writer thread (the storage is closing). */
  const stop = async (): Promise<void> => {
    await drain();
    const w = writer;
    writer = undefined;
    if (w) {
      const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
      w.ref(); // until it has closed its connection
      w.postMessage({ close: true });
      await exited;
    }
  };
  const check = (): void => {
    live();
    if (failure !== undefined) {
      const err = failure;
      failure = undefined;
      throw new StorageError("COMITY_ERR_STORAGE_UNAVAILABLE", `archive write failed: ${String(err)}`, { cause: err });
    }
  };
  const appendNow = (host: string, username: string, m: Omit<ArchivedMessage, "id">): string => {
    check();
    assertArchiveMessage(m);
    nextId ??= (highMark.get() ?? 0) + 1;
    const id = nextId++;
    if (pending.length === 0) setTimeout(flush, ARCHIVE_FLUSH_MS);
    pending.push([id, host, username, m.with, m.direction, m.stanza, m.timestamp]);
    if (pending.length >= ARCHIVE_FLUSH_ROWS) flush();
    return String(id);
  };
  return {
    drain,
    stop,
    appendNow,
    async append(host, username, m) {
      return appendNow(host, username, m);
    },
    async query(host, username, q) {
      check();
      assertArchiveQuery(q);
      await drain();
      check();
      return read(host, username, q);
    },
    async trim(host, username, opts) {
      check();
      assertArchiveTrim(opts);
      await drain();
      check();
      return trim(host, username, opts);
    },
    async clear(host, username) {
      check();
      await drain();
      check();
      st.clear.run(host, username);
    },
    async replace(host, username, id, make) {
      check();
      await drain(); // the row may still be queued for the writer thread
      check();
      const seq = archiveSeq(id);
      if (seq === undefined) return undefined;
      return db.transaction(() => {
        const row = st.one.get(host, username, seq);
        if (row === undefined) return undefined;
        const before = toMessage(row);
        const stanza = make(before);
        if (typeof stanza !== "string") throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive stanza must be a string");
        st.setStanza.run(stanza, seq);
        return before;
      })();
    },
  };
}
