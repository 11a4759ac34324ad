// Ordered schema migrations of the SQLite store (docs/storage.md "Schema"); append only, never edit an applied one.

/** One schema step: applied once, in its own transaction, and recorded in `schema_migrations`. */
export interface Migration {
  /** Strictly increasing version number, starting at 1. */
  id: number;
  /** Short kebab-case description, stored beside the version. */
  name: string;
  /** SQL run as one script inside the migration's transaction. */
  sql: string;
}

/** The migrations this code knows, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: "accounts-and-keyval",
    sql: `
      CREATE TABLE accounts (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        credentials TEXT NOT NULL CHECK (json_valid(credentials)),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (host, username)
      ) WITHOUT ROWID;

      -- user is '' for host-wide documents, so there is no foreign key to accounts;
      -- deleting an account removes its rows explicitly in the same transaction.
      CREATE TABLE keyval (
        store TEXT NOT NULL,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (store, host, username, key)
      ) WITHOUT ROWID;

      -- account deletion looks rows up by (host, username) across every store
      CREATE INDEX keyval_by_user ON keyval (host, username);
    `,
  },
  {
    id: 2,
    name: "rosters-and-offline",
    sql: `
      -- RFC 6121 §2.1 roster items. No foreign key to accounts (as with keyval): account deletion removes
      -- these rows explicitly in its transaction.
      CREATE TABLE roster_items (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        jid TEXT NOT NULL,
        name TEXT,
        subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
        ask INTEGER NOT NULL CHECK (ask IN (0, 1)),
        approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
        groups TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(groups) AND json_type(groups) = 'array'),
        PRIMARY KEY (host, username, jid)
      ) WITHOUT ROWID;

      -- RFC 6121 §2.6 roster versioning: one counter per user, bumped by every item change.
      CREATE TABLE roster_versions (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (host, username)
      ) WITHOUT ROWID;

      -- RFC 6121 §3.1.3 inbound subscription requests awaiting the user, with the stanza to redeliver.
      CREATE TABLE roster_pending_in (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        jid TEXT NOT NULL,
        stanza TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (host, username, jid)
      ) WITHOUT ROWID;

      -- XEP-0160 offline messages. AUTOINCREMENT so an id is never handed out twice, even after the
      -- newest message was deleted: a delete by ids must never hit a later message.
      CREATE TABLE offline_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        stanza TEXT NOT NULL,
        stamp INTEGER NOT NULL
      );

      -- list (oldest first), count (quota) and account deletion all scan one user's range.
      CREATE INDEX offline_messages_by_user ON offline_messages (host, username, id);
    `,
  },
  {
    id: 3,
    name: "server-roster",
    sql: `
      -- XEP-0267 server rosters: one row per (served host, peer domain). Booleans are 0/1; NULL in
      -- peer_implements / peer_available means "not known yet".
      CREATE TABLE server_roster (
        host TEXT NOT NULL,
        peer TEXT NOT NULL,
        subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
        pending_in INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
        pending_in_since INTEGER,
        pending_out INTEGER NOT NULL CHECK (pending_out IN (0, 1)),
        pending_out_since INTEGER,
        pre_approved INTEGER NOT NULL CHECK (pre_approved IN (0, 1)),
        peer_implements INTEGER CHECK (peer_implements IN (0, 1)),
        peer_available INTEGER CHECK (peer_available IN (0, 1)),
        peer_status TEXT,
        peer_presence_at INTEGER,
        since INTEGER NOT NULL,
        decided_by TEXT,
        decided_via TEXT,
        note TEXT,
        PRIMARY KEY (host, peer)
      ) WITHOUT ROWID;

      -- Every change to a server roster, append-only; rows outlive the entry they describe.
      CREATE TABLE server_roster_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        peer TEXT NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        detail TEXT,
        at INTEGER NOT NULL
      );

      CREATE INDEX server_roster_audit_by_peer ON server_roster_audit (host, peer, id);
      CREATE INDEX server_roster_audit_by_host ON server_roster_audit (host, id);
    `,
  },
  {
    id: 4,
    name: "incidents-and-abuse-reports",
    sql: `
      -- XEP-0268 interactions with peer servers, inbound and outbound; payload is the IODEF XML as received.
      CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        peer TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        kind TEXT NOT NULL CHECK (kind IN ('report', 'inquiry', 'request', 'response')),
        incident_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('accepted', 'held', 'sent', 'failed')),
        payload TEXT NOT NULL,
        at INTEGER NOT NULL,
        note TEXT
      );
      CREATE INDEX incidents_by_host ON incidents (host, id);

      -- XEP-0377 reports about local accounts forwarded by trusted peers (counted per account).
      CREATE TABLE abuse_reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        account TEXT NOT NULL,
        peer TEXT NOT NULL,
        reason TEXT NOT NULL,
        text TEXT,
        payload TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE INDEX abuse_reports_by_account ON abuse_reports (host, account, id);
    `,
  },
  {
    id: 5,
    name: "message-archive",
    sql: `
      -- XEP-0313 user archives: one row per archived message per user. The id is the message's archive id
      -- (handed to clients as a decimal string); AUTOINCREMENT keeps ids increasing and never reused.
      CREATE TABLE archive_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        with_jid TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        stanza TEXT NOT NULL,
        stamp INTEGER NOT NULL
      );
      CREATE INDEX archive_messages_by_user ON archive_messages (host, username, id);
      CREATE INDEX archive_messages_by_with ON archive_messages (host, username, with_jid, id);
    `,
  },
  {
    id: 6,
    name: "map-kind",
    sql: `
      -- The generic map kind (types.ts MapStore): per (store, host, owner) a map from key to value, ordered by seq, the
      -- position of the last write. seq grows per owner (max + 1 on each write), which is all the order needs. Owners are
      -- usernames or module-built names, so there is no foreign key; modules delete their rows on account deletion.
      CREATE TABLE map_entries (
        store TEXT NOT NULL,
        host TEXT NOT NULL,
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        seq INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (store, host, owner, key)
      ) WITHOUT ROWID;
      CREATE INDEX map_entries_by_seq ON map_entries (store, host, owner, seq);
      -- account deletion removes the user's rows of every store: owner = username, or owner starting with "username/"
      CREATE INDEX map_entries_by_owner ON map_entries (host, owner);
    `,
  },
];

/** The newest schema version this code can read and write. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.reduce((max, m) => Math.max(max, m.id), 0);
