// A served virtual host: its disco features and identities, IQ handler table and module contexts.
import type { Element } from "../xml/element.ts";
import type { Config, HostConfig } from "./config/schema.ts";
import type { Storage } from "../storage/types.ts";
import type { Logger } from "./log.ts";
import { parseJid, type Jid } from "../xmpp/jid.ts";
import type { DiscoItemRef, Identity, IqHandler, IqTarget, ModuleContext, ModuleDefinition } from "./module-api.ts";
import type { Components } from "./components.ts";
import type { HttpRoutes } from "./http-routes.ts";
import type { EventMap, EventName, Events, Handler } from "./events.ts";
import type { SessionRegistry } from "./sessions.ts";

/** One served domain and what its modules registered. */
export class Host {
  readonly domain: string;
  readonly jid: Jid;
  readonly config: HostConfig;
  readonly features = { host: new Set<string>(), account: new Set<string>() };
  readonly identities: Identity[] = [];
  readonly discoExtensions: (() => Element | undefined)[] = [];
  /** Items of the host's disco#items (services on their own domains). */
  readonly discoItems: DiscoItemRef[] = [];
  readonly #iq = new Map<string, IqHandler>();
  /** APIs modules provide to each other on this host (e.g. "server-roster"). */
  readonly provided = new Map<string, unknown>();
  readonly #admins: Set<string>;

  constructor(config: HostConfig) {
    this.domain = config.domain;
    this.jid = parseJid(config.domain);
    this.config = config;
    this.#admins = new Set(config.admins.map((a) => parseJid(a).bareString()));
  }

  /** The handler for an IQ of this type, target and payload, if any. */
  iqHandler(type: string, target: IqTarget, ns: string, name: string): IqHandler | undefined {
    return this.#iq.get(`${type} ${target} ${ns} ${name}`);
  }

  isAdmin(jid: Jid): boolean {
    return this.#admins.has(jid.bareString());
  }

  /** Set up a module for this host with its own context. */
  async load(
    mod: ModuleDefinition,
    deps: {
      config: Config;
      storage: Storage;
      log: Logger;
      send(stanza: Element): void | Promise<void>;
      /** Optional so unit tests can load a module with a minimal context. */
      request?(iq: Element, timeoutMs?: number): Promise<Element>;
      control?: Map<string, (params: Record<string, unknown>) => unknown>;
      events: Events;
      sessions: SessionRegistry;
      /** The router's component registry; optional so unit tests can load a module without one. */
      components?: Components;
      /** The server's HTTP routes; optional so unit tests can load a module without one. */
      http?: HttpRoutes;
    },
  ): Promise<void> {
    const log = deps.log.child({ host: this.domain, module: mod.name });
    const ctx: ModuleContext = {
      host: this.domain,
      config: deps.config,
      hostConfig: this.config,
      storage: deps.storage,
      log,
      handleIq: (type, target, ns, name, handler) => {
        const key = `${type} ${target} ${ns} ${name}`;
        if (this.#iq.has(key)) throw new Error(`${mod.name}: IQ ${key} is already handled`);
        this.#iq.set(key, handler);
      },
      addFeature: (ns, target = "host") => void this.features[target].add(ns),
      addIdentity: (identity) => void this.identities.push(identity),
      addDiscoExtension: (form) => void this.discoExtensions.push(form),
      addDiscoItem: (item) => void this.discoItems.push(item),
      addComponent: (domain, handler) => {
        if (!deps.components) throw new Error(`${mod.name}: no component registry in this context`);
        deps.components.add(domain, this.domain, handler);
      },
      addHttpRoute: (path, handler, options) => {
        if (!deps.http) throw new Error(`${mod.name}: no HTTP routes in this context`);
        deps.http.add(path, handler, mod.name, options);
      },
      httpListeners: () => deps.http?.listeners() ?? [],
      send: deps.send,
      isAdmin: (jid) => this.isAdmin(jid),
      sessions: deps.sessions,
      request: deps.request ?? (() => Promise.reject(new Error("no router in this context"))),
      addControlMethod: (name, fn) => {
        // One server, several hosts: a method is registered once and dispatches on params.host (default: first host).
        const control = (deps.control ??= new Map());
        const existing = control.get(name);
        const byHost = (existing as { byHost?: Map<string, typeof fn> } | undefined)?.byHost ?? new Map<string, typeof fn>();
        byHost.set(this.domain, fn);
        const dispatch = Object.assign(
          (params: Record<string, unknown>) => {
            const h = typeof params["host"] === "string" ? params["host"] : byHost.keys().next().value!;
            const target = byHost.get(h);
            if (!target) throw new Error(`${h} is not a host served here`);
            return target(params);
          },
          { byHost },
        );
        control.set(name, dispatch);
      },
      use: <T,>(name: string) => this.provided.get(name) as T | undefined,
      provide: (name, api) => {
        if (this.provided.has(name)) throw new Error(`${mod.name}: "${name}" is already provided`);
        this.provided.set(name, api);
      },
      hook: <E extends EventName>(name: E, handler: Handler<E>, priority?: number) => {
        // Each host's modules see only events that concern that host.
        const domain = this.domain;
        const mine = (p: EventMap[E]): boolean => {
          const anyP = p as { to?: Jid | undefined; from?: Jid; session?: { jid: Jid }; host?: string };
          if (anyP.session) return anyP.session.jid.domain === domain;
          if (anyP.host !== undefined) return anyP.host === domain;
          if (name.startsWith("pre-")) return anyP.from?.domain === domain;
          return (anyP.to ?? anyP.from)?.domain === domain;
        };
        deps.events.on(name, (p) => (mine(p) ? handler(p) : undefined), priority);
      },
    };
    await mod.setup(ctx);
  }
}
