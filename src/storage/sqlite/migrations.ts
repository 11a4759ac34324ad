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
];

/** The newest schema version this code can read and write. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.reduce((max, m) => Math.max(max, m.id), 0);
