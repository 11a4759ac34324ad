// Shared pieces of the XEP-0313 archive stores (types.ts ArchiveStore): input checks, id parsing, and the
// in-memory implementation used by memory.ts. Ids are the decimal form of a per-database sequence number.
import { StorageError } from "./errors.ts";
import type { ArchivedMessage, ArchivePage, ArchiveQuery, ArchiveStore } from "./types.ts";

/** Reject a message the archive cannot store. */
export function assertArchiveMessage(m: Omit<ArchivedMessage, "id">): void {
  if (m === null || typeof m !== "object") throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive message must be an object");
  if (typeof m.with !== "string" || m.with === "") throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive `with` must be a non-empty string");
  if (m.direction !== "in" && m.direction !== "out") throw new StorageError("COMITY_ERR_STORAGE_INVALID", `archive direction must be "in" or "out", got ${String(m.direction)}`);
  if (typeof m.stanza !== "string") throw new StorageError("COMITY_ERR_STORAGE_INVALID", `archive stanza must be a string, got ${typeof m.stanza}`);
  if (typeof m.timestamp !== "number" || !Number.isFinite(m.timestamp)) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `archive timestamp must be a finite number, got ${String(m.timestamp)}`);
  }
}

/** Reject a malformed query (max must be a non-negative integer; times finite). */
export function assertArchiveQuery(q: ArchiveQuery): void {
  if (typeof q.max !== "number" || !Number.isSafeInteger(q.max) || q.max < 0) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `archive max must be a non-negative integer, got ${String(q.max)}`);
  }
  for (const t of [q.start, q.end]) {
    if (t !== undefined && (typeof t !== "number" || !Number.isFinite(t))) throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive start/end must be finite numbers");
  }
  if (q.after !== undefined && q.before !== undefined) throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive query takes `after` or `before`, not both");
}

/** Reject bad trim options. */
export function assertArchiveTrim(opts: { keep?: number; before?: number }): void {
  if (opts.keep !== undefined && (!Number.isSafeInteger(opts.keep) || opts.keep < 0)) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `archive keep must be a non-negative integer, got ${String(opts.keep)}`);
  }
  if (opts.before !== undefined && (typeof opts.before !== "number" || !Number.isFinite(opts.before))) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive trim `before` must be a finite number");
  }
}

/** The sequence number behind an id, or undefined when the string cannot be one of ours. */
export function archiveSeq(id: string): number | undefined {
  if (typeof id !== "string" || !/^[1-9][0-9]{0,15}$/.test(id)) return undefined;
  const n = Number(id);
  return Number.isSafeInteger(n) ? n : undefined;
}

interface Row extends Omit<ArchivedMessage, "id"> {
  seq: number;
}

/** The page of `rows` (one user's archive, oldest first) that `q` asks for; undefined for an unknown after/before id. */
function pageOf(rows: readonly Row[], q: ArchiveQuery): ArchivePage | undefined {
  const anchor = q.after ?? (q.before === "" ? undefined : q.before);
  let anchorSeq: number | undefined;
  if (anchor !== undefined) {
    anchorSeq = archiveSeq(anchor);
    if (anchorSeq === undefined || !rows.some((r) => r.seq === anchorSeq)) return undefined;
  }
  const matching = rows.filter(
    (r) => (q.with === undefined || r.with === q.with) && (q.start === undefined || r.timestamp >= q.start) && (q.end === undefined || r.timestamp <= q.end),
  );
  let page: Row[];
  let complete: boolean;
  if (q.before !== undefined) {
    const older = anchorSeq === undefined ? matching : matching.filter((r) => r.seq < anchorSeq!);
    page = q.max === 0 ? [] : older.slice(-q.max);
    complete = older.length <= q.max;
  } else {
    const newer = anchorSeq === undefined ? matching : matching.filter((r) => r.seq > anchorSeq!);
    page = newer.slice(0, q.max);
    complete = newer.length <= q.max;
  }
  const items = page.map(({ seq, ...m }) => ({ id: String(seq), ...m }));
  return { items, first: items[0]?.id, last: items.at(-1)?.id, complete, count: matching.length };
}

/** The in-memory archive (one sequence for all users, never reused, like the SQL stores). */
export function memoryArchiveStore(live: () => void): ArchiveStore & { appendNow: NonNullable<ArchiveStore["appendNow"]>; drop(owner: string): void } {
  const SEP = "\u0000";
  const archives = new Map<string, Row[]>();
  let nextSeq = 1;
  const appendNow = (host: string, username: string, m: Omit<ArchivedMessage, "id">): string => {
    live();
    assertArchiveMessage(m);
    const owner = host + SEP + username;
    let rows = archives.get(owner);
    if (rows === undefined) archives.set(owner, (rows = []));
    const seq = nextSeq++;
    rows.push({ seq, with: m.with, direction: m.direction, stanza: m.stanza, timestamp: m.timestamp });
    return String(seq);
  };
  return {
    appendNow,
    async append(host, username, m) {
      return appendNow(host, username, m);
    },
    async query(host, username, q) {
      live();
      assertArchiveQuery(q);
      return pageOf(archives.get(host + SEP + username) ?? [], q);
    },
    async trim(host, username, opts) {
      live();
      assertArchiveTrim(opts);
      const owner = host + SEP + username;
      const rows = archives.get(owner);
      if (rows === undefined) return 0;
      let kept = opts.before === undefined ? rows : rows.filter((r) => r.timestamp >= opts.before!);
      if (opts.keep !== undefined && kept.length > opts.keep) kept = opts.keep === 0 ? [] : kept.slice(-opts.keep);
      const removed = rows.length - kept.length;
      if (kept.length === 0) archives.delete(owner);
      else archives.set(owner, kept);
      return removed;
    },
    async clear(host, username) {
      live();
      archives.delete(host + SEP + username);
    },
    async replace(host, username, id, make) {
      live();
      const seq = archiveSeq(id);
      const row = seq === undefined ? undefined : archives.get(host + SEP + username)?.find((r) => r.seq === seq);
      if (row === undefined) return undefined;
      const { seq: _seq, ...m } = row;
      const before = { id, ...m };
      const stanza = make(before);
      if (typeof stanza !== "string") throw new StorageError("COMITY_ERR_STORAGE_INVALID", "archive stanza must be a string");
      row.stanza = stanza;
      return before;
    },
    drop(owner) {
      archives.delete(owner);
    },
  };
}
