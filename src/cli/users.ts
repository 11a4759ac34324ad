// Offline account commands: adduser, deluser, passwd, import-users (work on storage directly, no running server needed).
import { pbkdf2, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { promisify } from "node:util";
import type { Command } from "commander";
import type { Config } from "../core/config/schema.ts";
import { preparePassword, scramCredential, type ScramHash } from "../sasl/credentials.ts";
import { openStorage, storageOptions } from "../storage/open.ts";
import type { Storage, StoredCredentials } from "../storage/types.ts";
import { createJid, JidError, parseJid } from "../xmpp/jid.ts";
import { callControl, ControlError } from "../admin/control.ts";
import { CliError, printJson, readPassword, resolveConfig, seconds, withConfig } from "./common.ts";

const pbkdf2Async = promisify(pbkdf2);
const NODE_HASH: Record<ScramHash, string> = { "SHA-1": "sha1", "SHA-256": "sha256" };
const HASH_LEN: Record<ScramHash, number> = { "SHA-1": 20, "SHA-256": 32 };
const BATCH_SIZE = 1000;

/** An account address resolved against the configured hosts. */
export interface AccountTarget {
  /** The configured host's domain (the storage key). */
  host: string;
  /** The prepared localpart. */
  username: string;
  jid: string;
}

/** Parse `jid` as a bare account address on one of the configured hosts; throws CliError saying what is wrong. */
export function accountTarget(config: Config, jid: string, hosts = hostIndex(config)): AccountTarget {
  let parsed;
  try {
    parsed = parseJid(jid);
  } catch (err) {
    if (err instanceof JidError) throw new CliError(`invalid JID ${JSON.stringify(jid)}: ${err.message}`);
    throw err;
  }
  if (parsed.local === "") throw new CliError(`${JSON.stringify(jid)} has no user part (expected user@host)`);
  if (parsed.resource !== "") throw new CliError(`${JSON.stringify(jid)} has a resource; give the bare JID user@host`);
  const host = hosts.get(parsed.domain);
  if (host === undefined) {
    throw new CliError(`${parsed.domain} is not a configured host (configured: ${config.hosts.map((h) => h.domain).join(", ")})`);
  }
  return { host, username: parsed.local, jid: `${parsed.local}@${host}` };
}

/** Map from prepared domain to the configured domain (they differ only for internationalized names). */
function hostIndex(config: Config): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of config.hosts) {
    out.set(h.domain, h.domain);
    try {
      out.set(createJid({ domain: h.domain }).domain, h.domain);
    } catch {
      // an unusual but schema-valid domain: only the literal form matches
    }
  }
  return out;
}

/** Like deriveCredentials (sasl/credentials.ts), but PBKDF2 runs on libuv's thread pool so many can run at once. */
export async function deriveCredentialsAsync(password: string, opts: { storage: "scram" | "plain"; iterations: number }): Promise<StoredCredentials> {
  const prepared = preparePassword(password);
  const one = async (hash: ScramHash) => {
    const salt = randomBytes(16);
    const salted = await pbkdf2Async(prepared, salt, opts.iterations, HASH_LEN[hash], NODE_HASH[hash]);
    return scramCredential(hash, salted, salt, opts.iterations);
  };
  const [sha1, sha256] = await Promise.all([one("SHA-1"), one("SHA-256")]);
  const scram: StoredCredentials["scram"] = { "SHA-1": sha1, "SHA-256": sha256 };
  return opts.storage === "plain" ? { plain: prepared, scram } : { scram };
}

function credentialOpts(config: Config): { storage: "scram" | "plain"; iterations: number } {
  return { storage: config.auth.password_storage, iterations: config.auth.scram_iterations };
}

function randomPassword(): string {
  return randomBytes(15).toString("base64url"); // 20 characters, 120 bits
}

async function withStorage<T>(config: Config, fn: (storage: Storage) => Promise<T>): Promise<T> {
  const storage = await openStorage(storageOptions(config));
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

async function passwordFor(given: string | undefined, opts: { random?: boolean }): Promise<{ password: string; generated: boolean }> {
  if (given !== undefined && opts.random === true) throw new CliError("give either a PASSWORD or --random, not both");
  if (opts.random === true) return { password: randomPassword(), generated: true };
  if (given !== undefined) {
    if (given === "") throw new CliError("empty password");
    return { password: given, generated: false };
  }
  return { password: await readPassword("Password: ", { confirm: true }), generated: false };
}

interface UserCommandOpts {
  config?: string;
  json?: boolean;
  random?: boolean;
  replace?: boolean;
}

/** Register adduser, deluser, passwd and import-users. */
export function registerUserCommands(program: Command): void {
  withConfig(
    program
      .command("adduser")
      .description("create an account (asks for the password when not given)")
      .argument("<jid>", "bare JID user@host of a configured host")
      .argument("[password]", "the password (visible in the process list; prefer the prompt or --random)")
      .option("--random", "generate a random password and print it"),
    { json: true },
  ).action(async (jid: string, given: string | undefined, opts: UserCommandOpts) => {
    const { config } = resolveConfig(opts);
    const target = accountTarget(config, jid);
    const { password, generated } = await passwordFor(given, opts);
    const credentials = await deriveCredentialsAsync(password, credentialOpts(config));
    const created = await withStorage(config, (s) => s.accounts.create(target.host, target.username, credentials));
    if (!created) throw new CliError(`${target.jid} already exists (use passwd to change its password)`);
    if (opts.json === true) printJson(generated ? { jid: target.jid, created: true, password } : { jid: target.jid, created: true });
    else process.stdout.write(`created ${target.jid}${generated ? `\npassword: ${password}` : ""}\n`);
  });

  withConfig(
    program.command("deluser").description("delete an account and its data").argument("<jid>", "bare JID user@host"),
    { json: true },
  ).action(async (jid: string, opts: UserCommandOpts) => {
    const { config } = resolveConfig(opts);
    const target = accountTarget(config, jid);
    // Through the running server when there is one, so that the account's sessions end and every module hears of it
    // (account/deleted: uploaded files, push registrations, caches); otherwise straight in storage, where the account's
    // rows go with it and modules clean up what is left at their next start.
    let deleted: boolean;
    try {
      deleted = (await callControl(config.control_socket!, "accounts.delete", { host: target.host, username: target.username })) === true;
    } catch (err) {
      if (!(err instanceof ControlError) || err.code !== "COMITY_ERR_NOT_RUNNING") throw err;
      deleted = await withStorage(config, (s) => s.accounts.delete(target.host, target.username));
    }
    if (!deleted) throw new CliError(`no such account: ${target.jid}`);
    if (opts.json === true) printJson({ jid: target.jid, deleted: true });
    else process.stdout.write(`deleted ${target.jid}\n`);
  });

  withConfig(
    program
      .command("passwd")
      .description("set an account's password (asks for it when not given)")
      .argument("<jid>", "bare JID user@host")
      .argument("[password]", "the new password")
      .option("--random", "generate a random password and print it"),
    { json: true },
  ).action(async (jid: string, given: string | undefined, opts: UserCommandOpts) => {
    const { config } = resolveConfig(opts);
    const target = accountTarget(config, jid);
    await withStorage(config, async (s) => {
      // Check first so a mistyped JID fails before the password prompt.
      if ((await s.accounts.get(target.host, target.username)) === undefined) throw new CliError(`no such account: ${target.jid}`);
      const { password, generated } = await passwordFor(given, opts);
      const credentials = await deriveCredentialsAsync(password, credentialOpts(config));
      if (!(await s.accounts.setCredentials(target.host, target.username, credentials))) throw new CliError(`no such account: ${target.jid}`);
      if (opts.json === true) printJson(generated ? { jid: target.jid, changed: true, password } : { jid: target.jid, changed: true });
      else process.stdout.write(`password changed for ${target.jid}${generated ? `\npassword: ${password}` : ""}\n`);
    });
  });

  withConfig(
    program
      .command("import-users")
      .description('create accounts from FILE ("-" for stdin): one "jid password" per line, # comments')
      .argument("<file>", 'file to read, "-" for stdin')
      .option("--replace", "overwrite the password of accounts that already exist"),
    { json: true },
  ).action(async (file: string, opts: UserCommandOpts) => {
    const { config } = resolveConfig(opts);
    const text = file === "-" ? await readStdin() : await readInput(file);
    const started = performance.now();
    const result = await importUsers(config, text, { replace: opts.replace === true });
    const took = performance.now() - started;
    if (opts.json === true) {
      printJson({ ...result, seconds: Number((took / 1000).toFixed(3)) });
    } else {
      for (const b of result.bad) process.stderr.write(`comity: ${file === "-" ? "stdin" : file}:${b.line}: ${b.error}\n`);
      const skipped = result.skipped > 0 ? `, ${result.skipped} skipped (already exist; --replace overwrites)` : "";
      const bad = result.bad.length > 0 ? `, ${result.bad.length} bad line${result.bad.length === 1 ? "" : "s"}` : "";
      process.stdout.write(`${opts.replace === true ? "imported" : "created"} ${result.imported} account${result.imported === 1 ? "" : "s"}${skipped}${bad} in ${seconds(took)} s\n`);
    }
    if (result.bad.length > 0) process.exitCode = 1;
  });
}

async function readInput(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${file}: ${code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** One parsed line of an import file. */
export interface ImportEntry extends AccountTarget {
  line: number;
  password: string;
}

/** Parse an import file: `jid password` per line (password = rest of the line, trimmed); blank and # lines skipped. */
export function parseImportFile(config: Config, text: string): { entries: ImportEntry[]; bad: { line: number; error: string }[] } {
  const hosts = hostIndex(config);
  const entries: ImportEntry[] = [];
  const bad: { line: number; error: string }[] = [];
  const seen = new Map<string, number>();
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const m = /^(\S+)\s+(.+)$/.exec(trimmed);
    if (m === null) {
      bad.push({ line, error: 'expected "jid password"' });
      return;
    }
    try {
      const target = accountTarget(config, m[1] ?? "", hosts);
      const key = `${target.host}\u0000${target.username}`;
      const first = seen.get(key);
      if (first !== undefined) {
        bad.push({ line, error: `${target.jid} already appears on line ${first}` });
        return;
      }
      seen.set(key, line);
      entries.push({ ...target, line, password: m[2] ?? "" });
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      bad.push({ line, error: err.message });
    }
  });
  return { entries, bad };
}

/** Run `fn` over `items` with at most `limit` in flight, keeping order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Import accounts from `text`; returns how many were written, how many existed and were skipped, and the bad lines. */
export async function importUsers(
  config: Config,
  text: string,
  opts: { replace?: boolean } = {},
): Promise<{ imported: number; skipped: number; bad: { line: number; error: string }[] }> {
  const { entries, bad } = parseImportFile(config, text);
  if (entries.length === 0) return { imported: 0, skipped: 0, bad };
  // Each credential is two PBKDF2 runs on the thread pool; a few per core keeps every thread busy.
  const concurrency = Math.max(4, availableParallelism() * 4);
  const derived = await mapLimit(entries, concurrency, async (e) => ({
    host: e.host,
    username: e.username,
    credentials: await deriveCredentialsAsync(e.password, credentialOpts(config)),
  }));
  const byHost = new Map<string, { username: string; credentials: StoredCredentials }[]>();
  for (const d of derived) {
    let list = byHost.get(d.host);
    if (list === undefined) byHost.set(d.host, (list = []));
    list.push({ username: d.username, credentials: d.credentials });
  }
  let imported = 0;
  await withStorage(config, async (storage) => {
    for (const [host, list] of byHost) {
      for (let i = 0; i < list.length; i += BATCH_SIZE) {
        imported += await storage.accounts.createMany(host, list.slice(i, i + BATCH_SIZE), { replace: opts.replace === true });
      }
    }
  });
  return { imported, skipped: entries.length - imported, bad };
}
