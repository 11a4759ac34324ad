// Control-socket methods of the server roster (XEP-0267 admin surface for `comity buddies ...`, DESIGN.md
// "Operator interface"): list, request, approve, deny, cancel, remove, audit, metrics.
import type { ModuleContext } from "../../core/module-api.ts";
import { ControlError } from "../../admin/control.ts";
import { BuddyError, type AuditRecord, type BuddyEntry, type Decision, type DecisionVia } from "./api.ts";
import type { BuddyMetrics, HostRoster } from "./roster.ts";

const VIAS: ReadonlySet<string> = new Set(["cli", "xmpp", "api", "web"]);

/** The metrics of one host, as `buddies.metrics` returns them. */
export interface HostBuddyMetrics extends BuddyMetrics {
  host: string;
  /** Inbound requests waiting for an admin now. */
  pending: number;
  maxPending: number;
}

function str(params: Record<string, unknown>, key: string): string | undefined {
  const v = params[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new ControlError("COMITY_ERR_CONTROL_BAD_REQUEST", `${key} must be a string`);
  return v;
}

function peerOf(params: Record<string, unknown>): string {
  const peer = str(params, "peer");
  if (peer === undefined || peer === "") throw new ControlError("COMITY_ERR_BUDDY_INVALID_PEER", "peer (a server domain) is required");
  return peer;
}

/** Who decided, from the CLI's params: actor "cli:<user>" unless given, via "cli" unless another surface says so. */
function decisionOf(params: Record<string, unknown>): Decision {
  const actor = str(params, "actor");
  const via = str(params, "via");
  const note = str(params, "note");
  const d: Decision = { actor: actor !== undefined && actor !== "" ? actor.slice(0, 200) : "cli:unknown", via: via !== undefined && VIAS.has(via) ? (via as DecisionVia) : "cli" };
  if (note !== undefined && note !== "") d.note = note.slice(0, 1000);
  return d;
}

/** Run an admin action, turning BuddyError into a ControlError with the same code. */
async function act<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BuddyError) throw new ControlError(err.code, err.message);
    throw err;
  }
}

/** Register the `buddies.*` control methods for this host (the socket dispatches on params.host). */
export function registerControlMethods(ctx: ModuleContext, roster: HostRoster, all: () => Map<string, HostRoster>): void {
  const hostGiven = (params: Record<string, unknown>): boolean => typeof params["host"] === "string";

  ctx.addControlMethod("buddies.list", (params): BuddyEntry[] => {
    if (hostGiven(params)) return roster.list();
    return [...all().values()].flatMap((r) => r.list());
  });
  ctx.addControlMethod("buddies.request", (params) => {
    const mutual = params["mutual"];
    if (mutual !== undefined && typeof mutual !== "boolean") throw new ControlError("COMITY_ERR_CONTROL_BAD_REQUEST", "mutual must be a boolean");
    return act(() => roster.request(peerOf(params), { ...decisionOf(params), mutual: mutual !== false }));
  });
  ctx.addControlMethod("buddies.approve", (params) => act(() => roster.approve(peerOf(params), decisionOf(params))));
  ctx.addControlMethod("buddies.deny", (params) => act(() => roster.deny(peerOf(params), decisionOf(params))));
  ctx.addControlMethod("buddies.cancel", (params) => act(() => roster.cancel(peerOf(params), decisionOf(params))));
  ctx.addControlMethod("buddies.remove", (params) => act(() => roster.remove(peerOf(params), decisionOf(params))));
  ctx.addControlMethod("buddies.audit", async (params): Promise<AuditRecord[]> => {
    const peer = str(params, "peer");
    const rawLimit = params["limit"];
    const limit = typeof rawLimit === "number" && Number.isSafeInteger(rawLimit) && rawLimit > 0 ? rawLimit : undefined;
    const rosters = hostGiven(params) ? [roster] : [...all().values()];
    const out: AuditRecord[] = [];
    for (const r of rosters) out.push(...(await act(() => r.audit(peer, limit))));
    out.sort((a, b) => b.at - a.at || b.id - a.id);
    return limit === undefined ? out : out.slice(0, limit);
  });
  ctx.addControlMethod("buddies.metrics", (params): HostBuddyMetrics[] => {
    const rosters = hostGiven(params) ? [roster] : [...all().values()];
    return rosters.map((r) => ({ host: r.host, pending: r.pendingCount(), maxPending: ctx.config.buddies.max_pending, ...r.metrics }));
  });
}
