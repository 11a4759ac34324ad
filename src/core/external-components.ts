// XEP-0114: Jabber Component Protocol <https://xmpp.org/extensions/xep-0114.html> (version 1.6), the "accept" side:
// bridges such as Biboumi (IRC), Slidge or Spectrum2 connect to `components.listen`, prove the shared secret of the
// domain they serve, and from then on everything addressed to that domain (or a JID on it) is written to their
// stream, while what they send is routed like any local domain's traffic (local users, other components, and over
// s2s with the component's domain as sender, under the owning host's federation policy).
//
// Each configured service is registered once, at start, in the router's component registry (core/components.ts),
// so the domain is local whether or not the bridge is connected: s2s accepts streams to it, and a stanza arriving
// while the bridge is away is answered with service-unavailable. The component answers its own disco; Comity
// only routes.
import type { Socket } from "node:net";
import { createHash, timingSafeEqual } from "node:crypto";
import { Element, renameNamespace } from "../xml/element.ts";
import { Connection, newStreamId } from "../net/connection.ts";
import { StanzaError, StreamError, errorReply } from "../xmpp/errors.ts";
import { NS_CLIENT, NS_COMPONENT, NS_STREAM } from "../xmpp/ns.ts";
import { parseJid, prepareDomain, type Jid } from "../xmpp/jid.ts";
import type { Config } from "./config/schema.ts";
import type { Host } from "./host.ts";
import type { Logger } from "./log.ts";
import type { Origin } from "./module-api.ts";
import type { Router } from "./router.ts";

const STANZAS = new Set(["message", "presence", "iq"]);

/**
 * Bytes we let pile up unread on a component's socket before refusing further stanzas for it with
 * resource-constraint (RFC 6120 §8.3.3.18): a stalled bridge must not make the server buffer without bound.
 */
export const MAX_PENDING_OUT_BYTES = 4 * 1024 * 1024;

/** How long a connection may take to open its stream and complete the handshake. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

/** One configured component (config `components.services`). */
interface Service {
  domain: string;
  secret: string;
  host: string;
}

/** What `comity status` shows for one component. */
export interface ComponentInfo {
  domain: string;
  host: string;
  connected: boolean;
  /** When the current connection completed its handshake (ms since the epoch). */
  since?: number;
  remoteAddress?: string;
  stanzasIn: number;
  stanzasOut: number;
}

/** The hex SHA-1 of stream id + secret that a component sends in `<handshake/>` (XEP-0114 §3). */
export function handshakeDigest(streamId: string, secret: string): string {
  return createHash("sha1").update(streamId + secret, "utf8").digest("hex");
}

interface Deps {
  config: Config;
  router: Router;
  log: Logger;
  /** Time allowed for the stream header and handshake (default HANDSHAKE_TIMEOUT_MS; shorter in tests). */
  handshakeTimeoutMs?: number;
}

/** Every configured external component, its current connection and the streams still negotiating. */
export class ExternalComponents {
  readonly #deps: Deps;
  readonly #services = new Map<string, Service>();
  readonly #connected = new Map<string, ComponentStream>();
  readonly #streams = new Set<ComponentStream>();
  readonly #counters = new Map<string, { in: number; out: number }>();
  #stopping = false;

  constructor(deps: Deps, hosts: Map<string, Host>) {
    this.#deps = deps;
    for (const s of deps.config.components.services) {
      const host = s.host ?? deps.config.hosts[0]!.domain; // normalizeConfig fills it in; the fallback is for hand-built configs
      const svc: Service = { domain: s.domain, secret: s.secret, host };
      this.#services.set(s.domain, svc);
      this.#counters.set(s.domain, { in: 0, out: 0 });
      deps.router.components.add(s.domain, host, (stanza, _from, to) => this.#deliver(svc, stanza, to));
      // The owning host lists the bridge among its services (XEP-0030 §4), as it does its chat service.
      hosts.get(host)?.discoItems.push({ jid: s.domain });
    }
  }

  /** A stanza for a component's domain: onto its stream, or bounced when it is not connected or not reading. */
  #deliver(svc: Service, stanza: Element, to: Jid): void {
    const stream = this.#connected.get(svc.domain);
    if (!stream) {
      // Errors and results are never answered (RFC 6120 §8.3.1): one that arrives while the bridge is away is dropped.
      const type = stanza.attrs["type"];
      if (type === "error" || (stanza.name === "iq" && type === "result")) return;
      throw new StanzaError("service-unavailable", { text: `${to.domain} is not connected` });
    }
    if (stream.conn.socket.writableLength > MAX_PENDING_OUT_BYTES) throw new StanzaError("resource-constraint", { text: `${to.domain} is not reading` });
    stream.conn.send(stanza);
    this.#counters.get(svc.domain)!.out++;
  }

  /** Take a new TCP connection on a component listener. */
  accept(socket: Socket): void {
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    const stream = new ComponentStream(socket, this.#deps, {
      service: (domain) => this.#services.get(domain),
      connectedElsewhere: (domain) => this.#connected.has(domain),
      authenticated: (s, domain) => {
        if (this.#connected.has(domain)) return false;
        this.#connected.set(domain, s);
        return true;
      },
      counted: (domain) => void this.#counters.get(domain)!.in++,
      closed: (s, domain) => {
        this.#streams.delete(s);
        if (domain !== undefined && this.#connected.get(domain) === s) this.#connected.delete(domain);
      },
    });
    this.#streams.add(stream);
  }

  /** Each configured component and its connection, for `comity status`. */
  list(): ComponentInfo[] {
    return [...this.#services.values()].map((svc) => {
      const s = this.#connected.get(svc.domain);
      const c = this.#counters.get(svc.domain)!;
      const info: ComponentInfo = { domain: svc.domain, host: svc.host, connected: s !== undefined, stanzasIn: c.in, stanzasOut: c.out };
      if (s) {
        info.since = s.since;
        info.remoteAddress = s.conn.remoteAddress;
      }
      return info;
    });
  }

  /** Close every component stream with `<system-shutdown/>` (server stop). */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const s of this.#streams) s.conn.streamError(new StreamError("system-shutdown"));
    const deadline = Date.now() + 2000;
    while (this.#streams.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.#streams) s.conn.socket.destroy();
  }
}

interface StreamHooks {
  service(domain: string): Service | undefined;
  connectedElsewhere(domain: string): boolean;
  /** Claim the domain for this stream; false when another stream holds it. */
  authenticated(stream: ComponentStream, domain: string): boolean;
  counted(domain: string): void;
  closed(stream: ComponentStream, domain: string | undefined): void;
}

/** One component connection: stream header, handshake, then stanzas checked against the component's domain. */
class ComponentStream {
  readonly conn: Connection;
  readonly #deps: Deps;
  readonly #hooks: StreamHooks;
  #service: Service | undefined;
  #authenticated = false;
  #origin: Origin | undefined;
  #timer: NodeJS.Timeout | undefined;
  since = 0;

  constructor(socket: Socket, deps: Deps, hooks: StreamHooks) {
    this.#deps = deps;
    this.#hooks = hooks;
    socket.setNoDelay(true);
    // A bridge that vanished without a FIN would hold its domain (a new connection gets conflict) until TCP notices:
    // keepalive probes make that minutes, not hours.
    socket.setKeepAlive(true, 60_000);
    const c = deps.config;
    this.conn = new Connection(
      socket,
      {
        streamOpen: (attrs, info) => this.#streamOpen(attrs, info),
        element: (el) => this.#element(el),
        closed: (reason) => this.#closed(reason),
      },
      {
        contentNs: NS_COMPONENT,
        // Inside the server stanzas are jabber:client (as s2s's are); on this stream they are jabber:component:accept.
        alias: { from: NS_CLIENT, to: NS_COMPONENT },
        limits: { maxStanzaSize: c.c2s.max_stanza_size_preauth, maxDepth: c.limits.max_depth, maxChildren: c.limits.max_children, maxAttributes: c.limits.max_attributes },
        log: deps.log,
      },
    );
    this.#timer = setTimeout(() => {
      if (!this.#authenticated) this.conn.streamError(new StreamError("connection-timeout", { text: "no handshake" }));
    }, deps.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    this.#timer.unref();
  }

  #streamOpen(attrs: Record<string, string>, info: { name: string; uri: string; contentNs: string | undefined }): void {
    const c = this.conn;
    if (this.#service) throw new StreamError("unsupported-feature", { text: "XEP-0114 streams are never restarted" });
    // XEP-0114 §3: our answer carries the component's domain as `from` and a fresh stream id, and no version (the
    // protocol predates stream features). It goes out before any stream error, so the component can read it.
    const id = newStreamId();
    c.streamId = id;
    let to = "";
    try {
      to = prepareDomain(attrs["to"] ?? "");
    } catch {
      // answered below with host-unknown
    }
    c.sendHeader(to === "" ? { id } : { from: to, id });
    if (info.name !== "stream" || info.uri !== NS_STREAM) throw new StreamError("invalid-namespace");
    if (info.contentNs !== NS_COMPONENT) throw new StreamError("invalid-namespace", { text: `a component stream's default namespace is ${NS_COMPONENT}` });
    if (to === "") throw new StreamError("host-unknown", { text: "the stream has no valid 'to'" });
    const svc = this.#hooks.service(to);
    if (!svc) throw new StreamError("host-unknown", { text: `${to} is not a component configured here` });
    // A second connection for a domain already connected is refused with conflict (RFC 6120 §4.9.3.3: a new stream
    // that would conflict with an existing one), checked again at the handshake, where the domain is claimed. The
    // first connection keeps the domain: a stray or misconfigured second bridge cannot take over a working one.
    if (this.#hooks.connectedElsewhere(to)) throw new StreamError("conflict", { text: `${to} is already connected` });
    this.#service = svc;
  }

  #element(el: Element): void | Promise<void> {
    if (!this.#authenticated) {
      if (el.name === "handshake" && el.xmlns === NS_COMPONENT) return this.#handshake(el);
      throw new StreamError("not-authorized", { text: "send <handshake/> first" });
    }
    if (el.xmlns === NS_COMPONENT && STANZAS.has(el.name)) return this.#stanza(el);
    throw new StreamError("unsupported-stanza-type", { text: `<${el.name}/> is not expected here` });
  }

  #handshake(el: Element): void {
    const svc = this.#service;
    if (!svc) throw new StreamError("not-authorized");
    const expected = Buffer.from(handshakeDigest(this.conn.streamId, svc.secret), "utf8");
    const given = Buffer.from(el.text().trim().toLowerCase(), "utf8");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      this.#deps.log.warn({ component: svc.domain, remote: this.conn.remoteAddress }, "component: handshake with a wrong secret");
      throw new StreamError("not-authorized", { text: "handshake does not match" });
    }
    if (!this.#hooks.authenticated(this, svc.domain)) throw new StreamError("conflict", { text: `${svc.domain} is already connected` });
    this.#authenticated = true;
    this.since = Date.now();
    if (this.#timer) clearTimeout(this.#timer);
    this.#origin = { kind: "component", jid: parseJid(svc.domain) };
    this.conn.setLimits({ maxStanzaSize: this.#deps.config.components.max_stanza_size });
    this.conn.send(new Element("handshake", NS_COMPONENT));
    this.#deps.log.info({ component: svc.domain, host: svc.host, remote: this.conn.remoteAddress }, "component: connected");
  }

  async #stanza(el: Element): Promise<void> {
    const svc = this.#service!;
    const fromAttr = el.attrs["from"];
    const toAttr = el.attrs["to"];
    // A component has no session to stamp `from` on its stanzas: it must set it, on its own domain (XEP-0114 §3),
    // and may not speak for anyone else (RFC 6120 §4.9.3.9 invalid-from).
    if (fromAttr === undefined || toAttr === undefined) throw new StreamError("improper-addressing", { text: "stanzas need from and to" });
    let from: Jid;
    try {
      from = parseJid(fromAttr);
    } catch {
      throw new StreamError("invalid-from", { text: `${fromAttr} is not a valid JID` });
    }
    if (from.domain !== svc.domain) throw new StreamError("invalid-from", { text: `${from.domain} is not ${svc.domain}` });
    this.#hooks.counted(svc.domain);
    renameNamespace(el, NS_COMPONENT, NS_CLIENT);
    el.attrs["from"] = from.toString();
    let to: Jid;
    try {
      to = parseJid(toAttr);
    } catch {
      // The sender is known and ours: a bad address is its stanza's problem, not the stream's (RFC 6120 §8.3.3.8).
      // Answered here, on this stream: the reply cannot come "from" an address that does not parse.
      const type = el.attrs["type"];
      if (type === "error" || (el.name === "iq" && type === "result")) return;
      const reply = errorReply(el, new StanzaError("jid-malformed"));
      delete reply.attrs["from"];
      this.conn.send(reply);
      return;
    }
    el.attrs["to"] = to.toString();
    await this.#deps.router.route(el, from, to, this.#origin!);
  }

  #closed(reason: string): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#authenticated) this.#deps.log.info({ component: this.#service?.domain, reason }, "component: disconnected");
    else this.#deps.log.debug({ component: this.#service?.domain, remote: this.conn.remoteAddress, reason }, "component: closed before its handshake");
    this.#hooks.closed(this, this.#authenticated ? this.#service?.domain : undefined);
  }
}
