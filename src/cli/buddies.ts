// `comity buddies list|request|approve|deny|cancel|remove|audit`: the running server's server rosters (XEP-0267),
// over the control socket (DESIGN.md "Operator interface"). Every decision is recorded as actor "cli:<os user>".
import { userInfo } from "node:os";
import type { Command } from "commander";
import { callControl } from "../admin/control.ts";
import type { AuditRecord, BuddyEntry } from "../modules/server-buddies/api.ts";
import { CliError, printJson, resolveConfig, withConfig } from "./common.ts";
import { formatDuration } from "../admin/format.ts";

/** How long ago something was, as the tables show it (the same wording as the web console). */
export const formatAge = formatDuration;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** What to show about the peer's XEP-0267 support: a `subscribed` from a server without it proves no person approved. */
function rosterSupport(v: boolean | null): string {
  return v === true ? "yes" : v === false ? "no" : "unknown";
}

/** Render server roster entries as an aligned table (pending requests show how long they have waited). */
export function formatBuddies(entries: BuddyEntry[], now = Date.now()): string {
  if (entries.length === 0) return "the server roster is empty\n";
  const multiHost = new Set(entries.map((e) => e.host)).size > 1;
  const rows = [[...(multiHost ? ["HOST"] : []), "PEER", "SUBSCRIPTION", "PENDING", "PEER IMPLEMENTS XEP-0267", "PEER PRESENCE", "DECIDED BY", "NOTE"]];
  for (const e of entries) {
    const pending: string[] = [];
    if (e.pendingIn) pending.push(`in: waiting for us ${formatAge(now - (e.pendingInSince ?? now))}`);
    if (e.pendingOut) pending.push(`out: waiting for them ${formatAge(now - (e.pendingOutSince ?? now))}`);
    const presence = e.peerAvailable === null ? "-" : `${e.peerAvailable ? "available" : "unavailable"}${e.peerPresenceAt === null ? "" : ` (${formatAge(now - e.peerPresenceAt)} ago)`}`;
    rows.push([
      ...(multiHost ? [e.host] : []),
      e.peer,
      e.subscription + (e.preApproved ? " (+pre-approved)" : ""),
      pending.join("; ") || "-",
      rosterSupport(e.peerImplementsServerRosters) + (e.peerImplementsServerRosters === false && (e.subscription === "to" || e.subscription === "both") ? " (approval may be automatic)" : ""),
      presence,
      e.decidedBy === null ? "-" : `${e.decidedBy} (${e.decidedVia ?? "?"})`,
      e.note ?? "",
    ]);
  }
  return table(rows);
}

/** Render audit records, newest first. */
export function formatAudit(records: AuditRecord[]): string {
  if (records.length === 0) return "no audit records\n";
  const multiHost = new Set(records.map((r) => r.host)).size > 1;
  const rows = [[...(multiHost ? ["HOST"] : []), "AT", "PEER", "ACTION", "ACTOR", "VIA", "DETAIL"]];
  for (const r of records) rows.push([...(multiHost ? [r.host] : []), new Date(r.at).toISOString(), r.peer, r.action, r.actor, r.via, r.detail ?? ""]);
  return table(rows);
}

/** A one-line account of an entry after an admin action. */
export function describeEntry(peer: string, e: BuddyEntry | undefined | null): string {
  if (e === undefined || e === null) return `${peer}: no longer in the server roster\n`;
  const parts = [`subscription ${e.subscription}`];
  if (e.pendingOut) parts.push("our request is pending");
  if (e.pendingIn) parts.push("its request waits for an admin");
  if (e.preApproved) parts.push("its reciprocal request is pre-approved");
  parts.push(`implements server rosters: ${rosterSupport(e.peerImplementsServerRosters)}`);
  return `${e.peer}: ${parts.join("; ")}\n`;
}

/** The actor recorded for decisions made from this command line. */
export function cliActor(): string {
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    name = process.env["USER"] ?? process.env["LOGNAME"];
  }
  return `cli:${name ?? "unknown"}`;
}

interface CommonOpts {
  config?: string;
  host?: string;
  json?: boolean;
}

/** Call a buddies.* control method on the running server. */
async function call(opts: CommonOpts, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const { config } = resolveConfig(opts);
  if (opts.host !== undefined && !config.hosts.some((h) => h.domain === opts.host)) throw new CliError(`${opts.host} is not a host in the configuration`);
  const p = { ...params, ...(opts.host === undefined ? {} : { host: opts.host }) };
  return callControl(config.control_socket!, `buddies.${method}`, p);
}

function withHost(cmd: Command, json = true): Command {
  return withConfig(cmd, { json }).option("--host <domain>", "which served host (default: all hosts for list/audit, the first host otherwise)");
}

/** Register `comity buddies ...`. */
export function registerBuddies(program: Command): void {
  const buddies = program.command("buddies").description("server roster (XEP-0267): trust between servers, approved by admins");

  withHost(buddies.command("list").description("show the server roster: subscription, pending requests and how long they waited, peer support")).action(
    async (opts: CommonOpts) => {
      const entries = (await call(opts, "list")) as BuddyEntry[];
      if (opts.json) printJson(entries);
      else process.stdout.write(formatBuddies(entries));
    },
  );

  withHost(buddies.command("request").argument("<domain>", "peer server domain").description("ask a peer server to trust this one (sends subscribe)"))
    .option("--note <text>", "why (kept in the roster and the audit log)")
    .option("--one-way", "do not pre-approve the peer's reciprocal request (default: mutual trust)")
    .action(async (domain: string, opts: CommonOpts & { note?: string; oneWay?: boolean }) => {
      const params: Record<string, unknown> = { peer: domain, actor: cliActor(), mutual: opts.oneWay !== true };
      if (opts.note !== undefined) params["note"] = opts.note;
      const e = (await call(opts, "request", params)) as BuddyEntry;
      if (opts.json) printJson(e);
      else process.stdout.write(describeEntry(domain, e));
    });

  const actions: [name: string, description: string][] = [
    ["approve", "approve a peer's pending request (sends subscribed, and subscribes back unless buddies.reciprocate is false)"],
    ["deny", "refuse a peer's pending request (sends unsubscribed)"],
    ["cancel", "withdraw our pending request to a peer that has not answered (sends unsubscribe)"],
    ["remove", "drop a peer from the server roster (sends unsubscribe and unsubscribed)"],
  ];
  for (const [name, description] of actions) {
    withHost(buddies.command(name).argument("<domain>", "peer server domain").description(description))
      .option("--note <text>", "why (kept in the audit log)")
      .action(async (domain: string, opts: CommonOpts & { note?: string }) => {
        const params: Record<string, unknown> = { peer: domain, actor: cliActor() };
        if (opts.note !== undefined) params["note"] = opts.note;
        const e = (await call(opts, name, params)) as BuddyEntry | null;
        if (opts.json) printJson(e);
        else process.stdout.write(describeEntry(domain, e));
      });
  }

  withHost(buddies.command("audit").argument("[domain]", "only this peer").description("show the audit log of server roster changes, newest first"))
    .option("--limit <n>", "at most this many records", (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`--limit must be a positive integer, got ${v}`);
      return n;
    })
    .action(async (domain: string | undefined, opts: CommonOpts & { limit?: number }) => {
      const params: Record<string, unknown> = {};
      if (domain !== undefined) params["peer"] = domain;
      if (opts.limit !== undefined) params["limit"] = opts.limit;
      const records = (await call(opts, "audit", params)) as AuditRecord[];
      if (opts.json) printJson(records);
      else process.stdout.write(formatAudit(records));
    });
}
