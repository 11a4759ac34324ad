// A stand-in ServerRoster (src/modules/server-buddies/api.ts) for testing the admin ad-hoc commands without the
// server-buddies module: in-memory entries, recorded decisions, the same BuddyError codes.
import { defineModule } from "../../src/core/module-api.ts";
import { BuddyError, type BuddyChange, type BuddyEntry, type Decision, type ServerRoster } from "../../src/modules/server-buddies/api.ts";

/** What the fake was asked to do, in order. */
export interface FakeCall {
  action: "request" | "approve" | "deny" | "cancel" | "remove";
  peer: string;
  decision: Decision & { mutual?: boolean };
}

/** An in-memory server roster for one host. */
export class FakeRoster implements ServerRoster {
  readonly host: string;
  readonly entries = new Map<string, BuddyEntry>();
  readonly calls: FakeCall[] = [];
  readonly #listeners = new Set<(c: BuddyChange) => void>();

  constructor(host: string) {
    this.host = host;
  }

  /** Put an entry in place (tests set the scene with it). */
  seed(peer: string, fields: Partial<BuddyEntry> = {}): BuddyEntry {
    const e: BuddyEntry = {
      host: this.host, peer, subscription: "none", pendingIn: false, pendingOut: false, preApproved: false,
      peerImplementsServerRosters: null, peerAvailable: null, peerStatus: null, peerPresenceAt: null,
      since: 1_700_000_000_000, pendingInSince: null, pendingOutSince: null, decidedBy: null, decidedVia: null, note: null,
      ...fields,
    };
    this.entries.set(peer, e);
    return e;
  }

  trusts(peer: string): boolean {
    const s = this.entries.get(peer)?.subscription;
    return s === "from" || s === "both";
  }
  isTrustedBy(peer: string): boolean {
    const s = this.entries.get(peer)?.subscription;
    return s === "to" || s === "both";
  }
  isMutual(peer: string): boolean {
    return this.entries.get(peer)?.subscription === "both";
  }
  get(peer: string): BuddyEntry | undefined {
    return this.entries.get(peer);
  }
  list(): BuddyEntry[] {
    return [...this.entries.values()];
  }
  audit(): Promise<[]> {
    return Promise.resolve([]);
  }

  #check(peer: string): void {
    if (!/^[a-z0-9.-]+$/.test(peer) || peer === this.host) throw new BuddyError("COMITY_ERR_BUDDY_INVALID_PEER", `${peer} is not a remote domain`);
  }
  #changed(peer: string, action: string): void {
    for (const l of this.#listeners) l({ host: this.host, peer, action, entry: this.entries.get(peer) });
  }

  request(peer: string, decision: Decision & { mutual?: boolean }): Promise<BuddyEntry> {
    this.calls.push({ action: "request", peer, decision });
    this.#check(peer);
    const e = this.entries.get(peer) ?? this.seed(peer);
    if (e.subscription !== "to" && e.subscription !== "both") Object.assign(e, { pendingOut: true, pendingOutSince: 1_700_000_100_000, preApproved: decision.mutual ?? true });
    this.#changed(peer, "request");
    return Promise.resolve(e);
  }
  approve(peer: string, decision: Decision): Promise<BuddyEntry> {
    this.calls.push({ action: "approve", peer, decision });
    const e = this.entries.get(peer);
    if (!e?.pendingIn) return Promise.reject(new BuddyError("COMITY_ERR_BUDDY_NOT_PENDING", `${peer} has no pending request`));
    Object.assign(e, { pendingIn: false, pendingInSince: null, subscription: e.subscription === "to" ? "both" : "from", decidedBy: decision.actor, decidedVia: decision.via });
    this.#changed(peer, "approve");
    return Promise.resolve(e);
  }
  deny(peer: string, decision: Decision): Promise<BuddyEntry | undefined> {
    this.calls.push({ action: "deny", peer, decision });
    const e = this.entries.get(peer);
    if (!e?.pendingIn) return Promise.reject(new BuddyError("COMITY_ERR_BUDDY_NOT_PENDING", `${peer} has no pending request`));
    Object.assign(e, { pendingIn: false, pendingInSince: null });
    this.#changed(peer, "deny");
    return Promise.resolve(e);
  }
  cancel(peer: string, decision: Decision): Promise<BuddyEntry | undefined> {
    this.calls.push({ action: "cancel", peer, decision });
    const e = this.entries.get(peer);
    if (!e?.pendingOut) return Promise.reject(new BuddyError("COMITY_ERR_BUDDY_NOT_PENDING", `no request to ${peer} is pending`));
    Object.assign(e, { pendingOut: false, pendingOutSince: null });
    this.#changed(peer, "cancel");
    return Promise.resolve(e);
  }
  remove(peer: string, decision: Decision): Promise<undefined> {
    this.calls.push({ action: "remove", peer, decision });
    if (!this.entries.delete(peer)) return Promise.reject(new BuddyError("COMITY_ERR_BUDDY_UNKNOWN", `${peer} is not in the server roster`));
    this.#changed(peer, "remove");
    return Promise.resolve(undefined);
  }
  onChange(listener: (change: BuddyChange) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }
}

/** A module that provides a FakeRoster as "server-roster" on every host; `rosters` maps host → fake. */
export function fakeRosterModule(rosters: Map<string, FakeRoster>) {
  return defineModule({
    name: "fake-server-roster",
    setup(ctx) {
      const r = new FakeRoster(ctx.host);
      rosters.set(ctx.host, r);
      ctx.provide("server-roster", r);
    },
  });
}
