// XEP-0060 as a standalone service on its own domain (`hosts[].pubsub.domain`), the engine's second face: nodes belong to
// the service (owner "" in the map stores), their creators are their owners (§4.1), the host's admins own every node,
// and notifications go to explicit subscribers only (§7.1.2.1), locally or over s2s. It answers service discovery (§5.1
// identity pubsub/service, §5.2 nodes, §5.4 node info) and ping itself: a component receives every stanza for its domain.
import { randomBytes } from "node:crypto";
import type { ModuleContext } from "../../core/module-api.ts";
import { Element, x } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { tryParseJid, parseJid, type Jid } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING } from "../../xmpp/ns.ts";
import { NS_PUBSUB, NS_PUBSUB_OWNER } from "./ns.ts";
import { PubsubEngine, type Face, type Relation } from "./service.ts";
import type { PubsubStore } from "./store.ts";

/** Features of the standalone service (XEP-0060 §10); no presence or roster access: a service has no roster. */
export const SERVICE_FEATURES: readonly string[] = [
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PING,
  NS_PUBSUB,
  ...[
    "access-open", "access-whitelist", "config-node", "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
    "item-ids", "last-published", "manage-subscriptions", "modify-affiliations", "persistent-items", "publish", "publish-options",
    "purge-nodes", "retract-items", "retrieve-affiliations", "retrieve-default", "retrieve-items", "retrieve-subscriptions", "subscribe",
  ].map((f) => `${NS_PUBSUB}#${f}`),
];

/** Set up the service of `ctx.hostConfig.pubsub` over the host's store. */
export function setupPubsubService(ctx: ModuleContext, store: PubsubStore): void {
  const cfg = ctx.hostConfig.pubsub;
  if (cfg === undefined) return;
  const limits = ctx.config.pubsub;
  const engine = new PubsubEngine(store, {
    maxItemBytes: limits.max_item_bytes,
    maxItemsPerNode: limits.max_items_per_node,
    maxNodesPerService: cfg.max_nodes,
    maxSubscriptionsPerNode: limits.max_subscriptions_per_node,
  });
  const domain = cfg.domain;
  const jid = parseJid(domain);
  const svc = { host: domain, owner: "", kind: "service" as const };
  const send = (stanza: Element): void => void ctx.send(stanza);

  const mayCreate = (requester: Jid): boolean => {
    if (ctx.isAdmin(requester)) return true;
    if (cfg.create === "anyone") return true;
    return cfg.create === "users" && requester.domain === ctx.host && requester.local !== "";
  };
  const relation = (requester: Jid): Relation => ({ owner: ctx.isAdmin(requester), subscription: "none", groups: [] });

  const face: Face = {
    svc,
    jid,
    autoCreate: false,
    relation: async (requester) => relation(requester),
    mayCreate: (requester) => mayCreate(requester),
    send,
    async notify(node, record, event, opts) {
      const subs = opts?.subscribers ?? (await store.subscriptions(svc, node)).map((s) => s.jid);
      for (const to of subs) {
        const j = tryParseJid(to);
        if (j === undefined || engine.accessError(record, j, relation(j)) !== undefined) continue;
        const msg = x("message", NS_CLIENT, { from: domain, to, type: "headline", id: randomBytes(6).toString("hex") });
        msg.children.push(event.clone());
        send(msg);
      }
    },
  };

  const reply = (iq: Element, from: Jid, payload: Element | undefined): void => {
    const attrs: Record<string, string> = { type: "result", from: iq.attrs["to"] ?? domain, to: from.toString() };
    if (iq.attrs["id"] !== undefined) attrs["id"] = iq.attrs["id"];
    send(new Element("iq", NS_CLIENT, attrs, payload ? [payload] : []));
  };

  async function disco(payload: Element, from: Jid): Promise<Element> {
    const node = payload.attrs["node"];
    if (payload.xmlns === NS_DISCO_INFO) {
      const q = new Element("query", NS_DISCO_INFO, node === undefined ? {} : { node });
      if (node === undefined) {
        q.c("identity", { category: "pubsub", type: "service", name: cfg!.name });
        for (const f of SERVICE_FEATURES) q.c("feature", { var: f });
        return q;
      }
      const rec = await store.node(svc, node);
      if (rec === undefined || engine.accessError(rec, from, relation(from)) !== undefined) throw new StanzaError("item-not-found");
      q.c("identity", { category: "pubsub", type: "leaf" });
      q.c("feature", { var: NS_PUBSUB });
      return q;
    }
    if (node !== undefined) throw new StanzaError("item-not-found"); // leaf nodes have no child nodes (no collections)
    const q = new Element("query", NS_DISCO_ITEMS);
    for (const n of await store.nodes(svc)) {
      if (engine.accessError(n.record, from, relation(from)) !== undefined) continue;
      q.c("item", { jid: domain, node: n.name, ...(n.record.config.title ? { name: n.record.config.title } : {}) });
    }
    return q;
  }

  ctx.addComponent(domain, async (stanza, from, to) => {
    const type = stanza.attrs["type"];
    if (stanza.name === "presence") return;
    if (stanza.name === "message") {
      if (type === "error" || type === "groupchat" || type === "headline") return;
      throw new StanzaError("service-unavailable");
    }
    if (type !== "get" && type !== "set") return; // results and errors: the service sends no requests
    if (to.local !== "" || to.resource !== "") throw new StanzaError("service-unavailable");
    const payload = stanza.elements[0];
    if (payload === undefined) throw new StanzaError("bad-request");
    if (type === "get" && payload.name === "query" && (payload.xmlns === NS_DISCO_INFO || payload.xmlns === NS_DISCO_ITEMS)) {
      return reply(stanza, from, await disco(payload, from));
    }
    if (type === "get" && payload.name === "ping" && payload.xmlns === NS_PING) return reply(stanza, from, undefined);
    if (payload.name === "pubsub" && (payload.xmlns === NS_PUBSUB || payload.xmlns === NS_PUBSUB_OWNER)) {
      return reply(stanza, from, await engine.handle(face, type, from, payload));
    }
    throw new StanzaError("service-unavailable");
  });
  ctx.addDiscoItem({ jid: domain, name: cfg.name });
}
