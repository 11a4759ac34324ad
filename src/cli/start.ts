// `comity start`: validate the config, open storage, listen, log `ready`; SIGTERM/SIGINT stop cleanly.
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { CliError, withConfig, resolveConfig } from "./common.ts";
import { createLogger } from "../core/log.ts";
import { ComityServer } from "../server.ts";
import { deriveCredentials } from "../sasl/credentials.ts";
import { parseJid } from "../xmpp/jid.ts";

/** Register `comity start`. */
export function registerStart(program: Command): void {
  withConfig(program.command("start").description("run the server (logs a line with `ready` once every listener accepts connections)"))
    .option("--log-level <level>", "override log.level")
    .option("--log-format <format>", "override log.format (json|pretty)")
    .action(async (opts: { config?: string; logLevel?: string; logFormat?: string }) => {
      const { config, path } = resolveConfig(opts);
      const format = (opts.logFormat ?? (path === undefined && process.stdout.isTTY ? "pretty" : config.log.format)) as "json" | "pretty";
      const log = createLogger({ level: opts.logLevel ?? config.log.level, format });
      log.info({ config: path ?? "(built-in default)", hosts: config.hosts.map((h) => h.domain) }, "starting Comity");
      const server = await ComityServer.create(config, log);
      let addrs: Awaited<ReturnType<ComityServer["listen"]>>;
      try {
        addrs = await server.listen();
      } catch (err) {
        await server.stop().catch(() => undefined);
        const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
        if (e.code === "EADDRINUSE" || e.code === "EACCES" || e.code === "EADDRNOTAVAIL") {
          const what = e.code === "EADDRINUSE" ? "is already in use (is another server running?)" : e.code === "EACCES" ? "needs more privileges" : "is not an address of this machine";
          throw new CliError(`cannot listen on ${e.address ?? "?"}:${e.port ?? "?"}: it ${what}; change the listen addresses in the config (c2s.listen, c2s.direct_tls, s2s.listen, http.listen, http.tls_listen)`);
        }
        throw err;
      }
      // After the listeners: an admin password printed by a start that then failed would be lost.
      await createFirstAdmins(server, log);
      // Handlers before the ready line: a supervisor may signal as soon as it reads it, and until process.on runs
      // a SIGTERM has the kernel's default action (the process dies without closing its streams or storage).
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, "shutting down");
        server.stop().then(
          () => {
            log.info("stopped");
            log.flush();
            process.exit(0);
          },
          (err: unknown) => {
            log.error({ err }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
      const fmt = (a: { address: string; port: number }) => (a.address.includes(":") ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      log.info(
        { c2s: addrs.c2s.map(fmt), c2sDirectTls: addrs.c2sDirectTls.map(fmt), s2s: addrs.s2s.map(fmt), s2sDirectTls: addrs.s2sDirectTls.map(fmt), http: addrs.http.map(fmt), https: addrs.https.map(fmt) },
        "ready: accepting connections",
      );
    });
}

/**
 * On a host with no accounts yet (first start), create each configured admin account of that host with a
 * random password and print it once: the quick start then has a working admin without extra steps.
 */
async function createFirstAdmins(server: ComityServer, log: ReturnType<typeof createLogger>): Promise<void> {
  const { config, storage } = server;
  for (const host of config.hosts) {
    if ((await storage.accounts.count(host.domain)) > 0) continue;
    for (const admin of host.admins) {
      const jid = parseJid(admin);
      if (jid.domain !== host.domain || jid.local === "") continue;
      const password = randomBytes(12).toString("base64url");
      const creds = deriveCredentials(password, { storage: config.auth.password_storage, iterations: config.auth.scram_iterations });
      if (await storage.accounts.create(host.domain, jid.local, creds)) {
        log.warn({ jid: jid.bareString() }, "created the admin account; its password is printed once below");
        process.stdout.write(`\n  Admin account: ${jid.bareString()}\n  Password:      ${password}\n  (change it with: comity passwd ${jid.bareString()})\n\n`);
      }
    }
  }
}
