// XEP-0160: Best Practices for Handling Offline Messages <https://xmpp.org/extensions/xep-0160.html> §2-§4 with
// RFC 6121 §8.5.2.1.1 (store or bounce), XEP-0203 delay stamps on delivery and XEP-0334 store/no-store hints.
import { Element, serialize } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { HANDLED } from "../../core/events.ts";
import type { LocalSession } from "../../core/sessions.ts";
import type { Jid } from "../../xmpp/jid.ts";

/** XEP-0203 Delayed Delivery. */
export const NS_DELAY = "urn:xmpp:delay";
/** XEP-0334 Message Processing Hints. */
export const NS_HINTS = "urn:xmpp:hints";
/** XEP-0085 Chat State Notifications. */
export const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";
/** The disco#info feature of XEP-0160 §5. */
export const FEATURE_MSGOFFLINE = "msgoffline";

/** A message the offline module stored for a local account. */
export interface OfflineStored {
  username: string;
  stanza: Element;
  from: Jid;
}

/** What the offline module provides to the others on its host (`use<OfflineApi>("offline")`). */
export interface OfflineApi {
  /** Call `fn` after each message is stored (synchronously; it must not throw or wait). */
  onStored(fn: (ev: OfflineStored) => void): void;
}

/** What to do with a message that found no available resource: keep it, drop it quietly, or let the router bounce it. */
export type OfflineDecision = "store" | "drop" | "bounce";

/**
 * Decide whether a message for an offline user is stored (XEP-0160 §4, XEP-0334 §4).
 * Errors, groupchat and headline are never kept unless a `<store/>` hint asks for it (never for errors or groupchat);
 * `<no-store/>` always wins; a message carrying nothing but chat states, hints or a thread is dropped quietly.
 */
export function offlineDecision(stanza: Element): OfflineDecision {
  const type = stanza.attrs["type"] ?? "normal";
  // The router itself drops groupchat and headline silently and never answers an error with an error.
  if (type === "error" || type === "groupchat") return "bounce";
  if (stanza.getChild("no-store", NS_HINTS)) return "bounce";
  const forced = stanza.getChild("store", NS_HINTS) !== undefined;
  if (type === "headline") return forced ? "store" : "bounce";
  if (type !== "normal" && type !== "chat") return "bounce";
  if (forced || hasContent(stanza)) return "store";
  // XEP-0160 §4: notifications alone are not worth keeping, and an error back would only be noise.
  return "drop";
}

/** True when the message carries something a person would read later (not just chat states, hints or a thread). */
function hasContent(stanza: Element): boolean {
  for (const c of stanza.children) {
    if (typeof c === "string") continue;
    if (c.xmlns === NS_CHATSTATES || c.xmlns === NS_HINTS) continue;
    if (c.xmlns === stanza.xmlns && c.name === "thread") continue;
    return true;
  }
  return false;
}

/** A copy of a stored message with a XEP-0203 `<delay/>` from the host at the time it was stored. */
export function withDelay(stanza: Element, host: string, stamp: number): Element {
  const out = stanza.clone();
  out.children.push(new Element("delay", NS_DELAY, { from: host, stamp: new Date(stamp).toISOString() }, ["Offline Storage"]));
  return out;
}

/**
 * The stored form of a stanza: serialised relative to its own namespace, so that it reads back in jabber:client
 * whether it arrived from a client or (later) over s2s in jabber:server.
 */
export function storedForm(stanza: Element): string {
  return serialize(stanza, stanza.xmlns);
}

export default defineModule({
  name: "offline",
  protocol: [{ xep: 160, version: "1.0.1" }, { xep: 203, version: "2.0" }, { xep: 334, version: "1.0.0" }, { rfc: 6121 }],
  setup(ctx) {
    const quota = ctx.config.offline.max_messages;
    if (quota === 0) return; // storage disabled: every offline message is bounced by the router (RFC 6121 §8.5.2.1.1)
    ctx.addFeature(FEATURE_MSGOFFLINE);
    const store = ctx.storage.offline;
    // Told after a message was stored (push, XEP-0357, wakes the user's phone); provided rather than fired as an
    // event because only what this module decides to keep counts, and it decides inside its own hook.
    const stored: ((ev: OfflineStored) => void)[] = [];
    ctx.provide("offline", { onStored: (fn) => void stored.push(fn) } satisfies OfflineApi);

    ctx.hook("message/offline", async ({ stanza, from, to }) => {
      if (!to) return;
      const decision = offlineDecision(stanza);
      if (decision === "bounce") return;
      // RFC 6121 §8.5.1: no account, no storage; the router answers service-unavailable.
      if (!(await ctx.storage.accounts.get(ctx.host, to.local))) return;
      if (decision === "drop") return HANDLED;
      const ok = await store.push(ctx.host, to.local, storedForm(stanza), { stamp: Date.now(), quota });
      // Over quota: nothing stored, and the sender learns it through the router's service-unavailable (XEP-0160 §2).
      if (!ok) return undefined;
      for (const fn of stored) {
        try {
          fn({ username: to.local, stanza, from });
        } catch (err) {
          ctx.log.error({ err }, "an offline/stored listener failed");
        }
      }
      return HANDLED;
    });

    const flusher = createFlusher(ctx);
    // Sessions whose initial presence was announced (so a later priority change can trigger delivery).
    const announced = new WeakSet<LocalSession>();

    ctx.hook("session/available", async ({ session }) => {
      announced.add(session);
      if (session.priority >= 0) await flusher(session);
    });
    // A session already available that raises its priority to non-negative now takes bare-JID messages.
    ctx.hook("pre-presence/self", async ({ stanza, from }) => {
      const session = ctx.sessions.get(from);
      if (!session || !announced.has(session)) return;
      const type = stanza.attrs["type"];
      if (type === "unavailable") announced.delete(session);
      else if (type === undefined && session.available && session.priority >= 0) await flusher(session);
    }, 100);
  },
});

/**
 * Delivery of stored messages to a session that became available with a non-negative priority (XEP-0160 §2 step 5):
 * one flush at a time per user, messages deleted only after they were handed to the session.
 */
function createFlusher(ctx: ModuleContext): (session: LocalSession) => Promise<void> {
  const running = new Map<string, Promise<void>>();
  const store = ctx.storage.offline;

  const stillThere = (s: LocalSession): boolean => ctx.sessions.get(s.jid) === s && s.available && s.priority >= 0;

  const flushOnce = async (session: LocalSession): Promise<void> => {
    const user = session.jid.local;
    // Loop: a message stored while we were delivering is picked up too (bounded so a flood cannot pin us here).
    for (let round = 0; round < 10 && stillThere(session); round++) {
      const list = await store.list(ctx.host, user);
      if (list.length === 0) return;
      const done: number[] = [];
      for (const m of list) {
        if (!stillThere(session)) break;
        let el: Element;
        try {
          el = parseXml(m.stanza);
        } catch (err) {
          ctx.log.warn({ err, id: m.id }, "dropping an unreadable offline message");
          done.push(m.id);
          continue;
        }
        session.deliver(withDelay(el, ctx.host, m.stamp));
        done.push(m.id);
      }
      if (done.length > 0) await store.delete(ctx.host, user, done);
      if (done.length < list.length) return;
    }
  };

  return async (session) => {
    const key = session.jid.bareString();
    const prev = running.get(key) ?? Promise.resolve();
    const next = prev.then(() => flushOnce(session)).catch((err: unknown) => {
      ctx.log.error({ err, jid: session.jid }, "offline delivery failed");
    });
    running.set(key, next);
    await next;
    if (running.get(key) === next) running.delete(key);
  };
}
