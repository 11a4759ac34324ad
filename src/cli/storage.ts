// `comity storage copy`: move a deployment's data from SQLite to PostgreSQL (docs/storage.md "Moving from SQLite to PostgreSQL").
import { join } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../core/config/load.ts";
import { SQLITE_FILE_NAME } from "../storage/sqlite/store.ts";
import { CliError, printJson } from "./common.ts";

interface CopyOpts {
  fromConfig: string;
  toConfig: string;
  json?: boolean;
}

/** Register `storage copy`. */
export function registerStorage(program: Command): void {
  const storage = program.command("storage").description("move stored data between backends");
  storage
    .command("copy")
    .description("copy everything from the SQLite storage of one configuration into the empty PostgreSQL storage of another (stop the server first)")
    .requiredOption("--from-config <file>", "configuration whose storage is read (storage.backend: sqlite)")
    .requiredOption("--to-config <file>", "configuration whose storage is written (storage.backend: postgres, no Comity data yet)")
    .option("--json", "print machine-readable JSON")
    .action(async (opts: CopyOpts) => {
      const from = loadConfig(opts.fromConfig);
      const to = loadConfig(opts.toConfig);
      if (from.storage.backend !== "sqlite") throw new CliError(`${opts.fromConfig}: storage.backend must be sqlite (got ${from.storage.backend})`);
      if (to.storage.backend !== "postgres" || to.storage.postgres_url === undefined) {
        throw new CliError(`${opts.toConfig}: storage.backend must be postgres, with storage.postgres_url`);
      }
      const { copySqliteToPostgres } = await import("../storage/postgres/copy.ts");
      const start = performance.now();
      const result = await copySqliteToPostgres(
        { path: join(from.data_dir, SQLITE_FILE_NAME) },
        to.storage.postgres_schema === undefined ? { url: to.storage.postgres_url } : { url: to.storage.postgres_url, schema: to.storage.postgres_schema },
      );
      const ms = Math.round(performance.now() - start);
      if (opts.json === true) printJson({ ...result, ms });
      else {
        for (const [table, n] of Object.entries(result.tables)) process.stdout.write(`${table}: ${n}\n`);
        process.stdout.write(`copied in ${(ms / 1000).toFixed(1)} s\n`);
      }
    });
}
