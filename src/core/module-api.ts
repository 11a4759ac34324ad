// The module API (STYLE.md §3.3): what a feature module declares and the per-host context it gets.
// A module never touches sockets: it receives stanzas through handlers and sends through the router.
import type { Element } from "../xml/element.ts";
import type { Config, HostConfig } from "./config/schema.ts";
import type { Storage } from "../storage/types.ts";
import type { Logger } from "./log.ts";
import type { Jid } from "../xmpp/jid.ts";

/** Where a stanza came from. */
export interface Origin {
  /** "c2s" for a local client session, "s2s" for a peer link, "local" for the server itself. */
  kind: "c2s" | "s2s" | "local";
  /** The authenticated sender (full JID for c2s, domain for s2s, host for local). */
  jid: Jid;
}

/** An IQ handler: return the payload of the result (or nothing for an empty result); throw StanzaError to fail. */
export type IqHandler = (iq: Element, ctx: { from: Jid; to: Jid; origin: Origin; payload: Element }) =>
  Element | undefined | void | Promise<Element | undefined | void>;

/** Where an IQ is addressed: the host itself, or a local account's bare JID. */
export type IqTarget = "host" | "account";

/** A disco#info identity (XEP-0030 §3.1). */
export interface Identity {
  category: string;
  type: string;
  name?: string;
}

/** The small context a module gets, one per virtual host. */
export interface ModuleContext {
  readonly host: string;
  readonly config: Config;
  readonly hostConfig: HostConfig;
  readonly storage: Storage;
  readonly log: Logger;
  /** Handle IQs of this type with this payload (namespace + element name) addressed to the target. */
  handleIq(type: "get" | "set", target: IqTarget, ns: string, name: string, handler: IqHandler): void;
  /** Advertise a disco#info feature on the host (XEP-0030). */
  addFeature(ns: string, target?: IqTarget): void;
  addIdentity(identity: Identity): void;
  /** Add a data form to the host's disco#info (XEP-0128), computed on each query. */
  addDiscoExtension(form: () => Element | undefined): void;
  /** Route a stanza from this server. */
  send(stanza: Element): void;
  /** Whether a JID is one of this host's administrators. */
  isAdmin(jid: Jid): boolean;
}

/** A feature module (one XEP or RFC feature). */
export interface ModuleDefinition {
  name: string;
  /** Specs the module implements, for docs and `comity check`. */
  protocol?: { xep?: number; rfc?: number; version?: string }[];
  setup(ctx: ModuleContext): void | Promise<void>;
}

/** Identity helper that gives modules a typed definition. */
export function defineModule(def: ModuleDefinition): ModuleDefinition {
  return def;
}
