// XEP-0191: Blocking Command <https://xmpp.org/extensions/xep-0191.html> §3.2 blocklist, §3.3 block, §3.4 unblock
// (one / all) with pushes, §3.5–§3.7 enforcement both ways; reports inside an item (XEP-0377) go to abuse-reports.
import { Element, x } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_CLIENT } from "../../xmpp/ns.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { readdress } from "../../xmpp/stanza.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { HANDLED, type HookResult, type StanzaEvent } from "../../core/events.ts";

export const NS_BLOCKING = "urn:xmpp:blocking";
export const NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors";
/** XEP-0377 report payload inside a block item. */
export const NS_REPORTING = "urn:xmpp:reporting:1";

/** What the abuse-reports module offers the blocking module (`ctx.use("abuse-reports")`). */
export interface AbuseReportSink {
  /** A local user blocked `reported` and attached a XEP-0377 `<report/>`. */
  submit(user: Jid, reported: Jid, report: Element): void;
}

/** What this module provides to others as "blocking": synchronous answers from its cache of loaded blocklists. */
export interface BlockingApi {
  /** Whether `user` (a local bare JID of this host) blocks `other`; false when the blocklist is not loaded. */
  blocksSync(user: Jid, other: Jid): boolean;
  /** The user's blocklist (loads it). */
  list(user: Jid): Promise<string[]>;
}

/**
 * Whether a blocklist item matches an address (XEP-0191 §3.6 uses the XEP-0016 §2.1 rules): user@domain/resource
 * matches only itself, user@domain any of its resources, domain/resource only itself, domain everything at the domain.
 */
export function itemMatches(item: Jid, jid: Jid): boolean {
  if (item.domain !== jid.domain) return false;
  if (item.local !== "") return item.local === jid.local && (item.resource === "" || item.resource === jid.resource);
  if (item.resource !== "") return jid.local === "" && item.resource === jid.resource;
  return true;
}

const STORE = "blocklist";
const KEY = "items";

/** The `<blocked/>` application condition of XEP-0191 §3.7. */
function blockedError(): StanzaError {
  return new StanzaError("not-acceptable", { app: new Element("blocked", NS_BLOCKING_ERRORS) });
}

let pushCounter = 0;

function setup(ctx: ModuleContext): void {
  const host = ctx.host;
  const kv = ctx.storage.keyval(STORE);
  /** username -> parsed items, for users whose list was loaded (kept while they have sessions). */
  const cache = new Map<string, Jid[]>();
  /** Full JIDs that fetched the blocklist and so get pushes (§3.3). */
  const interested = new Set<string>();
  /** One change at a time per user, so concurrent block/unblock requests do not lose items. */
  const queues = new Map<string, Promise<unknown>>();

  function exclusive<T>(username: string, fn: () => Promise<T>): Promise<T> {
    const prev = queues.get(username) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.then(() => undefined, () => undefined);
    queues.set(username, settled);
    void settled.then(() => {
      if (queues.get(username) === settled) queues.delete(username);
    });
    return next;
  }

  async function load(username: string): Promise<Jid[]> {
    const cached = cache.get(username);
    if (cached) return cached;
    const raw = await kv.get(host, username, KEY);
    const items: Jid[] = [];
    if (raw !== undefined) {
      try {
        for (const s of JSON.parse(raw) as unknown[]) {
          const j = typeof s === "string" ? tryParseJid(s) : undefined;
          if (j) items.push(j);
        }
      } catch {
        ctx.log.warn({ username }, "blocklist: stored list is not valid JSON; treated as empty");
      }
    }
    // A concurrent load may have filled the cache first; keep the one already there.
    const again = cache.get(username);
    if (again) return again;
    // Only users with sessions stay cached (evicted when the last one ends), so memory follows who is online.
    if (ctx.sessions.ofBare(`${username}@${host}`).size > 0) cache.set(username, items);
    return items;
  }

  async function save(username: string, items: Jid[]): Promise<void> {
    await kv.set(host, username, KEY, items.length === 0 ? undefined : JSON.stringify(items.map((j) => j.toString())));
    if (ctx.sessions.ofBare(`${username}@${host}`).size > 0) cache.set(username, items);
    else cache.delete(username);
  }

  const isLocalUser = (j: Jid | undefined): j is Jid => j !== undefined && j.domain === host && j.local !== "";
  const matchesAny = (items: Jid[], jid: Jid): boolean => items.some((i) => itemMatches(i, jid));

  async function blocks(user: Jid, other: Jid): Promise<boolean> {
    return matchesAny(await load(user.local), other);
  }

  function blocksSync(user: Jid, other: Jid): boolean {
    const items = cache.get(user.local);
    return items !== undefined && matchesAny(items, other);
  }

  /** Send a push (§3.3, §3.4) to every resource of the user that fetched the blocklist. */
  function push(username: string, payload: Element): void {
    for (const s of ctx.sessions.ofBare(`${username}@${host}`).values()) {
      if (!interested.has(s.jid.toString())) continue;
      s.deliver(x("iq", NS_CLIENT, { type: "set", id: `block-push-${(++pushCounter).toString(36)}`, to: s.jid.toString() }, payload.clone()));
    }
  }

  /** Parse the items of a block/unblock request; a malformed JID fails the whole request (§3.3). */
  function parseItems(payload: Element): { jid: Jid; el: Element }[] {
    const out: { jid: Jid; el: Element }[] = [];
    for (const el of payload.getChildren("item", NS_BLOCKING)) {
      const raw = el.attrs["jid"];
      const jid = raw === undefined ? undefined : tryParseJid(raw);
      if (!jid) throw new StanzaError("jid-malformed", { text: `not a valid JID: ${raw ?? "(none)"}` });
      out.push({ jid, el });
    }
    return out;
  }

  const own = (from: Jid, to: Jid): void => {
    if (!from.bare.equals(to.bare)) throw new StanzaError("service-unavailable");
  };

  ctx.addFeature(NS_BLOCKING);
  ctx.addFeature(NS_BLOCKING, "account");

  // §3.2: retrieve the blocklist; the requesting resource now gets pushes.
  ctx.handleIq("get", "account", NS_BLOCKING, "blocklist", async (_iq, { from, to }) => {
    own(from, to);
    const items = await load(to.local);
    if (from.resource !== "") interested.add(from.toString());
    const list = new Element("blocklist", NS_BLOCKING);
    for (const j of items) list.c("item", { jid: j.toString() });
    return list;
  });

  // §3.3: block one or more JIDs; §3.3 also says the blocked contacts stop seeing the user's presence.
  ctx.handleIq("set", "account", NS_BLOCKING, "block", async (_iq, { from, to, payload }) => {
    own(from, to);
    const wanted = parseItems(payload);
    if (wanted.length === 0) throw new StanzaError("bad-request", { text: "block needs at least one item" });
    const added = await exclusive(to.local, async () => {
      const items = [...(await load(to.local))];
      const fresh: Jid[] = [];
      for (const { jid } of wanted) {
        if (items.some((i) => i.equals(jid)) || fresh.some((i) => i.equals(jid))) continue;
        fresh.push(jid);
      }
      if (fresh.length > 0) await save(to.local, [...items, ...fresh]);
      return fresh;
    });
    const pushed = new Element("block", NS_BLOCKING);
    for (const { jid } of wanted) pushed.c("item", { jid: jid.toString() });
    push(to.local, pushed);
    await hidePresence(to, added);
    // XEP-0377: a report travels inside the item; the abuse-reports module decides what to do with it.
    const sink = ctx.use<AbuseReportSink>("abuse-reports");
    for (const { jid, el } of wanted) {
      const report = el.getChild("report", NS_REPORTING);
      if (!report) continue;
      if (sink) sink.submit(to.bare, jid, report);
      else ctx.log.info({ user: to.bare.toString(), reported: jid.toString() }, "blocking: report received, no abuse-reports module loaded");
    }
  });

  // §3.4: unblock the given JIDs, or everything when no item is given.
  ctx.handleIq("set", "account", NS_BLOCKING, "unblock", async (_iq, { from, to, payload }) => {
    own(from, to);
    const wanted = parseItems(payload);
    const { removed, kept } = await exclusive(to.local, async () => {
      const items = await load(to.local);
      const kept = wanted.length === 0 ? [] : items.filter((i) => !wanted.some((w) => w.jid.equals(i)));
      if (kept.length !== items.length) await save(to.local, kept);
      return { removed: items.filter((i) => !kept.includes(i)), kept };
    });
    const pushed = new Element("unblock", NS_BLOCKING);
    for (const { jid } of wanted) pushed.c("item", { jid: jid.toString() });
    push(to.local, pushed);
    await revealPresence(to.bare, removed, kept);
  });

  /**
   * The reverse of hidePresence: contacts no longer blocked get the user's current presence if they may see it, and
   * are probed if the user may see theirs, so neither side keeps showing the other offline (the block had hidden
   * both directions, §3.3, §3.6). Prosody does the same on unblock.
   */
  async function revealPresence(user: Jid, removed: Jid[], kept: Jid[]): Promise<void> {
    if (removed.length === 0) return;
    const { items } = await ctx.storage.rosters.get(host, user.local);
    const sessions = [...ctx.sessions.ofBare(user.toString()).values()].filter((s) => s.available && s.presence);
    for (const item of items) {
      const contact = tryParseJid(item.jid);
      if (!contact) continue;
      if (!removed.some((r) => itemMatches(r, contact)) || kept.some((k) => itemMatches(k, contact))) continue;
      if (item.subscription === "from" || item.subscription === "both") {
        for (const s of sessions) ctx.send(readdress(s.presence!, s.jid.toString(), item.jid));
      }
      if (item.subscription === "to" || item.subscription === "both") {
        ctx.send(x("presence", NS_CLIENT, { type: "probe", from: user.toString(), to: item.jid }));
      }
    }
  }

  /** §3.3: tell newly blocked contacts that may see the user's presence that the user is gone. */
  async function hidePresence(user: Jid, added: Jid[]): Promise<void> {
    const sessions = [...ctx.sessions.ofBare(user.toString()).values()].filter((s) => s.available);
    if (sessions.length === 0) return;
    for (const jid of added) {
      if (jid.local === "") continue;
      const item = await ctx.storage.rosters.getItem(host, user.local, jid.bare.toString());
      if (!item || (item.subscription !== "from" && item.subscription !== "both")) continue;
      for (const s of sessions) ctx.send(x("presence", NS_CLIENT, { type: "unavailable", from: s.jid.toString(), to: jid.toString() }));
    }
  }

  // §3.6: stanzas from a blocked entity to the user. Messages get service-unavailable (the router bounces the
  // thrown error, never answering an error), presence is dropped silently.
  const inbound = ({ stanza, from, to }: StanzaEvent): HookResult | Promise<HookResult> => {
    if (!isLocalUser(to)) return;
    // Fast path: both lists cached (users with sessions), so no promise is made for an ordinary stanza.
    const toList = cache.get(to.local);
    const fromList = isLocalUser(from) && from.domain === host ? cache.get(from.local) : [];
    if (toList && fromList) {
      if (matchesAny(toList, from)) {
        if (stanza.name === "message") throw new StanzaError("service-unavailable");
        return HANDLED;
      }
      if (fromList.length > 0 && stanza.attrs["type"] !== "unavailable" && matchesAny(fromList, to)) return HANDLED;
      return;
    }
    return inboundSlow(stanza, from, to);
  };
  const inboundSlow = async (stanza: Element, from: Jid, to: Jid): Promise<HookResult> => {
    if (await blocks(to.bare, from)) {
      if (stanza.name === "message") throw new StanzaError("service-unavailable");
      return HANDLED;
    }
    // §3.7 for stanzas the server sends in the user's name (presence broadcasts, probe answers) to a local
    // contact the user blocked: not delivered; unavailable presence is harmless and still goes.
    if (isLocalUser(from) && from.domain === host && stanza.attrs["type"] !== "unavailable" && (await blocks(from.bare, to))) return HANDLED;
    return;
  };
  ctx.hook("message/bare", inbound, 100);
  ctx.hook("message/full", inbound, 100);
  ctx.hook("presence/bare", inbound, 100);
  ctx.hook("presence/full", inbound, 100);

  // §3.7: the user tries to talk to someone they blocked: not-acceptable with <blocked/>.
  // Synchronous when the sender's list is cached (it is while the user has sessions): no promise per stanza.
  const outbound = ({ stanza, from, to }: StanzaEvent): HookResult | Promise<HookResult> => {
    if (!to || !isLocalUser(from)) return;
    if (stanza.name === "presence" && stanza.attrs["type"] === "unavailable") return;
    const cached = cache.get(from.local);
    if (cached) {
      if (matchesAny(cached, to)) throw blockedError();
      return;
    }
    return blocks(from.bare, to).then((b) => {
      if (b) throw blockedError();
      return undefined;
    });
  };
  ctx.hook("pre-message/bare", outbound, 100);
  ctx.hook("pre-message/full", outbound, 100);
  ctx.hook("pre-presence/bare", outbound, 100);
  ctx.hook("pre-presence/full", outbound, 100);

  // IQs to and from local accounts (§3.6, §3.7): a blocked entity's get/set gets service-unavailable and its results
  // and errors are dropped; the user's own IQs to a blocked entity get not-acceptable with <blocked/>, except results
  // and errors, which answer something the user already received.
  const iqIn = ({ stanza, from, to }: StanzaEvent): HookResult | Promise<HookResult> => {
    if (!to || !isLocalUser(to)) return;
    const decide = (blocked: boolean): HookResult => {
      if (!blocked) return;
      const type = stanza.attrs["type"];
      if (type === "get" || type === "set") throw new StanzaError("service-unavailable");
      return HANDLED;
    };
    const cached = cache.get(to.local);
    return cached ? decide(matchesAny(cached, from)) : blocks(to.bare, from).then(decide);
  };
  const iqOut = ({ stanza, from, to }: StanzaEvent): HookResult | Promise<HookResult> => {
    if (!to || !isLocalUser(from)) return;
    const type = stanza.attrs["type"];
    if (type === "result" || type === "error") return;
    const decide = (blocked: boolean): HookResult => {
      if (blocked) throw blockedError();
      return;
    };
    const cached = cache.get(from.local);
    return cached ? decide(matchesAny(cached, to)) : blocks(from.bare, to).then(decide);
  };
  ctx.hook("iq/account", iqIn, 100);
  ctx.hook("pre-iq/out", iqOut, 100);

  // Federation: IQs cross s2s without a routing event, so they are checked here (synchronously, from the cache of
  // users with sessions, which is where IQs to full JIDs can go anyway). Presence broadcasts the server sends in a
  // user's name to a blocked remote contact are stopped too; the user's client then sees a presence error.
  ctx.hook("s2s/filter", (ev) => {
    const from = tryParseJid(ev.stanza.attrs["from"] ?? "");
    const to = tryParseJid(ev.stanza.attrs["to"] ?? "");
    if (!from || !to) return;
    const name = ev.stanza.name;
    const type = ev.stanza.attrs["type"];
    if (ev.direction === "in") {
      if (name === "iq" && (type === "get" || type === "set") && isLocalUser(to) && blocksSync(to.bare, from)) {
        ev.error = "service-unavailable";
        return HANDLED;
      }
      return;
    }
    if (!isLocalUser(from) || !blocksSync(from.bare, to)) return;
    if (name === "presence" && (type === "unavailable" || type === "error")) return;
    if (type === "error" || (name === "iq" && type === "result")) return;
    ev.error = "not-acceptable";
    return HANDLED;
  }, 90);

  ctx.hook("session/bound", async ({ session }) => {
    await load(session.jid.local);
  });
  ctx.hook("session/ended", async ({ session }) => {
    interested.delete(session.jid.toString());
    if (ctx.sessions.ofBare(session.jid.bareString()).size === 0) cache.delete(session.jid.local);
  });
  ctx.hook("account/deleted", async ({ username }) => {
    cache.delete(username);
  });

  const api: BlockingApi = {
    blocksSync,
    list: async (user) => (await load(user.local)).map((j) => j.toString()),
  };
  ctx.provide("blocking", api);
}

export default defineModule({
  name: "blocking",
  protocol: [{ xep: 191, version: "1.3" }],
  setup,
});
