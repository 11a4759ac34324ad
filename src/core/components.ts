// Service domains that are not account hosts (e.g. a XEP-0045 chat service on conference.example.org): each one
// belongs to a host, which set it up, and has one handler that receives every stanza addressed to the domain or
// to a JID on it. The router reaches them after its host lookup; s2s treats them as local domains.
import type { Element } from "../xml/element.ts";
import type { Jid } from "../xmpp/jid.ts";
import type { Origin } from "./module-api.ts";

/**
 * Receives a stanza addressed to the component's domain (`to.domain`), with `from` already checked (c2s stamping,
 * s2s domain authentication). Throw a StanzaError to have the router answer with an error.
 */
export type ComponentHandler = (stanza: Element, from: Jid, to: Jid, origin: Origin) => void | Promise<void>;

/** One registered service domain. */
export interface Component {
  readonly domain: string;
  /** The host that owns it: its policies (federation filter, limits) apply to the component's traffic. */
  readonly host: string;
  readonly handle: ComponentHandler;
}

/** The service domains of this server. */
export class Components {
  readonly #byDomain = new Map<string, Component>();
  /** Domains that may not be taken (the account hosts). */
  readonly #reserved: (domain: string) => boolean;

  constructor(reserved: (domain: string) => boolean = () => false) {
    this.#reserved = reserved;
  }

  /** Register a domain; throws when it is a host or already registered. */
  add(domain: string, host: string, handle: ComponentHandler): void {
    if (this.#reserved(domain)) throw new Error(`${domain} is an account host, it cannot also be a component`);
    if (this.#byDomain.has(domain)) throw new Error(`component ${domain} is already registered`);
    this.#byDomain.set(domain, { domain, host, handle });
  }

  get(domain: string): Component | undefined {
    return this.#byDomain.get(domain);
  }

  has(domain: string): boolean {
    return this.#byDomain.has(domain);
  }

  /** Every registered domain. */
  domains(): IterableIterator<string> {
    return this.#byDomain.keys();
  }
}
