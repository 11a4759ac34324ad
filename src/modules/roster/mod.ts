// RFC 6121 §2 rosters (get, set, remove, §2.1.6 pushes, §2.6 versioning) and §3 presence subscriptions
// (Appendix A state tables in subscription.ts, §3.4 pre-approval, pending requests redelivered on login).
import { readdress } from "../../xmpp/stanza.ts";
import { Element, x } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_CLIENT, NS_ROSTER } from "../../xmpp/ns.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { HANDLED, type HookResult, type StanzaEvent } from "../../core/events.ts";
import type { RosterItem } from "../../storage/types.ts";
import { inbound, isSubscriptionType, outbound, NONE, type SubState, type SubscriptionType } from "./subscription.ts";

/** Longest roster item name or group name accepted, in characters (RFC 6121 §2.3.3: beyond it, not-acceptable). */
export const MAX_NAME_LENGTH = 1024;

/** The `<item/>` of a roster result or push (RFC 6121 §2.1.2). */
export function itemElement(item: RosterItem): Element {
  const el = x("item", NS_ROSTER, {
    jid: item.jid,
    name: item.name,
    subscription: item.subscription,
    ask: item.ask ? "subscribe" : undefined,
    approved: item.approved ? "true" : undefined,
  });
  for (const g of item.groups) el.c("group").t(g);
  return el;
}

/** The subscription state of a stored item (absent: None) with the pending inbound request flag. */
export function stateOf(item: RosterItem | undefined, pendingIn: boolean): SubState {
  if (!item) return { ...NONE, pendingIn };
  return { subscription: item.subscription, pendingOut: item.ask, pendingIn, approved: item.approved };
}

/** Run async work for one key at a time (a user's roster changes must not interleave). */
function serializer(): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  };
}

let pushCounter = 0;

/** Roster storage, pushes and subscription handling for one host. */
function setup(ctx: ModuleContext): void {
  const host = ctx.host;
  const rosters = ctx.storage.rosters;
  const exclusive = serializer();

  /** §2.1.6: push the changed item to every resource that fetched the roster, with the new version (§2.6.2). */
  function push(username: string, item: Element, version: number): void {
    for (const s of ctx.sessions.ofBare(`${username}@${host}`).values()) {
      if (!s.interested) continue;
      const iq = x("iq", NS_CLIENT, { type: "set", id: `push-${(++pushCounter).toString(36)}`, to: s.jid.toString() },
        x("query", NS_ROSTER, { ver: String(version) }, item.clone()));
      s.deliver(iq);
    }
  }

  async function hasPendingIn(username: string, jid: string): Promise<boolean> {
    return (await rosters.pendingIn(host, username)).some((p) => p.jid === jid);
  }

  /** Store a state change of `jid` in `username`'s roster (creating the item when it says something) and push it. */
  async function store(username: string, jid: string, item: RosterItem | undefined, before: SubState, after: SubState): Promise<void> {
    if (before.pendingIn && !after.pendingIn) await rosters.setPendingIn(host, username, jid, undefined);
    if (before.subscription === after.subscription && before.pendingOut === after.pendingOut && before.approved === after.approved) return;
    const next: RosterItem = item
      ? { ...item, subscription: after.subscription, ask: after.pendingOut, approved: after.approved }
      : { jid, subscription: after.subscription, ask: after.pendingOut, approved: after.approved, groups: [] };
    if (!item && next.subscription === "none" && !next.ask && !next.approved) return;
    const version = await rosters.setItem(host, username, next);
    push(username, itemElement(next), version);
  }

  /** Presence of each available resource of `user` (or unavailable from each) sent to `contact` (§3.1.5, §3.2.2, §3.3.3). */
  function presenceTo(user: Jid, contact: string, kind: "available" | "unavailable"): void {
    for (const s of ctx.sessions.ofBare(user.toString()).values()) {
      if (!s.available) continue;
      const p = kind === "available" && s.presence ? s.presence.clone() : x("presence", NS_CLIENT, { type: "unavailable" });
      ctx.send(readdress(p, s.jid.toString(), contact));
    }
  }

  function assertOwner(from: Jid, to: Jid): void {
    // §2.1.5 / §2.3.3: only the account's own resources may see or change its roster.
    if (!from.bare.equals(to.bare)) throw new StanzaError("forbidden");
  }

  // §2.1.3 roster get, with §2.6.3 versioning: an unchanged `ver` gets an empty result (changes come as pushes).
  ctx.handleIq("get", "account", NS_ROSTER, "query", async (_iq, { from, to, payload }) => {
    assertOwner(from, to);
    const session = ctx.sessions.get(from);
    if (session) session.interested = true;
    const { version, items } = await rosters.get(host, to.local);
    const ver = String(version);
    if (payload.attrs["ver"] === ver) return undefined;
    const q = new Element("query", NS_ROSTER, { ver });
    for (const item of items) q.children.push(itemElement(item));
    return q;
  });

  // §2.3 add/update and §2.5 remove.
  ctx.handleIq("set", "account", NS_ROSTER, "query", async (_iq, { from, to, payload }) => {
    assertOwner(from, to);
    const items = payload.getChildren("item", NS_ROSTER);
    if (items.length !== 1 || payload.elements.length !== 1) throw new StanzaError("bad-request", { text: "a roster set carries exactly one item" });
    const el = items[0]!;
    const jidAttr = el.attrs["jid"];
    if (jidAttr === undefined) throw new StanzaError("bad-request", { text: "the item has no jid" });
    const contact = tryParseJid(jidAttr);
    if (!contact) throw new StanzaError("jid-malformed");
    if (!contact.isBare) throw new StanzaError("bad-request", { text: "roster items are bare JIDs" });
    if (contact.equals(to.bare)) throw new StanzaError("not-allowed", { text: "your own JID is not a contact" });
    const jid = contact.toString();
    const username = to.local;
    if (el.attrs["subscription"] === "remove") {
      await exclusive(to.toString(), () => remove(to.bare, jid));
      return undefined;
    }
    // §2.1.2.5: any other subscription value (and ask/approved) in a set is ignored.
    const name = el.attrs["name"];
    if (name !== undefined && name.length > MAX_NAME_LENGTH) throw new StanzaError("not-acceptable", { text: "the name is too long" });
    const groups = el.getChildren("group", NS_ROSTER).map((g) => g.text());
    for (const g of groups) {
      if (g === "") throw new StanzaError("not-acceptable", { text: "a group name is empty" });
      if (g.length > MAX_NAME_LENGTH) throw new StanzaError("not-acceptable", { text: "a group name is too long" });
    }
    if (new Set(groups).size !== groups.length) throw new StanzaError("bad-request", { text: "a group is listed twice" });
    await exclusive(to.toString(), async () => {
      const existing = await rosters.getItem(host, username, jid);
      if (!existing && (await rosters.count(host, username)) >= ctx.config.roster.max_items) {
        throw new StanzaError("not-allowed", { text: `a roster holds at most ${ctx.config.roster.max_items} items` });
      }
      const item: RosterItem = {
        jid,
        subscription: existing?.subscription ?? "none",
        ask: existing?.ask ?? false,
        approved: existing?.approved ?? false,
        groups,
        ...(name ? { name } : {}),
      };
      push(username, itemElement(item), await rosters.setItem(host, username, item));
    });
    return undefined;
  });

  /** §2.5.2: remove the item, push it as removed, then end both directions of the subscription with the contact. */
  async function remove(user: Jid, jid: string): Promise<void> {
    const item = await rosters.getItem(host, user.local, jid);
    if (!item) throw new StanzaError("item-not-found");
    const pendingIn = await hasPendingIn(user.local, jid);
    const version = await rosters.removeItem(host, user.local, jid);
    if (version === undefined) throw new StanzaError("item-not-found");
    push(user.local, x("item", NS_ROSTER, { jid, subscription: "remove" }), version);
    if (pendingIn) await rosters.setPendingIn(host, user.local, jid, undefined);
    const state = stateOf(item, pendingIn);
    const from = user.toString();
    if (state.subscription === "to" || state.subscription === "both" || state.pendingOut) {
      ctx.send(x("presence", NS_CLIENT, { type: "unsubscribe", from, to: jid }));
    }
    const hadFrom = state.subscription === "from" || state.subscription === "both";
    if (hadFrom || state.pendingIn) {
      ctx.send(x("presence", NS_CLIENT, { type: "unsubscribed", from, to: jid }));
      if (hadFrom) presenceTo(user, jid, "unavailable");
    }
  }

  /** A subscription stanza sent by a local user (RFC 6121 §3.1.2, §3.2.2, §3.3.2, §3.4.1; Appendix A.2). */
  async function sent(ev: StanzaEvent): Promise<HookResult> {
    const type = ev.stanza.attrs["type"];
    if (!isSubscriptionType(type) || !ev.to) return undefined;
    const user = ev.from.bare;
    const contact = ev.to.bare;
    // The user is implicitly subscribed to itself both ways; nothing to store or send.
    if (contact.equals(user)) return HANDLED;
    const jid = contact.toString();
    const t = await exclusive(user.toString(), async () => {
      const item = await rosters.getItem(host, user.local, jid);
      const before = stateOf(item, await hasPendingIn(user.local, jid));
      const t = outbound(before, type);
      // Any change that would create an item counts: a request, an approval of a pending one, a pre-approval.
      const creates = !item && (t.state.subscription !== "none" || t.state.pendingOut || t.state.approved);
      if (creates && (await rosters.count(host, user.local)) >= ctx.config.roster.max_items) {
        throw new StanzaError("not-allowed", { text: `a roster holds at most ${ctx.config.roster.max_items} items` });
      }
      await store(user.local, jid, item, before, t.state);
      return t;
    });
    // The contact sees the request from the user's bare JID (§3.1.2), whatever resource sent it. An approval reaches
    // the contact before the user's presence (§3.1.5, §3.1.6: roster push, `subscribed`, then presence): a local
    // contact's server side handles `subscribed` with storage writes, so the presence waits until that routing is
    // done. Outside the per-user lock, so two users approving each other at once cannot wait on each other.
    if (t.pass) await ctx.send(readdress(ev.stanza, user.toString(), jid));
    if (t.presence) presenceTo(user, jid, t.presence);
    return HANDLED;
  }

  /** A subscription stanza arriving for a local user (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3; Appendix A.3). */
  async function received(ev: StanzaEvent): Promise<HookResult> {
    const type: string | undefined = ev.stanza.attrs["type"];
    if (!isSubscriptionType(type) || !ev.to) return undefined;
    const user = ev.to.bare;
    const contact = ev.from.bare;
    if (contact.equals(user)) return HANDLED;
    const jid = contact.toString();
    const t = await exclusive(user.toString(), async () => {
      if (ctx.sessions.ofBare(user.toString()).size === 0 && !(await ctx.storage.accounts.get(host, user.local))) {
        // No such user (RFC 6121 §8.5.1): a request is refused with `unsubscribed`, anything else is dropped.
        if (type === "subscribe") ctx.send(x("presence", NS_CLIENT, { type: "unsubscribed", from: user.toString(), to: jid }));
        return undefined;
      }
      return receivedFor(user, jid, type, ev.stanza);
    });
    // A pre-approved request (§3.4): `subscribed` first, the user's presence after it (as in `sent`).
    if (t?.replySubscribed) await ctx.send(x("presence", NS_CLIENT, { type: "subscribed", from: user.toString(), to: jid }));
    if (t?.presence) presenceTo(user, jid, t.presence);
    return HANDLED;
  }

  async function receivedFor(user: Jid, jid: string, type: SubscriptionType, stanza: Element): Promise<ReturnType<typeof inbound>> {
    const item = await rosters.getItem(host, user.local, jid);
    const before = stateOf(item, await hasPendingIn(user.local, jid));
    const t = inbound(before, type);
    // Clients see the contact's bare JID (§3.1.3) addressed to the user's bare JID.
    const delivered = readdress(stanza, jid, user.toString());
    if (t.state.pendingIn && !before.pendingIn) await rosters.setPendingIn(host, user.local, jid, delivered.toString());
    await store(user.local, jid, item, before, t.state);
    if (t.pass) for (const s of ctx.sessions.ofBare(user.toString()).values()) if (s.available) s.deliver(delivered.clone());
    return t;
  }

  ctx.hook("pre-presence/bare", sent);
  ctx.hook("pre-presence/full", sent);
  ctx.hook("presence/bare", received);
  ctx.hook("presence/full", received);

  // §3.1.3: requests that arrived while the user was offline (or not yet answered) reach each newly available resource.
  ctx.hook("session/available", async ({ session }) => {
    for (const p of await rosters.pendingIn(host, session.jid.local)) {
      try {
        session.deliver(parseXml(p.stanza));
      } catch (err) {
        ctx.log.warn({ err, jid: p.jid }, "stored subscription request is unreadable");
      }
    }
  });
}

export default defineModule({
  name: "roster",
  protocol: [{ rfc: 6121 }],
  setup,
});
