// `comity pubsub list|show|delete`: operators' view of PEP nodes (names, sizes, access models; never payloads). Reads
// and writes storage directly, like adduser, so it works with the server running or stopped.
import type { Command } from "commander";
import { openStorage, storageOptions } from "../storage/open.ts";
import type { Storage } from "../storage/types.ts";
import type { Config } from "../core/config/schema.ts";
import { deletePepNode, listPepAccounts, showPepAccount, type PepNodeSummary } from "../modules/pubsub/admin.ts";
import { CliError, printJson, resolveConfig, withConfig } from "./common.ts";
import { accountTarget } from "./users.ts";

async function withStorage<T>(config: Config, fn: (storage: Storage) => Promise<T>): Promise<T> {
  const storage = await openStorage(storageOptions(config));
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

/** Render rows as an aligned table. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** The nodes of one account as a table. */
export function formatNodes(nodes: PepNodeSummary[]): string {
  if (nodes.length === 0) return "no PEP nodes\n";
  return table([
    ["NODE", "ACCESS", "MAX", "ITEMS", "BYTES", "SUBS", "CREATED"],
    ...nodes.map((n) => [n.node, n.access_model, String(n.max_items), String(n.items), String(n.bytes), String(n.subscriptions), n.created]),
  ]);
}

type Opts = { config?: string; json?: boolean; host?: string };

/** Register `comity pubsub …`. */
export function registerPubsub(program: Command): void {
  const pubsub = program.command("pubsub").description("PEP nodes of local accounts (XEP-0163): names, sizes, access models");
  withConfig(pubsub.command("list").option("--host <domain>", "only this host").description("accounts that have PEP nodes, with how many"), { json: true }).action(
    async (opts: Opts) => {
      const { config } = resolveConfig(opts);
      const hosts = config.hosts.map((h) => h.domain).filter((h) => opts.host === undefined || h === opts.host);
      if (hosts.length === 0) throw new CliError(`${opts.host} is not a configured host`);
      const rows = await withStorage(config, async (s) => (await Promise.all(hosts.map((h) => listPepAccounts(s, h)))).flat());
      if (opts.json === true) printJson(rows);
      else process.stdout.write(rows.length === 0 ? "no account has PEP nodes\n" : table([["ACCOUNT", "NODES"], ...rows.map((r) => [r.account, String(r.nodes)])]));
    },
  );
  withConfig(pubsub.command("show").argument("<jid>", "account user@host").description("an account's nodes: access model, max items, items, bytes, subscriptions"), { json: true }).action(
    async (jid: string, opts: Opts) => {
      const { config } = resolveConfig(opts);
      const t = accountTarget(config, jid);
      const nodes = await withStorage(config, (s) => showPepAccount(s, t.host, t.username));
      if (opts.json === true) printJson({ account: t.jid, nodes });
      else process.stdout.write(formatNodes(nodes));
    },
  );
  withConfig(pubsub.command("delete").argument("<jid>", "account user@host").argument("<node>", "node name").description("delete one node with its items and subscriptions"), { json: true }).action(
    async (jid: string, node: string, opts: Opts) => {
      const { config } = resolveConfig(opts);
      const t = accountTarget(config, jid);
      const deleted = await withStorage(config, (s) => deletePepNode(s, t.host, t.username, node));
      if (!deleted) throw new CliError(`${t.jid} has no node ${JSON.stringify(node)}`);
      if (opts.json === true) printJson({ account: t.jid, node, deleted: true });
      else process.stdout.write(`deleted ${node} of ${t.jid}\n`);
    },
  );
}
