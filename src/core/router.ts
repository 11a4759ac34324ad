// Stanza routing by address (RFC 6120 §8, §10; RFC 6121 §8): the host, a local account, a session, a remote domain.
// Senders are already authenticated and `from` stamped; the router never looks at connection types.
import { Element } from "../xml/element.ts";
import { StanzaError, errorReply } from "../xmpp/errors.ts";
import { parseJid, type Jid } from "../xmpp/jid.ts";
import type { Storage } from "../storage/types.ts";
import type { Logger } from "./log.ts";
import type { Host } from "./host.ts";
import type { Origin } from "./module-api.ts";
import type { SessionRegistry } from "./sessions.ts";
import type { EventName, Events, StanzaEvent } from "./events.ts";
import { Components } from "./components.ts";

/** The single entry point for stanzas on their way to a recipient. */
export class Router {
  readonly hosts: Map<string, Host>;
  readonly sessions: SessionRegistry;
  readonly events: Events;
  /** Service domains that are not account hosts (e.g. a chat service); see components.ts. */
  readonly components: Components;
  readonly #storage: Storage;
  readonly #log: Logger;
  /** Remote delivery; until federation is enabled, every remote domain is unreachable. */
  remote: (stanza: Element, to: Jid, origin: Origin) => void = (stanza) => this.bounce(stanza, new StanzaError("remote-server-not-found"));

  constructor(deps: { hosts: Map<string, Host>; sessions: SessionRegistry; storage: Storage; log: Logger; events: Events }) {
    this.events = deps.events;
    this.hosts = deps.hosts;
    this.sessions = deps.sessions;
    this.components = new Components((domain) => this.hosts.has(domain));
    this.#storage = deps.storage;
    this.#log = deps.log;
  }

  /** Whether this server answers for `domain`: an account host or a component. */
  isLocalDomain(domain: string): boolean {
    return this.hosts.has(domain) || this.components.has(domain);
  }

  /** The host whose policies apply to a local domain: itself, or the host that owns the component. */
  hostOf(domain: string): string | undefined {
    return this.hosts.has(domain) ? domain : this.components.get(domain)?.host;
  }

  /**
   * Route a stanza whose `from` is set and trusted and whose `to` (if any) is a valid JID. Returns a promise only
   * when routing had to wait (storage, an async hook); the common case, a message to a connected full JID whose
   * hooks answer synchronously, completes before returning and allocates no promise.
   */
  route(stanza: Element, from: Jid, to: Jid | undefined, origin: Origin): void | Promise<void> {
    if (stanza.name === "message" && to !== undefined && to.resource !== "" && to.local !== "" && this.hosts.has(to.domain)) {
      const session = this.sessions.get(to);
      if (session) return this.#messageToSession(stanza, from, to, origin);
    }
    return this.#route(stanza, from, to, origin);
  }

  /** Fast path: a message for a connected full JID (RFC 6121 §8.5.3.1), hooks first. */
  #messageToSession(stanza: Element, from: Jid, to: Jid, origin: Origin): void | Promise<void> {
    const ev: StanzaEvent = { stanza, from, to, origin };
    try {
      if (origin.kind === "c2s" && this.events.has("pre-message/full")) {
        const r = this.events.dispatch("pre-message/full", ev);
        if (r === true) return;
        if (r !== false) return r.then((h) => (h ? undefined : this.#arriveAtSession(ev))).catch((err: unknown) => this.#failed(stanza, err));
      }
      return this.#arriveAtSession(ev);
    } catch (err) {
      this.#failed(stanza, err);
    }
  }

  #arriveAtSession(ev: StanzaEvent): void | Promise<void> {
    const deliver = () => {
      const s = this.sessions.get(ev.to!);
      if (s) s.deliver(ev.stanza);
      else return this.#toAccount(this.hosts.get(ev.to!.domain)!, ev.stanza, ev.from, ev.to!, ev.origin, true); // it went away meanwhile
    };
    if (!this.events.has("message/full")) return deliver();
    const r = this.events.dispatch("message/full", ev);
    if (r === true) return;
    if (r === false) return deliver();
    return r.then((h) => (h ? undefined : deliver())).catch((err: unknown) => this.#failed(ev.stanza, err));
  }

  /** A handler failed: a StanzaError is answered, anything else logged and answered internal-server-error. */
  #failed(stanza: Element, err: unknown): void {
    if (err instanceof StanzaError) return this.bounce(stanza, err);
    this.#log.error({ err, stanza: stanza.name }, "routing failed");
    this.bounce(stanza, new StanzaError("internal-server-error"));
  }

  async #route(stanza: Element, from: Jid, to: Jid | undefined, origin: Origin): Promise<void> {
    try {
      const name = stanza.name;
      if (origin.kind === "c2s" && (name === "presence" || name === "message")) {
        // Outbound processing on the sender's side first (RFC 6121 §3.1.2, §4.2.2: rosters, broadcasts).
        const addr = to === undefined ? "self" : to.resource !== "" ? "full" : to.local !== "" ? "bare" : undefined;
        if (addr !== undefined && !(name === "message" && addr === "self")) {
          const event = `pre-${name}/${addr}` as EventName;
          if (this.events.has(event)) {
            const r = this.events.dispatch(event as "pre-presence/bare", { stanza, from, to, origin });
            if (r === true || (r !== false && (await r))) return;
          }
        }
      }
      if (origin.kind === "c2s" && name === "iq" && to !== undefined && this.events.has("pre-iq/out") && !isOwn(from, to)) {
        const r = this.events.dispatch("pre-iq/out", { stanza, from, to, origin });
        if (r === true || (r !== false && (await r))) return;
      }
      if (to === undefined) return await this.#toSelf(stanza, from, origin);
      const host = this.hosts.get(to.domain);
      if (!host) {
        const component = this.components.get(to.domain);
        if (component) return await component.handle(stanza, from, to, origin);
        return this.remote(stanza, to, origin);
      }
      if (to.local === "") {
        if (to.resource !== "") return this.#unavailable(stanza);
        return await this.#toHost(host, stanza, from, to, origin);
      }
      return await this.#toAccount(host, stanza, from, to, origin);
    } catch (err) {
      this.#failed(stanza, err);
    }
  }

  /** A stanza without `to`: handled on behalf of the sender's account (RFC 6120 §10.3). */
  async #toSelf(stanza: Element, from: Jid, origin: Origin): Promise<void> {
    const host = this.hosts.get(from.domain);
    if (!host) return;
    const bare = from.bare;
    if (stanza.name === "iq") return this.#iq(host, stanza, from, bare, "account", origin);
    if (stanza.name === "message") return this.#toAccount(host, stanza, from, bare, origin);
    // Presence without `to` is the session's own broadcast; the c2s session handles availability.
  }

  /** Fire `<kind>/<addr>` for a stanza arriving at a local address; true when a handler took it. */
  #arrive(addr: "bare" | "full" | "host", ev: StanzaEvent): boolean | Promise<boolean> {
    const event = `${ev.stanza.name}/${addr}` as "presence/bare";
    return this.events.has(event) && this.events.dispatch(event, ev);
  }

  async #toHost(host: Host, stanza: Element, from: Jid, to: Jid, origin: Origin): Promise<void> {
    if (stanza.name === "iq") return this.#iq(host, stanza, from, to, "host", origin);
    const arrived = this.#arrive("host", { stanza, from, to, origin });
    if (arrived === true || (arrived !== false && (await arrived))) return;
    if (stanza.name === "message") {
      const type = stanza.attrs["type"];
      // Messages to the server itself are answered, not dropped, unless no reply is allowed (RFC 6121 §8.5.1).
      if (type !== "error" && type !== "groupchat" && type !== "headline") this.bounce(stanza, new StanzaError("service-unavailable"));
    }
    // Presence to the host: consumed here (server rosters handle it when enabled).
  }

  async #toAccount(host: Host, stanza: Element, from: Jid, to: Jid, origin: Origin, arrived = false): Promise<void> {
    const bare = to.bareString();
    const sessions = this.sessions.ofBare(bare);
    const isIq = stanza.name === "iq";
    const type = stanza.attrs["type"];
    if (!isIq && !arrived) {
      // Decide the target before the hooks run, so that what they do (carbons, archives) matches the delivery: a
      // normal or chat message to a resource that is not online is handled as if sent to the bare JID (RFC 6121
      // §8.5.3.2.1), so it arrives as message/bare. Fired as message/full, carbons copied it to the remaining
      // session as <received/> and then the bare-JID fallback delivered it there again (XEP-0280 §6).
      const toBare = to.resource !== "" && stanza.name === "message" && type !== "groupchat" && type !== "headline" && type !== "error" && !sessions.has(to.resource);
      const arrived = toBare
        ? this.#arrive("bare", { stanza, from, to: to.bare, origin })
        : this.#arrive(to.resource !== "" ? "full" : "bare", { stanza, from, to, origin });
      if (arrived === true || (arrived !== false && (await arrived))) return;
    }
    if (isIq && !from.bare.equals(to.bare) && this.events.has("iq/account")) {
      const r = this.events.dispatch("iq/account", { stanza, from, to, origin });
      if (r === true || (r !== false && (await r))) return;
    }
    if (to.resource !== "") {
      const s = sessions.get(to.resource);
      if (s) return s.deliver(stanza);
      if (stanza.name === "iq") return this.#unavailable(stanza);
      if (stanza.name === "presence") return; // RFC 6121 §8.5.3.2.3: silently ignored
      // RFC 6121 §8.5.3.2.1: to an unknown resource, normal and chat are handled as if sent to the bare JID,
      // groupchat gets service-unavailable, headline and error are ignored.
      if (type === "groupchat") return this.#unavailable(stanza);
      if (type === "headline" || type === "error") return;
    }
    if (stanza.name === "iq") {
      if (sessions.size === 0 && !(await this.#storage.accounts.get(host.domain, to.local))) return this.#unavailable(stanza);
      return this.#iq(host, stanza, from, to.bare, "account", origin);
    }
    if (stanza.name === "message") {
      // RFC 6121 §8.5.2: messages to the bare JID, by type.
      if (type === "error") return;
      let best: number | undefined;
      for (const s of sessions.values()) if (s.available && s.priority >= 0 && (best === undefined || s.priority > best)) best = s.priority;
      if (best !== undefined) {
        if (type === "groupchat") return this.#unavailable(stanza);
        // headline goes to every available resource with non-negative priority, others to the highest.
        for (const s of sessions.values()) if (s.available && (type === "headline" ? s.priority >= 0 : s.priority === best)) s.deliver(stanza);
        return;
      }
      if (this.events.has("message/offline") && (await this.events.fire("message/offline", { stanza, from, to, origin }))) return;
      // RFC 6121 §8.5.2.1.1: groupchat and headline are dropped silently, others get an error.
      if (type === "groupchat" || type === "headline") return;
      return this.#unavailable(stanza);
    }
    // presence to an account: delivered to available sessions (subscriptions arrive with #3)
    for (const s of sessions.values()) if (s.available) s.deliver(stanza);
  }

  async #iq(host: Host, iq: Element, from: Jid, to: Jid, target: "host" | "account", origin: Origin): Promise<void> {
    const type = iq.attrs["type"];
    if (type !== "get" && type !== "set") {
      this.#answer(iq, from, to);
      return;
    }
    const payload = iq.elements[0];
    if (!payload) throw new StanzaError("bad-request");
    const handler = host.iqHandler(type, target, payload.xmlns, payload.name);
    if (!handler) throw new StanzaError("service-unavailable");
    const result = await handler(iq, { from, to, origin, payload });
    const attrs: Record<string, string> = { type: "result", to: from.toString() };
    if (iq.attrs["to"] !== undefined) attrs["from"] = iq.attrs["to"];
    if (iq.attrs["id"] !== undefined) attrs["id"] = iq.attrs["id"];
    const reply = new Element("iq", iq.xmlns, attrs);
    if (result) reply.children.push(result);
    this.deliverReply(reply, from);
  }

  readonly #pending = new Map<string, { to: string; resolve: (el: Element) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();

  /**
   * Send an IQ get/set from a local host or account and wait for its result (resolves) or error (rejects with a
   * StanzaError carrying the peer's condition). Times out with remote-server-timeout.
   */
  request(iq: Element, timeoutMs = 30_000): Promise<Element> {
    const id = iq.attrs["id"] ?? `c${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
    iq.attrs["id"] = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new StanzaError("remote-server-timeout"));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { to: iq.attrs["to"] ?? "", resolve, reject, timer });
      this.send(iq);
    });
  }

  /** A result or error addressed to a host or account: settle the request that awaits it, if any. */
  #answer(iq: Element, from: Jid, to: Jid): void {
    const id = iq.attrs["id"];
    const p = id === undefined ? undefined : this.#pending.get(id);
    if (!p || p.to !== from.toString()) return; // unsolicited or from someone else: ignored
    this.#pending.delete(id!);
    clearTimeout(p.timer);
    void to;
    if (iq.attrs["type"] === "result") p.resolve(iq);
    else {
      const cond = iq.getChild("error")?.elements.find((e) => e.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name ?? "undefined-condition";
      p.reject(new StanzaError(cond as "undefined-condition"));
    }
  }

  #unavailable(stanza: Element): void {
    this.bounce(stanza, new StanzaError("service-unavailable"));
  }

  /** Send an error reply to the stanza's sender; never in reply to an error or a result (RFC 6120 §8.3.1). */
  bounce(stanza: Element, err: StanzaError): void {
    const type = stanza.attrs["type"];
    if (type === "error" || (stanza.name === "iq" && type === "result")) return;
    const from = stanza.attrs["from"];
    if (!from) return;
    const reply = errorReply(stanza, err);
    // The server answers in the recipient's name; without `to` the reply comes from the sender's account.
    if (!stanza.attrs["to"]) delete reply.attrs["from"];
    this.routeReply(reply);
  }

  /**
   * Route a stanza generated by the server itself (its `from` is trusted as set). Returns a promise (that never
   * rejects) only when routing had to wait; a sender that must keep several stanzas to one recipient in order
   * (presence may wait for hooks where a message does not) sends the next one when it settles.
   */
  send(stanza: Element): void | Promise<void> {
    const from = parseJid(stanza.attrs["from"]!);
    const toAttr = stanza.attrs["to"];
    return this.route(stanza, from, toAttr === undefined ? undefined : parseJid(toAttr), { kind: "local", jid: from });
  }

  /** Route a reply whose `to` is a JID string we set ourselves. */
  routeReply(reply: Element): void {
    const to = parseJid(reply.attrs["to"]!);
    this.deliverReply(reply, to);
  }

  /** Deliver a server-generated reply to its addressee (a local session, or remote). */
  deliverReply(reply: Element, to: Jid): void {
    const host = this.hosts.get(to.domain);
    if (!host) {
      const component = this.components.get(to.domain);
      if (component) {
        // An error the server generated for a stanza a component sent (e.g. to a session that just went away);
        // handed over on a later tick so a component is never re-entered in the middle of its own broadcast.
        const from = reply.attrs["from"];
        void Promise.resolve()
          .then(() => component.handle(reply, from ? parseJid(from) : to, to, { kind: "local", jid: to }))
          .catch((err: unknown) => this.#log.error({ err, component: to.domain }, "component failed on a reply"));
        return;
      }
      this.remote(reply, to, { kind: "local", jid: to });
      return;
    }
    if (to.resource !== "") {
      this.sessions.get(to)?.deliver(reply);
      return;
    }
    // A reply to the server itself or to an account (e.g. a local error for a request a module sent).
    const type = reply.attrs["type"];
    if (reply.name === "iq" && (type === "result" || type === "error")) {
      const from = reply.attrs["from"];
      this.#answer(reply, from ? parseJid(from) : to, to);
    }
  }
}

/** A stanza to the sender's own account or its own server: never another party's business (blocking, privacy). */
function isOwn(from: Jid, to: Jid): boolean {
  return from.bare.equals(to.bare) || (to.local === "" && to.resource === "" && to.domain === from.domain);
}
