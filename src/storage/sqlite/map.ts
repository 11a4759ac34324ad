// The generic map kind (../types.ts MapStore) on SQLite, table map_entries (migration 6).
import type Database from "better-sqlite3";
import { assertMapArgs, assertMapCount, assertMapKeys, assertMapText, mapListOptions } from "../map.ts";
import type { MapEntry, MapStore } from "../types.ts";

type Owner = [store: string, host: string, owner: string];
interface Row {
  key: string;
  value: string;
  updated_at: number;
}

/** Statements shared by every named map of one database; `live` throws once the storage is closed. */
export function sqliteMaps(db: Database.Database, live: () => unknown): (name: string) => MapStore {
  const W = "store = ? AND host = ? AND owner = ?";
  const st = {
    get: db.prepare<[...Owner, string], string>(`SELECT value FROM map_entries WHERE ${W} AND key = ?`).pluck(),
    // json_each takes the whole key list as one parameter: one statement whatever the number of keys.
    getMany: db.prepare<[...Owner, string], { key: string; value: string }>(
      `SELECT key, value FROM map_entries WHERE ${W} AND key IN (SELECT value FROM json_each(?))`,
    ),
    // One statement, so the position (max + 1 within the owner) and the write are atomic.
    set: db.prepare<[...Owner, string, string, ...Owner, number]>(
      "INSERT INTO map_entries (store, host, owner, key, value, seq, updated_at) " +
        `VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM map_entries WHERE ${W}), ?) ` +
        "ON CONFLICT (store, host, owner, key) DO UPDATE SET value = excluded.value, seq = excluded.seq, updated_at = excluded.updated_at",
    ),
    delete: db.prepare<[...Owner, string]>(`DELETE FROM map_entries WHERE ${W} AND key = ?`),
    asc: db.prepare<[...Owner, number], Row>(`SELECT key, value, updated_at FROM map_entries WHERE ${W} ORDER BY seq LIMIT ?`),
    desc: db.prepare<[...Owner, number], Row>(`SELECT key, value, updated_at FROM map_entries WHERE ${W} ORDER BY seq DESC LIMIT ?`),
    count: db.prepare<Owner, number>(`SELECT count(*) FROM map_entries WHERE ${W}`).pluck(),
    trim: db
      .prepare<[...Owner, ...Owner, number], string>(
        `DELETE FROM map_entries WHERE ${W} AND seq <= (SELECT seq FROM map_entries WHERE ${W} ORDER BY seq DESC LIMIT 1 OFFSET ?) RETURNING key`,
      )
      .pluck(),
    clear: db.prepare<Owner>(`DELETE FROM map_entries WHERE ${W}`),
    owners: db
      .prepare<[string, string, string, string, string], string>(
        "SELECT DISTINCT owner FROM map_entries WHERE store = ? AND host = ? AND owner >= ? AND substr(owner, 1, length(?)) = ? ORDER BY owner",
      )
      .pluck(),
  };
  const list = (o: Owner, opts: { limit?: number; newestFirst?: boolean } | undefined): MapEntry[] => {
    const { limit, newestFirst } = mapListOptions(opts);
    return (newestFirst ? st.desc : st.asc).all(...o, limit ?? -1).map((r) => ({ key: r.key, value: r.value, updatedAt: r.updated_at }));
  };
  const stores = new Map<string, MapStore>();
  const make = (store: string): MapStore => ({
    async get(host, owner, key) {
      live();
      assertMapArgs(host, owner, key);
      return st.get.get(store, host, owner, key);
    },
    async getMany(host, owner, keys) {
      live();
      assertMapArgs(host, owner);
      assertMapKeys(keys);
      const out = new Map<string, string>();
      if (keys.length === 0) return out;
      for (const r of st.getMany.all(store, host, owner, JSON.stringify(keys))) out.set(r.key, r.value);
      return out;
    },
    async set(host, owner, key, value) {
      live();
      assertMapArgs(host, owner, key, value, true);
      st.set.run(store, host, owner, key, value, store, host, owner, Date.now());
    },
    async delete(host, owner, key) {
      live();
      assertMapArgs(host, owner, key);
      return st.delete.run(store, host, owner, key).changes > 0;
    },
    async entries(host, owner, opts) {
      live();
      assertMapArgs(host, owner);
      return list([store, host, owner], opts);
    },
    async keys(host, owner, opts) {
      live();
      assertMapArgs(host, owner);
      return list([store, host, owner], opts).map((e) => e.key);
    },
    async count(host, owner) {
      live();
      assertMapArgs(host, owner);
      return st.count.get(store, host, owner) ?? 0;
    },
    async trim(host, owner, keep) {
      live();
      assertMapArgs(host, owner);
      assertMapCount("keep", keep);
      return st.trim.all(store, host, owner, store, host, owner, keep);
    },
    async clear(host, owner) {
      live();
      assertMapArgs(host, owner);
      return st.clear.run(store, host, owner).changes;
    },
    async owners(host, opts) {
      live();
      assertMapText("host", host);
      const prefix = opts?.prefix ?? "";
      assertMapText("prefix", prefix);
      return st.owners.all(store, host, prefix, prefix, prefix);
    },
  });
  return (name: string): MapStore => {
    let s = stores.get(name);
    if (s === undefined) stores.set(name, (s = make(name)));
    return s;
  };
}
