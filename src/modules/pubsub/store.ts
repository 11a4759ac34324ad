// Where pubsub keeps its state: three named stores of the generic map kind (src/storage/types.ts MapStore), so no table
// is pubsub's own. A service is (host, owner): a PEP service is (account host, username), the standalone service of a
// host is (service domain, ""). Nodes are keyed by name under the service; items and subscriptions of one node live
// under the owner "<owner>/<node>" ("/" cannot occur in a localpart, RFC 7622 §3.3.1, so the split is unambiguous), and
// the map's order by last write is exactly the item order XEP-0060 needs (a republished id becomes the newest, §7.1.2).
import type { MapStore, Storage } from "../../storage/types.ts";
import { defaultConfig, type NodeConfig } from "./config.ts";

export type Affiliation = "owner" | "publisher" | "member" | "none" | "outcast";

/** One node as stored (JSON in the "pubsub-nodes" map). */
export interface NodeRecord {
  config: NodeConfig;
  /** Affiliations other than "none", by bare JID (§4.1). The service's owner is always "owner". */
  affiliations: Record<string, Affiliation>;
  created: number;
}

/** One published item (JSON in the "pubsub-items" map); the payload is kept serialised as it arrived. */
export interface StoredItem {
  id: string;
  publisher: string;
  /** The serialised payload element, "" for an item without payload. */
  payload: string;
}

/** One subscription (JSON in the "pubsub-subscriptions" map, keyed by the subscribed JID). */
export interface SubscriptionRecord {
  jid: string;
  subid: string;
}

/** A pubsub service: PEP (account host, username) or a standalone service (service domain, ""). */
export interface ServiceKey {
  host: string;
  owner: string;
  kind: "pep" | "service";
}

/** Typed access to one host's pubsub data. */
export class PubsubStore {
  readonly #nodes: MapStore;
  readonly #items: MapStore;
  readonly #subs: MapStore;

  constructor(storage: Storage) {
    this.#nodes = storage.map("pubsub-nodes");
    this.#items = storage.map("pubsub-items");
    this.#subs = storage.map("pubsub-subscriptions");
  }

  async node(svc: ServiceKey, node: string): Promise<NodeRecord | undefined> {
    const raw = await this.#nodes.get(svc.host, svc.owner, node);
    return raw === undefined ? undefined : readNode(raw, svc.kind);
  }

  async putNode(svc: ServiceKey, node: string, rec: NodeRecord): Promise<void> {
    await this.#nodes.set(svc.host, svc.owner, node, JSON.stringify(rec));
  }

  /** Every node of the service, oldest first. */
  async nodes(svc: ServiceKey): Promise<{ name: string; record: NodeRecord }[]> {
    return (await this.#nodes.entries(svc.host, svc.owner)).map((e) => ({ name: e.key, record: readNode(e.value, svc.kind) }));
  }

  nodeCount(svc: ServiceKey): Promise<number> {
    return this.#nodes.count(svc.host, svc.owner);
  }

  /** Delete a node with its items and subscriptions. */
  async deleteNode(svc: ServiceKey, node: string): Promise<boolean> {
    const o = itemsOwner(svc, node);
    await this.#items.clear(svc.host, o);
    await this.#subs.clear(svc.host, o);
    return this.#nodes.delete(svc.host, svc.owner, node);
  }

  /** Delete every node of a service (account deletion), including items of nodes whose record is already gone. */
  async deleteService(svc: ServiceKey): Promise<number> {
    const names = (await this.nodes(svc)).map((n) => n.name);
    for (const n of names) await this.deleteNode(svc, n);
    // Leftovers of an interrupted earlier deletion: rows under "<owner>/" with no node record.
    const prefix = `${svc.owner}/`;
    for (const o of await this.#items.owners(svc.host, { prefix })) await this.#items.clear(svc.host, o);
    for (const o of await this.#subs.owners(svc.host, { prefix })) await this.#subs.clear(svc.host, o);
    return names.length;
  }

  async item(svc: ServiceKey, node: string, id: string): Promise<StoredItem | undefined> {
    const raw = await this.#items.get(svc.host, itemsOwner(svc, node), id);
    return raw === undefined ? undefined : readItem(id, raw);
  }

  async itemsById(svc: ServiceKey, node: string, ids: string[]): Promise<StoredItem[]> {
    const got = await this.#items.getMany(svc.host, itemsOwner(svc, node), ids);
    return ids.filter((id) => got.has(id)).map((id) => readItem(id, got.get(id)!));
  }

  /** Newest first, at most `limit`. */
  async latest(svc: ServiceKey, node: string, limit: number): Promise<StoredItem[]> {
    return (await this.#items.entries(svc.host, itemsOwner(svc, node), { newestFirst: true, limit })).map((e) => readItem(e.key, e.value));
  }

  /** Store an item (it becomes the newest) and drop the oldest beyond `keep`; resolves the dropped ids. */
  async publish(svc: ServiceKey, node: string, item: StoredItem, keep: number): Promise<string[]> {
    const o = itemsOwner(svc, node);
    await this.#items.set(svc.host, o, item.id, JSON.stringify({ p: item.publisher, x: item.payload }));
    return (await this.#items.trim(svc.host, o, keep)).filter((id) => id !== item.id);
  }

  retract(svc: ServiceKey, node: string, id: string): Promise<boolean> {
    return this.#items.delete(svc.host, itemsOwner(svc, node), id);
  }

  /** Remove every item; resolves their ids. */
  async purge(svc: ServiceKey, node: string): Promise<string[]> {
    return this.#items.trim(svc.host, itemsOwner(svc, node), 0);
  }

  trimItems(svc: ServiceKey, node: string, keep: number): Promise<string[]> {
    return this.#items.trim(svc.host, itemsOwner(svc, node), keep);
  }

  itemCount(svc: ServiceKey, node: string): Promise<number> {
    return this.#items.count(svc.host, itemsOwner(svc, node));
  }

  /** Total bytes of the node's stored items (operators' view; never the payloads themselves). */
  async itemBytes(svc: ServiceKey, node: string): Promise<number> {
    let n = 0;
    for (const e of await this.#items.entries(svc.host, itemsOwner(svc, node))) n += Buffer.byteLength(e.value, "utf8");
    return n;
  }

  async subscriptions(svc: ServiceKey, node: string): Promise<SubscriptionRecord[]> {
    return (await this.#subs.entries(svc.host, itemsOwner(svc, node))).map((e) => readSub(e.key, e.value));
  }

  async subscription(svc: ServiceKey, node: string, jid: string): Promise<SubscriptionRecord | undefined> {
    const raw = await this.#subs.get(svc.host, itemsOwner(svc, node), jid);
    return raw === undefined ? undefined : readSub(jid, raw);
  }

  subscriptionCount(svc: ServiceKey, node: string): Promise<number> {
    return this.#subs.count(svc.host, itemsOwner(svc, node));
  }

  async subscribe(svc: ServiceKey, node: string, sub: SubscriptionRecord): Promise<void> {
    await this.#subs.set(svc.host, itemsOwner(svc, node), sub.jid, JSON.stringify({ subid: sub.subid }));
  }

  unsubscribe(svc: ServiceKey, node: string, jid: string): Promise<boolean> {
    return this.#subs.delete(svc.host, itemsOwner(svc, node), jid);
  }
}

function itemsOwner(svc: ServiceKey, node: string): string {
  return `${svc.owner}/${node}`;
}

function readNode(raw: string, kind: "pep" | "service"): NodeRecord {
  const r = JSON.parse(raw) as Partial<NodeRecord>;
  // Fields added by later releases get their defaults, so an older record still reads as a whole configuration.
  return { config: { ...defaultConfig(kind), ...(r.config ?? {}) }, affiliations: r.affiliations ?? {}, created: r.created ?? 0 };
}

function readItem(id: string, raw: string): StoredItem {
  const r = JSON.parse(raw) as { p?: string; x?: string };
  return { id, publisher: r.p ?? "", payload: r.x ?? "" };
}

function readSub(jid: string, raw: string): SubscriptionRecord {
  const r = JSON.parse(raw) as { subid?: string };
  return { jid, subid: r.subid ?? "" };
}
