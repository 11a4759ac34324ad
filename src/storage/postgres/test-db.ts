// Test helpers for the PostgreSQL store: the test server's URL, a reachability probe and throwaway schemas.
// Tests run against COMITY_TEST_POSTGRES_URL (default: the local trust-auth server CI also has).
import { randomBytes } from "node:crypto";
import pg from "pg";
import { redactPostgresUrl } from "./store.ts";

/** The PostgreSQL server tests use. */
export const TEST_POSTGRES_URL = process.env["COMITY_TEST_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";

/** Run `fn` on a fresh single connection to the test server. */
export async function withTestClient<T>(fn: (c: pg.Client) => Promise<T>, url = TEST_POSTGRES_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Why the PostgreSQL tests cannot run here, or undefined when they can. Under CI=true a missing server must fail the
 * run, so callers skip only outside CI (as test/interop does with missing peers).
 */
export async function postgresUnavailable(): Promise<string | undefined> {
  try {
    await withTestClient((c) => c.query("SELECT 1"));
    return undefined;
  } catch (err) {
    return `PostgreSQL not reachable at ${redactPostgresUrl(TEST_POSTGRES_URL)} (${(err as Error).message || String(err)}); set COMITY_TEST_POSTGRES_URL or start it`;
  }
}

/** The skip reason for node:test: a string outside CI when PostgreSQL is missing, false otherwise. */
export async function postgresSkip(): Promise<string | false> {
  const why = await postgresUnavailable();
  if (why === undefined) return false;
  if (process.env["CI"] === "true") return false; // run, and fail loudly
  console.log(`# skipping PostgreSQL tests: ${why}`);
  return why;
}

/** A fresh schema name `comity_test_<random>`; the store creates it on open. */
export function testSchemaName(): string {
  return `comity_test_${randomBytes(6).toString("hex")}`;
}

/** Drop a test schema and everything in it. */
export async function dropTestSchema(schema: string): Promise<void> {
  if (!/^comity_test_[0-9a-f]+$/.test(schema)) throw new Error(`refusing to drop ${schema}: not a test schema`);
  await withTestClient((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
}
