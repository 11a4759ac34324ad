// Incoming server-to-server streams (RFC 6120 §4–§6 with `jabber:server`): STARTTLS, SASL EXTERNAL (XEP-0178)
// or server dialback (XEP-0220) with piggybacked domains, then every stanza checked against the domains
// authenticated on the stream (RFC 6120 §4.9.3.9 invalid-from, §4.9.3.8 improper-addressing).
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Element, renameNamespace } from "../../xml/element.ts";
import { Connection, newStreamId } from "../../net/connection.ts";
import { StanzaError, StreamError } from "../../xmpp/errors.ts";
import { NS_CLIENT, NS_DIALBACK, NS_DIALBACK_FEATURE, NS_SASL, NS_SERVER, NS_STREAM, NS_TLS } from "../../xmpp/ns.ts";
import { parseJid, prepareDomain, type Jid } from "../../xmpp/jid.ts";
import { certificateValidFor } from "./cert-check.ts";
import type { Origin } from "../module-api.ts";
import type { EventMap } from "../events.ts";
import { s2sLimits, type LinkInfo, type S2sAuth, type S2sDeps } from "./types.ts";

const STANZAS = new Set(["message", "presence", "iq"]);

/** Asks the peer's authoritative server whether a dialback key is valid (XEP-0220 §2.3), via an outgoing link. */
export type DialbackVerifier = (local: string, remote: string, streamId: string, key: string) => Promise<"valid" | "invalid" | "error">;

/** One incoming s2s stream. */
export class S2sIn {
  readonly conn: Connection;
  readonly #deps: S2sDeps;
  readonly #verify: DialbackVerifier;
  readonly #onClose: (link: S2sIn) => void;
  /** Authenticated (remote domain → local domains) pairs. */
  readonly #pairs = new Map<string, Set<string>>();
  #local: string | undefined;
  #peerFrom: string | undefined;
  #auth: S2sAuth = "none";
  #certValid = false;
  #externalDone = false;
  /** One routing origin per authenticated peer domain, made once (not per stanza). */
  readonly #origins = new Map<string, Origin>();
  /** Dialback claims being checked with the authoritative server ("remote local"). */
  readonly #pending = new Set<string>();
  #idle: NodeJS.Timeout | undefined;
  readonly since = Date.now();

  constructor(socket: Socket, deps: S2sDeps, hooks: { verify: DialbackVerifier; closed: (link: S2sIn) => void }) {
    this.#deps = deps;
    this.#verify = hooks.verify;
    this.#onClose = hooks.closed;
    socket.setNoDelay(true);
    const c = deps.config;
    this.conn = new Connection(
      socket,
      {
        streamOpen: (attrs, info) => this.#streamOpen(attrs, info),
        element: (el) => this.#element(el),
        closed: (reason) => this.#closed(reason),
      },
      {
        contentNs: NS_SERVER,
        headerNs: { db: NS_DIALBACK },
        alias: { from: NS_CLIENT, to: NS_SERVER },
        limits: s2sLimits(c),
        maxSendBuffer: c.s2s.max_send_buffer,
        log: deps.log,
      },
    );
    this.#touch();
  }

  /** Whether `remote` is authenticated on this stream for sending to `local`. */
  authenticated(remote: string, local: string): boolean {
    return this.#pairs.get(remote)?.has(local) ?? false;
  }

  info(): LinkInfo {
    const tls = this.conn.tlsSocket;
    return {
      direction: "in",
      local: this.#local ?? "",
      peers: [...this.#pairs.keys()],
      tls: this.conn.secure,
      tlsVersion: tls?.getProtocol() ?? undefined,
      certificateValid: this.#certValid,
      auth: this.#auth,
      since: this.since,
      remoteAddress: this.conn.remoteAddress,
      state: this.#pairs.size > 0 ? "established" : "negotiating",
    };
  }

  #touch(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.conn.close("idle"), this.#deps.config.s2s.idle_timeout * 1000);
    this.#idle.unref();
  }

  #streamOpen(attrs: Record<string, string>, info: { name: string; uri: string; contentNs: string | undefined }): void {
    const c = this.conn;
    if (info.name !== "stream" || info.uri !== NS_STREAM) throw new StreamError("invalid-namespace");
    if (info.contentNs !== NS_SERVER) throw new StreamError("invalid-namespace", { text: "the stream's default namespace must be jabber:server" });
    let to: string;
    try {
      to = prepareDomain(attrs["to"] ?? "");
    } catch {
      throw new StreamError("host-unknown", { text: "the stream has no valid 'to'" });
    }
    // Our hosts and our components (e.g. the chat service's domain) are both reachable over s2s.
    if (!this.#deps.router.isLocalDomain(to)) throw new StreamError("host-unknown", { text: `${to} is not served here` });
    this.#local = to;
    if (attrs["from"]) {
      try {
        this.#peerFrom = prepareDomain(attrs["from"]);
      } catch {
        throw new StreamError("invalid-from");
      }
    }
    if (c.secure && this.#peerFrom) this.#certValid = certificateValidFor(c.socket as TLSSocket, this.#peerFrom); // direct TLS
    const id = newStreamId();
    c.streamId = id;
    const header: Record<string, string | undefined> = { id, from: to, version: "1.0" };
    if (this.#peerFrom) header["to"] = this.#peerFrom;
    c.sendHeader(header);
    // Servers without version='1.0' speak dialback without stream features (XEP-0220 §2.1 legacy).
    if (attrs["version"] === undefined) return;
    c.send(this.#features());
  }

  #features(): Element {
    const f = new Element("stream:features", NS_STREAM);
    if (this.#externalDone) return f;
    const secure = this.conn.secure;
    if (!secure) {
      const st = f.c("starttls", {}, NS_TLS);
      if (this.#deps.config.s2s.encryption === "required") {
        st.c("required");
        return f;
      }
    }
    if (secure && this.#peerFrom && this.#certValid) f.c("mechanisms", {}, NS_SASL).c("mechanism").t("EXTERNAL");
    f.c("dialback", {}, NS_DIALBACK_FEATURE).c("errors");
    return f;
  }

  async #element(el: Element): Promise<void> {
    this.#touch();
    if (el.xmlns === NS_TLS && el.name === "starttls") return this.#starttls();
    if (el.xmlns === NS_SASL && el.name === "auth") return this.#external(el);
    if (el.xmlns === NS_DIALBACK && el.name === "result") return this.#dialbackResult(el);
    if (el.xmlns === NS_DIALBACK && el.name === "verify") return this.#dialbackVerify(el);
    if (el.xmlns === NS_SERVER && STANZAS.has(el.name)) return this.#stanza(el);
    throw new StreamError("unsupported-stanza-type", { text: `<${el.name}/> is not expected here` });
  }

  async #starttls(): Promise<void> {
    const c = this.conn;
    if (c.secure) {
      c.send(new Element("failure", NS_TLS));
      c.close("STARTTLS twice");
      return;
    }
    c.ignoreRest();
    c.send(new Element("proceed", NS_TLS));
    try {
      await c.upgradeToTls({ secureContext: this.#deps.tls.for(this.#local), SNICallback: this.#deps.tls.sni, requestCert: true });
      this.#certValid = this.#peerFrom !== undefined && certificateValidFor(c.socket as TLSSocket, this.#peerFrom);
    } catch (err) {
      this.#deps.log.debug({ err, remote: c.remoteAddress }, "s2s in: TLS handshake failed");
    }
  }

  #requireTls(): void {
    if (!this.conn.secure && this.#deps.config.s2s.encryption === "required") {
      throw new StreamError("policy-violation", { text: "TLS is required before authentication" });
    }
  }

  /** XEP-0178: SASL EXTERNAL with the certificate the peer presented during TLS. */
  async #external(el: Element): Promise<void> {
    const c = this.conn;
    const fail = (condition: string) => {
      const f = new Element("failure", NS_SASL);
      f.c(condition);
      c.send(f);
    };
    if (el.attrs["mechanism"] !== "EXTERNAL" || !c.secure || this.#externalDone) return fail("invalid-mechanism");
    const text = el.text().trim();
    let authzid = text === "" || text === "=" ? "" : Buffer.from(text, "base64").toString("utf8");
    if (authzid === "") authzid = this.#peerFrom ?? "";
    let domain: string;
    try {
      domain = prepareDomain(authzid);
    } catch {
      return fail("invalid-authzid");
    }
    if (domain !== this.#peerFrom || !certificateValidFor(c.socket as TLSSocket, domain)) return fail("not-authorized");
    this.#externalDone = true;
    this.#auth = "sasl-external";
    this.#pairs.set(domain, new Set([this.#local!]));
    this.#authenticatedHook(domain, this.#local!);
    c.ignoreRest();
    c.send(new Element("success", NS_SASL));
    c.restart();
    this.#deps.log.info({ peer: domain, local: this.#local, auth: "sasl-external" }, "s2s in: authenticated");
  }

  /** XEP-0220 §2.2: the originating server claims a domain; ask its authoritative server, then answer. */
  async #dialbackResult(el: Element): Promise<void> {
    this.#requireTls();
    const c = this.conn;
    let from: string;
    let to: string;
    try {
      from = prepareDomain(el.attrs["from"] ?? "");
      to = prepareDomain(el.attrs["to"] ?? "");
    } catch {
      throw new StreamError("improper-addressing", { text: "db:result needs valid from and to" });
    }
    // A db:result with a type is an answer, never a request: an unsolicited one is ignored.
    if (el.attrs["type"] !== undefined) return;
    const reply = (type: string, error?: Element) => {
      const r = new Element("db:result", NS_DIALBACK, { from: to, to: from, type });
      if (error) r.children.push(error);
      c.send(r);
    };
    if (!this.#deps.router.isLocalDomain(to)) {
      reply("error", stanzaErrorEl("cancel", "item-not-found"));
      return;
    }
    if (this.authenticated(from, to)) {
      reply("valid");
      return;
    }
    // Nobody else can be one of our own domains: no need to ask ourselves.
    if (this.#deps.router.isLocalDomain(from)) {
      reply("invalid");
      c.close("dialback claim for a local domain");
      return;
    }
    const pairKey = `${from} ${to}`;
    if (this.#pending.has(pairKey)) return; // the same claim again: answered when the first check settles
    this.#pending.add(pairKey);
    const key = el.text().trim();
    // Not awaited: stanzas of pairs already verified on this stream keep flowing meanwhile (XEP-0220 §2.4).
    void this.#verify(to, from, c.streamId, key).then((verdict) => {
      this.#pending.delete(pairKey);
      if (!c.closing) this.#settleDialback(from, to, verdict, reply);
    });
  }

  #settleDialback(from: string, to: string, verdict: "valid" | "invalid" | "error", reply: (type: string, error?: Element) => void): void {
    const c = this.conn;
    if (verdict === "valid") {
      let set = this.#pairs.get(from);
      if (!set) this.#pairs.set(from, (set = new Set()));
      set.add(to);
      if (this.#auth === "none") this.#auth = "dialback";
      this.#authenticatedHook(from, to);
      reply("valid");
      this.#deps.log.info({ peer: from, local: to, auth: "dialback", tls: c.secure }, "s2s in: authenticated");
    } else if (verdict === "invalid") {
      reply("invalid");
      this.#deps.log.warn({ peer: from, local: to, remote: c.remoteAddress }, "s2s in: dialback key rejected by the authoritative server");
      c.close("dialback invalid");
    } else {
      reply("error", stanzaErrorEl("wait", "remote-server-timeout"));
    }
  }

  /** XEP-0220 §2.3: a receiving server asks us (authoritative) whether a key we issued is valid. */
  #dialbackVerify(el: Element): void {
    const c = this.conn;
    const from = el.attrs["from"] ?? "";
    const to = el.attrs["to"] ?? "";
    const id = el.attrs["id"] ?? "";
    if (el.attrs["type"] !== undefined) return; // an answer on the wrong stream: ignored
    let valid = false;
    try {
      const receiving = prepareDomain(from);
      const originating = prepareDomain(to);
      valid = this.#deps.router.isLocalDomain(originating) && id !== "" && this.#deps.keys.verify(receiving, originating, id, el.text());
    } catch {
      valid = false;
    }
    c.send(new Element("db:verify", NS_DIALBACK, { from: to, to: from, id, type: valid ? "valid" : "invalid" }));
  }

  /** Let policy modules adjust this link's limits for the peer (e.g. looser for trusted servers). */
  #authenticatedHook(remote: string, local: string): void {
    const events = this.#deps.events;
    if (!events.has("s2s/authenticated")) return;
    void events.fire("s2s/authenticated", {
      local,
      remote,
      direction: "in",
      host: this.#deps.router.hostOf(local) ?? local,
      setMaxStanzaSize: (bytes) => this.conn.setLimits({ maxStanzaSize: bytes }),
    });
  }

  async #stanza(el: Element): Promise<void> {
    if (this.#pairs.size === 0) throw new StreamError("not-authorized", { text: "authenticate first" });
    let from: Jid;
    let to: Jid;
    try {
      from = parseJid(el.attrs["from"] ?? "");
      to = parseJid(el.attrs["to"] ?? "");
    } catch {
      throw new StreamError("improper-addressing", { text: "stanzas need valid from and to" });
    }
    if (!this.authenticated(from.domain, to.domain)) {
      if (!this.#pairs.has(from.domain)) throw new StreamError("invalid-from", { text: `${from.domain} is not authenticated on this stream` });
      throw new StreamError("host-unknown", { text: `${to.domain} was not authenticated for this stream` });
    }
    renameNamespace(el, NS_SERVER, NS_CLIENT);
    el.attrs["from"] = from.toString();
    el.attrs["to"] = to.toString();
    const events = this.#deps.events;
    if (events.has("s2s/filter")) {
      const ev: EventMap["s2s/filter"] = { stanza: el, local: to.domain, remote: from.domain, direction: "in", host: this.#deps.router.hostOf(to.domain) ?? to.domain };
      if (events.fireSync("s2s/filter", ev, (err) => this.#deps.log.error({ err, remote: ev.remote }, "s2s/filter handler failed: stanza refused"))) {
        if (!ev.drop) this.#deps.router.bounce(el, new StanzaError(ev.error ?? "policy-violation"));
        return;
      }
    }
    let origin = this.#origins.get(from.domain);
    if (!origin) this.#origins.set(from.domain, (origin = { kind: "s2s", jid: parseJid(from.domain) }));
    await this.#deps.router.route(el, from, to, origin);
  }

  #closed(reason: string): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#deps.log.debug({ peers: [...this.#pairs.keys()], reason }, "s2s in: closed");
    this.#onClose(this);
  }
}

/** A stanza-error element for dialback errors (XEP-0220 §2.4). */
export function stanzaErrorEl(type: string, condition: string): Element {
  const e = new Element("error", NS_SERVER, { type }); // XEP-0220 §2.4: a jabber:server error inside db:result
  e.c(condition, {}, "urn:ietf:params:xml:ns:xmpp-stanzas");
  return e;
}
