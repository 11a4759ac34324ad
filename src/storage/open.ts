// Opens the configured Storage implementation (docs/storage.md).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { StorageError } from "./errors.ts";
import { createMemoryStorage } from "./memory.ts";
import type { Storage } from "./types.ts";

/** Options of {@link openStorage}. */
export interface OpenStorageOptions {
  /** Directory holding `comity.sqlite`; created (mode 0700) when missing. Unused by the other backends. */
  dataDir: string;
  /** Backend; defaults to "sqlite". "memory" keeps nothing and never touches dataDir. */
  kind?: "sqlite" | "postgres" | "memory";
  /** Required with kind "postgres". */
  postgres?: {
    /** Connection URL, e.g. `postgres://comity@127.0.0.1:5432/comity`. */
    url: string;
    /** Schema for Comity's tables (created when missing); default: the URL's search_path. */
    schema?: string;
    /** Most pooled connections (default 10). */
    poolSize?: number;
  };
}

/** The configuration keys storage reads (src/core/config/schema.ts `data_dir` and `storage`), typed here so storage needs no import from core. */
export interface StorageConfig {
  data_dir: string;
  storage: { backend: "sqlite" | "postgres"; postgres_url?: string; postgres_schema?: string; postgres_pool_size: number };
}

/** The {@link openStorage} options a validated configuration asks for. */
export function storageOptions(config: StorageConfig): OpenStorageOptions {
  const s = config.storage;
  if (s.backend !== "postgres") return { dataDir: config.data_dir, kind: s.backend };
  return {
    dataDir: config.data_dir,
    kind: "postgres",
    postgres: { url: s.postgres_url ?? "", poolSize: s.postgres_pool_size, ...(s.postgres_schema === undefined ? {} : { schema: s.postgres_schema }) },
  };
}

/** Open the configured storage, migrating the database to the latest schema. */
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
    case "postgres": {
      const pg = opts.postgres;
      if (pg === undefined || typeof pg.url !== "string" || pg.url === "") {
        throw new StorageError("COMITY_ERR_STORAGE_INVALID", "storage backend postgres needs a connection URL (storage.postgres_url)");
      }
      // Loaded lazily, like SQLite: deployments on the other backends never load the client.
      const { openPostgresStorage } = await import("./postgres/store.ts");
      return openPostgresStorage({
        url: pg.url,
        ...(pg.schema === undefined ? {} : { schema: pg.schema }),
        ...(pg.poolSize === undefined ? {} : { poolSize: pg.poolSize }),
      });
    }
    default: {
      const unknown: never = kind;
      throw new StorageError("COMITY_ERR_STORAGE_INVALID", `unknown storage kind ${JSON.stringify(unknown)}`);
    }
  }
}
