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

/** The storage root handed to the server and modules. */
export interface Storage {
  readonly kind: "sqlite" | "postgres" | "memory";
  readonly accounts: AccountStore;
  /** Named key/value store, e.g. storage.keyval("private"). */
  keyval(name: string): KeyValueStore;
  close(): Promise<void>;
}
