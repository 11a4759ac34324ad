// XEP-0267 server roster state helpers: RFC 6121 §3 subscription arithmetic applied to domain-to-domain trust.
import type { Subscription } from "../../storage/types.ts";
import type { BuddyEntry } from "./api.ts";

/** The peer approved our request: we receive its presence ('to' or 'both'). */
export function hasTo(s: Subscription | undefined): boolean {
  return s === "to" || s === "both";
}

/** We approved the peer's request: it receives our presence ('from' or 'both'). */
export function hasFrom(s: Subscription | undefined): boolean {
  return s === "from" || s === "both";
}

/** The state after gaining 'to' (RFC 6121 §3.1.6: an approved outbound request). */
export function addTo(s: Subscription): Subscription {
  return s === "none" ? "to" : s === "from" ? "both" : s;
}

/** The state after gaining 'from' (RFC 6121 §3.1.5: an approved inbound request). */
export function addFrom(s: Subscription): Subscription {
  return s === "none" ? "from" : s === "to" ? "both" : s;
}

/** The state after losing 'to' (RFC 6121 §3.2: the peer cancelled our subscription). */
export function removeTo(s: Subscription): Subscription {
  return s === "both" ? "from" : s === "to" ? "none" : s;
}

/** The state after losing 'from' (RFC 6121 §3.3: the peer unsubscribed from us). */
export function removeFrom(s: Subscription): Subscription {
  return s === "both" ? "to" : s === "from" ? "none" : s;
}

/** An entry that says nothing any more: no subscription, nothing pending (dropped rather than kept). */
export function isEmpty(e: BuddyEntry): boolean {
  return e.subscription === "none" && !e.pendingIn && !e.pendingOut;
}

/** A new entry for a peer we have never dealt with. */
export function blankEntry(host: string, peer: string, now: number): BuddyEntry {
  return {
    host,
    peer,
    subscription: "none",
    pendingIn: false,
    pendingOut: false,
    preApproved: false,
    peerImplementsServerRosters: null,
    peerAvailable: null,
    peerStatus: null,
    peerPresenceAt: null,
    since: now,
    pendingInSince: null,
    pendingOutSince: null,
    decidedBy: null,
    decidedVia: null,
    note: null,
  };
}
