// Operator views of PEP data (`comity pubsub list|show|delete`, the control methods): node names, sizes and access
// models, never payloads. They read storage directly, so the CLI works with the server running or stopped.
import type { Storage } from "../../storage/types.ts";
import { PubsubStore } from "./store.ts";

/** One account with PEP nodes. */
export interface PepAccountSummary {
  account: string;
  nodes: number;
}

/** One node of an account, as operators see it. */
export interface PepNodeSummary {
  node: string;
  access_model: string;
  max_items: number;
  items: number;
  bytes: number;
  subscriptions: number;
  created: string;
}

/** Accounts of `host` that have PEP nodes, in byte order. */
export async function listPepAccounts(storage: Storage, host: string): Promise<PepAccountSummary[]> {
  const store = new PubsubStore(storage);
  const out: PepAccountSummary[] = [];
  for (const owner of await storage.map("pubsub-nodes").owners(host)) {
    if (owner === "") continue; // a standalone service's nodes, not an account's
    out.push({ account: `${owner}@${host}`, nodes: await store.nodeCount({ host, owner, kind: "pep" }) });
  }
  return out;
}

/** The nodes of one account. */
export async function showPepAccount(storage: Storage, host: string, username: string): Promise<PepNodeSummary[]> {
  const store = new PubsubStore(storage);
  const svc = { host, owner: username, kind: "pep" as const };
  const out: PepNodeSummary[] = [];
  for (const { name, record } of await store.nodes(svc)) {
    out.push({
      node: name,
      access_model: record.config.access_model,
      max_items: record.config.max_items,
      items: await store.itemCount(svc, name),
      bytes: await store.itemBytes(svc, name),
      subscriptions: await store.subscriptionCount(svc, name),
      created: new Date(record.created).toISOString(),
    });
  }
  return out;
}

/** Delete one node of an account with its items and subscriptions; resolves false when there was none. */
export function deletePepNode(storage: Storage, host: string, username: string, node: string): Promise<boolean> {
  return new PubsubStore(storage).deleteNode({ host, owner: username, kind: "pep" }, node);
}
