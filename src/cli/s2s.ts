// `comity s2s list`: the running server's server-to-server links, over the control socket.
import type { Command } from "commander";
import { callControl } from "../admin/control.ts";
import type { LinkInfo } from "../core/s2s/types.ts";
import { printJson, resolveConfig, withConfig } from "./common.ts";

/** Render links as an aligned table. */
export function formatLinks(links: LinkInfo[], now = Date.now()): string {
  if (links.length === 0) return "no server-to-server links\n";
  const rows = [["PEER", "DIR", "LOCAL", "STATE", "TLS", "AUTH", "SINCE", "ADDRESS"]];
  for (const l of links) {
    rows.push([
      l.peers.join(",") || "-",
      l.direction,
      l.local,
      l.state,
      l.tls ? `${l.tlsVersion ?? "yes"}${l.certificateValid ? " (cert ok)" : " (cert not verified)"}` : "no",
      l.auth,
      `${Math.round((now - l.since) / 1000)}s ago`,
      l.remoteAddress,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** Register `comity s2s list`. */
export function registerS2s(program: Command): void {
  const s2s = program.command("s2s").description("server-to-server links of the running server");
  withConfig(s2s.command("list").description("show current links: peer, direction, TLS, how authenticated, since when"), { json: true }).action(
    async (opts: { config?: string; json?: boolean }) => {
      const { config } = resolveConfig(opts);
      const links = (await callControl(config.control_socket!, "s2s.list")) as LinkInfo[];
      if (opts.json) printJson(links);
      else process.stdout.write(formatLinks(links));
    },
  );
}
