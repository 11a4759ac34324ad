// XEP-0267 Server Rosters <https://xmpp.org/extensions/xep-0267.html> §2–§3: one host's server roster, its
// admin actions and the domain-to-domain presence protocol (RFC 6121 §3 subscriptions, §4.3 probes).
import { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { JidError, prepareDomain } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DISCO_INFO } from "../../xmpp/ns.ts";
import type { ModuleContext } from "../../core/module-api.ts";
import type { ServerRosterChange, ServerRosterEntry, ServerRosterStore } from "../../storage/types.ts";
import { BuddyError, type AuditRecord, type BuddyChange, type BuddyEntry, type Decision, type ServerRoster } from "./api.ts";
import { addFrom, addTo, blankEntry, hasFrom, hasTo, isEmpty, removeFrom, removeTo } from "./transitions.ts";

/** XEP-0267 (0.5) disco#info feature of a server that implements server rosters. */
export const NS_SERVER_PRESENCE = "urn:xmpp:server-presence";

/** Counters exposed through the `buddies.metrics` control method. */
export interface BuddyMetrics {
  /** Inbound requests that became pending (one per peer and request). */
  requestsReceived: number;
  /** Repeats of a request that is already pending (not re-notified). */
  requestsRepeated: number;
  /** Requests dropped because `buddies.max_pending` requests were already waiting. */
  requestsDropped: number;
  /** Messages sent to admin JIDs. */
  notificationsSent: number;
  /** Subscription stanzas ignored: not from an authenticated domain, from a user JID, or unsolicited. */
  ignored: number;
  /** Inbound requests approved because our admin had asked for mutual trust. */
  preApproved: number;
}

/** Actor names used for changes no admin made. */
const PEER = "peer";
const PRE_APPROVAL = "pre-approval";

/** How often (ms) a suppressed "request dropped" log line may be written. */
const DROP_LOG_INTERVAL_MS = 60_000;

let nextId = 0;
/** A fresh stanza id for stanzas this module sends. */
function stanzaId(): string {
  return `sb-${Date.now().toString(36)}-${(nextId++).toString(36)}`;
}

/** The entry as the API shows it (the stored shape, with `decidedVia` narrowed). */
function toBuddy(e: ServerRosterEntry): BuddyEntry {
  return { ...e, decidedVia: e.decidedVia as BuddyEntry["decidedVia"] };
}

/** One host's server roster: the in-memory copy for synchronous questions, and every change path. */
export class HostRoster implements ServerRoster {
  readonly host: string;
  readonly metrics: BuddyMetrics = { requestsReceived: 0, requestsRepeated: 0, requestsDropped: 0, notificationsSent: 0, ignored: 0, preApproved: 0 };
  readonly #ctx: ModuleContext;
  readonly #store: ServerRosterStore;
  readonly #entries = new Map<string, BuddyEntry>();
  readonly #listeners = new Set<(change: BuddyChange) => void>();
  /** The tail of each peer's queue of changes: one change per peer at a time. */
  readonly #chains = new Map<string, Promise<unknown>>();
  readonly #discoInFlight = new Set<string>();
  /** New pending requests being written right now (counted against the cap before they land). */
  #reserved = 0;
  #dropLog = { last: 0, suppressed: 0 };

  constructor(ctx: ModuleContext) {
    this.host = ctx.host;
    this.#ctx = ctx;
    this.#store = ctx.storage.serverRoster;
  }

  /** Read the stored roster into memory (at setup). */
  async load(): Promise<void> {
    this.#entries.clear();
    for (const e of await this.#store.list(this.host)) this.#entries.set(e.peer, toBuddy(e));
  }

  // --- Questions other modules ask (synchronous, from the in-memory copy). ---

  #find(peer: string): BuddyEntry | undefined {
    const hit = this.#entries.get(peer);
    if (hit !== undefined || typeof peer !== "string") return hit;
    // Callers usually pass prepared domains; prepare only when the string might not be canonical.
    if (!/[A-Z.\u0080-\uffff]$|[A-Z\u0080-\uffff]/.test(peer)) return undefined;
    try {
      return this.#entries.get(prepareDomain(peer));
    } catch {
      return undefined;
    }
  }

  trusts(peer: string): boolean {
    const s = this.#find(peer)?.subscription;
    return s !== undefined && s !== "none";
  }

  isTrustedBy(peer: string): boolean {
    return hasTo(this.#find(peer)?.subscription);
  }

  isMutual(peer: string): boolean {
    return this.#find(peer)?.subscription === "both";
  }

  get(peer: string): BuddyEntry | undefined {
    const e = this.#find(peer);
    return e === undefined ? undefined : { ...e };
  }

  list(): BuddyEntry[] {
    return [...this.#entries.values()].sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)).map((e) => ({ ...e }));
  }

  /** Inbound requests waiting for an admin. */
  pendingCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.pendingIn) n++;
    return n;
  }

  async audit(peer?: string, limit?: number): Promise<AuditRecord[]> {
    const opts: { peer?: string; limit?: number } = {};
    if (peer !== undefined) opts.peer = this.#peer(peer);
    if (limit !== undefined) opts.limit = limit;
    const records = await this.#store.audit(this.host, opts);
    return records.map((r) => ({ ...r, via: r.via as AuditRecord["via"] }));
  }

  onChange(listener: (change: BuddyChange) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  // --- Admin actions: every admin surface (CLI, ad-hoc, web) calls these. ---

  async request(peerIn: string, decision: Decision & { mutual?: boolean }): Promise<BuddyEntry> {
    const peer = this.#peer(peerIn);
    const actor = this.#actor(decision);
    const mutual = decision.mutual !== false;
    return this.#serial(peer, async () => {
      const now = Date.now();
      let subscribe = false;
      let approveInbound = false;
      const r = await this.#change(peer, (cur) => {
        const e = cur ?? blankEntry(this.host, peer, now);
        const next: BuddyEntry = { ...e, note: decision.note ?? e.note, decidedBy: actor, decidedVia: decision.via };
        next.preApproved = mutual && !hasFrom(e.subscription);
        // Already confirmed by the peer: nothing to ask. Still pending (e.g. ejabberd never answers): ask again.
        subscribe = !hasTo(e.subscription);
        if (subscribe) {
          next.pendingOut = true;
          next.pendingOutSince = e.pendingOut ? e.pendingOutSince : now;
        }
        // The peer asked first and our admin now asks for mutual trust: that approves its request too.
        approveInbound = mutual && e.pendingIn;
        if (approveInbound) {
          next.pendingIn = false;
          next.pendingInSince = null;
          next.subscription = addFrom(next.subscription);
          next.since = now;
          next.preApproved = false;
        }
        const detail = [mutual ? "mutual" : "one-way", approveInbound ? "approves the peer's pending request" : "", subscribe ? "" : "already subscribed"]
          .filter(Boolean)
          .join("; ");
        return { entry: next, audit: { action: "request", actor, via: decision.via, detail } };
      });
      if (approveInbound) {
        this.#sendPresence(peer, "subscribed");
        this.#sendPresence(peer, undefined);
      }
      if (subscribe) this.#sendSubscribe(peer);
      this.#queryDiscoLater(peer);
      return r.after!;
    });
  }

  async approve(peerIn: string, decision: Decision): Promise<BuddyEntry> {
    const peer = this.#peer(peerIn);
    const actor = this.#actor(decision);
    return this.#serial(peer, async () => {
      return this.#approve(peer, actor, decision.via, decision.note);
    });
  }

  async deny(peerIn: string, decision: Decision): Promise<BuddyEntry | undefined> {
    const peer = this.#peer(peerIn);
    const actor = this.#actor(decision);
    return this.#serial(peer, async () => {
      const r = await this.#change(peer, (cur) => {
        if (cur === undefined) throw new BuddyError("COMITY_ERR_BUDDY_UNKNOWN", `${peer} is not in the server roster of ${this.host}`);
        if (!cur.pendingIn) throw new BuddyError("COMITY_ERR_BUDDY_NOT_PENDING", `${peer} has no pending request to ${this.host}`);
        const next: BuddyEntry = { ...cur, pendingIn: false, pendingInSince: null, decidedBy: actor, decidedVia: decision.via, note: decision.note ?? cur.note };
        return { entry: isEmpty(next) ? undefined : next, audit: { action: "deny", actor, via: decision.via, detail: decision.note ?? null } };
      });
      if (r.changed) this.#sendPresence(peer, "unsubscribed");
      return r.after;
    });
  }

  async cancel(peerIn: string, decision: Decision): Promise<BuddyEntry | undefined> {
    const peer = this.#peer(peerIn);
    const actor = this.#actor(decision);
    return this.#serial(peer, async () => {
      const r = await this.#change(peer, (cur) => {
        if (cur === undefined) throw new BuddyError("COMITY_ERR_BUDDY_UNKNOWN", `${peer} is not in the server roster of ${this.host}`);
        if (!cur.pendingOut) throw new BuddyError("COMITY_ERR_BUDDY_NOT_PENDING", `${this.host} has no pending request to ${peer}`);
        const next: BuddyEntry = { ...cur, pendingOut: false, pendingOutSince: null, preApproved: false, decidedBy: actor, decidedVia: decision.via };
        return { entry: isEmpty(next) ? undefined : next, audit: { action: "cancel", actor, via: decision.via, detail: decision.note ?? null } };
      });
      if (r.changed) this.#sendPresence(peer, "unsubscribe");
      return r.after;
    });
  }

  async remove(peerIn: string, decision: Decision): Promise<undefined> {
    const peer = this.#peer(peerIn);
    const actor = this.#actor(decision);
    return this.#serial(peer, async () => {
      await this.#change(peer, (cur) => {
        if (cur === undefined) throw new BuddyError("COMITY_ERR_BUDDY_UNKNOWN", `${peer} is not in the server roster of ${this.host}`);
        return { entry: undefined, audit: { action: "remove", actor, via: decision.via, detail: `was ${cur.subscription}${decision.note ? `; ${decision.note}` : ""}` } };
      });
      // RFC 6121 §3.2 and §3.3 together: stop receiving its presence and stop sending ours.
      this.#sendPresence(peer, "unsubscribe");
      this.#sendPresence(peer, "unsubscribed");
      return undefined;
    });
  }

  /** Approve a pending inbound request (an admin, or a pre-approval given by an admin with a mutual request). */
  async #approve(peer: string, actor: string, via: Decision["via"], note: string | undefined, viaPreApproval = false): Promise<BuddyEntry> {
    const now = Date.now();
    let reciprocate = false;
    const r = await this.#change(peer, (cur) => {
      if (cur === undefined) throw new BuddyError("COMITY_ERR_BUDDY_UNKNOWN", `${peer} is not in the server roster of ${this.host}`);
      const preApproval = viaPreApproval && cur.preApproved;
      if (!cur.pendingIn && !preApproval) {
        // A second approval of the same request (two admins at once, a repeated command) is the same approval.
        if (hasFrom(cur.subscription)) return undefined;
        throw new BuddyError("COMITY_ERR_BUDDY_NOT_PENDING", `${peer} has no pending request to ${this.host}`);
      }
      const next: BuddyEntry = {
        ...cur,
        subscription: addFrom(cur.subscription),
        pendingIn: false,
        pendingInSince: null,
        preApproved: false,
        since: now,
        decidedBy: actor,
        decidedVia: via,
        note: note ?? cur.note,
      };
      // XEP-0267 §2: the approving server SHOULD subscribe back, unless it already has (or asked for) 'to'.
      reciprocate = this.#ctx.config.buddies.reciprocate && !hasTo(cur.subscription) && !cur.pendingOut;
      if (reciprocate) {
        next.pendingOut = true;
        next.pendingOutSince = now;
      }
      const detail = viaPreApproval ? `our admin ${cur.decidedBy ?? "?"} asked for mutual trust` : reciprocate ? "subscribed back" : null;
      return { entry: next, audit: { action: "approve", actor, via, detail } };
    });
    if (r.changed) {
      this.#sendPresence(peer, "subscribed");
      if (reciprocate) this.#sendSubscribe(peer);
      this.#sendPresence(peer, undefined);
      if (r.after?.peerImplementsServerRosters === null) this.#queryDiscoLater(peer);
    }
    return r.after!;
  }

  // --- Inbound protocol (presence from a peer's domain JID to ours, over an authenticated s2s link). ---

  /** Handle one presence stanza from `peer` (already checked: authenticated bare domain, to our bare host JID). */
  async inbound(peer: string, stanza: Element): Promise<void> {
    const type = stanza.attrs["type"];
    switch (type) {
      case "subscribe":
        return this.#serial(peer, () => this.#inboundSubscribe(peer, stanza));
      case "subscribed":
        return this.#serial(peer, () => this.#inboundSubscribed(peer));
      case "unsubscribe":
        return this.#serial(peer, () => this.#inboundUnsubscribe(peer));
      case "unsubscribed":
        return this.#serial(peer, () => this.#inboundUnsubscribed(peer));
      case "probe":
        return this.#inboundProbe(peer);
      case undefined:
      case "unavailable":
        return this.#serial(peer, () => this.#inboundPresence(peer, type === undefined, stanza.getChildText("status") ?? null));
      case "error":
        this.#ctx.log.info({ peer, error: stanza.getChild("error")?.elements[0]?.name }, "server presence error from peer");
        return;
      default:
        this.#ignored(peer, `presence of unknown type ${type}`);
    }
  }

  /** Count and log (at debug: a flood must not flood the log) a subscription stanza we do not act on. */
  #ignored(from: string, why: string): void {
    this.metrics.ignored++;
    this.#ctx.log.debug({ from, why }, "server presence ignored");
  }

  /** Record one ignored stanza from outside the s2s checks (called by the module's hook). */
  ignore(from: string, why: string): void {
    this.#ignored(from, why);
  }

  async #inboundSubscribe(peer: string, stanza: Element): Promise<void> {
    const cur = this.#entries.get(peer);
    if (hasFrom(cur?.subscription)) {
      // RFC 6121 §3.1.3: already approved: the server answers for the (absent) person.
      this.#sendPresence(peer, "subscribed");
      return;
    }
    if (cur?.pendingIn) {
      this.metrics.requestsRepeated++;
      return;
    }
    if (cur?.preApproved) {
      this.metrics.preApproved++;
      await this.#approve(peer, PRE_APPROVAL, "protocol", undefined, true);
      this.#ctx.log.info({ peer, requestedBy: cur.decidedBy }, "server trust request approved: our admin asked for mutual trust");
      return;
    }
    if (this.pendingCount() + this.#reserved >= this.#ctx.config.buddies.max_pending) {
      this.metrics.requestsDropped++;
      this.#logDrop(peer);
      return;
    }
    this.#reserved++;
    let r;
    try {
      const status = stanza.getChildText("status")?.slice(0, 200) ?? null;
      const now = Date.now();
      r = await this.#change(peer, (stored) => {
        const e = stored ?? blankEntry(this.host, peer, now);
        if (e.pendingIn || hasFrom(e.subscription)) return undefined;
        const next: BuddyEntry = { ...e, pendingIn: true, pendingInSince: now };
        return { entry: next, audit: { action: "inbound-subscribe", actor: PEER, via: "protocol", detail: status } };
      });
    } finally {
      this.#reserved--;
    }
    if (!r.changed) return;
    this.metrics.requestsReceived++;
    this.#ctx.log.warn({ peer, pending: this.pendingCount() }, "server trust requested by a peer; waiting for an admin (comity buddies approve|deny)");
    this.#notifyAdmins(
      `Server trust request from ${peer}`,
      `The server ${peer} asks ${this.host} to trust it (XEP-0267 server roster).\n` +
        `Nothing happens until an administrator decides:\n` +
        `  comity buddies approve ${peer}    or    comity buddies deny ${peer}\n` +
        `(or the ad-hoc command "Server trust" on ${this.host}).`,
    );
    this.#queryDiscoLater(peer);
  }

  #logDrop(peer: string): void {
    const now = Date.now();
    if (now - this.#dropLog.last < DROP_LOG_INTERVAL_MS) {
      this.#dropLog.suppressed++;
      return;
    }
    this.#ctx.log.warn(
      { peer, maxPending: this.#ctx.config.buddies.max_pending, suppressed: this.#dropLog.suppressed },
      "server trust request dropped: too many requests are waiting for an admin (buddies.max_pending)",
    );
    this.#dropLog = { last: now, suppressed: 0 };
  }

  async #inboundSubscribed(peer: string): Promise<void> {
    const cur = this.#entries.get(peer);
    if (!cur?.pendingOut) {
      // RFC 6121 §3.1.6: a `subscribed` we did not ask for is ignored; it proves nothing.
      this.#ignored(peer, "unsolicited subscribed");
      return;
    }
    const now = Date.now();
    const r = await this.#change(peer, (stored) => {
      if (!stored?.pendingOut) return undefined;
      const next: BuddyEntry = { ...stored, subscription: addTo(stored.subscription), pendingOut: false, pendingOutSince: null, since: now };
      const detail =
        stored.peerImplementsServerRosters === false
          ? `the peer does not advertise ${NS_SERVER_PRESENCE}: this answer may be automatic, not a person's approval`
          : null;
      return { entry: next, audit: { action: "inbound-subscribed", actor: PEER, via: "protocol", detail } };
    });
    if (!r.changed) return;
    this.#ctx.log.info({ peer, peerImplementsServerRosters: r.after?.peerImplementsServerRosters }, "peer approved our server trust request");
    // Learn its availability now rather than at its next restart.
    this.#sendPresence(peer, "probe");
    if (r.after?.peerImplementsServerRosters === null) this.#queryDiscoLater(peer);
  }

  async #inboundUnsubscribe(peer: string): Promise<void> {
    const cur = this.#entries.get(peer);
    if (cur === undefined || (!hasFrom(cur.subscription) && !cur.pendingIn)) {
      this.#ignored(peer, "unsubscribe without a subscription");
      return;
    }
    const r = await this.#change(peer, (stored) => {
      if (stored === undefined || (!hasFrom(stored.subscription) && !stored.pendingIn)) return undefined;
      const next: BuddyEntry = { ...stored, subscription: removeFrom(stored.subscription), pendingIn: false, pendingInSince: null };
      if (next.subscription !== stored.subscription) next.since = Date.now();
      const action = hasFrom(stored.subscription) ? "inbound-unsubscribe" : "inbound-withdrawn";
      return { entry: isEmpty(next) ? undefined : next, audit: { action, actor: PEER, via: "protocol", detail: null } };
    });
    if (!r.changed) return;
    if (hasFrom(r.before?.subscription)) {
      this.#ctx.log.warn({ peer }, "peer withdrew from our server roster (unsubscribe)");
      this.#notifyAdmins(`Server trust withdrawn by ${peer}`, `The server ${peer} unsubscribed from ${this.host}: it no longer asks for our trust.`);
    }
  }

  async #inboundUnsubscribed(peer: string): Promise<void> {
    const cur = this.#entries.get(peer);
    if (cur === undefined || (!hasTo(cur.subscription) && !cur.pendingOut)) {
      this.#ignored(peer, "unsubscribed without a subscription or request");
      return;
    }
    const r = await this.#change(peer, (stored) => {
      if (stored === undefined || (!hasTo(stored.subscription) && !stored.pendingOut)) return undefined;
      const next: BuddyEntry = { ...stored, subscription: removeTo(stored.subscription), pendingOut: false, pendingOutSince: null, preApproved: false };
      if (next.subscription !== stored.subscription) next.since = Date.now();
      const action = hasTo(stored.subscription) ? "revoked" : "denied-by-peer";
      return { entry: isEmpty(next) ? undefined : next, audit: { action, actor: PEER, via: "protocol", detail: null } };
    });
    if (!r.changed) return;
    const revoked = hasTo(r.before?.subscription);
    this.#ctx.log.warn({ peer }, revoked ? "peer revoked its trust in us (unsubscribed)" : "peer declined our server trust request (unsubscribed)");
    this.#notifyAdmins(
      revoked ? `Server trust revoked by ${peer}` : `Server trust request declined by ${peer}`,
      revoked
        ? `The server ${peer} no longer trusts ${this.host} (it cancelled our subscription).`
        : `The server ${peer} declined the trust request of ${this.host}.`,
    );
  }

  #inboundProbe(peer: string): void {
    const cur = this.#entries.get(peer);
    if (hasFrom(cur?.subscription)) this.#sendPresence(peer, undefined);
    // RFC 6121 §4.3.2: no subscription, no presence. While its request waits for an admin, stay silent:
    // an `unsubscribed` now would read as a denial.
    else if (!cur?.pendingIn) this.#sendPresence(peer, "unsubscribed");
  }

  async #inboundPresence(peer: string, available: boolean, status: string | null): Promise<void> {
    if (!this.#entries.has(peer)) {
      this.#ignored(peer, "presence from a peer outside the server roster");
      return;
    }
    const at = Date.now();
    await this.#change(peer, (stored) =>
      stored === undefined ? undefined : { entry: { ...stored, peerAvailable: available, peerStatus: status === null ? null : status.slice(0, 500), peerPresenceAt: at } },
    );
  }

  // --- Server presence (lifecycle). ---

  /** After start: available presence to peers subscribed to us, probes to peers we are subscribed to. */
  announce(): void {
    for (const e of this.#entries.values()) {
      if (hasFrom(e.subscription)) this.#sendPresence(e.peer, undefined);
      if (hasTo(e.subscription)) this.#sendPresence(e.peer, "probe");
    }
  }

  /** On clean shutdown: unavailable presence to peers subscribed to us. */
  goodbye(): void {
    for (const e of this.#entries.values()) if (hasFrom(e.subscription)) this.#sendPresence(e.peer, "unavailable");
  }

  // --- Plumbing. ---

  /** Run changes for one peer one at a time (in arrival order), whatever the outcome of the previous one. */
  #serial<T>(peer: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(peer) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#chains.set(peer, tail);
    void tail.then(() => {
      if (this.#chains.get(peer) === tail) this.#chains.delete(peer);
    });
    return run;
  }

  /** Check-and-set one entry in storage, then update the in-memory copy and tell listeners. */
  async #change(peer: string, decide: (cur: BuddyEntry | undefined) => ServerRosterChange | undefined): Promise<{ before: BuddyEntry | undefined; after: BuddyEntry | undefined; changed: boolean }> {
    let action: string | undefined;
    const r = await this.#store.update(this.host, peer, (cur) => {
      const change = decide(cur === undefined ? undefined : toBuddy(cur));
      action = change?.audit?.action;
      return change;
    });
    const before = r.before === undefined ? undefined : toBuddy(r.before);
    const after = r.after === undefined ? undefined : toBuddy(r.after);
    if (after === undefined) this.#entries.delete(peer);
    else this.#entries.set(peer, after);
    if (r.changed && action !== undefined) this.#emit({ host: this.host, peer, action, entry: after === undefined ? undefined : { ...after } });
    return { before, after, changed: r.changed };
  }

  #emit(change: BuddyChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.#ctx.log.error({ err, peer: change.peer }, "server roster listener failed");
      }
    }
  }

  /** A prepared peer domain, or BuddyError COMITY_ERR_BUDDY_INVALID_PEER. */
  #peer(input: string): string {
    if (typeof input !== "string" || input.includes("@") || input.includes("/")) {
      throw new BuddyError("COMITY_ERR_BUDDY_INVALID_PEER", `${String(input)} is not a server domain`);
    }
    let domain: string;
    try {
      domain = prepareDomain(input.trim());
    } catch (err) {
      if (err instanceof JidError) throw new BuddyError("COMITY_ERR_BUDDY_INVALID_PEER", `${input} is not a server domain: ${err.message}`);
      throw err;
    }
    if (this.#ctx.config.hosts.some((h) => h.domain === domain)) {
      throw new BuddyError("COMITY_ERR_BUDDY_INVALID_PEER", `${domain} is served here; a server roster lists other servers`);
    }
    return domain;
  }

  #actor(decision: Decision): string {
    if (typeof decision?.actor !== "string" || decision.actor === "") throw new TypeError("a decision needs an actor");
    return decision.actor;
  }

  /** Presence from our host JID to the peer's (type undefined: available). Never `subscribe`: see #sendSubscribe. */
  #sendPresence(peer: string, type: "subscribed" | "unsubscribe" | "unsubscribed" | "probe" | "unavailable" | undefined): void {
    const attrs: Record<string, string> = { from: this.host, to: peer, id: stanzaId() };
    if (type !== undefined) attrs["type"] = type;
    this.#ctx.send(new Element("presence", NS_CLIENT, attrs));
  }

  /**
   * XEP-0267 §2: "A server MUST NOT send such a presence subscription request unless explicitly requested to do so
   * by the server administrator(s)". The only place that builds one; called from request() and approve() only
   * (test/buddies/only-admins-subscribe.test.ts pins this).
   */
  #sendSubscribe(peer: string): void {
    this.#ctx.send(new Element("presence", NS_CLIENT, { from: this.host, to: peer, id: stanzaId(), type: "subscribe" }));
  }

  /** A normal message from the host JID to every admin JID (stored offline for those not connected). */
  #notifyAdmins(subject: string, body: string): void {
    if (!this.#ctx.config.buddies.notify_admins) return;
    for (const admin of this.#ctx.hostConfig.admins) {
      const msg = new Element("message", NS_CLIENT, { from: this.host, to: admin, type: "normal", id: stanzaId() });
      msg.c("subject").t(subject);
      msg.c("body").t(body);
      this.#ctx.send(msg);
      this.metrics.notificationsSent++;
    }
  }

  /** Ask the peer's disco#info whether it implements server rosters; record true/false (null: no answer). */
  #queryDiscoLater(peer: string): void {
    if (this.#discoInFlight.has(peer)) return;
    this.#discoInFlight.add(peer);
    void this.#queryDisco(peer)
      .catch((err: unknown) => this.#ctx.log.warn({ err, peer }, "server roster disco query failed"))
      .finally(() => this.#discoInFlight.delete(peer));
  }

  async #queryDisco(peer: string): Promise<void> {
    const iq = new Element("iq", NS_CLIENT, { type: "get", from: this.host, to: peer, id: stanzaId() });
    iq.c("query", {}, NS_DISCO_INFO);
    let value: boolean | null;
    try {
      const res = await this.#ctx.request(iq, this.#ctx.config.buddies.disco_timeout_ms);
      value = res.getChild("query", NS_DISCO_INFO)?.getChildren("feature").some((f) => f.attrs["var"] === NS_SERVER_PRESENCE) ?? false;
    } catch (err) {
      // No answer at all says nothing; an error answer means it does not offer disco, hence not this feature.
      if (!(err instanceof StanzaError)) throw err;
      value = err.condition === "remote-server-timeout" || err.condition === "remote-server-not-found" ? null : false;
    }
    await this.#serial(peer, () =>
      this.#change(peer, (cur) => {
        if (cur === undefined || value === null || cur.peerImplementsServerRosters === value) return undefined;
        return {
          entry: { ...cur, peerImplementsServerRosters: value },
          audit: { action: "peer-features", actor: PEER, via: "protocol", detail: value ? `advertises ${NS_SERVER_PRESENCE}` : `does not advertise ${NS_SERVER_PRESENCE}` },
        };
      }),
    );
  }
}
