// Checks shared by every ServerRosterStore implementation (XEP-0267 server rosters, src/storage/types.ts).
import { StorageError } from "./errors.ts";
import type { ServerRosterChange, ServerRosterEntry } from "./types.ts";

const SUBSCRIPTIONS: ReadonlySet<unknown> = new Set(["none", "to", "from", "both"]);

/** Default and largest number of audit lines one `audit()` call returns. */
export const AUDIT_DEFAULT_LIMIT = 100;
export const AUDIT_MAX_LIMIT = 10_000;

function bad(what: string): never {
  throw new StorageError("COMITY_ERR_STORAGE_INVALID", `server roster ${what}`);
}

const isTime = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);
const isNullableTime = (v: unknown): boolean => v === null || isTime(v);
const isNullableString = (v: unknown): boolean => v === null || typeof v === "string";
const isNullableBool = (v: unknown): boolean => v === null || typeof v === "boolean";

/** Reject an entry the stores cannot keep faithfully, or one stored under another host/peer than asked. */
export function assertServerRosterEntry(entry: unknown, host: string, peer: string): asserts entry is ServerRosterEntry {
  if (typeof entry !== "object" || entry === null) bad("entry must be an object");
  const e = entry as Record<string, unknown>;
  if (e["host"] !== host || e["peer"] !== peer) bad(`entry must keep host ${host} and peer ${peer}`);
  if (!SUBSCRIPTIONS.has(e["subscription"])) bad(`subscription must be none, to, from or both, got ${JSON.stringify(e["subscription"])}`);
  for (const k of ["pendingIn", "pendingOut", "preApproved"]) if (typeof e[k] !== "boolean") bad(`${k} must be a boolean`);
  for (const k of ["peerImplementsServerRosters", "peerAvailable"]) if (!isNullableBool(e[k])) bad(`${k} must be a boolean or null`);
  for (const k of ["pendingInSince", "pendingOutSince", "peerPresenceAt"]) if (!isNullableTime(e[k])) bad(`${k} must be a time or null`);
  if (!isTime(e["since"])) bad("since must be a time");
  for (const k of ["peerStatus", "decidedBy", "decidedVia", "note"]) if (!isNullableString(e[k])) bad(`${k} must be a string or null`);
}

/** Reject an audit line without its required strings. */
export function assertAudit(audit: NonNullable<ServerRosterChange["audit"]>): void {
  if (typeof audit !== "object" || audit === null) bad("audit must be an object");
  for (const k of ["action", "actor", "via"] as const) if (typeof audit[k] !== "string" || audit[k] === "") bad(`audit ${k} must be a non-empty string`);
  if (audit.detail !== undefined && !isNullableString(audit.detail)) bad("audit detail must be a string or null");
  if (audit.at !== undefined && !isTime(audit.at)) bad("audit at must be a time");
}

/** A copy holding exactly the interface's fields (no caller extras, no aliasing). */
export function copyServerRosterEntry(e: ServerRosterEntry): ServerRosterEntry {
  return {
    host: e.host,
    peer: e.peer,
    subscription: e.subscription,
    pendingIn: e.pendingIn,
    pendingInSince: e.pendingInSince,
    pendingOut: e.pendingOut,
    pendingOutSince: e.pendingOutSince,
    preApproved: e.preApproved,
    peerImplementsServerRosters: e.peerImplementsServerRosters,
    peerAvailable: e.peerAvailable,
    peerStatus: e.peerStatus,
    peerPresenceAt: e.peerPresenceAt,
    since: e.since,
    decidedBy: e.decidedBy,
    decidedVia: e.decidedVia,
    note: e.note,
  };
}

/** The audit limit to apply: a positive integer up to {@link AUDIT_MAX_LIMIT}. */
export function auditLimit(limit: unknown): number {
  if (limit === undefined) return AUDIT_DEFAULT_LIMIT;
  if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1) bad(`audit limit must be a positive integer, got ${String(limit)}`);
  return Math.min(limit, AUDIT_MAX_LIMIT);
}
