// The generic map kind (../types.ts MapStore) on PostgreSQL, table map_entries (migration 6). Same answers as
// ../sqlite/map.ts: the contract suite (../map.test.ts) runs both.
import type pg from "pg";
import { assertMapArgs, assertMapCount, assertMapKeys, assertMapText, mapListOptions } from "../map.ts";
import type { MapEntry, MapStore } from "../types.ts";
import type { Db } from "./store.ts";

/** A named (prepared) statement; defined here rather than imported so store.ts ↔ map.ts load in either order. */
function named(name: string, text: string): (values: unknown[]) => pg.QueryConfig<unknown[]> {
  return (values) => ({ name, text, values });
}

const W = "store = $1 AND host = $2 AND owner = $3";
const Q = {
  get: named("map_get", `SELECT value FROM map_entries WHERE ${W} AND key = $4`),
  getMany: named("map_get_many", `SELECT key, value FROM map_entries WHERE ${W} AND key = ANY($4::text[])`),
  // excluded.seq is the identity's next value, taken for the proposed row: a rewrite moves the key to the newest place.
  set: named(
    "map_set",
    "INSERT INTO map_entries (store, host, owner, key, value, updated_at) VALUES ($1, $2, $3, $4, $5, $6) " +
      "ON CONFLICT (store, host, owner, key) DO UPDATE SET value = excluded.value, seq = excluded.seq, updated_at = excluded.updated_at",
  ),
  delete: named("map_delete", `DELETE FROM map_entries WHERE ${W} AND key = $4`),
  asc: named("map_asc", `SELECT key, value, updated_at FROM map_entries WHERE ${W} ORDER BY seq LIMIT $4`),
  desc: named("map_desc", `SELECT key, value, updated_at FROM map_entries WHERE ${W} ORDER BY seq DESC LIMIT $4`),
  count: named("map_count", `SELECT count(*)::bigint AS n FROM map_entries WHERE ${W}`),
  trim: named(
    "map_trim",
    `DELETE FROM map_entries WHERE ${W} AND seq <= (SELECT seq FROM map_entries WHERE ${W} ORDER BY seq DESC LIMIT 1 OFFSET $4) RETURNING key`,
  ),
  clear: named("map_clear", `DELETE FROM map_entries WHERE ${W}`),
  owners: named(
    "map_owners",
    "SELECT DISTINCT owner FROM map_entries WHERE store = $1 AND host = $2 AND owner >= $3 AND left(owner, length($3)) = $3 ORDER BY owner",
  ),
};

/** Named maps over one pool. */
export function pgMaps(db: Db): (name: string) => MapStore {
  const list = async (o: [string, string, string], opts: { limit?: number; newestFirst?: boolean } | undefined): Promise<MapEntry[]> => {
    const { limit, newestFirst } = mapListOptions(opts);
    const rows = (await db.query<{ key: string; value: string; updated_at: number }>((newestFirst ? Q.desc : Q.asc)([...o, limit ?? null]))).rows;
    return rows.map((r) => ({ key: r.key, value: r.value, updatedAt: r.updated_at }));
  };
  const stores = new Map<string, MapStore>();
  const make = (store: string): MapStore => ({
    async get(host, owner, key) {
      db.live();
      assertMapArgs(host, owner, key);
      return (await db.query<{ value: string }>(Q.get([store, host, owner, key]))).rows[0]?.value;
    },
    async getMany(host, owner, keys) {
      db.live();
      assertMapArgs(host, owner);
      assertMapKeys(keys);
      const out = new Map<string, string>();
      if (keys.length === 0) return out;
      for (const r of (await db.query<{ key: string; value: string }>(Q.getMany([store, host, owner, keys]))).rows) out.set(r.key, r.value);
      return out;
    },
    async set(host, owner, key, value) {
      db.live();
      assertMapArgs(host, owner, key, value, true);
      await db.query(Q.set([store, host, owner, key, value, Date.now()]));
    },
    async delete(host, owner, key) {
      db.live();
      assertMapArgs(host, owner, key);
      return ((await db.query(Q.delete([store, host, owner, key]))).rowCount ?? 0) > 0;
    },
    async entries(host, owner, opts) {
      db.live();
      assertMapArgs(host, owner);
      return list([store, host, owner], opts);
    },
    async keys(host, owner, opts) {
      db.live();
      assertMapArgs(host, owner);
      return (await list([store, host, owner], opts)).map((e) => e.key);
    },
    async count(host, owner) {
      db.live();
      assertMapArgs(host, owner);
      return (await db.query<{ n: number }>(Q.count([store, host, owner]))).rows[0]?.n ?? 0;
    },
    async trim(host, owner, keep) {
      db.live();
      assertMapArgs(host, owner);
      assertMapCount("keep", keep);
      return (await db.query<{ key: string }>(Q.trim([store, host, owner, keep]))).rows.map((r) => r.key);
    },
    async clear(host, owner) {
      db.live();
      assertMapArgs(host, owner);
      return (await db.query(Q.clear([store, host, owner]))).rowCount ?? 0;
    },
    async owners(host, opts) {
      db.live();
      assertMapText("host", host);
      const prefix = opts?.prefix ?? "";
      assertMapText("prefix", prefix);
      return (await db.query<{ owner: string }>(Q.owners([store, host, prefix]))).rows.map((r) => r.owner);
    },
  });
  return (name: string): MapStore => {
    let s = stores.get(name);
    if (s === undefined) stores.set(name, (s = make(name)));
    return s;
  };
}
