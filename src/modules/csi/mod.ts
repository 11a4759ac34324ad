// XEP-0352: Client State Indication <https://xmpp.org/extensions/xep-0352.html> (v0.2): §4.1 the <csi/> stream
// feature after authentication, §4.2 <inactive/> and <active/> (nonzas, never answered), §5 every stream begins
// active, §5.1 in-order processing (the flush on <active/> is written before anything the client sends next is
// handled). What the server does meanwhile is its own choice (§3.2); here: while a session is inactive, what can wait
// (presence updates, chat states, receipts, markers, PEP notifications) is held and superseded presence is squashed per
// contact; what cannot wait (a message with a body, a call proposal, an IQ, an error, subscription requests) goes out
// at once, after everything held before it, so the client sees stanzas in the order they were routed.
import { Element } from "../../xml/element.ts";
import { defineModule } from "../../core/module-api.ts";
import { c2sExtensionName, type C2sSession, type C2sStreamExtension, type OutboundFilter } from "../../core/c2s.ts";
import { StreamError } from "../../xmpp/errors.ts";
import { NS_CARBONS, NS_FORWARD } from "../../xmpp/ns.ts";

export const NS_CSI = "urn:xmpp:csi:0";
const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const NS_MAM = "urn:xmpp:mam:2";

/**
 * Payloads that make a message worth waking the client for: XEP-0353 call signalling (propose, retract, accept,
 * proceed, reject, finish), end-to-end encrypted messages whose body may be absent (OMEMO, OpenPGP), direct MUC
 * invitations (XEP-0249).
 */
const URGENT_PAYLOADS: ReadonlySet<string> = new Set([
  "urn:xmpp:jingle-message:0",
  "eu.siacs.conversations.axolotl",
  "urn:xmpp:omemo:2",
  "urn:xmpp:openpgp:0",
  "jabber:x:encrypted",
  "jabber:x:conference",
]);

const SUBSCRIPTION = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);

/** The verdict on one stanza for an inactive session: send now, or hold (under a squash key; "" never squashes). */
export type Verdict = { urgent: true } | { urgent: false; key: string };

const NOW: Verdict = { urgent: true };
const HOLD: Verdict = { urgent: false, key: "" };

/** Whether a message carries something a person is waiting for (body, subject, call, invitation, encrypted payload). */
function importantMessage(m: Element, depth = 0): boolean {
  for (const c of m.children) {
    if (typeof c === "string") continue;
    if (c.xmlns === m.xmlns && (c.name === "body" || c.name === "subject")) return true;
    if (URGENT_PAYLOADS.has(c.xmlns)) return true;
    if (c.xmlns === NS_MAM && c.name === "result") return true; // the answer to the client's own archive query
    if (c.xmlns === NS_MUC_USER && c.getChild("invite", NS_MUC_USER)) return true; // XEP-0045 §7.8.2 mediated invitation
    if (c.xmlns === NS_CARBONS && depth === 0) {
      // XEP-0280: a copy is as urgent as the message it carries.
      const inner = c.getChild("forwarded", NS_FORWARD)?.elements.find((e) => e.name === "message");
      if (inner && importantMessage(inner, 1)) return true;
    }
  }
  return false;
}

/** Only a XEP-0085 chat state (with the usual companions): superseded by the next one from the same sender. */
function chatStateOnly(m: Element): boolean {
  let state = false;
  for (const c of m.elements) {
    if (c.xmlns === NS_CHATSTATES) state = true;
    else if (c.name !== "thread" && c.xmlns !== "urn:xmpp:hints" && c.xmlns !== "urn:xmpp:sid:0") return false;
  }
  return state;
}

/** Decide what an inactive session gets now and what waits (pure; the rules are the module's doc comment). */
export function classify(st: Element): Verdict {
  const type = st.attrs["type"];
  if (type === "error") return NOW; // the answer to something the client did
  switch (st.name) {
    case "iq":
      return NOW; // requests wait for an answer, results answer the client's own requests
    case "presence": {
      if (type !== undefined && SUBSCRIPTION.has(type)) return NOW; // a person asks, or answers the user
      const x = st.getChild("x", NS_MUC_USER);
      // XEP-0045 §7.2.3: the client's own occupant presence (status 110) completes something it just asked for.
      if (x?.getChildren("status", NS_MUC_USER).some((s) => s.attrs["code"] === "110")) return NOW;
      // Only the latest presence of each full JID matters (RFC 6121 §4.4: each one replaces the previous).
      return { urgent: false, key: `p ${st.attrs["from"] ?? ""}` };
    }
    case "message":
      if (importantMessage(st)) return NOW;
      if (chatStateOnly(st)) return { urgent: false, key: `c ${st.attrs["from"] ?? ""}` };
      return HOLD;
    default:
      return NOW;
  }
}

/** Counters of one host, for the docs figure and tests. */
export interface CsiStats {
  /** Stanzas held at least for a moment. */
  held: number;
  /** Held stanzas replaced by a newer one and never sent. */
  squashed: number;
  /** Flushes because the queue passed max_held. */
  overflows: number;
}

/** What the module provides as "csi" (status, tests). */
export interface CsiApi {
  readonly stats: CsiStats;
  isInactive(session: C2sSession): boolean;
  /** Stanzas held for the session now (0 when active). */
  held(session: C2sSession): number;
}

/** The filter of one inactive session: a queue in routing order, with superseded entries blanked out. */
export class CsiFilter implements OutboundFilter {
  readonly name = "csi";
  /** Low: runs after filters that drop or rewrite stanzas, just before XEP-0198 counts and the socket writes. */
  readonly priority = -100;
  readonly #session: C2sSession;
  readonly #max: number;
  readonly #stats: CsiStats;
  readonly #onDone: () => void;
  /** Held stanzas in routing order; a squashed one leaves an undefined hole. */
  #queue: (Element | undefined)[] = [];
  /** Squash key → index in #queue. */
  #index = new Map<string, number>();
  #live = 0;

  constructor(session: C2sSession, opts: { maxHeld: number; stats: CsiStats; onDone: () => void }) {
    this.#session = session;
    this.#max = opts.maxHeld;
    this.#stats = opts.stats;
    this.#onDone = opts.onDone;
  }

  /** Stanzas held now. */
  get held(): number {
    return this.#live;
  }

  filter(stanza: Element): Element | undefined {
    const v = classify(stanza);
    if (v.urgent) {
      // Order: what was routed before it goes first (a presence and then a message from a contact stay in order).
      this.flush();
      return stanza;
    }
    this.#stats.held++;
    if (v.key !== "") {
      const prev = this.#index.get(v.key);
      if (prev !== undefined) {
        this.#queue[prev] = undefined;
        this.#live--;
        this.#stats.squashed++;
      }
      this.#index.set(v.key, this.#queue.length);
    }
    this.#queue.push(stanza);
    this.#live++;
    if (this.#live > this.#max) {
      // Bounded memory: past the limit everything goes out, and holding starts again from nothing.
      this.#stats.overflows++;
      this.flush();
    }
    return undefined;
  }

  /** Write everything held, in order. The queue is detached first: a write may end the session, which drains again. */
  flush(): void {
    if (this.#live === 0) {
      if (this.#queue.length > 0) this.#reset();
      return;
    }
    const q = this.#queue;
    this.#reset();
    for (const st of q) if (st !== undefined) this.#session.sendPast(this, st);
  }

  #reset(): void {
    this.#queue = [];
    this.#index = new Map();
    this.#live = 0;
  }

  /** The session hibernates or ends: held stanzas join the XEP-0198 queue; a resumed stream begins active (§5). */
  drain(): void {
    this.flush();
    this.#onDone();
  }
}

export default defineModule({
  name: "csi",
  protocol: [{ xep: 352, version: "0.2" }],
  setup(ctx) {
    const cfg = ctx.config.csi;
    if (!cfg.enabled) return;
    const stats: CsiStats = { held: 0, squashed: 0, overflows: 0 };
    /** The filter of each session that is inactive now. */
    const inactive = new WeakMap<C2sSession, CsiFilter>();
    const activate = (session: C2sSession, f: CsiFilter): void => {
      if (inactive.get(session) !== f) return;
      inactive.delete(session);
      f.flush(); // §5.1: on the wire before the next thing the client sent is handled
      session.removeOutboundFilter(f);
    };
    const extension: C2sStreamExtension = {
      feature: new Element("csi", NS_CSI),
      element(session, el) {
        switch (el.name) {
          case "inactive": {
            if (inactive.has(session)) return; // already inactive: nothing changes
            const f: CsiFilter = new CsiFilter(session, { maxHeld: cfg.max_held, stats, onDone: () => activate(session, f) });
            inactive.set(session, f);
            session.addOutboundFilter(f);
            return;
          }
          case "active": {
            const f = inactive.get(session);
            if (f) activate(session, f);
            return;
          }
          default:
            throw new StreamError("unsupported-stanza-type", { text: `<${el.name}/> is not a client state indication` });
        }
      },
    };
    ctx.provide(c2sExtensionName(NS_CSI), extension);
    const api: CsiApi = { stats, isInactive: (session) => inactive.has(session), held: (session) => inactive.get(session)?.held ?? 0 };
    ctx.provide("csi", api);
  },
});
