// Storage interfaces, one per concern (DESIGN.md "Storage"). Implementations: sqlite/ (embedded default),
// later postgres/. Every method is async so a networked database fits the same interface; a resolved
// promise means the write is durable.

/** SCRAM credential for one hash (RFC 5802 §3): what the server keeps instead of a password. */
export interface ScramCredential {
  /** base64 salt */
  salt: string;
  iterations: number;
  /** base64 StoredKey = H(ClientKey) */
  storedKey: string;
  /** base64 ServerKey = HMAC(SaltedPassword, "Server Key") */
  serverKey: string;
}

/** What is stored for an account's password. */
export interface StoredCredentials {
  /** Present only with `auth.password_storage: plain`. */
  plain?: string;
  scram: { "SHA-1"?: ScramCredential; "SHA-256"?: ScramCredential };
}

export interface Account {
  host: string;
  username: string;
  credentials: StoredCredentials;
  createdAt: number;
}

/** Accounts of every served host. */
export interface AccountStore {
  get(host: string, username: string): Promise<Account | undefined>;
  /** Create; resolves false (and changes nothing) when the account exists. */
  create(host: string, username: string, credentials: StoredCredentials): Promise<boolean>;
  /** Bulk create in one transaction; returns how many were created (existing ones are skipped, or replaced with `replace`). */
  createMany(host: string, entries: Iterable<{ username: string; credentials: StoredCredentials }>, opts?: { replace?: boolean }): Promise<number>;
  /** Replace the credentials; resolves false when there is no such account. */
  setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<boolean>;
  /** Delete the account and its data; resolves false when there was none. */
  delete(host: string, username: string): Promise<boolean>;
  list(host: string): Promise<string[]>;
  count(host: string): Promise<number>;
}

/** Small per-host key/value documents (modules' simple needs, Prosody's open_store). */
export interface KeyValueStore {
  get(host: string, user: string, key: string): Promise<string | undefined>;
  set(host: string, user: string, key: string, value: string | undefined): Promise<void>;
}

/** RFC 6121 §2.1.2.5 subscription states of a roster item. */
export type Subscription = "none" | "to" | "from" | "both";

/** One contact in a user's roster (RFC 6121 §2.1). */
export interface RosterItem {
  /** The contact's bare JID, prepared. */
  jid: string;
  name?: string;
  subscription: Subscription;
  /** Outbound request pending: shown to clients as ask='subscribe'. */
  ask: boolean;
  /** Pre-approval of an inbound request (RFC 6121 §3.4). */
  approved: boolean;
  groups: string[];
}

/** Users' rosters with a per-user version counter (RFC 6121 §2.6 roster versioning). */
export interface RosterStore {
  /** All items and the current version (0 for an empty, never-changed roster). */
  get(host: string, username: string): Promise<{ version: number; items: RosterItem[] }>;
  getItem(host: string, username: string, jid: string): Promise<RosterItem | undefined>;
  /** Insert or replace an item; resolves to the roster's new version. */
  setItem(host: string, username: string, item: RosterItem): Promise<number>;
  /** Remove an item; resolves to the new version, or undefined when there was no such item. */
  removeItem(host: string, username: string, jid: string): Promise<number | undefined>;
  count(host: string, username: string): Promise<number>;
  /** Inbound subscription requests awaiting the user (RFC 6121 §3.1.3), with the presence stanza to redeliver. */
  pendingIn(host: string, username: string): Promise<{ jid: string; stanza: string }[]>;
  /** Record (stanza given) or clear (undefined) a pending inbound request from `jid`. */
  setPendingIn(host: string, username: string, jid: string, stanza: string | undefined): Promise<void>;
}

/** A message stored for an offline user (XEP-0160). */
export interface OfflineMessage {
  id: number;
  /** Serialised stanza. */
  stanza: string;
  /** When it was stored, ms since the epoch (for the XEP-0203 delay stamp). */
  stamp: number;
}

/** Per-user offline message queues with a quota. */
export interface OfflineStore {
  /** Append; resolves false (storing nothing) when the user already has `quota` messages. */
  push(host: string, username: string, stanza: string, opts: { stamp: number; quota: number }): Promise<boolean>;
  /** Oldest first. */
  list(host: string, username: string): Promise<OfflineMessage[]>;
  /** Delete delivered messages. */
  delete(host: string, username: string, ids: number[]): Promise<void>;
  count(host: string, username: string): Promise<number>;
}

/** The storage root handed to the server and modules. */
export interface Storage {
  readonly kind: "sqlite" | "postgres" | "memory";
  readonly accounts: AccountStore;
  readonly rosters: RosterStore;
  readonly offline: OfflineStore;
  /** Named key/value store, e.g. storage.keyval("private"). */
  keyval(name: string): KeyValueStore;
  close(): Promise<void>;
}
