// The generic "map" kind (types.ts MapStore, STYLE.md §5): input checks shared by every backend, and the in-memory
// implementation used by memory.ts. SQLite and PostgreSQL implement the same kind in sqlite/map.ts and postgres/map.ts.
import { StorageError, assertStoreName } from "./errors.ts";
import type { MapEntry, MapStore } from "./types.ts";

/** Reject a part PostgreSQL could not keep (U+0000) or that is not a string, so every backend refuses the same input. */
export function assertMapText(what: string, v: unknown): asserts v is string {
  if (typeof v !== "string") throw new StorageError("COMITY_ERR_STORAGE_INVALID", `map ${what} must be a string, got ${typeof v}`);
  if (v.includes("\u0000")) throw new StorageError("COMITY_ERR_STORAGE_INVALID", `map ${what} must not contain U+0000`);
}

/** Check host, owner and (when given) key and value of one call. */
export function assertMapArgs(host: unknown, owner: unknown, key?: unknown, value?: unknown, checkValue = false): void {
  assertMapText("host", host);
  assertMapText("owner", owner);
  if (key !== undefined) assertMapText("key", key);
  if (checkValue) assertMapText("value", value);
}

/** A non-negative integer limit or keep count. */
export function assertMapCount(what: string, n: unknown): asserts n is number {
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `map ${what} must be a non-negative integer, got ${String(n)}`);
  }
}

/** Validate the listing options; returns the limit (or undefined for all) and the direction. */
export function mapListOptions(opts: { limit?: number; newestFirst?: boolean } | undefined): { limit: number | undefined; newestFirst: boolean } {
  if (opts?.limit !== undefined) assertMapCount("limit", opts.limit);
  return { limit: opts?.limit, newestFirst: opts?.newestFirst === true };
}

/** Most keys one getMany call takes (keeps statements and memory bounded; callers ask for a page of item ids). */
export const MAP_MAX_KEYS_PER_CALL = 1000;

export function assertMapKeys(keys: unknown): asserts keys is string[] {
  if (!Array.isArray(keys)) throw new StorageError("COMITY_ERR_STORAGE_INVALID", "map keys must be an array");
  if (keys.length > MAP_MAX_KEYS_PER_CALL) throw new StorageError("COMITY_ERR_STORAGE_INVALID", `map getMany takes at most ${MAP_MAX_KEYS_PER_CALL} keys`);
  for (const k of keys) assertMapText("key", k);
}

export { assertStoreName as assertMapName };

/** Same order as SQLite's BINARY and PostgreSQL's "C" collation (UTF-8 bytes). */
function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

interface Slot {
  value: string;
  seq: number;
  updatedAt: number;
}

/** In-memory map stores of one Storage: `live` throws once the storage is closed. */
export function memoryMaps(live: () => void): ((name: string) => MapStore) & { dropUser(host: string, username: string): void } {
  /** store \0 host \0 owner -> key -> slot; a JS Map keeps insertion order, and a re-set key is moved to the end. */
  const owners = new Map<string, Map<string, Slot>>();
  let seq = 0;
  const id = (store: string, host: string, owner: string) => `${store}\u0000${host}\u0000${owner}`;
  const stores = new Map<string, MapStore>();
  const make = (store: string): MapStore => {
    const slotOf = (host: string, owner: string): Map<string, Slot> | undefined => owners.get(id(store, host, owner));
    const ordered = (host: string, owner: string, opts?: { limit?: number; newestFirst?: boolean }): MapEntry[] => {
      const { limit, newestFirst } = mapListOptions(opts);
      const all = [...(slotOf(host, owner) ?? new Map<string, Slot>())].map(([key, s]) => ({ key, value: s.value, updatedAt: s.updatedAt }));
      if (newestFirst) all.reverse();
      return limit === undefined ? all : all.slice(0, limit);
    };
    return {
      async get(host, owner, key) {
        live();
        assertMapArgs(host, owner, key);
        return slotOf(host, owner)?.get(key)?.value;
      },
      async getMany(host, owner, keys) {
        live();
        assertMapArgs(host, owner);
        assertMapKeys(keys);
        const m = slotOf(host, owner);
        const out = new Map<string, string>();
        for (const k of keys) {
          const v = m?.get(k);
          if (v !== undefined) out.set(k, v.value);
        }
        return out;
      },
      async set(host, owner, key, value) {
        live();
        assertMapArgs(host, owner, key, value, true);
        const k = id(store, host, owner);
        let m = owners.get(k);
        if (m === undefined) owners.set(k, (m = new Map()));
        m.delete(key);
        m.set(key, { value, seq: ++seq, updatedAt: Date.now() });
      },
      async delete(host, owner, key) {
        live();
        assertMapArgs(host, owner, key);
        const k = id(store, host, owner);
        const m = owners.get(k);
        const had = m?.delete(key) ?? false;
        if (m !== undefined && m.size === 0) owners.delete(k);
        return had;
      },
      async entries(host, owner, opts) {
        live();
        assertMapArgs(host, owner);
        return ordered(host, owner, opts);
      },
      async keys(host, owner, opts) {
        live();
        assertMapArgs(host, owner);
        return ordered(host, owner, opts).map((e) => e.key);
      },
      async count(host, owner) {
        live();
        assertMapArgs(host, owner);
        return slotOf(host, owner)?.size ?? 0;
      },
      async trim(host, owner, keep) {
        live();
        assertMapArgs(host, owner);
        assertMapCount("keep", keep);
        const k = id(store, host, owner);
        const m = owners.get(k);
        if (m === undefined || m.size <= keep) return [];
        const removed = [...m.keys()].slice(0, m.size - keep);
        for (const key of removed) m.delete(key);
        if (m.size === 0) owners.delete(k);
        return removed;
      },
      async clear(host, owner) {
        live();
        assertMapArgs(host, owner);
        const k = id(store, host, owner);
        const n = owners.get(k)?.size ?? 0;
        owners.delete(k);
        return n;
      },
      async owners(host, opts) {
        live();
        assertMapText("host", host);
        const prefix = opts?.prefix ?? "";
        assertMapText("prefix", prefix);
        const head = `${store}\u0000${host}\u0000`;
        const out: string[] = [];
        for (const [k, m] of owners) {
          if (m.size === 0 || !k.startsWith(head)) continue;
          const owner = k.slice(head.length);
          if (owner.startsWith(prefix)) out.push(owner);
        }
        return out.sort(byUtf8);
      },
    };
  };
  const open = (name: string): MapStore => {
    assertStoreName(name);
    let s = stores.get(name);
    if (s === undefined) stores.set(name, (s = make(name)));
    return s;
  };
  /** Account deletion: the user's rows of every store (owner = username, or "username/..."), as the databases do. */
  const dropUser = (host: string, username: string): void => {
    for (const k of [...owners.keys()]) {
      const [, h, owner] = k.split("\u0000") as [string, string, string];
      if (h === host && (owner === username || owner.startsWith(`${username}/`))) owners.delete(k);
    }
  };
  return Object.assign(open, { dropUser });
}
