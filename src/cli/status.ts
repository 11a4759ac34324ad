// `comity status`: the running server's connections, links and memory, over the control socket.
import type { Command } from "commander";
import { callControl } from "../admin/control.ts";
import type { ServerStatus } from "../server.ts";
import { printJson, resolveConfig, withConfig } from "./common.ts";

const MIB = 1024 * 1024;

/** Render a status as aligned "key: value" lines. */
export function formatStatus(s: ServerStatus): string {
  const mib = (n: number) => `${(n / MIB).toFixed(1)} MiB`;
  const perConn = s.c2sConnections > 0 ? ` (${((s.memory.heapUsed / s.c2sConnections) / 1024).toFixed(1)} KiB heap per client connection, upper bound)` : "";
  const rows: [string, string][] = [
    ["version", `${s.version} (node ${s.node}, pid ${s.pid})`],
    ["uptime", `${s.uptimeSeconds} s`],
    ["hosts", s.hosts.join(", ")],
    ["clients", `${s.c2sConnections} connections, ${s.c2sSessions} bound sessions`],
    ["servers", `${s.s2sIncoming} incoming, ${s.s2sOutgoing} outgoing links`],
    ...componentRows(s),
    ...storageRows(s),
    ["memory", `rss ${mib(s.memory.rss)}, heap ${mib(s.memory.heapUsed)} of ${mib(s.memory.heapTotal)}, external ${mib(s.memory.external)}${perConn}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n") + "\n";
}

/** The storage backend and what the archive could not write while it was unreachable. */
function storageRows(s: ServerStatus): [string, string][] {
  const st = s.storage;
  if (st === undefined) return [];
  const archive =
    st.archiveMisses > 0 || st.archiveSlow > 0
      ? `; archive: ${st.archiveMisses} writes missed, ${st.archiveRetried} written later, ${st.archiveRetryQueued} waiting, ${st.archiveDropped} given up, ${st.archiveSlow} deliveries did not wait`
      : "";
  return [["storage", `${st.backend}, ${st.available ? "available" : "UNAVAILABLE"} (${st.failures} failed queries)${archive}`]];
}

/** One row per external component (XEP-0114): connected since when and from where, or not connected. */
function componentRows(s: ServerStatus): [string, string][] {
  return (s.components ?? []).map((c) => {
    const state = c.connected
      ? `connected since ${new Date(c.since ?? 0).toISOString()} from ${c.remoteAddress ?? "?"}`
      : "not connected";
    return [`component ${c.domain}`, `${state} (host ${c.host}; ${c.stanzasIn} stanzas in, ${c.stanzasOut} out)`];
  });
}

/** Register `comity status`. */
export function registerStatus(program: Command): void {
  withConfig(program.command("status").description("show the running server's connections, links and memory"), { json: true }).action(
    async (opts: { config?: string; json?: boolean }) => {
      const { config } = resolveConfig(opts);
      const status = (await callControl(config.control_socket!, "status")) as ServerStatus;
      if (opts.json) printJson(status);
      else process.stdout.write(formatStatus(status));
    },
  );
}
