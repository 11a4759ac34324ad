// Client-to-server sessions (RFC 6120 §4–§8): stream negotiation (STARTTLS §5, SASL §6, resource binding §7),
// then stanza validation (§8.1: `from` stamping, addressing checks) before handing stanzas to the router.
import type { Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { Element } from "../xml/element.ts";
import { Connection, type ConnectionHandlers, type ConnectionOptions } from "../net/connection.ts";
import { StanzaError, StreamError, errorReply } from "../xmpp/errors.ts";
import { NS_BIND, NS_CARBONS, NS_CLIENT, NS_SASL, NS_SESSION, NS_STREAM, NS_TLS } from "../xmpp/ns.ts";
import { JidError, parseJid, prepareDomain, prepareLocal, prepareResource, type Jid } from "../xmpp/jid.ts";
import { createMechanism, listMechanisms, type SaslMechanism, type SaslStep } from "../sasl/mechanism.ts";
import { channelBindingFor } from "../sasl/channel-binding.ts";
import type { Config } from "./config/schema.ts";
import type { Host } from "./host.ts";
import type { Logger } from "./log.ts";
import type { Router } from "./router.ts";
import type { LocalSession, SessionRegistry } from "./sessions.ts";
import type { Storage } from "../storage/types.ts";
import type { TlsContexts } from "./tls-contexts.ts";
import type { AuthThrottle } from "./auth-throttle.ts";
import type { Events } from "./events.ts";
import type { Origin } from "./module-api.ts";

/** What every client session shares. */
export interface C2sDeps {
  config: Config;
  hosts: Map<string, Host>;
  router: Router;
  sessions: SessionRegistry;
  storage: Storage;
  log: Logger;
  tls: TlsContexts;
  throttle: AuthThrottle;
  events: Events;
  /** Ends still storing or bouncing unacknowledged stanzas (XEP-0198); the server waits for them before closing storage. */
  settling?: Set<Promise<void>>;
}

/** Builds the connection of a session whose transport is not a plain TCP/TLS socket (XMPP over WebSocket). */
export type ConnectionFactory = (handlers: ConnectionHandlers, opts: ConnectionOptions) => Connection;

/** XEP-0198 Stream Management. */
export const NS_SM = "urn:xmpp:sm:3";

/**
 * The XEP-0198 state of one session, kept by the stream-management module (src/modules/stream-management) and set
 * on `C2sSession.sm` once the client enabled it. Without it a session pays nothing for stream management.
 */
export interface StreamManager {
  /** Stanzas received from the client (the `h` we report), modulo 2^32; c2s counts them. */
  handled: number;
  /** A stanza for the client: counted, queued until acknowledged, written. */
  send(stanza: Element): void;
  /** The transport died without a closing stream: true when the session now waits for resumption (hibernates). */
  hibernate(): boolean;
  /** The stanzas sent and not yet acknowledged, oldest first (a copy). */
  queued(): Element[];
  /** The session ends: stop timers, forget the resumption id, hand back the stanzas the client never acknowledged. */
  close(): Element[];
}

/** What the stream-management module provides to c2s on its host (`provide("stream-management", …)`). */
export interface StreamManagementHooks {
  /** An element in the urn:xmpp:sm:3 namespace, at any point of the stream. */
  element(session: C2sSession, el: Element): void | Promise<void>;
}

/**
 * A module that handles the top-level elements of its own namespace on client streams after authentication
 * (nonzas such as XEP-0352's <inactive/>: not stanzas, so XEP-0198 does not count them) and may offer a stream
 * feature beside <bind/>. Provided on the host under `c2sExtensionName(ns)`; c2s looks it up only for elements that
 * are not in jabber:client, so stanzas pay nothing for it.
 */
export interface C2sStreamExtension {
  /** The stream feature offered after authentication, e.g. `<csi xmlns='urn:xmpp:csi:0'/>`. */
  readonly feature?: Element;
  element(session: C2sSession, el: Element): void | Promise<void>;
}

const EXTENSION_PREFIX = "c2s-extension ";

/** The name under which a module provides the C2sStreamExtension for namespace `ns`. */
export function c2sExtensionName(ns: string): string {
  return EXTENSION_PREFIX + ns;
}

/**
 * One step of a session's outbound chain (Prosody's `stanzas/out` filters): every stanza routed to the client passes
 * the filters, higher priority first, before XEP-0198 counts it and the connection writes it. A filter returns the
 * stanza (changed or not) to pass it on, or undefined to take it: dropped, or held and handed on later with
 * `session.sendPast(filter, stanza)`. Nonzas (SM acks, stream errors) never pass here. A session without filters
 * pays one comparison per stanza.
 */
export interface OutboundFilter {
  readonly name: string;
  /** Higher runs first. */
  readonly priority: number;
  filter(stanza: Element): Element | undefined;
  /**
   * The session is about to hibernate (XEP-0198) or end: hand on everything held (with sendPast), so that it is
   * queued for resumption or settled like any unacknowledged stanza instead of lost.
   */
  drain?(): void;
}

/** The session a connection drives; a resumed session (XEP-0198 §5) takes over the connection of a newer stream. */
interface ConnectionLink {
  session: C2sSession | undefined;
  /** The server's own bookkeeping for this connection (runs once, when the transport is gone). */
  onClosed: (() => void) | undefined;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const STANZAS = new Set(["message", "presence", "iq"]);
const IQ_TYPES = new Set(["get", "set", "result", "error"]);

/** One client connection from accept to close. */
export class C2sSession implements LocalSession {
  #conn: Connection;
  #link: ConnectionLink;
  readonly #deps: C2sDeps;
  readonly #log: Logger;
  #host: Host | undefined;
  #username: string | undefined;
  #jid: Jid | undefined;
  #mechanism: SaslMechanism | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #authInFlight = false;
  /** The connection is gone but the session stays bound, waiting for XEP-0198 resumption. */
  #hibernating = false;
  /** end() ran: unbound for good. */
  #ended = false;
  /** end() settled a XEP-0198 queue: what the connection could not write was in it, so `unsent` has nothing to do. */
  #smSettled = false;
  /** XEP-0198 state once the client enabled stream management (undefined: no per-stanza cost). */
  sm: StreamManager | undefined;
  /** The outbound filter chain, highest priority first; undefined (not empty) when there is none. */
  #filters: OutboundFilter[] | undefined;
  /** The origin of this session's stanzas, made once after binding. */
  #origin: Origin | undefined;
  priority = 0;
  available = false;
  presence: Element | undefined;
  interested = false;
  readonly directed = new Set<string>();

  /**
   * A session on a TCP/TLS socket, or on the connection `transport` builds (WebSocket). `onClosed` runs once when
   * the stream ends, whatever socket it ended on (STARTTLS replaces the one given here).
   */
  constructor(transport: Socket | ConnectionFactory, deps: C2sDeps, onClosed?: () => void) {
    this.#deps = deps;
    this.#log = deps.log;
    const link: ConnectionLink = { session: this, onClosed };
    this.#link = link;
    const handlers: ConnectionHandlers = {
      streamOpen: (attrs, info) => {
        if (link.session) link.session.#streamOpen(attrs, info);
      },
      element: (el) => (link.session ? link.session.#element(el) : undefined),
      closed: (reason) => {
        link.onClosed?.();
        if (link.session) link.session.#closed(reason);
      },
      unsent: (stanzas) => {
        if (link.session) link.session.#unsent(stanzas);
      },
    };
    const opts: ConnectionOptions = { contentNs: NS_CLIENT, limits: this.#limits(false), log: deps.log, maxSendBuffer: deps.config.c2s.max_send_buffer };
    if (typeof transport === "function") {
      this.#conn = transport(handlers, opts);
    } else {
      transport.setNoDelay(true);
      this.#conn = new Connection(transport, handlers, opts);
    }
    this.#timer = setTimeout(() => {
      if (!this.#jid) this.conn.streamError(new StreamError("connection-timeout", { text: "negotiation took too long" }));
    }, deps.config.c2s.handshake_timeout * 1000);
    this.#timer.unref();
  }

  /** The connection of this session (after a XEP-0198 resumption: the resuming stream's). */
  get conn(): Connection {
    return this.#conn;
  }

  /** The authenticated account (bare JID), before or after binding; undefined before SASL success. */
  get account(): Jid | undefined {
    return this.#username !== undefined && this.#host ? parseJid(`${this.#username}@${this.#host.domain}`) : undefined;
  }

  /** Whether the connection is gone and the session waits for resumption (XEP-0198 §5). */
  get hibernating(): boolean {
    return this.#hibernating;
  }

  /** The bound full JID (throws before binding; the registry only sees bound sessions). */
  get jid(): Jid {
    if (!this.#jid) throw new Error("session not bound");
    return this.#jid;
  }

  get bound(): boolean {
    return this.#jid !== undefined;
  }

  #limits(authenticated: boolean) {
    const c = this.#deps.config;
    return {
      maxStanzaSize: authenticated ? c.c2s.max_stanza_size : c.c2s.max_stanza_size_preauth,
      maxDepth: c.limits.max_depth,
      maxChildren: c.limits.max_children,
      maxAttributes: c.limits.max_attributes,
    };
  }

  #streamOpen(attrs: Record<string, string>, info: { name: string; uri: string; contentNs: string | undefined }): void {
    const c = this.conn;
    if (info.name !== "stream" || info.uri !== NS_STREAM) throw new StreamError("invalid-namespace", { text: "expected a stream:stream in the streams namespace" });
    if (info.contentNs !== NS_CLIENT) throw new StreamError("invalid-namespace", { text: "the stream's default namespace must be jabber:client" });
    let domain: string;
    try {
      domain = prepareDomain(attrs["to"] ?? "");
    } catch {
      throw new StreamError("host-unknown", { text: "the stream has no valid 'to'" });
    }
    const host = this.#deps.hosts.get(domain);
    if (!host) throw new StreamError("host-unknown", { text: `${domain} is not served here` });
    if (this.#host && this.#host !== host) throw new StreamError("host-unknown", { text: "a stream restart cannot change the domain" });
    this.#host = host;
    const header: Record<string, string | undefined> = { id: undefined, from: host.domain, version: "1.0", "xml:lang": "en" };
    if (attrs["from"]) header["to"] = attrs["from"];
    const id = randomBytes(12).toString("base64url");
    c.streamId = id;
    header["id"] = id;
    c.sendHeader(header);
    const version = attrs["version"];
    if (!version || !/^1\.\d+$/.test(version)) throw new StreamError("unsupported-version", { text: "XMPP version 1.0 is required" });
    c.send(this.#features());
  }

  #features(): Element {
    const f = new Element("stream:features", NS_STREAM);
    const secure = this.conn.secure;
    const required = this.#deps.config.c2s.encryption === "required";
    if (!this.#username) {
      if (!secure && this.conn.canStartTls) {
        const st = f.c("starttls", {}, NS_TLS);
        if (required) st.c("required");
        if (required) return f;
      } else if (!secure && required) {
        // A transport without STARTTLS (WebSocket, BOSH) that is not already encrypted can never authenticate: say so now.
        throw new StreamError("policy-violation", { text: "encryption is required: use wss:// or https:// (or a TLS-terminating proxy)" });
      }
      // Channel binding needs the client's own TLS connection (none when a proxy terminated TLS).
      const tls = secure ? this.conn.tlsSocket : undefined;
      const cb = tls ? channelBindingFor(tls).types : [];
      const mechs = f.c("mechanisms", {}, NS_SASL);
      const insecurePlain = this.#deps.config.auth.insecure_plain && !required;
      for (const m of listMechanisms({ tls: secure, channelBindingTypes: cb, passwordStorage: this.#deps.config.auth.password_storage, insecurePlain })) {
        mechs.c("mechanism").t(m);
      }
      if (cb.length > 0) {
        // XEP-0440: which channel-binding types -PLUS can use on this connection.
        const types = f.c("sasl-channel-binding", {}, "urn:xmpp:sasl-cb:0");
        for (const t of cb) types.c("channel-binding", { type: t });
      }
      return f;
    }
    f.c("bind", {}, NS_BIND);
    f.c("session", {}, NS_SESSION).c("optional");
    if (this.#smHooks() && this.conn.streamManagement) f.c("sm", {}, NS_SM); // XEP-0198 §2: offered after authentication (enable after bind, or resume)
    for (const [name, ext] of this.#host!.provided) {
      if (name.startsWith(EXTENSION_PREFIX) && (ext as C2sStreamExtension).feature) f.children.push((ext as C2sStreamExtension).feature!);
    }
    f.c("ver", {}, "urn:xmpp:features:rosterver"); // RFC 6121 §2.6.1
    f.c("sub", {}, "urn:xmpp:features:pre-approval"); // RFC 6121 §3.4.1
    const caps = (this.#host?.provided.get("server-caps") as (() => Element | undefined) | undefined)?.(); // XEP-0115 §6.3
    if (caps !== undefined) f.children.push(caps);
    return f;
  }

  #smHooks(): StreamManagementHooks | undefined {
    return this.#host?.provided.get("stream-management") as StreamManagementHooks | undefined;
  }

  #element(el: Element): void | Promise<void> {
    if (el.xmlns === NS_SM) {
      const hooks = this.#smHooks();
      if (hooks) return hooks.element(this, el);
    }
    if (el.xmlns !== NS_CLIENT && this.#username !== undefined) {
      // A nonza for a stream extension (XEP-0352): handled before the XEP-0198 count below, which is for stanzas.
      const ext = this.#host!.provided.get(c2sExtensionName(el.xmlns)) as C2sStreamExtension | undefined;
      if (ext) return ext.element(this, el);
    }
    if (this.#jid) {
      const sm = this.sm;
      if (sm !== undefined) sm.handled = (sm.handled + 1) >>> 0; // XEP-0198 §4: h counts every stanza received
      return this.#stanza(el);
    }
    if (el.xmlns === NS_TLS && el.name === "starttls") return this.#starttls();
    if (el.xmlns === NS_SASL && !this.#username) return this.#sasl(el);
    if (this.#username && el.xmlns === NS_CLIENT && el.name === "iq") return this.#preBindIq(el);
    throw new StreamError("not-authorized", { text: this.#username ? "bind a resource first" : "authenticate first" });
  }

  async #starttls(): Promise<void> {
    const c = this.conn;
    if (c.secure || this.#username || !c.canStartTls) {
      c.send(new Element("failure", NS_TLS));
      c.close("STARTTLS not allowed now");
      return;
    }
    c.ignoreRest(); // nothing sent in plaintext after <starttls/> may be used (STARTTLS injection)
    c.send(new Element("proceed", NS_TLS));
    try {
      await c.upgradeToTls({ secureContext: this.#deps.tls.for(this.#host?.domain), SNICallback: this.#deps.tls.sni });
    } catch (err) {
      this.#log.debug({ err, remote: c.remoteAddress }, "c2s TLS handshake failed");
    }
  }

  async #sasl(el: Element): Promise<void> {
    const c = this.conn;
    const host = this.#host!;
    if (this.#authInFlight) throw new StreamError("policy-violation", { text: "one SASL message at a time" });
    if (el.name === "abort") {
      this.#mechanism = undefined;
      c.send(saslFailure("aborted"));
      return;
    }
    let data: Buffer | undefined;
    if (el.name === "auth") {
      if (!c.secure && this.#deps.config.c2s.encryption === "required") {
        c.send(saslFailure("encryption-required"));
        return;
      }
      const name = el.attrs["mechanism"] ?? "";
      const tls = c.secure ? c.tlsSocket : undefined;
      const cb = tls ? channelBindingFor(tls) : undefined;
      const storage = this.#deps.storage;
      this.#mechanism = createMechanism(name, {
        tls: c.secure,
        channelBindingTypes: cb?.types ?? [],
        channelBinding: (type) => cb?.get(type),
        iterations: this.#deps.config.auth.scram_iterations,
        passwordStorage: this.#deps.config.auth.password_storage,
        insecurePlain: this.#deps.config.auth.insecure_plain && this.#deps.config.c2s.encryption === "optional",
        lookup: async (raw) => {
          let user: string;
          try {
            user = prepareLocal(raw);
          } catch {
            return undefined;
          }
          try {
            return (await storage.accounts.get(host.domain, user))?.credentials;
          } catch (err) {
            // The mechanism answers temporary-auth-failure (RFC 6120 §6.5.12); #saslFailed does not count it.
            this.#log.warn({ err, remote: c.remoteAddress }, "c2s login: storage unavailable");
            throw err;
          }
        },
      });
      if (!this.#mechanism) {
        c.send(saslFailure("invalid-mechanism"));
        return;
      }
      const text = el.text().trim();
      if (text === "") data = undefined;
      else if (text === "=") data = Buffer.alloc(0);
      else if (!BASE64.test(text)) return this.#saslFailed({ kind: "failure", condition: "incorrect-encoding" });
      else data = Buffer.from(text, "base64");
    } else if (el.name === "response") {
      if (!this.#mechanism) {
        c.send(saslFailure("malformed-request", "no authentication in progress"));
        return;
      }
      const text = el.text().trim();
      if (text !== "" && text !== "=" && !BASE64.test(text)) return this.#saslFailed({ kind: "failure", condition: "incorrect-encoding" });
      data = text === "" || text === "=" ? Buffer.alloc(0) : Buffer.from(text, "base64");
    } else {
      throw new StreamError("not-authorized", { text: "authenticate first" });
    }
    this.#authInFlight = true;
    let step: SaslStep;
    try {
      step = await this.#mechanism.step(data);
    } finally {
      this.#authInFlight = false;
    }
    if (c.closing) return;
    if (step.kind === "challenge") {
      c.send(new Element("challenge", NS_SASL, {}, [step.data.toString("base64")]));
      return;
    }
    if (step.kind === "failure") return this.#saslFailed(step);
    this.#mechanism = undefined;
    let username: string;
    try {
      username = prepareLocal(step.username);
    } catch {
      return this.#saslFailed({ kind: "failure", condition: "not-authorized" });
    }
    this.#username = username;
    this.#deps.throttle.success(c.remoteAddress, step.username);
    c.ignoreRest();
    c.send(new Element("success", NS_SASL, {}, step.data && step.data.length > 0 ? [step.data.toString("base64")] : []));
    c.restart();
    c.setLimits(this.#limits(true));
    this.#log.info({ user: `${username}@${host.domain}`, remote: c.remoteAddress }, "c2s authenticated");
  }

  async #saslFailed(step: Extract<SaslStep, { kind: "failure" }>): Promise<void> {
    const c = this.conn;
    this.#mechanism = undefined;
    // Channel-binding negotiation failures (a client trying -PLUS with a binding type we lack, then falling
    // back) say nothing about the password: they neither count as attempts nor slow the address down.
    const negotiation = step.text === "channel-binding-not-supported" || step.text === "server-does-support-channel-binding";
    // Storage could not be asked (RFC 6120 §6.5.12 temporary-auth-failure): the server's fault, not a guess at a
    // password, so it neither counts against the stream nor against the client's address.
    const ours = step.condition === "temporary-auth-failure";
    const counted = !negotiation && !ours;
    if (counted) this.#failures++;
    const delay = counted ? this.#deps.throttle.failure(c.remoteAddress, { user: step.username }) : 0;
    this.#log.info({ remote: c.remoteAddress, condition: step.condition, failures: this.#failures }, "c2s authentication failed");
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (c.closing) return;
    c.send(saslFailure(step.condition, step.text));
    if (this.#failures >= this.#deps.config.c2s.auth_attempts) {
      c.streamError(new StreamError("policy-violation", { text: "too many failed authentication attempts" }));
    }
  }

  async #preBindIq(iq: Element): Promise<void> {
    const c = this.conn;
    const type = iq.attrs["type"];
    const payload = iq.elements[0];
    if (type === "set" && payload?.name === "bind" && payload.xmlns === NS_BIND) return this.#bind(iq, payload);
    if (type === "set" && payload?.name === "session" && payload.xmlns === NS_SESSION) {
      c.send(result(iq));
      return;
    }
    throw new StreamError("not-authorized", { text: "bind a resource first" });
  }

  #bind(iq: Element, payload: Element): void {
    const c = this.conn;
    const host = this.#host!;
    const requested = payload.getChildText("resource")?.trim() ?? "";
    let resource: string;
    try {
      resource = requested === "" ? "comity-" + randomBytes(6).toString("hex") : prepareResource(requested);
    } catch {
      c.send(errorReply(iq, new StanzaError("bad-request", { text: "invalid resource" })));
      return;
    }
    const jid = parseJid(`${this.#username}@${host.domain}`).withResource(resource);
    const sessions = this.#deps.sessions;
    const existing = sessions.get(jid);
    if (!existing && sessions.ofBare(jid.bareString()).size >= this.#deps.config.c2s.max_sessions_per_user) {
      c.send(errorReply(iq, new StanzaError("resource-constraint", { text: "too many sessions" })));
      return;
    }
    if (existing) {
      // RFC 6120 §7.7.2.2: the newer session wins; the older one is closed with <conflict/>.
      sessions.remove(existing);
      existing.kick("conflict", "replaced by a new connection");
    }
    this.#jid = jid;
    sessions.add(this);
    if (this.#timer) clearTimeout(this.#timer);
    const reply = result(iq);
    reply.c("bind", {}, NS_BIND).c("jid").t(jid.toString());
    c.send(reply);
    this.#log.debug({ jid: jid.toString() }, "c2s bound");
    void this.#deps.events.fire("session/bound", { session: this });
  }

  /** RFC 6120 §8.1: validate addressing, stamp `from`, then route (synchronously when the router can). */
  #stanza(el: Element): void | Promise<void> {
    if (el.xmlns !== NS_CLIENT || !STANZAS.has(el.name)) throw new StreamError("unsupported-stanza-type", { text: `<${el.name}/> is not a stanza` });
    const jid = this.#jid!;
    const from = el.attrs["from"];
    const type = el.attrs["type"];
    // RFC 6120 §8.1.2.1: the server adds or overrides `from` with the session's full JID. A claimed address that is
    // not the session's is replaced and logged, never delivered and never fatal: clients that fill in a stale or
    // mistaken `from` keep their session (as on Prosody). Subscription presence leaves with the bare JID (RFC 6121
    // §3.1.2); the roster module stamps that on the way out.
    if (from !== undefined && from !== jid.toString() && from !== jid.bareString()) {
      this.#log.debug({ jid: jid.toString(), claimed: from.slice(0, 256) }, "c2s from overridden");
    }
    el.attrs["from"] = jid.toString();
    let to: Jid | undefined;
    const toAttr = el.attrs["to"];
    if (toAttr !== undefined) {
      try {
        to = parseJid(toAttr);
      } catch (err) {
        if (!(err instanceof JidError)) throw err;
        if (type !== "error") this.deliver(clientError(el, jid, new StanzaError("jid-malformed")));
        return;
      }
      el.attrs["to"] = to.toString();
    }
    if (el.name === "iq") {
      if (el.attrs["id"] === undefined || !IQ_TYPES.has(type ?? "")) {
        if (type !== "error") this.deliver(clientError(el, jid, new StanzaError("bad-request", { text: "iq needs an id and a valid type" })));
        return;
      }
      if ((type === "get" || type === "set") && el.elements.length !== 1) {
        this.deliver(clientError(el, jid, new StanzaError("bad-request", { text: "iq get/set must have exactly one child" })));
        return;
      }
      // RFC 3921 §3 session establishment, still sent after binding by Strophe.js-based clients (Converse.js) that
      // see <session/> in the features: a no-op since RFC 6121, answered with an empty result wherever it comes.
      if (type === "set" && isSessionRequest(el, to, jid)) {
        const reply = result(el);
        if (toAttr !== undefined) reply.attrs["from"] = el.attrs["to"]!;
        this.deliver(reply);
        return;
      }
    }
    if (el.name === "presence" && to === undefined) return this.#ownPresence(el, jid);
    return this.#deps.router.route(el, jid, to, this.#origin ?? (this.#origin = { kind: "c2s", jid }));
  }

  /**
   * Broadcast presence (no `to`): availability and priority of this session (RFC 6121 §4.2, §4.7.2.3), then
   * routed so the presence module can broadcast it; the first available presence is the initial presence.
   */
  async #ownPresence(el: Element, jid: Jid): Promise<void> {
    const type = el.attrs["type"];
    let initial = false;
    if (type === undefined) {
      initial = !this.available;
      this.available = true;
      this.presence = el;
      const p = Number.parseInt(el.getChildText("priority") ?? "0", 10);
      this.priority = Number.isFinite(p) && p >= -128 && p <= 127 ? p : 0;
    } else if (type === "unavailable") {
      this.available = false;
      this.presence = undefined;
    } else if (type === "error") {
      return;
    }
    await this.#deps.router.route(el, jid, undefined, { kind: "c2s", jid });
    if (initial) await this.#deps.events.fire("session/available", { session: this });
  }

  /** Deliver a routed stanza to this client: through the outbound filters, then XEP-0198 counting and queueing. */
  deliver(stanza: Element): void {
    const filters = this.#filters;
    if (filters === undefined) this.#write(stanza);
    else this.#pass(filters, 0, stanza);
  }

  /** Hand on a stanza a filter took: through the filters of lower priority than `from`, then to the client. */
  sendPast(from: OutboundFilter, stanza: Element): void {
    const filters = this.#filters;
    if (filters === undefined) return this.#write(stanza);
    let i = 0;
    while (i < filters.length && filters[i]!.priority >= from.priority) i++;
    this.#pass(filters, i, stanza);
  }

  /** Add (or replace, by name) an outbound filter. */
  addOutboundFilter(filter: OutboundFilter): void {
    const list = (this.#filters ?? []).filter((f) => f.name !== filter.name);
    list.push(filter);
    list.sort((a, b) => b.priority - a.priority);
    this.#filters = list;
  }

  removeOutboundFilter(filter: OutboundFilter): void {
    const list = this.#filters?.filter((f) => f !== filter);
    this.#filters = list === undefined || list.length === 0 ? undefined : list;
  }

  #pass(filters: OutboundFilter[], from: number, stanza: Element): void {
    let st: Element | undefined = stanza;
    for (let i = from; i < filters.length; i++) {
      st = filters[i]!.filter(st);
      if (st === undefined) return;
    }
    this.#write(st);
  }

  /** Filters hand on what they hold before the session hibernates or ends (OutboundFilter.drain). */
  #drainFilters(): void {
    const filters = this.#filters;
    if (filters !== undefined) for (const f of filters) f.drain?.();
  }

  #write(stanza: Element): void {
    const sm = this.sm;
    if (sm === undefined) return this.#conn.send(stanza);
    sm.send(stanza);
    // Only a hibernating session queues without writing; listeners (push) learn of it after it is queued.
    if (this.#hibernating && this.#deps.events.has("session/hibernated-stanza")) {
      this.#deps.events.fire("session/hibernated-stanza", { session: this, stanza }).catch((err: unknown) => {
        this.#log.error({ err }, "session/hibernated-stanza handler failed");
      });
    }
  }

  kick(condition: "conflict" | "system-shutdown" | "policy-violation" | "not-authorized", text?: string): void {
    if (this.#hibernating) {
      void this.end(`${condition}${text ? `: ${text}` : ""}`);
      return;
    }
    this.#conn.streamError(new StreamError(condition, text ? { text } : {}));
  }

  #closed(reason: string): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (!this.#jid) return;
    // Held stanzas join the XEP-0198 queue (kept for resumption, or settled by end()) before the state changes.
    this.#drainFilters();
    // XEP-0198 §5: a transport that died without a closing stream leaves a resumable session bound and routable.
    if (this.sm && !this.#conn.ended && this.sm.hibernate()) {
      this.#hibernating = true;
      this.#log.debug({ jid: this.#jid.toString(), reason }, "c2s hibernating");
      // What the client never acknowledged may never have reached it (a dead TCP connection is noticed late).
      const events = this.#deps.events;
      if (events.has("session/hibernating")) {
        events.fire("session/hibernating", { session: this, queued: this.sm.queued() }).catch((err: unknown) => {
          this.#log.error({ err }, "session/hibernating handler failed");
        });
      }
      return;
    }
    void this.end(reason);
  }

  /**
   * End the session: unbind it, tell the modules (session/ended), and settle what the client never acknowledged
   * (XEP-0198 §4). Resolves when those stanzas are stored or bounced. Does nothing when it already ended.
   */
  end(reason: string): Promise<void> {
    const jid = this.#jid;
    if (!jid || this.#ended) return Promise.resolve();
    this.#ended = true;
    this.#hibernating = false;
    this.#drainFilters(); // what filters held is settled with the unacknowledged stanzas below
    const sm = this.sm;
    this.sm = undefined;
    this.#smSettled = sm !== undefined;
    const unacked = sm ? sm.close() : [];
    this.#deps.sessions.remove(this);
    this.#log.debug({ jid: jid.toString(), reason, unacked: unacked.length }, "c2s closed");
    this.#deps.events.fire("session/ended", { session: this, reason }).catch((err: unknown) => {
      this.#log.error({ err }, "session/ended handler failed");
    });
    if (!this.#conn.closing) this.#conn.close(reason);
    if (unacked.length === 0) return Promise.resolve();
    const settled = this.#settle(unacked, jid);
    this.#track(settled);
    return settled;
  }

  /**
   * Stanzas accepted for this client that it never acknowledged (XEP-0198 §4), handled as if they had not been
   * delivered (RFC 6121 §8.5): messages go to offline storage, or bounce with service-unavailable when it refuses
   * them; IQ requests bounce so the requester does not wait. Not re-sent: errors (RFC 6120 §8.3.1), groupchat and
   * headline (dropped for offline users, RFC 6121 §8.5.2.1.1), carbon copies (the original reached its recipient),
   * presence (state, probed again at the next login) and IQ results.
   */
  async #settle(stanzas: Element[], jid: Jid): Promise<void> {
    const router = this.#deps.router;
    const events = this.#deps.events;
    const origin: Origin = { kind: "local", jid: this.#host!.jid };
    for (const st of stanzas) {
      try {
        const type = st.attrs["type"];
        if (st.name === "iq") {
          if (type === "get" || type === "set") router.bounce(st, new StanzaError("service-unavailable"));
          continue;
        }
        if (st.name !== "message" || type === "error" || type === "groupchat" || type === "headline") continue;
        if (st.elements.some((c) => c.xmlns === NS_CARBONS)) continue;
        const fromAttr = st.attrs["from"];
        if (fromAttr === undefined) continue;
        const from = parseJid(fromAttr);
        const stored = events.has("message/offline") && (await events.fire("message/offline", { stanza: st, from, to: jid, origin }));
        if (!stored) router.bounce(st, new StanzaError("service-unavailable"));
      } catch (err) {
        this.#log.error({ err, jid: jid.toString() }, "could not settle an unacknowledged stanza");
      }
    }
  }

  /**
   * Stanzas the connection could not write (the client stopped reading and the stream was closed over it, or they
   * came after the stream began closing): settled like unacknowledged ones. With stream management they are still
   * in its queue (kept for resumption or settled by end()), so nothing is done twice.
   */
  #unsent(stanzas: Element[]): void {
    const jid = this.#jid;
    if (jid === undefined || this.sm !== undefined || this.#smSettled) return;
    this.#track(this.#settle(stanzas, jid));
  }

  /** The server waits for settling before it closes storage. */
  #track(settled: Promise<void>): void {
    const pending = this.#deps.settling;
    if (pending) {
      pending.add(settled);
      const done = () => void pending.delete(settled);
      settled.then(done, done);
    }
  }

  /**
   * XEP-0198 §5: this hibernating (or still connected) session continues on the connection of `stream`, a newer
   * stream authenticated as the same account that asked to resume it. The old connection, if still open, gets a
   * `conflict` stream error; `stream` itself is left without a connection and is never bound.
   */
  takeOver(stream: C2sSession): void {
    const old = this.#conn;
    const oldLink = this.#link;
    oldLink.session = undefined; // whatever happens to the old connection no longer concerns this session
    this.#conn = stream.#conn;
    this.#link = stream.#link;
    this.#link.session = this;
    if (stream.#timer) clearTimeout(stream.#timer);
    this.#hibernating = false;
    if (!old.closing) old.streamError(new StreamError("conflict", { text: "the session was resumed on another stream" }));
    if (this.#deps.events.has("session/resumed")) {
      this.#deps.events.fire("session/resumed", { session: this }).catch((err: unknown) => {
        this.#log.error({ err }, "session/resumed handler failed");
      });
    }
  }
}

/** A legacy session request addressed to nobody, the account itself or its server. */
function isSessionRequest(iq: Element, to: Jid | undefined, jid: Jid): boolean {
  const payload = iq.elements[0]!;
  if (payload.name !== "session" || payload.xmlns !== NS_SESSION) return false;
  return to === undefined || (to.local === "" && to.resource === "" && to.domain === jid.domain) || to.equals(jid.bare) || to.equals(jid);
}

function saslFailure(condition: string, text?: string): Element {
  const f = new Element("failure", NS_SASL);
  f.c(condition);
  if (text) f.c("text", { "xml:lang": "en" }).t(text);
  return f;
}

function result(iq: Element): Element {
  const attrs: Record<string, string> = { type: "result" };
  if (iq.attrs["id"] !== undefined) attrs["id"] = iq.attrs["id"];
  return new Element("iq", NS_CLIENT, attrs);
}

/** An error about the client's own stanza, sent straight back to it (from its own account). */
function clientError(el: Element, jid: Jid, err: StanzaError): Element {
  const reply = errorReply(el, err);
  reply.attrs["to"] = jid.toString();
  delete reply.attrs["from"];
  return reply;
}
