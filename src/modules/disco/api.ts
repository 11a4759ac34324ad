// XEP-0030 §3.2 and §4.2: nodes on the host JID that other modules answer (e.g. XEP-0050 command lists),
// obtained per host with `ctx.use<DiscoNodes>("disco-nodes")`.
import type { Jid } from "../../xmpp/jid.ts";
import type { Identity } from "../../core/module-api.ts";

/** One disco#items entry (XEP-0030 §4.1). */
export interface DiscoItem {
  jid: string;
  node?: string;
  name?: string;
}

/**
 * What one node answers for a requester. A method returning undefined (or missing) means the node does not
 * exist for this requester (item-not-found); it may also throw a StanzaError (e.g. forbidden).
 */
export interface DiscoNode {
  info?(from: Jid): { identities: Identity[]; features: string[] } | undefined;
  items?(from: Jid): DiscoItem[] | undefined;
}

/** Registry of the host's disco nodes, provided by the disco module. */
export interface DiscoNodes {
  /** Answer disco#info / disco#items queries for `node` on the host; throws if the node is taken. */
  add(node: string, handler: DiscoNode): void;
}

/**
 * What a module adds to the disco answers of local accounts (e.g. PEP's pubsub/pep identity and its nodes, XEP-0163 §6),
 * obtained per host with `ctx.use<DiscoAccounts>("disco-accounts")`. Each answer may be async. For a requester other
 * than the account itself, the account answers only when some extension returns something (otherwise
 * service-unavailable, so nothing about the account leaks to strangers).
 */
export interface DiscoAccountExtension {
  /** disco#info of the account (`node` undefined) or of one of its nodes; undefined: nothing to add / no such node. */
  info?(from: Jid, account: Jid, node: string | undefined): Promise<{ identities: Identity[]; features: string[] } | undefined> | { identities: Identity[]; features: string[] } | undefined;
  /** disco#items of the account (`node` undefined) or of one of its nodes; undefined: nothing visible to this requester. */
  items?(from: Jid, account: Jid, node: string | undefined): Promise<DiscoItem[] | undefined> | DiscoItem[] | undefined;
}

/** Registry of account disco extensions, provided by the disco module. */
export interface DiscoAccounts {
  add(ext: DiscoAccountExtension): void;
}
