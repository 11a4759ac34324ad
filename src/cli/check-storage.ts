// `comity check`, storage part: can the configured database be reached and used, and is its schema one this release
// can run on (older: migrated at start; newer: refused at start)? Read-only: nothing is created or migrated here.
import { access, constants, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import type { Config } from "../core/config/schema.ts";
import { PG_LATEST_SCHEMA_VERSION } from "../storage/postgres/migrations.ts";
import { connectionConfig, redactPostgresUrl } from "../storage/postgres/store.ts";
import { LATEST_SCHEMA_VERSION } from "../storage/sqlite/migrations.ts";
import { SQLITE_FILE_NAME } from "../storage/sqlite/store.ts";

export interface StorageFinding {
  severity: "error" | "warning" | "info" | "ok";
  area: "storage";
  message: string;
  fix?: string;
}

const f = (severity: StorageFinding["severity"], message: string, fix?: string): StorageFinding =>
  fix === undefined ? { severity, area: "storage", message } : { severity, area: "storage", message, fix };

/** What a schema version means for this release. */
function versionFinding(where: string, version: number, latest: number, accounts: number | undefined): StorageFinding {
  const count = accounts === undefined ? "" : `, ${accounts} account${accounts === 1 ? "" : "s"}`;
  if (version > latest) {
    return f("error", `${where} has schema version ${version}, newer than this release knows (${latest}): comity will refuse to start`, "upgrade Comity, or restore the backup taken before the upgrade");
  }
  if (version < latest) return f("info", `${where} has schema version ${version}${count}; it is migrated to ${latest} at the next start (take a backup first)`);
  return f("ok", `${where}: schema version ${version}${count}`);
}

/** Nearest existing directory at or above `path`. */
async function existingAncestor(path: string): Promise<string> {
  for (let p = path; ; p = dirname(p)) {
    try {
      await stat(p);
      return p;
    } catch {
      if (dirname(p) === p) return p;
    }
  }
}

async function checkSqlite(config: Config): Promise<StorageFinding[]> {
  const file = join(config.data_dir, SQLITE_FILE_NAME);
  let dirExists = true;
  try {
    if (!(await stat(config.data_dir)).isDirectory()) return [f("error", `data_dir ${config.data_dir} is not a directory`, "point data_dir at a directory")];
  } catch {
    dirExists = false;
  }
  const writableDir = dirExists ? config.data_dir : await existingAncestor(config.data_dir);
  try {
    await access(writableDir, constants.W_OK);
  } catch {
    return [f("error", `${writableDir} is not writable by this user: comity cannot ${dirExists ? "write its database there" : `create data_dir ${config.data_dir}`}`, `run comity as the user that owns ${writableDir}, or change data_dir`)];
  }
  try {
    await stat(file);
  } catch {
    return [f("info", `SQLite database ${file} does not exist yet; it is created at the first start`)];
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 2000");
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get() !== undefined;
    if (!hasTable) return [f("warning", `${file} exists but holds no Comity schema`, "check data_dir: is this another program's database?")];
    const version = (db.prepare("SELECT max(version) FROM schema_migrations").pluck().get() as number | null) ?? 0;
    const hasAccounts = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'").get() !== undefined;
    const accounts = hasAccounts ? (db.prepare("SELECT count(*) FROM accounts").pluck().get() as number) : undefined;
    return [versionFinding(`SQLite database ${file}`, version, LATEST_SCHEMA_VERSION, accounts)];
  } catch (err) {
    return [f("error", `cannot read SQLite database ${file}: ${(err as Error).message}`, "check the file's permissions, free disk space, and that it is not damaged (sqlite3 FILE 'PRAGMA integrity_check')")];
  } finally {
    db?.close();
  }
}

/** A one-line reason and fix for a failed PostgreSQL connection. */
function pgFailure(err: unknown, where: string): StorageFinding {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  switch (e.code) {
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EHOSTUNREACH":
    case "ETIMEDOUT":
      return f("error", `cannot reach PostgreSQL at ${where} (${e.code})`, "start PostgreSQL, or correct the host and port in storage.postgres_url");
    case "28P01":
    case "28000":
      return f("error", `PostgreSQL at ${where} refused the login: ${msg}`, "check the user and password (URL, PGPASSWORD or ~/.pgpass) and pg_hba.conf");
    case "3D000":
      return f("error", `PostgreSQL at ${where}: ${msg}`, "create the database (createdb) or correct its name in storage.postgres_url");
    default:
      return f("error", `PostgreSQL at ${where}: ${msg}`, "check storage.postgres_url");
  }
}

async function checkPostgres(config: Config, timeoutMs: number): Promise<StorageFinding[]> {
  const url = config.storage.postgres_url;
  if (url === undefined) return [f("error", "storage.backend is postgres but storage.postgres_url is not set", "set storage.postgres_url, e.g. postgres://comity@127.0.0.1:5432/comity")];
  const where = redactPostgresUrl(url);
  const schema = config.storage.postgres_schema;
  const client = new pg.Client({ ...connectionConfig(url, schema), connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (err) {
    return [pgFailure(err, where)];
  }
  try {
    const out: StorageFinding[] = [];
    const version = (await client.query<{ server_version: string }>("SHOW server_version")).rows[0]?.server_version ?? "?";
    out.push(f("ok", `PostgreSQL ${version} at ${where}`));
    const target = schema ?? (await client.query<{ s: string | null }>("SELECT current_schema() AS s")).rows[0]?.s ?? null;
    if (target === null) {
      out.push(f("error", "no schema of the search_path exists: comity has nowhere to create its tables", "create a schema (CREATE SCHEMA comity) and set storage.postgres_schema"));
      return out;
    }
    const exists = (await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1", [target])).rows[0]?.n !== "0";
    const canCreate = exists
      ? (await client.query<{ ok: boolean }>("SELECT has_schema_privilege($1, 'CREATE') AS ok", [target])).rows[0]?.ok === true
      : (await client.query<{ ok: boolean }>("SELECT has_database_privilege(current_database(), 'CREATE') AS ok")).rows[0]?.ok === true;
    const table = (await client.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [`"${target.replace(/"/g, '""')}".schema_migrations`])).rows[0]?.t ?? null;
    if (table === null) {
      if (canCreate) out.push(f("info", `schema ${target} holds no Comity tables yet; they are created at the first start`));
      else out.push(f("error", `schema ${target} holds no Comity tables and this user may not create them`, `GRANT CREATE ON ${exists ? `SCHEMA ${target}` : "DATABASE <db>"} TO <user>, or run the first start as the owner`));
      return out;
    }
    const v = Number((await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${table}`)).rows[0]?.v ?? 0);
    const accounts = (await client.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [`"${target.replace(/"/g, '""')}".accounts`])).rows[0]?.t;
    const n = accounts ? Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${accounts}`)).rows[0]?.n ?? 0) : undefined;
    out.push(versionFinding(`schema ${target}`, v, PG_LATEST_SCHEMA_VERSION, n));
    if (v < PG_LATEST_SCHEMA_VERSION && !canCreate) {
      out.push(f("error", `this user may not create tables in schema ${target}, so the pending migrations will fail`, `GRANT CREATE ON SCHEMA ${target} TO <user>, or run the upgrade as the schema's owner`));
    }
    return out;
  } catch (err) {
    return [pgFailure(err, where)];
  } finally {
    await client.end().catch(() => {});
  }
}

/** Check the configured storage backend without changing it. */
export async function checkStorage(config: Config, opts: { timeoutMs?: number } = {}): Promise<StorageFinding[]> {
  return config.storage.backend === "postgres" ? checkPostgres(config, opts.timeoutMs ?? 5000) : checkSqlite(config);
}
