// Opens the configured Storage implementation for a data directory (docs/storage.md).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { StorageError } from "./errors.ts";
import { createMemoryStorage } from "./memory.ts";
import type { Storage } from "./types.ts";

/** Options of {@link openStorage}. */
export interface OpenStorageOptions {
  /** Directory holding `comity.sqlite`; created (mode 0700) when missing. */
  dataDir: string;
  /** Backend; defaults to "sqlite". "memory" keeps nothing and never touches dataDir. */
  kind?: "sqlite" | "memory";
}

/** Open the storage of a data directory, migrating the database to the latest schema. */
export async function openStorage(opts: OpenStorageOptions): Promise<Storage> {
  const kind = opts.kind ?? "sqlite";
  switch (kind) {
    case "memory":
      return createMemoryStorage();
    case "sqlite": {
      // mode applies only to directories mkdir creates; an existing directory keeps the operator's choice.
      await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
      // Loaded lazily so memory-only users (unit tests) never load the native module.
      const { openSqliteStorage, SQLITE_FILE_NAME } = await import("./sqlite/store.ts");
      return openSqliteStorage({ path: join(opts.dataDir, SQLITE_FILE_NAME) });
    }
    default: {
      const unknown: never = kind;
      throw new StorageError("COMITY_ERR_STORAGE_INVALID", `unknown storage kind ${JSON.stringify(unknown)}`);
    }
  }
}
