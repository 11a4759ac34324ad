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

/** One peer domain in one host's server roster (XEP-0267), as stored; see src/modules/server-buddies/api.ts. */
export interface ServerRosterEntry {
  host: string;
  peer: string;
  subscription: Subscription;
  /** They asked to trust us (inbound `subscribe`), waiting for an admin; and since when (ms since the epoch). */
  pendingIn: boolean;
  pendingInSince: number | null;
  /** We asked (outbound `subscribe`), waiting for them; and since when. */
  pendingOut: boolean;
  pendingOutSince: number | null;
  /** Our admin, when requesting, also approved the peer's reciprocal request (mutual trust). */
  preApproved: boolean;
  /** Whether the peer advertises urn:xmpp:server-presence (null: not known). */
  peerImplementsServerRosters: boolean | null;
  /** The peer's last server presence (null: never seen). */
  peerAvailable: boolean | null;
  peerStatus: string | null;
  peerPresenceAt: number | null;
  /** When the current subscription state began. */
  since: number;
  /** Who made the last decision and through which surface ("cli", "xmpp", "api", "web", "protocol"). */
  decidedBy: string | null;
  decidedVia: string | null;
  note: string | null;
}

/** One line of the server roster's audit log (append-only; kept after the entry is removed). */
export interface ServerRosterAuditRecord {
  id: number;
  host: string;
  peer: string;
  action: string;
  actor: string;
  via: string;
  detail: string | null;
  at: number;
}

/** What a {@link ServerRosterStore.update} step decides: the new entry (undefined: delete it) and its audit line. */
export interface ServerRosterChange {
  entry: ServerRosterEntry | undefined;
  /** Appended in the same transaction; omitted for bookkeeping that is not a trust change (peer presence). */
  audit?: { action: string; actor: string; via: string; detail?: string | null; at?: number };
}

/** Server rosters of every served host, with their audit log (XEP-0267). */
export interface ServerRosterStore {
  /** Entries of one host (or of every host), ordered by host then peer. */
  list(host?: string): Promise<ServerRosterEntry[]>;
  get(host: string, peer: string): Promise<ServerRosterEntry | undefined>;
  /**
   * Check-and-set in one transaction: `decide` sees the stored entry (or undefined) and returns the change,
   * or undefined to change nothing. It must be synchronous and free of side effects (it may run under a lock).
   * Resolves with the entries before and after, and whether anything was written.
   */
  update(
    host: string,
    peer: string,
    decide: (current: ServerRosterEntry | undefined) => ServerRosterChange | undefined,
  ): Promise<{ before: ServerRosterEntry | undefined; after: ServerRosterEntry | undefined; changed: boolean }>;
  /** Append an audit line that changes no entry. */
  appendAudit(host: string, peer: string, record: { action: string; actor: string; via: string; detail?: string | null; at?: number }): Promise<number>;
  /** Audit lines of a host (optionally one peer), newest first, at most `limit` (default 100). */
  audit(host: string, opts?: { peer?: string; limit?: number }): Promise<ServerRosterAuditRecord[]>;
}

/** XEP-0268 interactions: a report (iq set), inquiry (iq get), request (iq get) or response (iq set). */
export type IncidentKind = "report" | "inquiry" | "request" | "response";

/** What became of an incident interaction: accepted from a trusted peer, held for review, sent, or failed to send. */
export type IncidentStatus = "accepted" | "held" | "sent" | "failed";

/** One XEP-0268 interaction with a peer server, inbound or outbound; the IODEF payload is kept as received. */
export interface IncidentRecord {
  /** Local sequence number (per database, never reused). */
  id: number;
  host: string;
  /** The peer server's domain. */
  peer: string;
  direction: "in" | "out";
  kind: IncidentKind;
  /** The IODEF IncidentID text (RFC 5070 §3.3), when the payload carries one. */
  incidentId: string | null;
  status: IncidentStatus;
  /** The serialised IODEF element (Incident or IODEF-Document), unchanged. */
  payload: string;
  /** ms since the epoch. */
  at: number;
  /** Why it was held or failed, or an admin's remark. */
  note: string | null;
}

/** XEP-0268 incidents exchanged with peers, per host. */
export interface IncidentStore {
  /** Store a new record; resolves to it with its id. */
  add(record: Omit<IncidentRecord, "id">): Promise<IncidentRecord>;
  get(host: string, id: number): Promise<IncidentRecord | undefined>;
  /** Newest first; `status` filters, `limit` caps (default all). */
  list(host: string, opts?: { status?: IncidentStatus; limit?: number }): Promise<IncidentRecord[]>;
  /** Change the status (and note) of a record; resolves false when there is none. */
  setStatus(host: string, id: number, status: IncidentStatus, note?: string): Promise<boolean>;
}

/** A XEP-0377 report about one of our accounts, forwarded by a trusted peer server. */
export interface AbuseReport {
  id: number;
  host: string;
  /** The reported local account, bare JID. */
  account: string;
  /** The peer server that forwarded it. */
  peer: string;
  /** e.g. urn:xmpp:reporting:spam or urn:xmpp:reporting:abuse. */
  reason: string;
  text: string | null;
  /** The serialised <report/> element as received. */
  payload: string;
  at: number;
}

/** Forwarded abuse reports about local accounts, counted per account for admins. */
export interface AbuseReportStore {
  add(report: Omit<AbuseReport, "id">): Promise<AbuseReport>;
  /** Newest first, optionally for one account. */
  list(host: string, opts?: { account?: string; limit?: number }): Promise<AbuseReport[]>;
  /** Reports per reported account, most reported first. */
  counts(host: string): Promise<{ account: string; count: number; last: number }[]>;
}

/** One archived message of a user's archive (XEP-0313). */
export interface ArchivedMessage {
  /** Opaque, stable id; ids of one archive sort by insertion in query results. */
  id: string;
  /** The other party's bare JID. */
  with: string;
  /** "in": the user received it; "out": the user sent it. */
  direction: "in" | "out";
  /** Serialised stanza. */
  stanza: string;
  /** When it was archived, ms since the epoch. */
  timestamp: number;
}

/** Filters and paging of an archive query (XEP-0313 §4, XEP-0059 RSM). */
export interface ArchiveQuery {
  /** Only messages with this bare JID. */
  with?: string;
  /** Only messages archived at or after / at or before this time (ms since the epoch). */
  start?: number;
  end?: number;
  /** The page after this id (oldest first). */
  after?: string;
  /** The page before this id; "" means the last page. */
  before?: string;
  /** Most items in the page (0: count only). */
  max: number;
}

/** One page of an archive query. */
export interface ArchivePage {
  /** Oldest first. */
  items: ArchivedMessage[];
  /** Ids of the first and last item of the page (undefined for an empty page). */
  first: string | undefined;
  last: string | undefined;
  /** True when no item matching the filters lies beyond this page in the direction of paging. */
  complete: boolean;
  /** How many messages match the filters (ignoring after/before). */
  count: number;
}

/** Per-user message archives (XEP-0313 Message Archive Management). */
export interface ArchiveStore {
  /** Append a message; resolves to its id. */
  append(host: string, username: string, message: Omit<ArchivedMessage, "id">): Promise<string>;
  /**
   * Append without waiting, where the store allocates ids itself (SQLite write-behind, memory): returns the id at once,
   * the row is committed as `append` would commit it (SQLite: within 20 ms). Throws what `append` would reject with.
   * Absent where an id takes a round trip (PostgreSQL): callers use `append` then.
   */
  appendNow?(host: string, username: string, message: Omit<ArchivedMessage, "id">): string;
  /** One page; resolves undefined when `after`/`before` names an id that is not in this user's archive. */
  query(host: string, username: string, query: ArchiveQuery): Promise<ArchivePage | undefined>;
  /** Remove the oldest messages beyond `keep` newest, and (with `before`) every message older than that time; resolves to how many were removed. */
  trim(host: string, username: string, opts: { keep?: number; before?: number }): Promise<number>;
  /** Remove the user's whole archive (also done by AccountStore.delete). */
  clear(host: string, username: string): Promise<void>;
  /**
   * Replace the stored stanza of one message with what `make` returns for it (a tombstone: XEP-0425 moderation); its
   * id, `with`, direction and time stay. Resolves the message as it was, or undefined when the id is not in this archive.
   */
  replace(host: string, username: string, id: string, make: (current: ArchivedMessage) => string): Promise<ArchivedMessage | undefined>;
}

/** One entry of a {@link MapStore}. */
export interface MapEntry {
  key: string;
  value: string;
  /** When it was last set, ms since the epoch. */
  updatedAt: number;
}

/**
 * A generic stored kind (STYLE.md §5, Prosody's "map" store): per (host, owner), a named map from key to value, kept in
 * the order of the last write to each key. The owner is a username, "" for host-wide data, or a compound name a module
 * builds (e.g. "alice/urn:xmpp:avatar:data"; "/" cannot occur in a localpart, RFC 7622 §3.3.1). Hosts, owners, keys and
 * values are strings without U+0000. Modules that need a new table of per-owner documents ask for a named map instead.
 */
export interface MapStore {
  get(host: string, owner: string, key: string): Promise<string | undefined>;
  /** Several keys at once; the result holds only keys that exist. */
  getMany(host: string, owner: string, keys: readonly string[]): Promise<Map<string, string>>;
  /** Insert or replace; either way the key becomes the owner's newest. */
  set(host: string, owner: string, key: string, value: string): Promise<void>;
  /** Resolves true when the key existed. */
  delete(host: string, owner: string, key: string): Promise<boolean>;
  /** Entries oldest first (`newestFirst`: newest first), at most `limit`. */
  entries(host: string, owner: string, opts?: { limit?: number; newestFirst?: boolean }): Promise<MapEntry[]>;
  /** Keys in the same order as {@link entries}. */
  keys(host: string, owner: string, opts?: { limit?: number; newestFirst?: boolean }): Promise<string[]>;
  count(host: string, owner: string): Promise<number>;
  /** Keep only the `keep` newest entries; resolves the removed keys (in no particular order). */
  trim(host: string, owner: string, keep: number): Promise<string[]>;
  /** Remove every entry of the owner; resolves how many there were. */
  clear(host: string, owner: string): Promise<number>;
  /** Owners on the host with at least one entry (optionally only those starting with `prefix`), in byte order. */
  owners(host: string, opts?: { prefix?: string }): Promise<string[]>;
}

/**
 * Whether a storage server answers (PostgreSQL; SQLite and memory never go away). Turned by the outcome of real
 * queries, so it costs nothing while all is well: the first query that fails for want of a connection turns it down,
 * the first that succeeds after that turns it up again.
 */
export interface StorageHealth {
  readonly available: boolean;
  /** Queries that failed for want of a connection, since start. */
  readonly failures: number;
  /** Called on each change, with why it went down (or "reachable again"). */
  onChange(listener: (available: boolean, detail: string) => void): void;
}

/** The storage root handed to the server and modules. */
export interface Storage {
  readonly kind: "sqlite" | "postgres" | "memory";
  /** Present for a storage server that can become unreachable (PostgreSQL). */
  readonly health?: StorageHealth;
  readonly accounts: AccountStore;
  readonly rosters: RosterStore;
  readonly offline: OfflineStore;
  readonly serverRoster: ServerRosterStore;
  /** XEP-0268 incidents and XEP-0377 abuse reports (docs/trust-uses.md). */
  readonly incidents: IncidentStore;
  readonly abuseReports: AbuseReportStore;
  /** XEP-0313 message archives. */
  readonly archive: ArchiveStore;
  /** Named key/value store, e.g. storage.keyval("private"). */
  keyval(name: string): KeyValueStore;
  /** Named map store of the generic map kind, e.g. storage.map("pubsub-items"). */
  map(name: string): MapStore;
  close(): Promise<void>;
}
