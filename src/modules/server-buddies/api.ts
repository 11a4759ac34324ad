// The server roster's public API (XEP-0267): what other modules ask, obtained per host with
// `ctx.use<ServerRoster>("server-roster")`. The server-buddies module is the only owner of this state.
import type { Subscription } from "../../storage/types.ts";

/** Which admin surface a decision came through. */
export type DecisionVia = "cli" | "xmpp" | "api" | "web" | "protocol";

/** Who decided a change and how (kept on the entry and in the audit log). */
export interface Decision {
  /** Admin JID, "cli:<unix user>", or "peer" / "pre-approval" for protocol-driven changes. */
  actor: string;
  via: DecisionVia;
  note?: string;
}

/** One peer in one host's server roster (the JSON shape of `comity buddies list --json`). */
export interface BuddyEntry {
  host: string;
  peer: string;
  subscription: Subscription;
  /** They asked to trust us; waiting for one of our admins. */
  pendingIn: boolean;
  /** We asked; waiting for them. */
  pendingOut: boolean;
  /** Our admin, when requesting, allowed the peer's reciprocal request (mutual trust). */
  preApproved: boolean;
  /** Whether the peer advertises urn:xmpp:server-presence (null: not known yet). */
  peerImplementsServerRosters: boolean | null;
  /** The peer's last server presence (null: never seen). */
  peerAvailable: boolean | null;
  peerStatus: string | null;
  peerPresenceAt: number | null;
  /** When the current state began (ms since epoch), and when each pending side started. */
  since: number;
  pendingInSince: number | null;
  pendingOutSince: number | null;
  decidedBy: string | null;
  decidedVia: DecisionVia | null;
  note: string | null;
}

/** One line of the audit log: every change to the server roster. */
export interface AuditRecord {
  id: number;
  host: string;
  peer: string;
  /** e.g. "request", "approve", "deny", "remove", "cancel", "inbound-subscribe", "inbound-subscribed", "revoked", ... */
  action: string;
  actor: string;
  via: DecisionVia;
  detail: string | null;
  at: number;
}

/** Events the module fires on its own bus (subscribe with `onChange`). */
export interface BuddyChange {
  host: string;
  peer: string;
  action: string;
  entry: BuddyEntry | undefined;
}

/** The questions other modules ask, and the admin actions (every admin surface calls these). */
export interface ServerRoster {
  /** We trust the peer: our admin approved it, by requesting it (confirmed: 'to') or by approving its request ('from'). */
  trusts(peer: string): boolean;
  /** The peer trusts us: it approved our request (subscription 'to' or 'both'). */
  isTrustedBy(peer: string): boolean;
  /** Both directions ('both'). */
  isMutual(peer: string): boolean;
  /** The entry for a peer, or undefined. */
  get(peer: string): BuddyEntry | undefined;
  list(): BuddyEntry[];
  audit(peer?: string, limit?: number): Promise<AuditRecord[]>;
  /** Admin actions; each resolves with the entry after the change (undefined after remove). */
  request(peer: string, decision: Decision & { mutual?: boolean }): Promise<BuddyEntry>;
  approve(peer: string, decision: Decision): Promise<BuddyEntry>;
  deny(peer: string, decision: Decision): Promise<BuddyEntry | undefined>;
  /** Withdraw our pending request (the peer never answered, e.g. ejabberd drops it). */
  cancel(peer: string, decision: Decision): Promise<BuddyEntry | undefined>;
  remove(peer: string, decision: Decision): Promise<undefined>;
  /** Called on every change, after it is stored. Returns an unsubscribe function. */
  onChange(listener: (change: BuddyChange) => void): () => void;
}

/** Error codes thrown by admin actions (ComityError-style, stable for CLI and tests). */
export type BuddyErrorCode =
  | "COMITY_ERR_BUDDY_INVALID_PEER" // not a domain, or one of our own hosts
  | "COMITY_ERR_BUDDY_NOT_PENDING" // approve/deny without a pending request
  | "COMITY_ERR_BUDDY_UNKNOWN"; // no such entry

export class BuddyError extends Error {
  readonly code: BuddyErrorCode;
  constructor(code: BuddyErrorCode, message: string) {
    super(message);
    this.name = "BuddyError";
    this.code = code;
  }
}
