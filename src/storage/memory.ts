// In-memory implementation of the Storage interfaces (src/storage/types.ts) for unit tests; nothing persists.
import { assertIds, assertKeyvalValue, assertOfflinePush, assertRosterItem, assertStoreName, StorageError } from "./errors.ts";
import type {
  AbuseReport,
  AbuseReportStore,
  IncidentRecord,
  IncidentStore,
  Account,
  AccountStore,
  KeyValueStore,
  OfflineMessage,
  OfflineStore,
  RosterItem,
  RosterStore,
  ServerRosterAuditRecord,
  ServerRosterEntry,
  ServerRosterStore,
  Storage,
  StoredCredentials,
} from "./types.ts";
import { memoryArchiveStore } from "./archive.ts";
import { memoryMaps } from "./map.ts";
import { assertAudit, assertServerRosterEntry, auditLimit, copyServerRosterEntry } from "./server-roster.ts";

/** NUL cannot appear in a JID part, so it separates the parts of a map key without ambiguity. */
const SEP = "\u0000";

/** Same order as SQLite's BINARY collation (UTF-8 bytes), so both stores list accounts identically. */
function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** One user's roster: the version counter, the items by JID, and pending inbound requests by JID. */
interface MemoryRoster {
  version: number;
  items: Map<string, RosterItem>;
  pendingIn: Map<string, { stanza: string; createdAt: number }>;
}

/** A stored copy of a roster item holding only the interface's fields (no caller extras, no aliasing). */
function copyItem(item: RosterItem): RosterItem {
  const out: RosterItem = { jid: item.jid, subscription: item.subscription, ask: item.ask, approved: item.approved, groups: [...item.groups] };
  if (item.name !== undefined) out.name = item.name;
  return out;
}

/** Create an empty in-memory Storage; values are copied in and out, so callers cannot alias stored state. */
export function createMemoryStorage(): Storage {
  /** host -> username -> account */
  const accounts = new Map<string, Map<string, Account>>();
  /** host SEP username -> store SEP key -> value */
  const docs = new Map<string, Map<string, string>>();
  const keyvals = new Map<string, KeyValueStore>();
  /** host SEP username -> roster */
  const rosters = new Map<string, MemoryRoster>();
  /** host SEP username -> queue, oldest first */
  const offline = new Map<string, OfflineMessage[]>();
  /** Ids are never reused, like SQLite's AUTOINCREMENT. */
  let nextOfflineId = 1;
  let closed = false;
  const archive = memoryArchiveStore(() => live());
  const maps = memoryMaps(() => live());

  const live = (): void => {
    if (closed) throw new StorageError("COMITY_ERR_STORAGE_CLOSED", "memory storage is closed");
  };
  const hostAccounts = (host: string): Map<string, Account> => {
    let users = accounts.get(host);
    if (users === undefined) {
      users = new Map();
      accounts.set(host, users);
    }
    return users;
  };
  const copy = (account: Account): Account => structuredClone(account);

  const accountStore: AccountStore = {
    async get(host, username) {
      live();
      const account = accounts.get(host)?.get(username);
      return account === undefined ? undefined : copy(account);
    },
    async create(host, username, credentials) {
      live();
      const users = hostAccounts(host);
      if (users.has(username)) return false;
      users.set(username, { host, username, credentials: structuredClone(credentials), createdAt: Date.now() });
      return true;
    },
    async createMany(host, entries, opts) {
      live();
      const replace = opts?.replace === true;
      // Stage the batch first so a throwing iterable changes nothing, like the SQL transaction.
      const staged = new Map(hostAccounts(host));
      const now = Date.now();
      let written = 0;
      for (const { username, credentials } of entries) {
        const existing = staged.get(username);
        if (existing !== undefined && !replace) continue;
        const creds: StoredCredentials = structuredClone(credentials);
        staged.set(username, existing === undefined ? { host, username, credentials: creds, createdAt: now } : { ...existing, credentials: creds });
        written++;
      }
      accounts.set(host, staged);
      return written;
    },
    async setCredentials(host, username, credentials) {
      live();
      const account = accounts.get(host)?.get(username);
      if (account === undefined) return false;
      account.credentials = structuredClone(credentials);
      return true;
    },
    async delete(host, username) {
      live();
      if (accounts.get(host)?.delete(username) !== true) return false;
      const owner = host + SEP + username;
      docs.delete(owner);
      // Keep the version, one step on (see the SQLite store): a re-created account starts past the old one's.
      const roster = rosters.get(owner);
      if (roster !== undefined && roster.version > 0) rosters.set(owner, { version: roster.version + 1, items: new Map(), pendingIn: new Map() });
      else rosters.delete(owner);
      offline.delete(owner);
      archive.drop(owner);
      maps.dropUser(host, username);
      return true;
    },
    async list(host) {
      live();
      return [...(accounts.get(host)?.keys() ?? [])].sort(byUtf8);
    },
    async count(host) {
      live();
      return accounts.get(host)?.size ?? 0;
    },
  };

  const openKeyval = (store: string): KeyValueStore => ({
    async get(host, user, key) {
      live();
      return docs.get(host + SEP + user)?.get(store + SEP + key);
    },
    async set(host, user, key, value) {
      live();
      assertKeyvalValue(value);
      const owner = host + SEP + user;
      const slot = store + SEP + key;
      if (value === undefined) {
        const userDocs = docs.get(owner);
        userDocs?.delete(slot);
        if (userDocs?.size === 0) docs.delete(owner);
        return;
      }
      let userDocs = docs.get(owner);
      if (userDocs === undefined) {
        userDocs = new Map();
        docs.set(owner, userDocs);
      }
      userDocs.set(slot, value);
    },
  });

  const rosterOf = (host: string, username: string, create: boolean): MemoryRoster | undefined => {
    const owner = host + SEP + username;
    let roster = rosters.get(owner);
    if (roster === undefined && create) {
      roster = { version: 0, items: new Map(), pendingIn: new Map() };
      rosters.set(owner, roster);
    }
    return roster;
  };

  const rosterStore: RosterStore = {
    async get(host, username) {
      live();
      const roster = rosterOf(host, username, false);
      if (roster === undefined) return { version: 0, items: [] };
      const items = [...roster.items.values()].sort((a, b) => byUtf8(a.jid, b.jid)).map(copyItem);
      return { version: roster.version, items };
    },
    async getItem(host, username, jid) {
      live();
      const item = rosterOf(host, username, false)?.items.get(jid);
      return item === undefined ? undefined : copyItem(item);
    },
    async setItem(host, username, item) {
      live();
      assertRosterItem(item);
      const roster = rosterOf(host, username, true) as MemoryRoster;
      roster.items.set(item.jid, copyItem(item));
      return ++roster.version;
    },
    async removeItem(host, username, jid) {
      live();
      const roster = rosterOf(host, username, false);
      if (roster?.items.delete(jid) !== true) return undefined;
      return ++roster.version;
    },
    async count(host, username) {
      live();
      return rosterOf(host, username, false)?.items.size ?? 0;
    },
    async pendingIn(host, username) {
      live();
      const pending = rosterOf(host, username, false)?.pendingIn;
      if (pending === undefined) return [];
      return [...pending.entries()]
        .sort(([ja, a], [jb, b]) => a.createdAt - b.createdAt || byUtf8(ja, jb))
        .map(([jid, { stanza }]) => ({ jid, stanza }));
    },
    async setPendingIn(host, username, jid, stanza) {
      live();
      if (stanza !== undefined && typeof stanza !== "string") {
        throw new StorageError("COMITY_ERR_STORAGE_INVALID", `pending-in stanza must be a string or undefined, got ${typeof stanza}`);
      }
      if (stanza === undefined) {
        rosterOf(host, username, false)?.pendingIn.delete(jid);
        return;
      }
      const pending = (rosterOf(host, username, true) as MemoryRoster).pendingIn;
      const existing = pending.get(jid);
      // A repeated request keeps its original arrival time, as the SQL upsert does.
      pending.set(jid, { stanza, createdAt: existing?.createdAt ?? Date.now() });
    },
  };

  const offlineStore: OfflineStore = {
    async push(host, username, stanza, opts) {
      live();
      assertOfflinePush(stanza, opts);
      const owner = host + SEP + username;
      let queue = offline.get(owner);
      if ((queue?.length ?? 0) >= opts.quota) return false;
      if (queue === undefined) {
        queue = [];
        offline.set(owner, queue);
      }
      queue.push({ id: nextOfflineId++, stanza, stamp: opts.stamp });
      return true;
    },
    async list(host, username) {
      live();
      return (offline.get(host + SEP + username) ?? []).map((m) => ({ ...m }));
    },
    async delete(host, username, ids) {
      live();
      assertIds(ids);
      const owner = host + SEP + username;
      const queue = offline.get(owner);
      if (queue === undefined) return;
      const gone = new Set(ids);
      const kept = queue.filter((m) => !gone.has(m.id));
      if (kept.length === 0) offline.delete(owner);
      else offline.set(owner, kept);
    },
    async count(host, username) {
      live();
      return offline.get(host + SEP + username)?.length ?? 0;
    },
  };

  /** host SEP peer -> entry */
  const serverRoster = new Map<string, ServerRosterEntry>();
  const serverRosterAudit: ServerRosterAuditRecord[] = [];
  let nextAuditId = 1;
  const appendAudit = (host: string, peer: string, a: NonNullable<Parameters<ServerRosterStore["appendAudit"]>[2]>): number => {
    const id = nextAuditId++;
    serverRosterAudit.push({ id, host, peer, action: a.action, actor: a.actor, via: a.via, detail: a.detail ?? null, at: a.at ?? Date.now() });
    return id;
  };
  const byHostPeer = (a: ServerRosterEntry, b: ServerRosterEntry): number => byUtf8(a.host, b.host) || byUtf8(a.peer, b.peer);

  const serverRosterStore: ServerRosterStore = {
    async list(host) {
      live();
      return [...serverRoster.values()].filter((e) => host === undefined || e.host === host).sort(byHostPeer).map(copyServerRosterEntry);
    },
    async get(host, peer) {
      live();
      const e = serverRoster.get(host + SEP + peer);
      return e === undefined ? undefined : copyServerRosterEntry(e);
    },
    async update(host, peer, decide) {
      live();
      // Synchronous from read to write, so no other update can interleave (the SQL store uses a transaction).
      const key = host + SEP + peer;
      const stored = serverRoster.get(key);
      const before = stored === undefined ? undefined : copyServerRosterEntry(stored);
      const change = decide(before === undefined ? undefined : copyServerRosterEntry(before));
      if (change === undefined) return { before, after: before, changed: false };
      if (change.entry !== undefined) assertServerRosterEntry(change.entry, host, peer);
      if (change.audit !== undefined) assertAudit(change.audit);
      if (change.entry === undefined) serverRoster.delete(key);
      else serverRoster.set(key, copyServerRosterEntry(change.entry));
      if (change.audit !== undefined) appendAudit(host, peer, change.audit);
      return { before, after: change.entry === undefined ? undefined : copyServerRosterEntry(change.entry), changed: true };
    },
    async appendAudit(host, peer, record) {
      live();
      assertAudit(record);
      return appendAudit(host, peer, record);
    },
    async audit(host, opts) {
      live();
      const limit = auditLimit(opts?.limit);
      const out: ServerRosterAuditRecord[] = [];
      for (let i = serverRosterAudit.length - 1; i >= 0 && out.length < limit; i--) {
        const r = serverRosterAudit[i]!;
        if (r.host === host && (opts?.peer === undefined || r.peer === opts.peer)) out.push({ ...r });
      }
      return out;
    },
  };

  return {
    kind: "memory",
    accounts: accountStore,
    rosters: rosterStore,
    offline: offlineStore,
    serverRoster: serverRosterStore,
    ...memoryIncidentStores(live),
    archive: {
      append: (host, username, m) => archive.append(host, username, m),
      appendNow: (host, username, m) => archive.appendNow(host, username, m),
      query: (host, username, q) => archive.query(host, username, q),
      trim: (host, username, opts) => archive.trim(host, username, opts),
      clear: (host, username) => archive.clear(host, username),
      replace: (host, username, id, make) => archive.replace(host, username, id, make),
    },
    keyval(name) {
      assertStoreName(name);
      let kv = keyvals.get(name);
      if (kv === undefined) {
        kv = openKeyval(name);
        keyvals.set(name, kv);
      }
      return kv;
    },
    map: maps,
    async close() {
      closed = true;
    },
  };
}

/** XEP-0268 incidents and XEP-0377 abuse reports kept in memory (docs/trust-uses.md). */
function memoryIncidentStores(live: () => void): { incidents: IncidentStore; abuseReports: AbuseReportStore } {
  const incidents: IncidentRecord[] = [];
  const reports: AbuseReport[] = [];
  let nextIncident = 1;
  let nextReport = 1;
  const newestFirst = <T extends { id: number }>(a: T, b: T): number => b.id - a.id;
  return {
    incidents: {
      async add(record) {
        live();
        const stored: IncidentRecord = { ...record, id: nextIncident++ };
        incidents.push(stored);
        return { ...stored };
      },
      async get(host, id) {
        live();
        const r = incidents.find((i) => i.host === host && i.id === id);
        return r === undefined ? undefined : { ...r };
      },
      async list(host, opts) {
        live();
        const out = incidents.filter((i) => i.host === host && (opts?.status === undefined || i.status === opts.status)).sort(newestFirst);
        return (opts?.limit === undefined ? out : out.slice(0, opts.limit)).map((i) => ({ ...i }));
      },
      async setStatus(host, id, status, note) {
        live();
        const r = incidents.find((i) => i.host === host && i.id === id);
        if (r === undefined) return false;
        r.status = status;
        if (note !== undefined) r.note = note;
        return true;
      },
    },
    abuseReports: {
      async add(report) {
        live();
        const stored: AbuseReport = { ...report, id: nextReport++ };
        reports.push(stored);
        return { ...stored };
      },
      async list(host, opts) {
        live();
        const out = reports.filter((r) => r.host === host && (opts?.account === undefined || r.account === opts.account)).sort(newestFirst);
        return (opts?.limit === undefined ? out : out.slice(0, opts.limit)).map((r) => ({ ...r }));
      },
      async counts(host) {
        live();
        const by = new Map<string, { account: string; count: number; last: number }>();
        for (const r of reports) {
          if (r.host !== host) continue;
          const c = by.get(r.account) ?? { account: r.account, count: 0, last: 0 };
          c.count++;
          c.last = Math.max(c.last, r.at);
          by.set(r.account, c);
        }
        return [...by.values()].sort((a, b) => b.count - a.count || b.last - a.last || byUtf8(a.account, b.account));
      },
    },
  };
}
