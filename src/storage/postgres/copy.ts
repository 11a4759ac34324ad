// Copy a whole SQLite database into an empty PostgreSQL schema (`comity storage copy`, docs/storage.md "Moving from
// SQLite to PostgreSQL"). Row by row, table by table, in one PostgreSQL transaction: all or nothing.
import Database from "better-sqlite3";
import pg from "pg";
import { StorageError } from "../errors.ts";
import { LATEST_SCHEMA_VERSION } from "../sqlite/migrations.ts";
import { openSqliteStorage } from "../sqlite/store.ts";
import { PG_LATEST_SCHEMA_VERSION } from "./migrations.ts";
import { connectionConfig, openPostgresStorage, redactPostgresUrl } from "./store.ts";

/** How a column travels: SQLite value → array element, and the SQL that turns the unnested element into the column. */
type Kind = "text" | "bigint" | "float8" | "bool" | "jsonb" | "text[]";

interface TableSpec {
  name: string;
  columns: [name: string, kind: Kind][];
  /** Identity column whose sequence must continue after the copied ids (and after SQLite's AUTOINCREMENT high mark). */
  identity?: string;
}

/** Every table of schema version 6, in an order where nothing depends on a later one (there are no foreign keys). */
const TABLES: TableSpec[] = [
  { name: "accounts", columns: [["host", "text"], ["username", "text"], ["credentials", "jsonb"], ["created_at", "bigint"]] },
  { name: "keyval", columns: [["store", "text"], ["host", "text"], ["username", "text"], ["key", "text"], ["value", "text"]] },
  {
    name: "roster_items",
    columns: [["host", "text"], ["username", "text"], ["jid", "text"], ["name", "text"], ["subscription", "text"], ["ask", "bool"], ["approved", "bool"], ["groups", "text[]"]],
  },
  { name: "roster_versions", columns: [["host", "text"], ["username", "text"], ["version", "bigint"]] },
  { name: "roster_pending_in", columns: [["host", "text"], ["username", "text"], ["jid", "text"], ["stanza", "text"], ["created_at", "bigint"]] },
  { name: "offline_messages", identity: "id", columns: [["id", "bigint"], ["host", "text"], ["username", "text"], ["stanza", "text"], ["stamp", "float8"]] },
  {
    name: "server_roster",
    columns: [
      ["host", "text"], ["peer", "text"], ["subscription", "text"], ["pending_in", "bool"], ["pending_in_since", "float8"], ["pending_out", "bool"],
      ["pending_out_since", "float8"], ["pre_approved", "bool"], ["peer_implements", "bool"], ["peer_available", "bool"], ["peer_status", "text"],
      ["peer_presence_at", "float8"], ["since", "float8"], ["decided_by", "text"], ["decided_via", "text"], ["note", "text"],
    ],
  },
  {
    name: "server_roster_audit",
    identity: "id",
    columns: [["id", "bigint"], ["host", "text"], ["peer", "text"], ["action", "text"], ["actor", "text"], ["via", "text"], ["detail", "text"], ["at", "float8"]],
  },
  {
    name: "incidents",
    identity: "id",
    columns: [
      ["id", "bigint"], ["host", "text"], ["peer", "text"], ["direction", "text"], ["kind", "text"], ["incident_id", "text"], ["status", "text"],
      ["payload", "text"], ["at", "float8"], ["note", "text"],
    ],
  },
  {
    name: "abuse_reports",
    identity: "id",
    columns: [["id", "bigint"], ["host", "text"], ["account", "text"], ["peer", "text"], ["reason", "text"], ["text", "text"], ["payload", "text"], ["at", "float8"]],
  },
  {
    name: "archive_messages",
    identity: "id",
    columns: [["id", "bigint"], ["host", "text"], ["username", "text"], ["with_jid", "text"], ["direction", "text"], ["stanza", "text"], ["stamp", "float8"]],
  },
  {
    // The generic map kind: SQLite's seq is per owner, PostgreSQL's one sequence continues after the highest copied value,
    // so every later write still lands after the copied entries of its owner.
    name: "map_entries",
    identity: "seq",
    columns: [["store", "text"], ["host", "text"], ["owner", "text"], ["key", "text"], ["value", "text"], ["seq", "bigint"], ["updated_at", "bigint"]],
  },
];

/** Rows per INSERT: every column travels as one array parameter. */
const CHUNK = 5000;

/** The array type a column's values are sent as, and the expression that makes the column from the unnested value. */
function transport(kind: Kind, ref: string): { arrayType: string; expr: string } {
  switch (kind) {
    case "jsonb":
      return { arrayType: "text[]", expr: `${ref}::jsonb` };
    case "text[]":
      // Groups are a JSON array in SQLite; the arrays of different rows differ in length, so they travel as JSON.
      return { arrayType: "text[]", expr: `ARRAY(SELECT jsonb_array_elements_text(${ref}::jsonb))` };
    case "bool":
      return { arrayType: "boolean[]", expr: ref };
    case "bigint":
      return { arrayType: "bigint[]", expr: ref };
    case "float8":
      return { arrayType: "float8[]", expr: ref };
    case "text":
      return { arrayType: "text[]", expr: ref };
  }
}

function convert(kind: Kind, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (kind === "bool") return v === 1 || v === 1n;
  if (kind === "bigint" || kind === "float8") return typeof v === "bigint" ? Number(v) : v;
  return v;
}

export interface CopyResult {
  /** Rows copied per table. */
  tables: Record<string, number>;
}

/**
 * Copy the SQLite database at `from` into the PostgreSQL schema at `to`, which must hold no Comity data yet. Both are
 * migrated to the latest schema first. The server must not be writing to `from` meanwhile (stop it first).
 */
export async function copySqliteToPostgres(from: { path: string }, to: { url: string; schema?: string }): Promise<CopyResult> {
  if (LATEST_SCHEMA_VERSION !== PG_LATEST_SCHEMA_VERSION) {
    throw new StorageError("COMITY_ERR_STORAGE_MIGRATION", `SQLite schema ${LATEST_SCHEMA_VERSION} and PostgreSQL schema ${PG_LATEST_SCHEMA_VERSION} differ: this release cannot copy`);
  }
  // Opening migrates both to the same, latest version; the copy then reads and writes the tables directly.
  await openSqliteStorage({ path: from.path }).close();
  await (await openPostgresStorage(to.schema === undefined ? { url: to.url } : { url: to.url, schema: to.schema })).close();
  const where = to.schema === undefined ? redactPostgresUrl(to.url) : `${redactPostgresUrl(to.url)} (schema ${to.schema})`;

  const src = new Database(from.path, { readonly: true, fileMustExist: true });
  const dst = new pg.Client({ ...connectionConfig(to.url, to.schema), types: { getTypeParser: (oid: number, format?: "text" | "binary") => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) } as pg.CustomTypesConfig });
  await dst.connect();
  const tables: Record<string, number> = {};
  try {
    // One SQLite read transaction: every table is read from the same state of the file.
    src.exec("BEGIN");
    await dst.query("BEGIN");
    for (const t of TABLES) {
      const [{ n }] = (await dst.query<{ n: number }>(`SELECT count(*) AS n FROM ${t.name}`)).rows as [{ n: number }];
      if (n > 0) throw new StorageError("COMITY_ERR_STORAGE_INVALID", `${where} already has ${n} rows in ${t.name}: copy only into an empty database`);
    }
    for (const t of TABLES) {
      const names = t.columns.map(([c]) => c);
      const parts = t.columns.map(([, kind], i) => transport(kind, `c${i}`));
      const insert =
        `INSERT INTO ${t.name} (${names.join(", ")}) SELECT ${parts.map((p) => p.expr).join(", ")} ` +
        `FROM unnest(${parts.map((p, i) => `$${i + 1}::${p.arrayType}`).join(", ")}) AS t(${names.map((_, i) => `c${i}`).join(", ")})`;
      const rows = src.prepare(`SELECT ${names.join(", ")} FROM ${t.name}`).raw(true).iterate() as IterableIterator<unknown[]>;
      let copied = 0;
      let chunk: unknown[][] = t.columns.map(() => []);
      let size = 0;
      const flush = async (): Promise<void> => {
        if (size === 0) return;
        await dst.query(insert, chunk);
        copied += size;
        chunk = t.columns.map(() => []);
        size = 0;
      };
      for (const row of rows) {
        t.columns.forEach(([, kind], i) => chunk[i]!.push(convert(kind, row[i])));
        if (++size >= CHUNK) await flush();
      }
      await flush();
      if (t.identity !== undefined) {
        // Continue after the highest id SQLite ever handed out (sqlite_sequence keeps it even when that row is gone), so
        // no id is handed out twice across the move either.
        const seq = src.prepare<[string], number>("SELECT seq FROM sqlite_sequence WHERE name = ?").pluck().get(t.name) ?? 0;
        await dst.query(
          `SELECT setval(pg_get_serial_sequence('${t.name}', '${t.identity}'), greatest($1::bigint, (SELECT coalesce(max(${t.identity}), 0) FROM ${t.name}), 1), ` +
            `greatest($1::bigint, (SELECT coalesce(max(${t.identity}), 0) FROM ${t.name})) > 0)`,
          [seq],
        );
      }
      tables[t.name] = copied;
    }
    await dst.query("COMMIT");
  } catch (err) {
    await dst.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    if (src.inTransaction) src.exec("ROLLBACK");
    src.close();
    await dst.end();
  }
  return { tables };
}
