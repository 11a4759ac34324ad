// Errors raised by storage implementations, with stable COMITY_ERR_STORAGE_* codes (docs/storage.md "Errors").

/** Stable codes carried by {@link StorageError}; tests assert these, never the message. */
export type StorageErrorCode =
  /** The database was written by a newer Comity: its schema version is above what this code knows. */
  | "COMITY_ERR_STORAGE_SCHEMA_TOO_NEW"
  /** A migration failed or the migration list itself is malformed. */
  | "COMITY_ERR_STORAGE_MIGRATION"
  /** The store was used after close(). */
  | "COMITY_ERR_STORAGE_CLOSED"
  /** A caller passed something the store cannot keep (empty store name, non-string value, ...). */
  | "COMITY_ERR_STORAGE_INVALID"
  /** A database server (PostgreSQL) cannot be reached, refused the login, or has no such database. */
  | "COMITY_ERR_STORAGE_UNAVAILABLE";

/** A storage failure with a stable code. */
export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, opts?: { cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "StorageError";
    this.code = code;
  }
}

/** Reject a keyval store name that is not a non-empty string. */
export function assertStoreName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name === "") {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `keyval store name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
}

/** Reject a keyval value that is neither a string nor undefined (undefined means delete). */
export function assertKeyvalValue(value: unknown): asserts value is string | undefined {
  if (value !== undefined && typeof value !== "string") {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `keyval value must be a string or undefined, got ${typeof value}`);
  }
}

const SUBSCRIPTIONS: ReadonlySet<unknown> = new Set(["none", "to", "from", "both"]);

/** Reject a roster item the stores cannot keep faithfully (checked the same way by every backend). */
export function assertRosterItem(item: unknown): void {
  const it = item as Record<string, unknown> | null;
  const bad = (what: string): never => {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `roster item ${what}`);
  };
  if (typeof it !== "object" || it === null) bad("must be an object");
  const i = it as Record<string, unknown>;
  if (typeof i["jid"] !== "string" || i["jid"] === "") bad("jid must be a non-empty string");
  if (i["name"] !== undefined && typeof i["name"] !== "string") bad("name must be a string or absent");
  if (!SUBSCRIPTIONS.has(i["subscription"])) bad(`subscription must be none, to, from or both, got ${JSON.stringify(i["subscription"])}`);
  if (typeof i["ask"] !== "boolean") bad("ask must be a boolean");
  if (typeof i["approved"] !== "boolean") bad("approved must be a boolean");
  const groups = i["groups"];
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === "string")) bad("groups must be an array of strings");
}

/** Reject offline push options that are not a finite stamp and a non-negative integer quota. */
export function assertOfflinePush(stanza: unknown, opts: { stamp: unknown; quota: unknown }): void {
  if (typeof stanza !== "string") throw new StorageError("COMITY_ERR_STORAGE_INVALID", `offline stanza must be a string, got ${typeof stanza}`);
  if (typeof opts.stamp !== "number" || !Number.isFinite(opts.stamp)) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `offline stamp must be a finite number, got ${String(opts.stamp)}`);
  }
  if (typeof opts.quota !== "number" || !Number.isSafeInteger(opts.quota) || opts.quota < 0) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", `offline quota must be a non-negative integer, got ${String(opts.quota)}`);
  }
}

/** Reject a list of message ids that is not an array of integers. */
export function assertIds(ids: unknown): asserts ids is number[] {
  if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id))) {
    throw new StorageError("COMITY_ERR_STORAGE_INVALID", "offline message ids must be an array of integers");
  }
}
