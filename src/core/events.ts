// Named hooks with priorities (STYLE.md §3.2): higher priority runs first; a handler returning HANDLED stops
// the chain. Event names and payloads are declared here so a wrong name fails type-checking.
import type { Element } from "../xml/element.ts";
import type { StanzaCondition } from "../xmpp/errors.ts";
import type { Jid } from "../xmpp/jid.ts";
import type { Origin } from "./module-api.ts";
import type { LocalSession } from "./sessions.ts";

export const HANDLED = Symbol("handled");
export type HookResult = typeof HANDLED | undefined | void;

/** A stanza on its way: sender, recipient (undefined: none given), and where it came from. */
export interface StanzaEvent {
  stanza: Element;
  from: Jid;
  to: Jid | undefined;
  origin: Origin;
}

/** Every event and its payload. */
export interface EventMap {
  /** Sent by a local client to a bare JID / full JID / its own host / no `to` (presence broadcast). */
  "pre-presence/bare": StanzaEvent;
  "pre-presence/full": StanzaEvent;
  "pre-presence/self": StanzaEvent;
  "pre-message/bare": StanzaEvent;
  "pre-message/full": StanzaEvent;
  /** An IQ a local client sends to another entity (not its own account, not its own host). */
  "pre-iq/out": StanzaEvent;
  /** Arriving for a local account's bare JID / one of its full JIDs / a host. */
  "presence/bare": StanzaEvent;
  "presence/full": StanzaEvent;
  "presence/host": StanzaEvent;
  "message/bare": StanzaEvent;
  "message/full": StanzaEvent;
  "message/host": StanzaEvent;
  /** An IQ arriving for a local account (its bare JID or one of its full JIDs) from another entity. */
  "iq/account": StanzaEvent;
  /** A message for a local account with no available session that takes it (RFC 6121 §8.5.2.1.1). */
  "message/offline": StanzaEvent;
  /** A client session bound a resource / sent its initial presence / ended (with the reason). */
  "session/bound": { session: LocalSession };
  "session/available": { session: LocalSession };
  "session/ended": { session: LocalSession; reason: string };
  /**
   * A stanza was queued for a session whose connection is gone while it waits for XEP-0198 resumption (it reaches
   * the client only if the client resumes). Fired after the stanza joined the queue; push (XEP-0357) wakes the phone.
   */
  "session/hibernated-stanza": { session: LocalSession; stanza: Element };
  /**
   * A session's connection died and it now waits for XEP-0198 resumption; `queued` are the stanzas it had not
   * acknowledged (they may never have reached the client) / it was resumed on a new connection (XEP-0198 §5).
   */
  "session/hibernating": { session: LocalSession; queued: Element[] };
  "session/resumed": { session: LocalSession };
  /** An account was deleted: modules drop its data. */
  "account/deleted": { host: string; username: string };
  /** Every listener accepts connections / a clean shutdown began (before links close). */
  "server/started": { host: string };
  "server/stopping": { host: string };
  /**
   * A stanza is about to cross a server-to-server link (out: before queueing; in: after the link's checks).
   * A handler returning HANDLED refuses it (federation policy); the sender gets `error` (default policy-violation),
   * or nothing when the handler set `drop` (e.g. presence a blocked contact must not see, with no error echo).
   */
  "s2s/filter": { stanza: Element; local: string; remote: string; direction: "in" | "out"; host: string; error?: StanzaCondition; drop?: boolean };
  /** A peer domain authenticated on a link; handlers may loosen or tighten its limits. */
  "s2s/authenticated": { local: string; remote: string; direction: "in" | "out"; host: string; setMaxStanzaSize(bytes: number): void };
}

export type EventName = keyof EventMap;

/**
 * Decision events, dispatched with fireSync on paths that must not reorder stanzas: their handlers answer at once, so
 * the type forbids a promise (an async policy would otherwise be counted as "not handled" and let everything pass).
 */
export type SyncEventName = "s2s/filter";

export type Handler<E extends EventName> = (payload: EventMap[E]) => E extends SyncEventName ? HookResult : HookResult | Promise<HookResult>;

interface Entry {
  priority: number;
  handler: (payload: never) => HookResult | Promise<HookResult>;
}

/** The hook table of one server (events carry their host in the payload's addresses). */
export class Events {
  readonly #table = new Map<string, Entry[]>();

  /** Add a handler; returns a function that removes it. */
  on<E extends EventName>(name: E, handler: Handler<E>, priority = 0): () => void {
    let list = this.#table.get(name);
    if (!list) this.#table.set(name, (list = []));
    const entry: Entry = { priority, handler: handler as Entry["handler"] };
    list.push(entry);
    list.sort((a, b) => b.priority - a.priority);
    return () => {
      const l = this.#table.get(name);
      if (l) l.splice(l.indexOf(entry), 1);
    };
  }

  /** Whether anything listens (to skip building payloads on hot paths). */
  has(name: EventName): boolean {
    return (this.#table.get(name)?.length ?? 0) > 0;
  }

  /**
   * Synchronous dispatch of a decision (SyncEventName) on a hot path that must not reorder stanzas, such as the
   * federation filter. It fails closed: a handler that throws, or that returns a promise despite its type (plain
   * JavaScript, a cast), counts as HANDLED, i.e. a refusal, never as a pass. `onFault` hears about it.
   */
  fireSync<E extends SyncEventName>(name: E, payload: EventMap[E], onFault?: (err: unknown) => void): boolean {
    const list = this.#table.get(name);
    if (!list) return false;
    for (const { handler } of list) {
      let r: unknown;
      try {
        r = (handler as (p: EventMap[E]) => unknown)(payload);
      } catch (err) {
        onFault?.(err);
        return true;
      }
      if (r === HANDLED) return true;
      if (r !== undefined && typeof (r as { then?: unknown }).then === "function") {
        (r as Promise<unknown>).then(undefined, () => {});
        onFault?.(new Error(`a ${name} handler returned a promise: decisions must answer synchronously`));
        return true;
      }
    }
    return false;
  }

  /**
   * Like `fire`, but stays synchronous while handlers answer synchronously: returns a boolean, or a promise
   * from the first handler that returned one on. The router uses it on the per-stanza path (no promise churn).
   */
  dispatch<E extends EventName>(name: E, payload: EventMap[E]): boolean | Promise<boolean> {
    const list = this.#table.get(name);
    if (!list) return false;
    for (let i = 0; i < list.length; i++) {
      const r = (list[i]!.handler as Handler<E>)(payload);
      if (r === HANDLED) return true;
      if (r instanceof Promise) return this.#continue(list, i, r, payload);
    }
    return false;
  }

  async #continue<E extends EventName>(list: Entry[], i: number, pending: Promise<HookResult>, payload: EventMap[E]): Promise<boolean> {
    if ((await pending) === HANDLED) return true;
    for (let j = i + 1; j < list.length; j++) {
      let r = (list[j]!.handler as Handler<E>)(payload);
      if (r instanceof Promise) r = await r;
      if (r === HANDLED) return true;
    }
    return false;
  }

  /** Run handlers in priority order until one returns HANDLED; resolves true when one did. */
  async fire<E extends EventName>(name: E, payload: EventMap[E]): Promise<boolean> {
    const list = this.#table.get(name);
    if (!list) return false;
    for (const { handler } of list) {
      let r = (handler as Handler<E>)(payload);
      if (r instanceof Promise) r = await r;
      if (r === HANDLED) return true;
    }
    return false;
  }
}
