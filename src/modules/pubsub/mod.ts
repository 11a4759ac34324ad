// XEP-0163: Personal Eventing Protocol <https://xmpp.org/extensions/xep-0163.html> on every account's bare JID, over the
// XEP-0060 engine (service.ts): §3 auto-create on publish, §4.1 presence access by default, §4.3 notifications to the
// owner's available resources and to contacts with a presence subscription (§4.3.1) that want the node (§4.3.2
// filtered notifications, learnt from XEP-0115 caps, caps.ts), §4.3.4 the last item when a contact's available presence
// arrives, §6 service discovery (pubsub/pep identity, nodes as items). XEP-0223 publish-options (§7.1.5 of XEP-0060)
// come from the engine. Nodes, items and subscriptions live in the generic map kind (store.ts).
import { randomBytes } from "node:crypto";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import type { StanzaEvent } from "../../core/events.ts";
import type { Element } from "../../xml/element.ts";
import { x } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { parseJid, tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DISCO_INFO } from "../../xmpp/ns.ts";
import type { DiscoAccounts } from "../disco/api.ts";
import { CapsTracker, capsVer, featuresOf, type CapsClaim } from "./caps.ts";
import { NS_CAPS, NS_PUBSUB, NS_PUBSUB_OWNER } from "./ns.ts";
import { PubsubEngine, type Face, type Relation } from "./service.ts";
import { PubsubStore, type NodeRecord, type ServiceKey } from "./store.ts";
import { deletePepNode, listPepAccounts, showPepAccount } from "./admin.ts";
import { setupPubsubService } from "./service-face.ts";
import { BookmarkSync, NS_BOOKMARKS2, PRIVATE_KEY, type PrivateXml } from "./bookmarks.ts";
import { AvatarConversion, NS_CONVERSION, stampPhoto, type VcardStore } from "./avatar.ts";

/** What the account advertises (XEP-0060 §10 feature names; XEP-0163 §6). */
export const PEP_FEATURES: readonly string[] = [
  NS_PUBSUB,
  ...[
    "access-open", "access-presence", "access-roster", "access-whitelist", "auto-create", "config-node", "create-and-configure",
    "create-nodes", "delete-items", "delete-nodes", "filtered-notifications", "item-ids", "last-published", "manage-subscriptions",
    "modify-affiliations", "persistent-items", "publish", "publish-options", "purge-nodes", "retract-items", "retrieve-affiliations",
    "retrieve-default", "retrieve-items", "retrieve-subscriptions", "subscribe",
  ].map((f) => `${NS_PUBSUB}#${f}`),
];

/** Most disco#info queries for caps in flight at once; presences beyond it are tracked without caps until the next one. */
const MAX_PENDING_CAPS = 256;

function setup(ctx: ModuleContext): void {
  const cfg = ctx.config.pubsub;
  const host = ctx.host;
  const store = new PubsubStore(ctx.storage);
  const engine = new PubsubEngine(store, {
    maxItemBytes: cfg.max_item_bytes,
    maxItemsPerNode: cfg.max_items_per_node,
    maxNodesPerService: cfg.max_nodes_per_account,
    maxSubscriptionsPerNode: cfg.max_subscriptions_per_node,
  });
  const caps = new CapsTracker({ maxVers: cfg.caps_cache_size, maxEntities: cfg.max_tracked_resources, maxNotifyPerEntity: 256 });
  const pending = new Map<string, Promise<void>>();
  const privateXml = ctx.use<PrivateXml>("private-xml");
  const bookmarks = new BookmarkSync(store, privateXml, { maxItems: cfg.max_items_per_node, maxNodes: cfg.max_nodes_per_account });
  const vcardStore = ctx.use<VcardStore>("vcard");
  const avatars =
    vcardStore === undefined
      ? undefined
      : new AvatarConversion(store, vcardStore, { maxItemBytes: cfg.max_item_bytes, maxNodes: cfg.max_nodes_per_account, maxCached: cfg.max_tracked_resources });

  const svcOf = (username: string): ServiceKey => ({ host, owner: username, kind: "pep" });

  /** How `requester` stands with the account `owner`: itself, or its roster entry (RFC 6121 §2.1). */
  async function relation(owner: Jid, requester: Jid): Promise<Relation> {
    if (requester.bare.equals(owner.bare)) return { owner: true, subscription: "both", groups: [] };
    const item = await ctx.storage.rosters.getItem(host, owner.local, requester.bareString());
    return { owner: false, subscription: item?.subscription ?? "none", groups: item?.groups ?? [] };
  }

  function send(stanza: Element): void {
    void ctx.send(stanza);
  }

  /** The PEP face of one account (built per request: it holds nothing but the address). */
  function face(owner: Jid): Face {
    const svc = svcOf(owner.local);
    const self: Face = {
      svc,
      jid: owner.bare,
      autoCreate: true,
      relation: (requester) => relation(owner, requester),
      mayCreate: (_requester, rel) => rel.owner,
      send,
      // XEP-0402 §3: a bookmarks node written over PEP is mirrored into the other bookmark places; XEP-0398: avatar
      // metadata is mirrored into the vCard.
      async changed(node) {
        if (BookmarkSync.watches(node)) await bookmarks.fromPep(self, node).catch(syncFailed);
        else if (avatars !== undefined && AvatarConversion.watches(node)) await avatars.fromPep(self).catch(syncFailed);
      },
      async notify(node, record, event, opts) {
        for (const to of await recipients(owner, node, record, opts?.subscribers)) {
          const msg = x("message", NS_CLIENT, { from: owner.bareString(), to, type: "headline", id: randomBytes(6).toString("hex") });
          msg.children.push(event.clone());
          send(msg);
        }
      },
    };
    return self;
  }

  /**
   * XEP-0163 §4.3: who hears of a change to `node`. Explicit subscribers (XEP-0060 §6.1) that may still see the node;
   * the owner's available resources that want it; each contact with a presence subscription (from/both) that may see
   * it, at every available resource that advertised `<node>+notify`. A bare JID subscribed explicitly gets one copy
   * (the router spreads it over its resources), not one more per interested resource.
   */
  async function recipients(owner: Jid, node: string, record: NodeRecord, subscribers?: string[]): Promise<string[]> {
    const out = new Set<string>();
    const bareSubscribed = new Set<string>();
    const subs = subscribers ?? (await store.subscriptions(svcOf(owner.local), node)).map((s) => s.jid);
    for (const s of subs) {
      const j = tryParseJid(s);
      if (j === undefined) continue;
      if (engine.accessError(record, j, await relation(owner, j)) !== undefined) continue;
      out.add(s);
      if (j.resource === "") bareSubscribed.add(s);
    }
    for (const full of caps.interested(owner.bareString(), node)) out.add(full);
    const roster = await ctx.storage.rosters.get(host, owner.local);
    for (const item of roster.items) {
      if (item.subscription !== "from" && item.subscription !== "both") continue;
      if (bareSubscribed.has(item.jid)) continue;
      const interested = caps.interested(item.jid, node);
      if (interested.length === 0) continue;
      const contact = tryParseJid(item.jid);
      if (contact === undefined) continue;
      if (engine.accessError(record, contact, { owner: false, subscription: item.subscription, groups: item.groups }) !== undefined) continue;
      for (const full of interested) out.add(full);
    }
    return [...out];
  }

  // XEP-0060 over the account's bare JID, in both namespaces. IQs from others reach these after the iq/account hooks
  // (blocking), and only for existing accounts (the router answers service-unavailable otherwise).
  for (const type of ["get", "set"] as const) {
    for (const ns of [NS_PUBSUB, NS_PUBSUB_OWNER]) {
      ctx.handleIq(type, "account", ns, "pubsub", (_iq, { from, to, payload }) => engine.handle(face(to.bare), type, from, payload));
    }
  }
  for (const f of PEP_FEATURES) ctx.addFeature(f, "account");

  // XEP-0402 §3: XEP-0048 bookmarks written to private XML storage are mirrored into PEP (and back, see `changed`).
  function syncFailed(err: unknown): void {
    ctx.log.error({ err }, "bookmark sync failed");
  }
  if (privateXml !== undefined) {
    privateXml.onChange((user, key, value) => (key === PRIVATE_KEY ? bookmarks.fromPrivate(face(parseJid(`${user}@${host}`)), value).catch(syncFailed) : undefined));
    ctx.addFeature(`${NS_BOOKMARKS2}#compat`, "account");
    ctx.addFeature(`${NS_BOOKMARKS2}#compat-pep`, "account");
  }
  // XEP-0398: a vCard photo set by a client becomes the PEP avatar.
  if (avatars !== undefined && vcardStore !== undefined) {
    vcardStore.onChange((user, text) => avatars.fromVcard(face(parseJid(`${user}@${host}`)), text).catch(syncFailed));
    ctx.addFeature(NS_CONVERSION, "account");
    // XEP-0153 §3.2 / XEP-0398 §2.2: the owner's available presence carries the current avatar hash. Before the presence
    // module (priority 0) broadcasts it; one storage read the first time, then a cache.
    ctx.hook(
      "pre-presence/self",
      async (ev) => {
        if (ev.stanza.attrs["type"] !== undefined) return undefined;
        try {
          const id = await avatars.currentId(face(ev.from.bare));
          if (id !== undefined) stampPhoto(ev.stanza, id);
        } catch (err) {
          ctx.log.warn({ err }, "reading the avatar id for presence failed");
        }
        return undefined;
      },
      60,
    );
  }

  // XEP-0163 §6 / XEP-0060 §5.2-5.4: the account shows the pubsub/pep identity, and lists the nodes the requester may see.
  ctx.use<DiscoAccounts>("disco-accounts")?.add({
    async info(from, account, node) {
      const rel = await relation(account, from);
      if (node === undefined) {
        if (rel.owner) return { identities: [{ category: "pubsub", type: "pep" }], features: [] };
        // A contact with a presence subscription may learn that the account runs PEP (and nothing else).
        if (rel.subscription === "from" || rel.subscription === "both") return { identities: [{ category: "account", type: "registered" }, { category: "pubsub", type: "pep" }], features: [] };
        return undefined;
      }
      const rec = await store.node(svcOf(account.local), node);
      if (rec === undefined || engine.accessError(rec, from, rel) !== undefined) return undefined;
      return { identities: [{ category: "pubsub", type: "leaf" }], features: [NS_PUBSUB] };
    },
    async items(from, account, node) {
      if (node !== undefined) return undefined;
      const rel = await relation(account, from);
      const visible = (await store.nodes(svcOf(account.local))).filter((n) => engine.accessError(n.record, from, rel) === undefined);
      if (!rel.owner && visible.length === 0 && rel.subscription !== "from" && rel.subscription !== "both") return undefined;
      return visible.map((n) => ({ jid: account.bareString(), node: n.name, ...(n.record.config.title ? { name: n.record.config.title } : {}) }));
    },
  });

  /** Read a presence's XEP-0115 `<c/>`, if it has a usable one. */
  function claimOf(presence: Element): CapsClaim | undefined {
    const c = presence.getChild("c", NS_CAPS);
    const ver = c?.attrs["ver"];
    const node = c?.attrs["node"];
    if (c === undefined || ver === undefined || node === undefined || ver.length > 256 || node.length > 1024) return undefined;
    return { hash: c.attrs["hash"], node, ver };
  }

  /**
   * Learn what `full` wants (XEP-0115 §6.3): a verified ver from the cache, otherwise disco#info to the entity, checked
   * against the ver (§5.4) before it is cached for everyone; an answer that does not verify is used for this entity only.
   */
  async function learn(full: Jid, claim: CapsClaim): Promise<void> {
    const verifiable = claim.hash === "sha-1";
    if (verifiable && caps.known(claim.ver) !== undefined) return;
    const key = verifiable ? `v ${claim.ver}` : `j ${full.toString()}`;
    const inFlight = pending.get(key);
    if (inFlight !== undefined) return inFlight;
    if (pending.size >= MAX_PENDING_CAPS) return;
    const p = (async () => {
      const iq = x("iq", NS_CLIENT, { type: "get", from: host, to: full.toString() }, x("query", NS_DISCO_INFO, { node: `${claim.node}#${claim.ver}` }));
      const res = await ctx.request(iq, cfg.caps_timeout_ms);
      const q = res.getChild("query", NS_DISCO_INFO);
      if (q === undefined) return;
      if (verifiable && capsVer(q) === claim.ver) caps.remember(claim.ver, featuresOf(q));
      else caps.setOwn(full.toString(), claim.ver, featuresOf(q));
    })()
      .catch((err: unknown) => ctx.log.debug({ err, jid: full.toString() }, "caps query failed"))
      .finally(() => pending.delete(key));
    pending.set(key, p);
    return p;
  }

  /** An available presence from `full` reached account `owner` (its own resource, or anyone else): caps, then last items. */
  async function available(owner: Jid, full: Jid, presence: Element): Promise<void> {
    const claim = claimOf(presence);
    const fresh = caps.available(full.toString(), full.bareString(), claim?.ver, owner.local);
    if (claim !== undefined) await learn(full, claim);
    if (!fresh) return;
    const wants = caps.interests(full.toString());
    if (wants.size === 0) return;
    const f = face(owner);
    const rel = await relation(owner, full);
    for (const node of wants) {
      const rec = await store.node(f.svc, node);
      if (rec === undefined || engine.accessError(rec, full, rel) !== undefined) continue;
      const msg = await engine.lastItemMessage(f, node, rec, full.toString());
      if (msg !== undefined) send(msg);
    }
  }

  const failed = (err: unknown) => ctx.log.error({ err }, "PEP presence handling failed");

  // Presence from others arriving for an account (contacts' broadcasts and probe answers, local or over s2s). Runs after
  // blocking (100), never stops the chain and never waits: presence delivery is not delayed by caps queries.
  const fromOthers = (ev: StanzaEvent): undefined => {
    const type = ev.stanza.attrs["type"];
    if (ev.to === undefined || ev.from.resource === "" || ev.from.bare.equals(ev.to.bare)) return undefined;
    if (type === undefined) void available(ev.to.bare, ev.from, ev.stanza).catch(failed);
    else if (type === "unavailable") caps.unavailable(ev.from.toString());
    return undefined;
  };
  ctx.hook("presence/bare", fromOthers, 5);
  ctx.hook("presence/full", fromOthers, 5);

  // The owner's own resources: their broadcast presence (XEP-0163 §4.3.4 covers them as well).
  ctx.hook(
    "pre-presence/self",
    (ev) => {
      const type = ev.stanza.attrs["type"];
      if (type === undefined) void available(ev.from.bare, ev.from, ev.stanza).catch(failed);
      else if (type === "unavailable") caps.unavailable(ev.from.toString());
      return undefined;
    },
    50,
  );
  ctx.hook("session/ended", ({ session }) => {
    caps.unavailable(session.jid.toString());
  });

  // Account deletion: the storage removes the account's map rows with the account (so `comity deluser` offline works
  // too); this also covers deletions that arrive as the event only.
  ctx.hook("account/deleted", async ({ host: h, username }) => {
    if (h !== host) return;
    avatars?.forget(username);
    await store.deleteService(svcOf(username)).catch((err: unknown) => ctx.log.error({ err, username }, "deleting PEP nodes failed"));
  });

  // Operators (`comity pubsub list|show|delete` read storage themselves; these serve the control socket and the web).
  ctx.addControlMethod("pubsub.list", () => listPepAccounts(ctx.storage, host));
  ctx.addControlMethod("pubsub.show", async (params) => {
    const user = accountParam(params, host);
    if (user === undefined) throw new StanzaError("bad-request", { text: `account must be a user of ${host}` });
    return { account: `${user}@${host}`, nodes: await showPepAccount(ctx.storage, host, user) };
  });
  ctx.addControlMethod("pubsub.delete", async (params) => {
    const user = accountParam(params, host);
    const node = params["node"];
    if (user === undefined || typeof node !== "string" || node === "") throw new StanzaError("bad-request", { text: "account and node are required" });
    return { account: `${user}@${host}`, node, deleted: await deletePepNode(ctx.storage, host, user, node) };
  });

  // The standalone service of hosts[].pubsub, when configured: the same engine over the same stores.
  setupPubsubService(ctx, store);

  ctx.provide("pep", { store, engine, caps });
}

/** The username of params.account ("user@host") when it belongs to this host. */
function accountParam(params: Record<string, unknown>, host: string): string | undefined {
  const j = typeof params["account"] === "string" ? tryParseJid(params["account"]) : undefined;
  if (j === undefined || j.domain !== host || j.local === "") return undefined;
  return j.local;
}

export default defineModule({
  name: "pubsub",
  protocol: [
    { xep: 60, version: "1.26.0" },
    { xep: 163, version: "1.2.2" },
    { xep: 223, version: "1.1.1" },
    { xep: 115, version: "1.6.0" },
  ],
  setup,
});
