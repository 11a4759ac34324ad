// `comity incidents list|show|send|accept` (XEP-0268) and `comity abuse list` (XEP-0377 reports about our accounts),
// over the control socket of the running server; see docs/trust-uses.md.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { callControl } from "../admin/control.ts";
import type { AbuseReport, IncidentRecord } from "../storage/types.ts";
import { CliError, printJson, resolveConfig, withConfig } from "./common.ts";

type Summary = Omit<IncidentRecord, "payload">;

const KINDS = ["report", "inquiry", "request", "response"];

/** Render incident summaries as an aligned table. */
export function formatIncidents(rows: Summary[]): string {
  if (rows.length === 0) return "no incidents\n";
  const table = [["ID", "DIR", "PEER", "KIND", "STATUS", "INCIDENT-ID", "AT", "NOTE"]];
  for (const r of rows) {
    table.push([String(r.id), r.direction, r.peer, r.kind, r.status, r.incidentId ?? "-", new Date(r.at).toISOString(), r.note ?? ""]);
  }
  return align(table);
}

/** Render one incident with its IODEF payload. */
export function formatIncident(r: IncidentRecord): string {
  return [
    `#${r.id} ${r.direction === "in" ? "from" : "to"} ${r.peer} (${r.host})`,
    `kind:        ${r.kind}`,
    `status:      ${r.status}${r.note ? ` (${r.note})` : ""}`,
    `incident id: ${r.incidentId ?? "-"}`,
    `at:          ${new Date(r.at).toISOString()}`,
    "",
    r.payload,
    "",
  ].join("\n");
}

/** Render abuse report counts per account and the latest reports. */
export function formatAbuse(data: { counts: { account: string; count: number; last: number }[]; reports: AbuseReport[] }): string {
  if (data.counts.length === 0) return "no abuse reports\n";
  let out = align([["ACCOUNT", "REPORTS", "LAST"], ...data.counts.map((c) => [c.account, String(c.count), new Date(c.last).toISOString()])]);
  out += "\n" + align([["ID", "ACCOUNT", "FROM", "REASON", "AT", "TEXT"], ...data.reports.map((r) => [String(r.id), r.account, r.peer, r.reason, new Date(r.at).toISOString(), r.text ?? ""])]);
  return out;
}

function align(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

interface Opts {
  config?: string;
  json?: boolean;
  host?: string;
}

function params(opts: Opts, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(opts.host !== undefined ? { host: opts.host } : {}), ...extra };
}

async function call(opts: Opts, method: string, p: Record<string, unknown>): Promise<unknown> {
  const { config } = resolveConfig(opts);
  return callControl(config.control_socket!, method, p, 60_000);
}

/** Register `comity incidents ...` and `comity abuse list`. */
export function registerIncidents(program: Command): void {
  const incidents = program.command("incidents").description("incident handling with trusted peer servers (XEP-0268)");
  const hostOpt = (c: Command): Command => c.option("--host <domain>", "served host (default: the first one)");

  hostOpt(withConfig(incidents.command("list").description("stored incidents, newest first"), { json: true }))
    .option("--status <status>", "only accepted | held | sent | failed")
    .action(async (opts: Opts & { status?: string }) => {
      const rows = (await call(opts, "incidents.list", params(opts, opts.status ? { status: opts.status } : {}))) as Summary[];
      if (opts.json) printJson(rows);
      else process.stdout.write(formatIncidents(rows));
    });

  hostOpt(withConfig(incidents.command("show").argument("<id>", "incident number").description("one incident with its IODEF document"), { json: true }))
    .action(async (id: string, opts: Opts) => {
      const rec = (await call(opts, "incidents.show", params(opts, { id: Number(id) }))) as IncidentRecord;
      if (opts.json) printJson(rec);
      else process.stdout.write(formatIncident(rec));
    });

  hostOpt(withConfig(incidents.command("send").argument("<domain>", "peer server").description("send an IODEF document to a peer"), { json: true }))
    .requiredOption("--kind <kind>", `one of ${KINDS.join(", ")}`)
    .requiredOption("--file <file>", "IODEF document (RFC 5070 Incident or IODEF-Document), '-' for stdin")
    .option("--force", "send even though the peer is not trusted")
    .action(async (domain: string, opts: Opts & { kind: string; file: string; force?: boolean }) => {
      if (!KINDS.includes(opts.kind)) throw new CliError(`--kind must be one of ${KINDS.join(", ")}`);
      let payload: string;
      try {
        payload = readFileSync(opts.file === "-" ? 0 : opts.file, "utf8");
      } catch (err) {
        throw new CliError(`cannot read ${opts.file}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const rec = (await call(opts, "incidents.send", params(opts, { peer: domain, kind: opts.kind, payload, force: opts.force === true }))) as IncidentRecord;
      if (opts.json) printJson(rec);
      else process.stdout.write(rec.status === "sent" ? `sent ${rec.kind} to ${rec.peer} (#${rec.id})\n` : `${rec.kind} to ${rec.peer} failed: ${rec.note ?? "unknown error"} (#${rec.id})\n`);
      if (rec.status !== "sent") process.exitCode = 1;
    });

  hostOpt(withConfig(incidents.command("accept").argument("<id>", "held incident number").description("accept a held incident after review"), { json: true }))
    .action(async (id: string, opts: Opts) => {
      const rec = (await call(opts, "incidents.accept", params(opts, { id: Number(id), actor: `cli:${process.env["USER"] ?? "unknown"}` }))) as Summary;
      if (opts.json) printJson(rec);
      else process.stdout.write(`#${rec.id} accepted\n`);
    });

  const abuse = program.command("abuse").description("abuse reports about local accounts forwarded by trusted peers (XEP-0377)");
  hostOpt(withConfig(abuse.command("list").description("reports per account, most reported first"), { json: true }))
    .option("--account <jid>", "only reports about this account")
    .action(async (opts: Opts & { account?: string }) => {
      const data = (await call(opts, "abuse.list", params(opts, opts.account ? { account: opts.account } : {}))) as Parameters<typeof formatAbuse>[0];
      if (opts.json) printJson(data);
      else process.stdout.write(formatAbuse(data));
    });
}
