// PostgreSQL implementation of the Storage interfaces (src/storage/types.ts) on node-postgres; see docs/storage.md.
// Same answers as the SQLite store (../sqlite/store.ts) for every method: the contract suite runs both.
import { toIncident, type ArchiveRow, type IncidentRow } from "../rows.ts";
import pg from "pg";
import { assertIds, assertKeyvalValue, assertOfflinePush, assertRosterItem, assertStoreName, StorageError } from "../errors.ts";
import { archiveSeq, assertArchiveMessage, assertArchiveQuery, assertArchiveTrim } from "../archive.ts";
import type {
  ArchivedMessage,
  ArchiveStore,
  AbuseReport,
  AbuseReportStore,
  Account,
  AccountStore,
  IncidentStore,
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
  StorageHealth,
} from "../types.ts";
import { assertAudit, assertServerRosterEntry, auditLimit, copyServerRosterEntry } from "../server-roster.ts";
import { PG_MIGRATIONS, type Migration } from "./migrations.ts";
import { pgMaps } from "./map.ts";

/** Options of {@link openPostgresStorage}. */
export interface PostgresStorageOptions {
  /** Connection URL, e.g. `postgres://comity@127.0.0.1:5432/comity` (libpq-style query parameters are understood). */
  url: string;
  /** Schema holding Comity's tables, created when missing; default: the URL's search_path (normally `public`). */
  schema?: string;
  /** Most connections the pool opens (default 10). */
  poolSize?: number;
  /** How long opening a connection may take before it fails (default 10,000 ms). */
  connectTimeoutMs?: number;
  /** Migration list to apply; only tests pass their own. Defaults to {@link PG_MIGRATIONS}. */
  migrations?: readonly Migration[];
}

/** Schema names we accept: plain lowercase identifiers, so they never need quoting in SQL or in `-c search_path=`. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Advisory lock namespaces (two-int form) for per-user and per-peer serialisation; values are arbitrary but fixed. */
const LOCK_OFFLINE = 0x434f4d01;
const LOCK_SERVER_ROSTER = 0x434f4d02;

/**
 * The advisory lock key of a (host, name) pair: 32-bit FNV-1a of its UTF-8 bytes, as a signed int. Two pairs that
 * share a key merely wait for each other; the lock only has to be the same for the same pair, in every process.
 */
export function lockKey(host: string, name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(`${host}\u0000${name}`, "utf8")) h = Math.imul(h ^ b, 0x01000193);
  return h | 0;
}

/** `url` without its password (userinfo or `password=` parameter), for messages and logs. */
export function redactPostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = "";
    for (const k of [...u.searchParams.keys()]) if (k.toLowerCase() === "password") u.searchParams.set(k, "***");
    return u.toString();
  } catch {
    // Never echo something we could not parse: it may hold a password in a form we do not recognise.
    return "(unparsable PostgreSQL URL)";
  }
}

/** Where a store lives, for messages: the redacted URL and the schema. */
function describeTarget(url: string, schema: string | undefined): string {
  return schema === undefined ? redactPostgresUrl(url) : `${redactPostgresUrl(url)} (schema ${schema})`;
}

/** bigint (int8) columns as JS numbers: ids, versions, counts and ms times all stay below 2^53. */
const TYPES = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 20 && format !== "binary") return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

interface PgErrorLike {
  code?: string;
  errno?: number;
  message?: string;
  errors?: unknown[];
}

/** Errors of a connection that never came up or went away (Node socket codes, SQLSTATE classes 08, 28, 3D, 57P). */
function connectionProblem(err: unknown): string | undefined {
  const e = err as PgErrorLike | null;
  if (e === null || typeof e !== "object") return undefined;
  const code = e.code ?? (e.errors?.[0] as PgErrorLike | undefined)?.code;
  const msg = String(e.message ?? "");
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused (is PostgreSQL running and listening there?)";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "unknown host";
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `cannot reach the host (${code})`;
    case "ECONNRESET":
    case "EPIPE":
      return "the connection was closed by the server";
    case "28P01":
      return `password authentication failed: ${msg}`;
    case "28000":
      return `login refused: ${msg}`;
    case "3D000":
      return `no such database: ${msg}`;
    case "57P01":
    case "57P02":
    case "57P03":
      return `the server is shutting down or starting: ${msg}`;
    default:
      if (typeof code === "string" && code.startsWith("08")) return `connection failure: ${msg}`;
      if (/timeout/i.test(msg) || /Connection terminated/i.test(msg)) return msg;
      return undefined;
  }
}

/** Turn a node-postgres error into a StorageError where it has a stable meaning; others pass through unchanged. */
function mapError(err: unknown, where: string): unknown {
  if (err instanceof StorageError) return err;
  const problem = connectionProblem(err);
  if (problem !== undefined) {
    return new StorageError("COMITY_ERR_STORAGE_UNAVAILABLE", `PostgreSQL at ${where}: ${problem}`, { cause: err });
  }
  const code = (err as PgErrorLike | null)?.code;
  // 22021/22P05: a NUL character (PostgreSQL text cannot hold U+0000); 22P02: malformed number; 23514: CHECK; 54000: a
  // value too large for an index entry. All are the caller's input, which SQLite would refuse or could keep.
  if (code === "22021" || code === "22P05" || code === "22P02" || code === "23514" || code === "54000") {
    return new StorageError("COMITY_ERR_STORAGE_INVALID", `PostgreSQL at ${where} refused a value: ${(err as Error).message}`, { cause: err });
  }
  return err;
}

type Query = pg.QueryConfig<unknown[]>;

/** A named statement: node-postgres prepares it once per connection and reuses the plan. */
function named(name: string, text: string): (values: unknown[]) => Query {
  return (values) => ({ name: `comity_${name}`, text, values });
}

/** Deadlock and serialisation failures are retried (a few times) when the transaction body can safely run again. */
const RETRYABLE = new Set(["40001", "40P01"]);

/** Up or down, from the outcome of queries (StorageHealth). */
class Health implements StorageHealth {
  available = true;
  failures = 0;
  readonly #listeners: ((available: boolean, detail: string) => void)[] = [];

  onChange(listener: (available: boolean, detail: string) => void): void {
    this.#listeners.push(listener);
  }

  /** Note a mapped error: only "unavailable" ones say anything about the server. */
  failed(err: unknown): void {
    if (!(err instanceof StorageError) || err.code !== "COMITY_ERR_STORAGE_UNAVAILABLE") return;
    this.failures++;
    if (!this.available) return;
    this.available = false;
    for (const l of this.#listeners) l(false, err.message);
  }

  succeeded(): void {
    this.available = true;
    for (const l of this.#listeners) l(true, "reachable again");
  }
}

/** The connection pool with the bookkeeping every store shares: closed state, error mapping, transactions. */
export class Db {
  readonly pool: pg.Pool;
  readonly where: string;
  readonly health = new Health();
  #closed = false;

  constructor(pool: pg.Pool, where: string) {
    this.pool = pool;
    this.where = where;
  }

  get closed(): boolean {
    return this.#closed;
  }

  live(): void {
    if (this.#closed) throw new StorageError("COMITY_ERR_STORAGE_CLOSED", `storage ${this.where} is closed`);
  }

  /**
   * One statement on any pooled connection, as its own transaction. A statement that lost a deadlock or a serialisation
   * conflict was rolled back as a whole, so it is safe to send again.
   */
  async query<R extends pg.QueryResultRow>(q: Query): Promise<pg.QueryResult<R>> {
    this.live();
    for (let attempt = 1; ; attempt++) {
      let r: pg.QueryResult<R>;
      try {
        r = await this.pool.query<R>(q);
      } catch (err) {
        const code = (err as PgErrorLike | null)?.code;
        if (code !== undefined && RETRYABLE.has(code) && attempt < 5 && !this.#closed) continue;
        throw this.#failed(err);
      }
      if (!this.health.available) this.health.succeeded();
      return r;
    }
  }

  /**
   * Run `fn` inside BEGIN … COMMIT on one connection; ROLLBACK when it throws. `retry`: `fn` may run again. `lock`: an
   * advisory lock taken right after BEGIN, in the same round trip (the two statements travel as one simple query).
   */
  async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, opts: { retry?: boolean; lock?: [namespace: number, key: number] } = {}): Promise<T> {
    this.live();
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw this.#failed(err);
      }
      let broken: Error | undefined;
      try {
        // Both numbers are int32s computed here, never caller text: safe to write into the statement.
        await client.query(opts.lock === undefined ? "BEGIN" : `BEGIN; SELECT pg_advisory_xact_lock(${opts.lock[0] | 0}, ${opts.lock[1] | 0})`);
        const result = await fn(client);
        await client.query("COMMIT");
        if (!this.health.available) this.health.succeeded();
        return result;
      } catch (err) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackErr) {
          broken = rollbackErr as Error; // the connection is unusable: the pool must not hand it out again
        }
        const code = (err as PgErrorLike | null)?.code;
        if (opts.retry === true && code !== undefined && RETRYABLE.has(code) && attempt < 5 && !this.#closed) continue;
        throw this.#failed(err);
      } finally {
        client.release(broken);
      }
    }
  }

  #failed(err: unknown): unknown {
    const mapped = mapError(err, this.where);
    this.health.failed(mapped);
    return mapped;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.pool.end();
  }
}

/** Open the PostgreSQL database at `opts.url`, migrate it, and return it as Storage. */
export async function openPostgresStorage(opts: PostgresStorageOptions): Promise<Storage> {
  const migrations = opts.migrations ?? PG_MIGRATIONS;
  checkMigrationList(migrations);
  if (typeof opts.url !== "string" || opts.url === "") throw new StorageError("COMITY_ERR_STORAGE_INVALID", "PostgreSQL storage needs a connection URL");
  const schema = opts.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `PostgreSQL schema name must be a lowercase identifier ([a-z_][a-z0-9_]*), got ${JSON.stringify(schema)}`);
  }
  const poolSize = opts.poolSize ?? 10;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new StorageError("COMITY_ERR_STORAGE_INVALID", `PostgreSQL pool size must be a positive integer, got ${String(poolSize)}`);
  const where = describeTarget(opts.url, schema);
  const pool = new pg.Pool({
    ...connectionConfig(opts.url, schema),
    max: poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    // TCP keepalive, so a connection whose server vanished (host down, NAT timeout) is noticed instead of hanging.
    keepAlive: true,
    types: TYPES,
  });
  // An idle connection that the server drops (restart, idle timeout) is reported here; the pool discards it and the
  // next query opens a new one. Without a listener the 'error' event would crash the process.
  pool.on("error", () => {});
  const db = new Db(pool, where);
  try {
    await migrate(db, migrations, schema);
    return new PostgresStorage(db);
  } catch (err) {
    await db.close().catch(() => {});
    throw mapError(err, where);
  }
}

/**
 * The pool's connection settings: the URL plus session options. `synchronous_commit=on` makes COMMIT wait until the WAL
 * is flushed (a server whose default is `off` would otherwise acknowledge writes a crash can lose); `search_path` selects
 * the schema. Options already in the URL are kept and ours are appended, since node-postgres lets the URL win.
 */
export function connectionConfig(url: string, schema: string | undefined): pg.PoolConfig {
  const ours = ["-c synchronous_commit=on", ...(schema === undefined ? [] : [`-c search_path=${schema}`])].join(" ");
  try {
    const u = new URL(url);
    const given = u.searchParams.get("options");
    if (given !== null) {
      u.searchParams.delete("options");
      return { connectionString: u.toString(), options: `${given} ${ours}` };
    }
  } catch {
    // Not a URL the WHATWG parser takes (e.g. a bare libpq keyword string): let node-postgres parse it as it is.
  }
  return { connectionString: url, options: ours };
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

/**
 * Apply every migration newer than the database's version, each in its own transaction, while holding a session-level
 * advisory lock keyed by the schema: two servers starting at once against the same schema take turns, and the second
 * one finds the work done.
 */
async function migrate(db: Db, migrations: readonly Migration[], schema: string | undefined): Promise<void> {
  const latestKnown = migrations.at(-1)?.id ?? 0;
  let client: pg.PoolClient;
  try {
    client = await db.pool.connect();
  } catch (err) {
    throw mapError(err, db.where);
  }
  let broken: Error | undefined;
  try {
    const target = schema ?? (await client.query<{ s: string | null }>("SELECT current_schema() AS s")).rows[0]?.s ?? null;
    if (target === null) {
      throw new StorageError("COMITY_ERR_STORAGE_MIGRATION", `PostgreSQL at ${db.where}: no schema of the search_path exists; create one or set a schema`);
    }
    const lockKey = `comity-migrations:${target}`;
    await client.query("SELECT pg_advisory_lock(hashtext($1))", [lockKey]);
    try {
      if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at bigint NOT NULL
      )`);
      const currentVersion = async (): Promise<number> =>
        (await client.query<{ v: number | null }>("SELECT max(version) AS v FROM schema_migrations")).rows[0]?.v ?? 0;
      const checkNotNewer = (version: number): void => {
        if (version > latestKnown) {
          throw new StorageError(
            "COMITY_ERR_STORAGE_SCHEMA_TOO_NEW",
            `database ${db.where} has schema version ${version}, but this Comity knows versions up to ${latestKnown}; ` +
              `it was written by a newer release: upgrade Comity (or restore a backup) instead of downgrading`,
          );
        }
      };
      checkNotNewer(await currentVersion());
      for (const m of migrations) {
        await client.query("BEGIN");
        try {
          const version = await currentVersion();
          checkNotNewer(version);
          if (m.id > version) {
            await client.query(m.sql);
            await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [m.id, m.name, Date.now()]);
          }
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK").catch((e: Error) => (broken = e));
          if (err instanceof StorageError) throw err;
          const unavailable = mapError(err, db.where);
          if (unavailable instanceof StorageError && unavailable.code === "COMITY_ERR_STORAGE_UNAVAILABLE") throw unavailable;
          throw new StorageError("COMITY_ERR_STORAGE_MIGRATION", `migration ${m.id} (${m.name}) failed on ${db.where}: ${String(err)}`, { cause: err });
        }
      }
    } finally {
      if (broken === undefined) await client.query("SELECT pg_advisory_unlock(hashtext($1))", [lockKey]).catch((e: Error) => (broken = e));
    }
  } catch (err) {
    // A failed connection also ends its session's advisory lock; a live one keeps it only until released above.
    if (broken === undefined && connectionProblem(err) !== undefined) broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}

interface AccountRow {
  username: string;
  credentials: StoredCredentials;
  created_at: number;
}

interface RosterRow {
  jid: string;
  name: string | null;
  subscription: Subscription;
  ask: boolean;
  approved: boolean;
  groups: string[];
}

interface ServerRosterRow {
  host: string;
  peer: string;
  subscription: Subscription;
  pending_in: boolean;
  pending_in_since: number | null;
  pending_out: boolean;
  pending_out_since: number | null;
  pre_approved: boolean;
  peer_implements: boolean | null;
  peer_available: boolean | null;
  peer_status: string | null;
  peer_presence_at: number | null;
  since: number;
  decided_by: string | null;
  decided_via: string | null;
  note: string | null;
}

const SR_COLUMNS =
  "host, peer, subscription, pending_in, pending_in_since, pending_out, pending_out_since, pre_approved, " +
  "peer_implements, peer_available, peer_status, peer_presence_at, since, decided_by, decided_via, note";

/** Rows per INSERT of createMany: one statement per chunk keeps memory bounded on very large imports. */
const ACCOUNT_CHUNK = 2000;

/** Every statement the store runs, each a named (prepared) statement. */
const Q = {
  getAccount: named("get_account", "SELECT username, credentials, created_at FROM accounts WHERE host = $1 AND username = $2"),
  insertAccount: named(
    "insert_account",
    "INSERT INTO accounts (host, username, credentials, created_at) VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (host, username) DO NOTHING",
  ),
  // One statement per chunk: the usernames and credentials travel as two arrays, so the statement text (and its plan)
  // is the same whatever the batch size.
  insertAccounts: named(
    "insert_accounts",
    "INSERT INTO accounts (host, username, credentials, created_at) SELECT $1, u, c::jsonb, $4 FROM unnest($2::text[], $3::text[]) AS t(u, c) " +
      "ON CONFLICT (host, username) DO NOTHING",
  ),
  upsertAccounts: named(
    "upsert_accounts",
    "INSERT INTO accounts (host, username, credentials, created_at) SELECT $1, u, c::jsonb, $4 FROM unnest($2::text[], $3::text[]) AS t(u, c) " +
      "ON CONFLICT (host, username) DO UPDATE SET credentials = excluded.credentials",
  ),
  updateCredentials: named("update_credentials", "UPDATE accounts SET credentials = $1::jsonb WHERE host = $2 AND username = $3"),
  deleteAccount: named("delete_account", "DELETE FROM accounts WHERE host = $1 AND username = $2"),
  deleteUserKeyval: named("delete_user_keyval", "DELETE FROM keyval WHERE host = $1 AND username = $2"),
  // As in SQLite: owner = username or owner in ["username/", "username0") (byte order under COLLATE "C").
  deleteUserMaps: named("delete_user_maps", "DELETE FROM map_entries WHERE host = $1 AND (owner = $2 OR (owner >= $2 || '/' AND owner < $2 || '0'))"),
  deleteUserRoster: named("delete_user_roster", "DELETE FROM roster_items WHERE host = $1 AND username = $2"),
  // The version outlives the account (one step past its last roster), as in SQLite (RFC 6121 §2.6).
  retireUserRosterVersion: named("retire_user_roster_version", "UPDATE roster_versions SET version = version + 1 WHERE host = $1 AND username = $2"),
  deleteUserPendingIn: named("delete_user_pending_in", "DELETE FROM roster_pending_in WHERE host = $1 AND username = $2"),
  deleteUserOffline: named("delete_user_offline", "DELETE FROM offline_messages WHERE host = $1 AND username = $2"),
  deleteUserArchive: named("delete_user_archive", "DELETE FROM archive_messages WHERE host = $1 AND username = $2"),
  listAccounts: named("list_accounts", "SELECT username FROM accounts WHERE host = $1 ORDER BY username"),
  countAccounts: named("count_accounts", "SELECT count(*) AS n FROM accounts WHERE host = $1"),
  kvGet: named("kv_get", "SELECT value FROM keyval WHERE store = $1 AND host = $2 AND username = $3 AND key = $4"),
  kvSet: named(
    "kv_set",
    "INSERT INTO keyval (store, host, username, key, value) VALUES ($1, $2, $3, $4, $5) " +
      "ON CONFLICT (store, host, username, key) DO UPDATE SET value = excluded.value",
  ),
  kvDelete: named("kv_delete", "DELETE FROM keyval WHERE store = $1 AND host = $2 AND username = $3 AND key = $4"),
  // Items and version in one statement, so one snapshot: they describe the same state of the roster. The LEFT JOIN
  // gives one row (with NULL item columns) for an empty roster.
  rosterRead: named(
    "roster_read",
    "SELECT v.version, i.jid, i.name, i.subscription, i.ask, i.approved, i.groups " +
      "FROM (SELECT coalesce((SELECT version FROM roster_versions WHERE host = $1 AND username = $2), 0) AS version) AS v " +
      "LEFT JOIN roster_items AS i ON i.host = $1 AND i.username = $2 ORDER BY i.jid",
  ),
  rosterItem: named("roster_item", "SELECT jid, name, subscription, ask, approved, groups FROM roster_items WHERE host = $1 AND username = $2 AND jid = $3"),
  // Item change and version bump in one statement (so one transaction): a client never sees a version without its
  // change. The main INSERT reads the CTE, so the item row is locked before the version row, in both statements below;
  // concurrent changes of one roster queue on the version row and get consecutive versions.
  setRosterItem: named(
    "set_roster_item",
    "WITH item AS (" +
      "INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text[]) " +
      "ON CONFLICT (host, username, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription, " +
      "ask = excluded.ask, approved = excluded.approved, groups = excluded.groups RETURNING 1) " +
      "INSERT INTO roster_versions AS rv (host, username, version) SELECT $1, $2, 1 FROM item " +
      "ON CONFLICT (host, username) DO UPDATE SET version = rv.version + 1 RETURNING version",
  ),
  // No row deleted: no version row touched, nothing returned.
  removeRosterItem: named(
    "remove_roster_item",
    "WITH gone AS (DELETE FROM roster_items WHERE host = $1 AND username = $2 AND jid = $3 RETURNING 1) " +
      "INSERT INTO roster_versions AS rv (host, username, version) SELECT $1, $2, 1 FROM gone " +
      "ON CONFLICT (host, username) DO UPDATE SET version = rv.version + 1 RETURNING version",
  ),
  countRosterItems: named("count_roster_items", "SELECT count(*) AS n FROM roster_items WHERE host = $1 AND username = $2"),
  pendingIn: named("pending_in", "SELECT jid, stanza FROM roster_pending_in WHERE host = $1 AND username = $2 ORDER BY created_at, jid"),
  // A repeated request replaces the stanza but keeps its place (original arrival time) in the queue.
  setPendingIn: named(
    "set_pending_in",
    "INSERT INTO roster_pending_in (host, username, jid, stanza, created_at) VALUES ($1, $2, $3, $4, $5) " +
      "ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza",
  ),
  clearPendingIn: named("clear_pending_in", "DELETE FROM roster_pending_in WHERE host = $1 AND username = $2 AND jid = $3"),
  // Runs after the lock, so its snapshot (READ COMMITTED: taken when the statement starts) sees every committed push.
  pushOffline: named(
    "push_offline",
    "INSERT INTO offline_messages (host, username, stanza, stamp) SELECT $1, $2, $3, $4 " +
      "WHERE (SELECT count(*) FROM offline_messages WHERE host = $1 AND username = $2) < $5 RETURNING id",
  ),
  countOffline: named("count_offline", "SELECT count(*) AS n FROM offline_messages WHERE host = $1 AND username = $2"),
  listOffline: named("list_offline", "SELECT id, stanza, stamp FROM offline_messages WHERE host = $1 AND username = $2 ORDER BY id"),
  // The whole id list is one array parameter: no statement per id, no limit on how many.
  deleteOffline: named("delete_offline", "DELETE FROM offline_messages WHERE host = $1 AND username = $2 AND id = ANY($3::bigint[])"),
  srList: named("sr_list", `SELECT ${SR_COLUMNS} FROM server_roster ORDER BY host, peer`),
  srListHost: named("sr_list_host", `SELECT ${SR_COLUMNS} FROM server_roster WHERE host = $1 ORDER BY peer`),
  srGet: named("sr_get", `SELECT ${SR_COLUMNS} FROM server_roster WHERE host = $1 AND peer = $2`),
  srUpsert: named(
    "sr_upsert",
    `INSERT INTO server_roster (${SR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ` +
      "ON CONFLICT (host, peer) DO UPDATE SET subscription = excluded.subscription, pending_in = excluded.pending_in, " +
      "pending_in_since = excluded.pending_in_since, pending_out = excluded.pending_out, pending_out_since = excluded.pending_out_since, " +
      "pre_approved = excluded.pre_approved, peer_implements = excluded.peer_implements, peer_available = excluded.peer_available, " +
      "peer_status = excluded.peer_status, peer_presence_at = excluded.peer_presence_at, since = excluded.since, " +
      "decided_by = excluded.decided_by, decided_via = excluded.decided_via, note = excluded.note",
  ),
  srDelete: named("sr_delete", "DELETE FROM server_roster WHERE host = $1 AND peer = $2"),
  srAudit: named(
    "sr_audit",
    "INSERT INTO server_roster_audit (host, peer, action, actor, via, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
  ),
  srAuditHost: named(
    "sr_audit_host",
    "SELECT id, host, peer, action, actor, via, detail, at FROM server_roster_audit WHERE host = $1 ORDER BY id DESC LIMIT $2",
  ),
  srAuditPeer: named(
    "sr_audit_peer",
    "SELECT id, host, peer, action, actor, via, detail, at FROM server_roster_audit WHERE host = $1 AND peer = $2 ORDER BY id DESC LIMIT $3",
  ),
};

class PostgresStorage implements Storage {
  readonly kind = "postgres";
  readonly health: StorageHealth;
  readonly accounts: AccountStore;
  readonly rosters: RosterStore;
  readonly offline: OfflineStore;
  readonly serverRoster: ServerRosterStore;
  readonly incidents: IncidentStore;
  readonly abuseReports: AbuseReportStore;
  readonly archive: ArchiveStore;
  readonly #db: Db;
  readonly #keyvals = new Map<string, KeyValueStore>();
  readonly #maps: (name: string) => MapStore;

  constructor(db: Db) {
    this.#db = db;
    this.health = db.health;
    this.#maps = pgMaps(db);
    this.accounts = pgAccounts(db);
    this.rosters = pgRosters(db);
    this.offline = pgOffline(db);
    this.serverRoster = pgServerRoster(db);
    ({ incidents: this.incidents, abuseReports: this.abuseReports } = pgIncidentStores(db));
    this.archive = pgArchive(db);
  }

  keyval(name: string): KeyValueStore {
    assertStoreName(name);
    let kv = this.#keyvals.get(name);
    if (kv === undefined) {
      kv = pgKeyval(this.#db, name);
      this.#keyvals.set(name, kv);
    }
    return kv;
  }

  map(name: string): MapStore {
    assertStoreName(name);
    return this.#maps(name);
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}

/** Keep the first (or with `last`, the last) entry per username, in input order; the database sees no duplicates. */
function dedupe<T extends { username: string }>(chunk: T[], last: boolean): T[] {
  const byName = new Map<string, T>();
  for (const e of chunk) if (last || !byName.has(e.username)) byName.set(e.username, e);
  return byName.size === chunk.length ? chunk : [...byName.values()];
}

function pgAccounts(db: Db): AccountStore {
  return {
    async get(host, username) {
      const row = (await db.query<AccountRow>(Q.getAccount([host, username]))).rows[0];
      return row === undefined ? undefined : ({ host, username: row.username, credentials: row.credentials, createdAt: row.created_at } satisfies Account);
    },
    async create(host, username, credentials) {
      return (await db.query(Q.insertAccount([host, username, JSON.stringify(credentials), Date.now()]))).rowCount === 1;
    },
    async createMany(host, entries, opts) {
      const replace = opts?.replace === true;
      // The input is read inside the transaction: if it throws half way, the ROLLBACK undoes the chunks already sent.
      return db.tx(async (c) => {
        const now = Date.now();
        let written = 0;
        let chunk: { username: string; credentials: StoredCredentials }[] = [];
        const flush = async (): Promise<void> => {
          if (chunk.length === 0) return;
          // ON CONFLICT DO UPDATE may not touch one row twice in a statement: the last entry of a username wins, as the
          // sequence of upserts SQLite runs would leave it; without replace the first one wins.
          const rows = dedupe(chunk, replace);
          const res = await c.query((replace ? Q.upsertAccounts : Q.insertAccounts)([host, rows.map((e) => e.username), rows.map((e) => JSON.stringify(e.credentials)), now]));
          // With replace every entry counts as written (created or replaced), duplicates included, as in SQLite.
          written += replace ? chunk.length : (res.rowCount ?? 0);
          chunk = [];
        };
        for (const { username, credentials } of entries) {
          chunk.push({ username, credentials });
          if (chunk.length >= ACCOUNT_CHUNK) await flush();
        }
        await flush();
        return written;
      });
    },
    async setCredentials(host, username, credentials) {
      return (await db.query(Q.updateCredentials([JSON.stringify(credentials), host, username]))).rowCount === 1;
    },
    async delete(host, username) {
      return db.tx(async (c) => {
        if ((await c.query(Q.deleteAccount([host, username]))).rowCount === 0) return false;
        for (const q of [Q.deleteUserKeyval, Q.deleteUserRoster, Q.retireUserRosterVersion, Q.deleteUserPendingIn, Q.deleteUserOffline, Q.deleteUserArchive]) {
          await c.query(q([host, username]));
        }
        await c.query(Q.deleteUserMaps([host, username]));
        return true;
      });
    },
    async list(host) {
      return (await db.query<{ username: string }>(Q.listAccounts([host]))).rows.map((r) => r.username);
    },
    async count(host) {
      return (await db.query<{ n: number }>(Q.countAccounts([host]))).rows[0]?.n ?? 0;
    },
  };
}

function pgKeyval(db: Db, store: string): KeyValueStore {
  return {
    async get(host, user, key) {
      return (await db.query<{ value: string }>(Q.kvGet([store, host, user, key]))).rows[0]?.value;
    },
    async set(host, user, key, value) {
      db.live();
      assertKeyvalValue(value);
      if (value === undefined) await db.query(Q.kvDelete([store, host, user, key]));
      else await db.query(Q.kvSet([store, host, user, key, value]));
    },
  };
}

function toRosterItem(row: RosterRow): RosterItem {
  const item: RosterItem = { jid: row.jid, subscription: row.subscription, ask: row.ask, approved: row.approved, groups: row.groups };
  if (row.name !== null) item.name = row.name;
  return item;
}

function pgRosters(db: Db): RosterStore {
  return {
    async get(host, username) {
      const rows = (await db.query<RosterRow & { version: number; jid: string | null }>(Q.rosterRead([host, username]))).rows;
      const version = rows[0]?.version ?? 0;
      return { version, items: rows.filter((r) => r.jid !== null).map(toRosterItem) };
    },
    async getItem(host, username, jid) {
      const row = (await db.query<RosterRow>(Q.rosterItem([host, username, jid]))).rows[0];
      return row === undefined ? undefined : toRosterItem(row);
    },
    async setItem(host, username, item) {
      db.live();
      assertRosterItem(item);
      const values = [host, username, item.jid, item.name ?? null, item.subscription, item.ask, item.approved, [...item.groups]];
      // One statement, so one transaction without BEGIN/COMMIT round trips.
      return (await db.query<{ version: number }>(Q.setRosterItem(values))).rows[0]?.version as number;
    },
    async removeItem(host, username, jid) {
      return (await db.query<{ version: number }>(Q.removeRosterItem([host, username, jid]))).rows[0]?.version;
    },
    async count(host, username) {
      return (await db.query<{ n: number }>(Q.countRosterItems([host, username]))).rows[0]?.n ?? 0;
    },
    async pendingIn(host, username) {
      return (await db.query<{ jid: string; stanza: string }>(Q.pendingIn([host, username]))).rows;
    },
    async setPendingIn(host, username, jid, stanza) {
      db.live();
      if (stanza === undefined) await db.query(Q.clearPendingIn([host, username, jid]));
      else if (typeof stanza === "string") await db.query(Q.setPendingIn([host, username, jid, stanza, Date.now()]));
      else throw new StorageError("COMITY_ERR_STORAGE_INVALID", `pending-in stanza must be a string or undefined, got ${typeof stanza}`);
    },
  };
}

function pgOffline(db: Db): OfflineStore {
  return {
    async push(host, username, stanza, opts) {
      db.live();
      assertOfflinePush(stanza, opts);
      // The user's lock is held from before the count to the commit: concurrent pushes from any connection or process
      // queue behind it, so together they cannot exceed the quota (the count alone, under READ COMMITTED, could).
      return db.tx(async (c) => ((await c.query(Q.pushOffline([host, username, stanza, opts.stamp, opts.quota]))).rowCount ?? 0) === 1, {
        retry: true,
        lock: [LOCK_OFFLINE, lockKey(host, username)],
      });
    },
    async list(host, username) {
      return (await db.query<{ id: number; stanza: string; stamp: number }>(Q.listOffline([host, username]))).rows;
    },
    async delete(host, username, ids) {
      db.live();
      assertIds(ids);
      if (ids.length > 0) await db.query(Q.deleteOffline([host, username, ids]));
    },
    async count(host, username) {
      return (await db.query<{ n: number }>(Q.countOffline([host, username]))).rows[0]?.n ?? 0;
    },
  };
}

function toServerRosterEntry(r: ServerRosterRow): ServerRosterEntry {
  return {
    host: r.host,
    peer: r.peer,
    subscription: r.subscription,
    pendingIn: r.pending_in,
    pendingInSince: r.pending_in_since,
    pendingOut: r.pending_out,
    pendingOutSince: r.pending_out_since,
    preApproved: r.pre_approved,
    peerImplementsServerRosters: r.peer_implements,
    peerAvailable: r.peer_available,
    peerStatus: r.peer_status,
    peerPresenceAt: r.peer_presence_at,
    since: r.since,
    decidedBy: r.decided_by,
    decidedVia: r.decided_via,
    note: r.note,
  };
}

function serverRosterParams(e: ServerRosterEntry): unknown[] {
  return [
    e.host, e.peer, e.subscription, e.pendingIn, e.pendingInSince, e.pendingOut, e.pendingOutSince, e.preApproved,
    e.peerImplementsServerRosters, e.peerAvailable, e.peerStatus, e.peerPresenceAt, e.since, e.decidedBy, e.decidedVia, e.note,
  ];
}

function pgServerRoster(db: Db): ServerRosterStore {
  return {
    async list(host) {
      const res = host === undefined ? await db.query<ServerRosterRow>(Q.srList([])) : await db.query<ServerRosterRow>(Q.srListHost([host]));
      return res.rows.map(toServerRosterEntry);
    },
    async get(host, peer) {
      const row = (await db.query<ServerRosterRow>(Q.srGet([host, peer]))).rows[0];
      return row === undefined ? undefined : toServerRosterEntry(row);
    },
    async update(host, peer, decide) {
      // Lock the (host, peer) pair, then read, decide and write in one transaction: two decisions on the same request
      // (from this or another server process) are serialised, and the second one sees the first one's result. An
      // advisory lock rather than SELECT … FOR UPDATE because the entry may not exist yet. `decide` is pure, so a
      // retried transaction may call it again.
      return db.tx(
        async (c) => {
          const row = (await c.query<ServerRosterRow>(Q.srGet([host, peer]))).rows[0];
          const before = row === undefined ? undefined : toServerRosterEntry(row);
          const change = decide(before === undefined ? undefined : copyServerRosterEntry(before));
          if (change === undefined) return { before, after: before, changed: false };
          if (change.entry !== undefined) assertServerRosterEntry(change.entry, host, peer);
          if (change.audit !== undefined) assertAudit(change.audit);
          if (change.entry === undefined) await c.query(Q.srDelete([host, peer]));
          else await c.query(Q.srUpsert(serverRosterParams(change.entry)));
          if (change.audit !== undefined) {
            const a = change.audit;
            await c.query(Q.srAudit([host, peer, a.action, a.actor, a.via, a.detail ?? null, a.at ?? Date.now()]));
          }
          const after = change.entry === undefined ? undefined : copyServerRosterEntry(change.entry);
          return { before, after, changed: true };
        },
        { retry: true, lock: [LOCK_SERVER_ROSTER, lockKey(host, peer)] },
      );
    },
    async appendAudit(host, peer, record) {
      db.live();
      assertAudit(record);
      const res = await db.query<{ id: number }>(Q.srAudit([host, peer, record.action, record.actor, record.via, record.detail ?? null, record.at ?? Date.now()]));
      return res.rows[0]?.id as number;
    },
    async audit(host, opts) {
      db.live();
      const limit = auditLimit(opts?.limit);
      const res =
        opts?.peer === undefined
          ? await db.query<ServerRosterAuditRecord>(Q.srAuditHost([host, limit]))
          : await db.query<ServerRosterAuditRecord>(Q.srAuditPeer([host, opts.peer, limit]));
      return res.rows;
    },
  };
}


/** SQLite reads a negative LIMIT as "no limit"; PostgreSQL reads NULL so. */
function sqlLimit(limit: number | undefined): number | null {
  return limit === undefined || limit < 0 ? null : limit;
}

/** XEP-0268 incidents and XEP-0377 abuse reports (migration 4; docs/trust-uses.md). */
function pgIncidentStores(db: Db): { incidents: IncidentStore; abuseReports: AbuseReportStore } {
  const cols = "id, host, peer, direction, kind, incident_id, status, payload, at, note";
  const rcols = "id, host, account, peer, reason, text, payload, at";
  const st = {
    add: named("inc_add", `INSERT INTO incidents (host, peer, direction, kind, incident_id, status, payload, at, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${cols}`),
    get: named("inc_get", `SELECT ${cols} FROM incidents WHERE host = $1 AND id = $2`),
    list: named("inc_list", `SELECT ${cols} FROM incidents WHERE host = $1 ORDER BY id DESC LIMIT $2`),
    listStatus: named("inc_list_status", `SELECT ${cols} FROM incidents WHERE host = $1 AND status = $2 ORDER BY id DESC LIMIT $3`),
    setStatus: named("inc_set_status", "UPDATE incidents SET status = $1, note = coalesce($2, note) WHERE host = $3 AND id = $4"),
    addReport: named("abuse_add", `INSERT INTO abuse_reports (host, account, peer, reason, text, payload, at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${rcols}`),
    listReports: named("abuse_list", `SELECT ${rcols} FROM abuse_reports WHERE host = $1 ORDER BY id DESC LIMIT $2`),
    listAccountReports: named("abuse_list_account", `SELECT ${rcols} FROM abuse_reports WHERE host = $1 AND account = $2 ORDER BY id DESC LIMIT $3`),
    counts: named(
      "abuse_counts",
      "SELECT account, count(*) AS count, max(at) AS last FROM abuse_reports WHERE host = $1 GROUP BY account ORDER BY count DESC, last DESC, account",
    ),
  };
  // An id that is not an integer matches no row (SQLite compares and finds nothing; PostgreSQL would refuse the cast).
  const isId = (id: number): boolean => Number.isSafeInteger(id);
  return {
    incidents: {
      async add(r) {
        const res = await db.query<IncidentRow>(st.add([r.host, r.peer, r.direction, r.kind, r.incidentId, r.status, r.payload, r.at, r.note]));
        return toIncident(res.rows[0] as IncidentRow);
      },
      async get(host, id) {
        db.live();
        if (!isId(id)) return undefined;
        const row = (await db.query<IncidentRow>(st.get([host, id]))).rows[0];
        return row === undefined ? undefined : toIncident(row);
      },
      async list(host, opts) {
        const limit = sqlLimit(opts?.limit);
        const res = opts?.status === undefined ? await db.query<IncidentRow>(st.list([host, limit])) : await db.query<IncidentRow>(st.listStatus([host, opts.status, limit]));
        return res.rows.map(toIncident);
      },
      async setStatus(host, id, status, note) {
        db.live();
        if (!isId(id)) return false;
        return (await db.query(st.setStatus([status, note ?? null, host, id]))).rowCount === 1;
      },
    },
    abuseReports: {
      async add(r) {
        return (await db.query<AbuseReport>(st.addReport([r.host, r.account, r.peer, r.reason, r.text, r.payload, r.at]))).rows[0] as AbuseReport;
      },
      async list(host, opts) {
        const limit = sqlLimit(opts?.limit);
        const res =
          opts?.account === undefined ? await db.query<AbuseReport>(st.listReports([host, limit])) : await db.query<AbuseReport>(st.listAccountReports([host, opts.account, limit]));
        return res.rows;
      },
      async counts(host) {
        return (await db.query<{ account: string; count: number; last: number }>(st.counts([host]))).rows;
      },
    },
  };
}


/** XEP-0313 user archives (migration 5). */
function pgArchive(db: Db): ArchiveStore {
  const FILTER =
    "host = $1 AND username = $2 AND ($3::text IS NULL OR with_jid = $3::text) AND ($4::float8 IS NULL OR stamp >= $4::float8) " +
    "AND ($5::float8 IS NULL OR stamp <= $5::float8)";
  const COLS = "id, with_jid, direction, stanza, stamp";
  const A = {
    insert: named(
      "archive_insert",
      "INSERT INTO archive_messages (host, username, with_jid, direction, stanza, stamp) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    ),
    exists: named("archive_exists", "SELECT 1 AS one FROM archive_messages WHERE host = $1 AND username = $2 AND id = $3"),
    forward: named("archive_forward", `SELECT ${COLS} FROM archive_messages WHERE ${FILTER} AND id > $6 ORDER BY id LIMIT $7`),
    backward: named("archive_backward", `SELECT ${COLS} FROM archive_messages WHERE ${FILTER} AND id < $6 ORDER BY id DESC LIMIT $7`),
    count: named("archive_count", `SELECT count(*) AS n FROM archive_messages WHERE ${FILTER}`),
    trimKeep: named(
      "archive_trim_keep",
      "DELETE FROM archive_messages WHERE host = $1 AND username = $2 AND id <= " +
        "(SELECT id FROM archive_messages WHERE host = $1 AND username = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)",
    ),
    trimBefore: named("archive_trim_before", "DELETE FROM archive_messages WHERE host = $1 AND username = $2 AND stamp < $3"),
    clear: named("archive_clear", "DELETE FROM archive_messages WHERE host = $1 AND username = $2"),
    one: named("archive_one", `SELECT ${COLS} FROM archive_messages WHERE host = $1 AND username = $2 AND id = $3 FOR UPDATE`),
    setStanza: named("archive_set_stanza", "UPDATE archive_messages SET stanza = $1 WHERE id = $2"),
  };
  const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: String(r.id), with: r.with_jid, direction: r.direction, stanza: r.stanza, timestamp: r.stamp });
  return {
    async append(host, username, m) {
      db.live();
      assertArchiveMessage(m);
      const rows = (await db.query<{ id: number }>(A.insert([host, username, m.with, m.direction, m.stanza, m.timestamp]))).rows;
      return String(rows[0]!.id);
    },
    async query(host, username, q) {
      db.live();
      assertArchiveQuery(q);
      return db.tx(async (c) => {
        const anchorId = q.after ?? (q.before === "" ? undefined : q.before);
        let anchor: number | undefined;
        if (anchorId !== undefined) {
          anchor = archiveSeq(anchorId);
          if (anchor === undefined || (await c.query(A.exists([host, username, anchor]))).rowCount === 0) return undefined;
        }
        const filter = [host, username, q.with ?? null, q.start ?? null, q.end ?? null];
        const lim = q.max + 1;
        const backward = q.before !== undefined;
        let rows = backward
          ? (await c.query<ArchiveRow>(A.backward([...filter, anchor ?? Number.MAX_SAFE_INTEGER, lim]))).rows.reverse()
          : (await c.query<ArchiveRow>(A.forward([...filter, anchor ?? 0, lim]))).rows;
        const complete = rows.length <= q.max;
        if (!complete) rows = backward ? rows.slice(1) : rows.slice(0, q.max);
        const items = rows.map(toMessage);
        const count = (await c.query<{ n: number }>(A.count(filter))).rows[0]?.n ?? 0;
        return { items, first: items[0]?.id, last: items.at(-1)?.id, complete, count };
      });
    },
    async trim(host, username, opts) {
      db.live();
      assertArchiveTrim(opts);
      return db.tx(async (c) => {
        let removed = 0;
        if (opts.before !== undefined) removed += (await c.query(A.trimBefore([host, username, opts.before]))).rowCount ?? 0;
        if (opts.keep !== undefined) removed += (await c.query(A.trimKeep([host, username, opts.keep]))).rowCount ?? 0;
        return removed;
      });
    },
    async clear(host, username) {
      db.live();
      await db.query(A.clear([host, username]));
    },
    async replace(host, username, id, make) {
      db.live();
      const seq = archiveSeq(id);
      if (seq === undefined) return undefined;
      return db.tx(async (c) => {
        const row = (await c.query<ArchiveRow>(A.one([host, username, seq]))).rows[0];
        if (row === undefined) return undefined;
        const before = toMessage(row);
        const stanza = make(before);
        if (typeof stanza !== "string") throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive stanza must be a string");
        await c.query(A.setStanza([stanza, seq]));
        return before;
      });
    },
  };
}
