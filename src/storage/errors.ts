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
  | "COMITY_ERR_STORAGE_INVALID";

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
