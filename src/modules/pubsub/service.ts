// XEP-0060: Publish-Subscribe <https://xmpp.org/extensions/xep-0060.html> — the engine both faces share (PEP on account
// JIDs, XEP-0163; a standalone service is the other face). It implements §6.1 subscribe, §6.2 unsubscribe, §6.5
// retrieve items (all, max_items, by id), §7.1 publish (with XEP-0223 publish-options, §7.1.5), §7.2 retract, §8.1
// create (with configure), §8.2 configure, §8.3 default configuration, §8.4 delete, §8.5 purge, §8.8/§8.9 owner views
// of subscriptions and affiliations, and §5.6/§5.7 the requester's own subscriptions and affiliations. Errors follow
// §7 (and each use case's error section) with their pubsub#errors application conditions. Who receives a notification
// is the face's business (`Face.recipients`): this file decides what is allowed and what is stored and said.
import { randomBytes } from "node:crypto";
import { Element, serialize, x } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { FormValueError, type SubmittedForm } from "../../xmpp/data-forms.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import type { Subscription } from "../../storage/types.ts";
import { applyForm, configForm, defaultConfig, preconditionsMet, pubsubError, submittedForm, type NodeConfig } from "./config.ts";
import { NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_NODE_CONFIG, NS_PUBSUB_OWNER, NS_PUBSUB_PUBLISH_OPTIONS } from "./ns.ts";
import type { Affiliation, NodeRecord, PubsubStore, ServiceKey, StoredItem } from "./store.ts";

/** Limits of one host's pubsub (config `pubsub.*`); every one has an error when exceeded, never a crash or growth. */
export interface PubsubLimits {
  maxItemBytes: number;
  maxItemsPerNode: number;
  maxNodesPerService: number;
  maxSubscriptionsPerNode: number;
}

/** How a requester relates to a service's owner (for PEP: the owner's roster entry for the requester). */
export interface Relation {
  owner: boolean;
  subscription: Subscription;
  groups: string[];
}

/** The part of a pubsub service that differs between PEP and a standalone service. */
export interface Face {
  readonly svc: ServiceKey;
  /** The service's address: the account's bare JID, or the service domain. */
  readonly jid: Jid;
  relation(requester: Jid): Promise<Relation>;
  /** Whether `requester` may create nodes (PEP: only the owner). */
  mayCreate(requester: Jid, rel: Relation): boolean;
  /** Whether publishing to a missing node creates it (PEP: yes, XEP-0163 §3). */
  readonly autoCreate: boolean;
  /** Send `event` (an <event/> element) about `node` to whoever should hear of it; `to` restricts it to explicit JIDs. */
  notify(node: string, record: NodeRecord, event: Element, opts?: { subscribers?: string[] }): Promise<void>;
  /** Send one message (e.g. the last item after a subscription). */
  send(stanza: Element): void;
  /** Told after items changed through the protocol (PEP keeps bookmark formats in sync, XEP-0402 §3). */
  changed?(node: string, record: NodeRecord): Promise<void>;
}

const MAX_NODE_NAME = 1024;
const MAX_ITEM_ID = 1024;
/** Most items, subscriptions or affiliations one request may name: each is a storage operation. */
const MAX_IDS_PER_REQUEST = 256;

function nodeName(el: Element, required = true): string {
  const n = el.attrs["node"];
  if (n === undefined || n === "") {
    if (required) throw pubsubError("bad-request", "nodeid-required");
    return "";
  }
  if (n.length > MAX_NODE_NAME) throw new StanzaError("not-acceptable", { text: `node names are at most ${MAX_NODE_NAME} characters` });
  return n;
}

/** The event element of a publish, for the node's delivery settings (§7.1.2.1 with or without payload). */
export function itemsEvent(node: string, items: StoredItem[], config: NodeConfig, opts: { publisher?: boolean } = {}): Element {
  const itemsEl = x("items", NS_PUBSUB_EVENT, { node });
  for (const it of items) {
    const item = x("item", NS_PUBSUB_EVENT, { id: it.id, ...(opts.publisher === true && it.publisher ? { publisher: it.publisher } : {}) });
    if (config.deliver_payloads && it.payload !== "") item.children.push(parsePayload(it.payload));
    itemsEl.children.push(item);
  }
  return x("event", NS_PUBSUB_EVENT, {}, itemsEl);
}

function parsePayload(payload: string): Element {
  return parseXml(payload, { maxStanzaSize: Number.MAX_SAFE_INTEGER });
}

/** The <item/> of a retrieval or of a pubsub result. */
function itemElement(ns: string, it: StoredItem): Element {
  const el = x("item", ns, { id: it.id });
  if (it.payload !== "") el.children.push(parsePayload(it.payload));
  return el;
}

/** The whole engine over one store; stateless apart from the store, so one instance serves every service of a host. */
export class PubsubEngine {
  readonly #store: PubsubStore;
  readonly #limits: PubsubLimits;

  constructor(store: PubsubStore, limits: PubsubLimits) {
    this.#store = store;
    this.#limits = limits;
  }

  get store(): PubsubStore {
    return this.#store;
  }

  get limits(): PubsubLimits {
    return this.#limits;
  }

  /** Handle an IQ whose payload is <pubsub xmlns='…pubsub'/> or <pubsub xmlns='…pubsub#owner'/>; returns the result payload. */
  async handle(face: Face, type: "get" | "set", from: Jid, pubsub: Element): Promise<Element | undefined> {
    const rel = await face.relation(from);
    if (pubsub.xmlns === NS_PUBSUB_OWNER) return this.#owner(face, type, from, rel, pubsub);
    const action = pubsub.elements.find((e) => e.xmlns === NS_PUBSUB && e.name !== "configure" && e.name !== "publish-options" && e.name !== "options");
    if (action === undefined) throw new StanzaError("bad-request", { text: "no pubsub action" });
    if (type === "get") {
      switch (action.name) {
        case "items":
          return this.#items(face, from, rel, action);
        case "subscriptions":
          return this.#ownSubscriptions(face, from, action);
        case "affiliations":
          return this.#ownAffiliations(face, from, rel, action);
        case "default":
          return x("pubsub", NS_PUBSUB, {}, x("default", NS_PUBSUB, {}, configForm(defaultConfig(face.svc.kind), "form", this.#limits.maxItemsPerNode)));
      }
    } else {
      switch (action.name) {
        case "publish":
          return this.#publish(face, from, rel, action, pubsub.getChild("publish-options", NS_PUBSUB));
        case "retract":
          return this.#retract(face, from, rel, action);
        case "create":
          return this.#create(face, from, rel, action, pubsub.getChild("configure", NS_PUBSUB));
        case "subscribe":
          return this.#subscribe(face, from, rel, action);
        case "unsubscribe":
          return this.#unsubscribe(face, from, action);
      }
    }
    if (action.name === "options") throw pubsubError("feature-not-implemented", "unsupported", { feature: "subscription-options" });
    throw pubsubError("feature-not-implemented", "unsupported", { feature: action.name });
  }

  async #existing(face: Face, node: string): Promise<NodeRecord> {
    const rec = await this.#store.node(face.svc, node);
    if (rec === undefined) throw new StanzaError("item-not-found");
    return rec;
  }

  /** §4.5 access models. Owners and publishers always pass; outcasts never; members pass a whitelist. */
  accessError(rec: NodeRecord, requester: Jid, rel: Relation): StanzaError | undefined {
    if (rel.owner) return undefined;
    const aff = rec.affiliations[requester.bareString()] ?? "none";
    if (aff === "outcast") return new StanzaError("forbidden");
    if (aff === "owner" || aff === "publisher" || aff === "member") return undefined;
    const subscribed = rel.subscription === "from" || rel.subscription === "both";
    switch (rec.config.access_model) {
      case "open":
        return undefined;
      case "presence":
        return subscribed ? undefined : pubsubError("not-authorized", "presence-subscription-required");
      case "roster":
        return subscribed && rel.groups.some((g) => rec.config.roster_groups_allowed.includes(g)) ? undefined : pubsubError("not-authorized", "not-in-roster-group");
      case "whitelist":
        return pubsubError("not-allowed", "closed-node");
    }
  }

  #mayPublish(rec: NodeRecord, from: Jid, rel: Relation): boolean {
    if (rel.owner) return true;
    const aff = rec.affiliations[from.bareString()] ?? "none";
    if (aff === "owner" || aff === "publisher") return true;
    return rec.config.publish_model === "open" && aff !== "outcast";
  }

  /** A new node's record, checking the per-service node limit (the error for it: resource-constraint, max-nodes-exceeded). */
  async #newNode(face: Face, config: NodeConfig): Promise<NodeRecord> {
    if ((await this.#store.nodeCount(face.svc)) >= this.#limits.maxNodesPerService) {
      throw pubsubError("resource-constraint", "max-nodes-exceeded", { text: `at most ${this.#limits.maxNodesPerService} nodes` });
    }
    return { config, affiliations: {}, created: Date.now() };
  }

  #configFrom(base: NodeConfig, form: SubmittedForm | undefined): NodeConfig {
    if (form === undefined) return base;
    try {
      return applyForm(base, form, this.#limits.maxItemsPerNode);
    } catch (err) {
      if (err instanceof FormValueError) throw pubsubError("not-acceptable", "invalid-options", { text: err.message });
      throw err;
    }
  }

  // §7.1 publish, XEP-0223 publish-options, XEP-0163 §3 auto-create.
  async #publish(face: Face, from: Jid, rel: Relation, publish: Element, optionsEl: Element | undefined): Promise<Element> {
    const node = nodeName(publish);
    const itemEls = publish.getChildren("item", NS_PUBSUB);
    if (itemEls.length > 1) throw pubsubError("bad-request", "invalid-payload", { text: "one item per publish" });
    if (publish.elements.length !== itemEls.length) throw pubsubError("bad-request", "invalid-payload");
    const itemEl = itemEls[0];
    const payloads = itemEl?.elements ?? [];
    if (payloads.length > 1) throw pubsubError("bad-request", "invalid-payload", { text: "an item carries one payload element" });
    const payload = payloads[0] === undefined ? "" : serialize(payloads[0]);
    if (Buffer.byteLength(payload, "utf8") > this.#limits.maxItemBytes) {
      throw pubsubError("not-acceptable", "payload-too-big", { text: `items are at most ${this.#limits.maxItemBytes} bytes` });
    }
    let id = itemEl?.attrs["id"];
    if (id === "" || id === undefined) id = randomBytes(12).toString("hex");
    if (id.length > MAX_ITEM_ID) throw new StanzaError("not-acceptable", { text: `item ids are at most ${MAX_ITEM_ID} characters` });
    const options = submittedForm(optionsEl, NS_PUBSUB_PUBLISH_OPTIONS);

    let rec = await this.#store.node(face.svc, node);
    if (rec === undefined) {
      if (!face.autoCreate) throw new StanzaError("item-not-found");
      if (!face.mayCreate(from, rel)) throw new StanzaError(rel.owner ? "forbidden" : "item-not-found");
      // XEP-0223 §3: on a node the publish creates, the options become its configuration.
      rec = await this.#newNode(face, this.#configFrom(defaultConfig(face.svc.kind), options));
      await this.#store.putNode(face.svc, node, rec);
    } else {
      if (!this.#mayPublish(rec, from, rel)) throw new StanzaError("forbidden");
      if (options !== undefined && !preconditionsMet(rec.config, options, this.#limits.maxItemsPerNode)) {
        throw pubsubError("conflict", "precondition-not-met", { text: "the node's configuration differs from the publish options" });
      }
    }
    // §7.1.3.6/§7.1.3.5: payloads are required where items persist or notifications carry them.
    if (payload === "" && (rec.config.persist_items || rec.config.deliver_payloads)) throw pubsubError("bad-request", "payload-required");
    const item: StoredItem = { id, publisher: from.bareString(), payload };
    if (rec.config.persist_items) await this.#store.publish(face.svc, node, item, Math.min(rec.config.max_items, this.#limits.maxItemsPerNode));
    if (rec.config.deliver_notifications) await face.notify(node, rec, itemsEvent(node, [item], rec.config));
    await face.changed?.(node, rec);
    return x("pubsub", NS_PUBSUB, {}, x("publish", NS_PUBSUB, { node }, x("item", NS_PUBSUB, { id })));
  }

  // §7.2 retract.
  async #retract(face: Face, from: Jid, rel: Relation, retract: Element): Promise<undefined> {
    const node = nodeName(retract);
    const items = retract.getChildren("item", NS_PUBSUB);
    if (items.length === 0) throw pubsubError("bad-request", "item-required");
    if (items.length > MAX_IDS_PER_REQUEST) throw new StanzaError("not-acceptable", { text: `at most ${MAX_IDS_PER_REQUEST} items per request` });
    const ids = items.map((i) => i.attrs["id"]);
    if (ids.some((id) => id === undefined || id === "")) throw pubsubError("bad-request", "item-required");
    const rec = await this.#existing(face, node);
    if (!this.#mayPublish(rec, from, rel)) throw new StanzaError("forbidden");
    const removed: string[] = [];
    for (const id of ids as string[]) if (await this.#store.retract(face.svc, node, id)) removed.push(id);
    if (removed.length === 0) throw new StanzaError("item-not-found");
    const notify = retract.attrs["notify"];
    if (rec.config.deliver_notifications && (rec.config.notify_retract || notify === "true" || notify === "1")) {
      const itemsEl = x("items", NS_PUBSUB_EVENT, { node }, ...removed.map((id) => x("retract", NS_PUBSUB_EVENT, { id })));
      await face.notify(node, rec, x("event", NS_PUBSUB_EVENT, {}, itemsEl));
    }
    await face.changed?.(node, rec);
    return undefined;
  }

  // §8.1 create, with an optional configure form (§8.1.3).
  async #create(face: Face, from: Jid, rel: Relation, create: Element, configureEl: Element | undefined): Promise<Element | undefined> {
    const node = nodeName(create, false);
    if (node === "") throw pubsubError("not-acceptable", "nodeid-required"); // §8.1.2 instant nodes: not offered
    if (!face.mayCreate(from, rel)) throw new StanzaError("forbidden");
    if ((await this.#store.node(face.svc, node)) !== undefined) throw new StanzaError("conflict");
    const config = this.#configFrom(defaultConfig(face.svc.kind), submittedForm(configureEl, NS_PUBSUB_NODE_CONFIG));
    const rec = await this.#newNode(face, config);
    if (!rel.owner) rec.affiliations[from.bareString()] = "owner";
    await this.#store.putNode(face.svc, node, rec);
    return undefined;
  }

  // §6.1 subscribe.
  async #subscribe(face: Face, from: Jid, rel: Relation, sub: Element): Promise<Element> {
    const node = nodeName(sub);
    const jid = tryParseJid(sub.attrs["jid"] ?? "");
    if (jid === undefined) throw pubsubError("bad-request", "jid-required");
    // §6.1.3.1: only one's own bare or full JID may be subscribed.
    if (!jid.bare.equals(from.bare)) throw pubsubError("bad-request", "invalid-jid");
    const rec = await this.#existing(face, node);
    const denied = this.accessError(rec, from, rel);
    if (denied) throw denied;
    const key = jid.toString();
    let existing = await this.#store.subscription(face.svc, node, key);
    if (existing === undefined) {
      if ((await this.#store.subscriptionCount(face.svc, node)) >= this.#limits.maxSubscriptionsPerNode) {
        throw pubsubError("policy-violation", "too-many-subscriptions");
      }
      existing = { jid: key, subid: randomBytes(8).toString("hex") };
      await this.#store.subscribe(face.svc, node, existing);
    }
    // §6.1.7: the last item goes to a new subscriber when the node says so.
    if (rec.config.send_last_published_item !== "never" && rec.config.persist_items) {
      const [last] = await this.#store.latest(face.svc, node, 1);
      if (last !== undefined) {
        const msg = x("message", "jabber:client", { from: face.jid.toString(), to: key, type: "headline", id: randomBytes(6).toString("hex") });
        msg.children.push(itemsEvent(node, [last], rec.config));
        queueMicrotask(() => face.send(msg)); // after the IQ result (§6.1.7: the result comes first)
      }
    }
    return x("pubsub", NS_PUBSUB, {}, x("subscription", NS_PUBSUB, { node, jid: key, subid: existing.subid, subscription: "subscribed" }));
  }

  // §6.2 unsubscribe.
  async #unsubscribe(face: Face, from: Jid, unsub: Element): Promise<undefined> {
    const node = nodeName(unsub);
    const jid = tryParseJid(unsub.attrs["jid"] ?? "");
    if (jid === undefined) throw pubsubError("bad-request", "jid-required");
    if (!jid.bare.equals(from.bare)) throw pubsubError("bad-request", "invalid-jid");
    await this.#existing(face, node);
    if (!(await this.#store.unsubscribe(face.svc, node, jid.toString()))) throw pubsubError("unexpected-request", "not-subscribed");
    return undefined;
  }

  // §6.5 retrieve items: all (bounded by the node's max_items), the newest max_items, or by id.
  async #items(face: Face, from: Jid, rel: Relation, items: Element): Promise<Element> {
    const node = nodeName(items);
    const rec = await this.#existing(face, node);
    const denied = this.accessError(rec, from, rel);
    if (denied) throw denied;
    const ids = items.getChildren("item", NS_PUBSUB).map((i) => i.attrs["id"]);
    let found: StoredItem[];
    if (ids.length > 0) {
      if (ids.some((id) => id === undefined || id === "")) throw pubsubError("bad-request", "item-required");
      if (ids.length > MAX_IDS_PER_REQUEST) throw new StanzaError("not-acceptable", { text: `at most ${MAX_IDS_PER_REQUEST} item ids per request` });
      found = await this.#store.itemsById(face.svc, node, ids as string[]);
    } else {
      const maxAttr = items.attrs["max_items"];
      let max = this.#limits.maxItemsPerNode;
      if (maxAttr !== undefined) {
        if (!/^[0-9]{1,9}$/.test(maxAttr) || Number(maxAttr) < 1) throw new StanzaError("bad-request", { text: "max_items must be a positive integer" });
        max = Math.min(max, Number(maxAttr));
      }
      found = await this.#store.latest(face.svc, node, max);
    }
    return x("pubsub", NS_PUBSUB, {}, x("items", NS_PUBSUB, { node }, ...found.map((it) => itemElement(NS_PUBSUB, it))));
  }

  // §5.6 the requester's subscriptions on this service (optionally one node).
  async #ownSubscriptions(face: Face, from: Jid, el: Element): Promise<Element> {
    const only = nodeName(el, false);
    const out = x("subscriptions", NS_PUBSUB, only === "" ? {} : { node: only });
    const names = only === "" ? (await this.#store.nodes(face.svc)).map((n) => n.name) : [only];
    for (const node of names) {
      for (const s of await this.#store.subscriptions(face.svc, node)) {
        const j = tryParseJid(s.jid);
        if (j !== undefined && j.bare.equals(from.bare)) out.children.push(x("subscription", NS_PUBSUB, { node, jid: s.jid, subid: s.subid, subscription: "subscribed" }));
      }
    }
    return x("pubsub", NS_PUBSUB, {}, out);
  }

  // §5.7 the requester's affiliations.
  async #ownAffiliations(face: Face, from: Jid, rel: Relation, el: Element): Promise<Element> {
    const only = nodeName(el, false);
    const out = x("affiliations", NS_PUBSUB, only === "" ? {} : { node: only });
    for (const { name, record } of await this.#store.nodes(face.svc)) {
      if (only !== "" && name !== only) continue;
      const aff = rel.owner ? "owner" : record.affiliations[from.bareString()];
      if (aff !== undefined && aff !== "none") out.children.push(x("affiliation", NS_PUBSUB, { node: name, affiliation: aff }));
    }
    return x("pubsub", NS_PUBSUB, {}, out);
  }

  #ownerOnly(rec: NodeRecord | undefined, from: Jid, rel: Relation): void {
    if (rel.owner) return;
    if (rec !== undefined && rec.affiliations[from.bareString()] === "owner") return;
    throw new StanzaError("forbidden");
  }

  // §8 owner use cases.
  async #owner(face: Face, type: "get" | "set", from: Jid, rel: Relation, pubsub: Element): Promise<Element | undefined> {
    const action = pubsub.elements.find((e) => e.xmlns === NS_PUBSUB_OWNER);
    if (action === undefined) throw new StanzaError("bad-request", { text: "no pubsub#owner action" });
    if (action.name === "default" && type === "get") {
      return x("pubsub", NS_PUBSUB_OWNER, {}, x("default", NS_PUBSUB_OWNER, {}, configForm(defaultConfig(face.svc.kind), "form", this.#limits.maxItemsPerNode)));
    }
    const node = nodeName(action);
    const rec = await this.#existing(face, node);
    this.#ownerOnly(rec, from, rel);
    const key = `${type} ${action.name}`;
    switch (key) {
      case "get configure":
        return x("pubsub", NS_PUBSUB_OWNER, {}, x("configure", NS_PUBSUB_OWNER, { node }, configForm(rec.config, "form", this.#limits.maxItemsPerNode)));
      case "set configure": {
        const form = submittedForm(action, NS_PUBSUB_NODE_CONFIG);
        if (form === undefined) throw pubsubError("bad-request", "invalid-options", { text: "a configuration form is required" });
        rec.config = this.#configFrom(rec.config, form);
        await this.#store.putNode(face.svc, node, rec);
        // A lower max_items applies at once (§8.2.5 says nothing else; items beyond it would never come back).
        await this.#store.trimItems(face.svc, node, rec.config.max_items);
        if (rec.config.notify_config && rec.config.deliver_notifications) {
          const conf = x("configuration", NS_PUBSUB_EVENT, { node });
          if (rec.config.deliver_payloads) conf.children.push(configForm(rec.config, "result", this.#limits.maxItemsPerNode));
          await face.notify(node, rec, x("event", NS_PUBSUB_EVENT, {}, conf));
        }
        return undefined;
      }
      case "set delete": {
        const subscribers = (await this.#store.subscriptions(face.svc, node)).map((s) => s.jid);
        await this.#store.deleteNode(face.svc, node);
        if (rec.config.notify_delete && rec.config.deliver_notifications) {
          await face.notify(node, rec, x("event", NS_PUBSUB_EVENT, {}, x("delete", NS_PUBSUB_EVENT, { node })), { subscribers });
        }
        return undefined;
      }
      case "set purge": {
        const removed = await this.#store.purge(face.svc, node);
        if (removed.length > 0 && rec.config.notify_retract && rec.config.deliver_notifications) {
          await face.notify(node, rec, x("event", NS_PUBSUB_EVENT, {}, x("purge", NS_PUBSUB_EVENT, { node })));
        }
        await face.changed?.(node, rec);
        return undefined;
      }
      case "get subscriptions": {
        const subs = await this.#store.subscriptions(face.svc, node);
        return x("pubsub", NS_PUBSUB_OWNER, {}, x("subscriptions", NS_PUBSUB_OWNER, { node }, ...subs.map((s) => x("subscription", NS_PUBSUB_OWNER, { jid: s.jid, subscription: "subscribed", subid: s.subid }))));
      }
      case "set subscriptions": {
        // §8.8.2: the owner may only remove subscriptions here (approval workflows are not offered).
        const subs = action.getChildren("subscription", NS_PUBSUB_OWNER);
        if (subs.length > MAX_IDS_PER_REQUEST) throw new StanzaError("not-acceptable", { text: `at most ${MAX_IDS_PER_REQUEST} subscriptions per request` });
        for (const s of subs) {
          const j = tryParseJid(s.attrs["jid"] ?? "");
          if (j === undefined) throw new StanzaError("jid-malformed");
          if (s.attrs["subscription"] !== "none") throw new StanzaError("not-acceptable", { text: "only subscription='none' is supported" });
          await this.#store.unsubscribe(face.svc, node, j.toString());
        }
        return undefined;
      }
      case "get affiliations": {
        const affs = Object.entries(rec.affiliations).map(([jid, affiliation]) => x("affiliation", NS_PUBSUB_OWNER, { jid, affiliation }));
        // PEP: the account owns every node of its service; a standalone node lists its creator among the affiliations.
        if (face.svc.kind === "pep") affs.unshift(x("affiliation", NS_PUBSUB_OWNER, { jid: face.jid.toString(), affiliation: "owner" }));
        return x("pubsub", NS_PUBSUB_OWNER, {}, x("affiliations", NS_PUBSUB_OWNER, { node }, ...affs));
      }
      case "set affiliations": {
        const next = { ...rec.affiliations };
        const affs = action.getChildren("affiliation", NS_PUBSUB_OWNER);
        if (affs.length > MAX_IDS_PER_REQUEST) throw new StanzaError("not-acceptable", { text: `at most ${MAX_IDS_PER_REQUEST} affiliations per request` });
        for (const a of affs) {
          const j = tryParseJid(a.attrs["jid"] ?? "");
          if (j === undefined) throw new StanzaError("jid-malformed");
          const aff = a.attrs["affiliation"] as Affiliation | undefined;
          if (aff !== "publisher" && aff !== "member" && aff !== "none" && aff !== "outcast") throw new StanzaError("not-acceptable", { text: "affiliation must be publisher, member, outcast or none" });
          if (j.bare.equals(face.jid.bare)) throw new StanzaError("not-acceptable", { text: "the owner's affiliation cannot change" });
          if (aff === "none") delete next[j.bareString()];
          else next[j.bareString()] = aff;
        }
        if (Object.keys(next).length > this.#limits.maxSubscriptionsPerNode) throw pubsubError("policy-violation", "too-many-subscriptions", { text: "too many affiliations" });
        rec.affiliations = next;
        await this.#store.putNode(face.svc, node, rec);
        return undefined;
      }
    }
    throw pubsubError("feature-not-implemented", "unsupported", { feature: action.name });
  }

  /** The last item of a node as an event message to `to`, when the node says so and `to` may see it; undefined otherwise. */
  async lastItemMessage(face: Face, node: string, rec: NodeRecord, to: string): Promise<Element | undefined> {
    if (rec.config.send_last_published_item !== "on_sub_and_presence" || !rec.config.persist_items) return undefined;
    const [last] = await this.#store.latest(face.svc, node, 1);
    if (last === undefined) return undefined;
    const msg = x("message", "jabber:client", { from: face.jid.toString(), to, type: "headline", id: randomBytes(6).toString("hex") });
    msg.children.push(itemsEvent(node, [last], rec.config));
    return msg;
  }
}

export { NS_PUBSUB, NS_PUBSUB_OWNER, NS_PUBSUB_EVENT };
