// In-memory implementation of the Storage interfaces (src/storage/types.ts) for unit tests; nothing persists.
import { assertKeyvalValue, assertStoreName, StorageError } from "./errors.ts";
import type { Account, AccountStore, KeyValueStore, Storage, StoredCredentials } from "./types.ts";

/** NUL cannot appear in a JID part, so it separates the parts of a map key without ambiguity. */
const SEP = "\u0000";

/** Same order as SQLite's BINARY collation (UTF-8 bytes), so both stores list accounts identically. */
function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Create an empty in-memory Storage; values are copied in and out, so callers cannot alias stored state. */
export function createMemoryStorage(): Storage {
  /** host -> username -> account */
  const accounts = new Map<string, Map<string, Account>>();
  /** host SEP username -> store SEP key -> value */
  const docs = new Map<string, Map<string, string>>();
  const keyvals = new Map<string, KeyValueStore>();
  let closed = false;

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
      docs.delete(host + SEP + username);
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

  return {
    kind: "memory",
    accounts: accountStore,
    keyval(name) {
      assertStoreName(name);
      let kv = keyvals.get(name);
      if (kv === undefined) {
        kv = openKeyval(name);
        keyvals.set(name, kv);
      }
      return kv;
    },
    async close() {
      closed = true;
    },
  };
}
