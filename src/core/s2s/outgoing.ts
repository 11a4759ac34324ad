// Outgoing server-to-server links (RFC 6120 §3, §5, §6 as the initiating entity): find the peer, connect
// (STARTTLS or direct TLS per XEP-0368), verify its certificate (RFC 6125), authenticate with SASL EXTERNAL
// (XEP-0178) or dialback (XEP-0220, keys per XEP-0185), then send queued stanzas in order. The same link
// carries <db:verify/> requests for incoming streams that claim the peer's domain.
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Element } from "../../xml/element.ts";
import { Connection } from "../../net/connection.ts";
import { StanzaError, StreamError } from "../../xmpp/errors.ts";
import { NS_CLIENT, NS_DIALBACK, NS_DIALBACK_FEATURE, NS_SASL, NS_SERVER, NS_STREAM, NS_TLS } from "../../xmpp/ns.ts";
import { certificateValidFor } from "./cert-check.ts";
import { prepareDomain } from "../../xmpp/jid.ts";
import type { Target } from "./resolve.ts";
import { s2sLimits, type LinkInfo, type S2sAuth, type S2sDeps } from "./types.ts";

type State = "resolving" | "connecting" | "negotiating" | "established" | "failed" | "closed";

interface PendingVerify {
  local: string;
  id: string;
  key: string;
  resolve: (v: "valid" | "invalid" | "error") => void;
  timer: NodeJS.Timeout;
  sent: boolean;
}

const CONNECT_TIMEOUT_MS = 10_000;
const NEGOTIATION_TIMEOUT_MS = 30_000;

/** One outgoing link from a local domain to a remote domain. */
export class S2sOut {
  readonly local: string;
  readonly remote: string;
  state: State = "resolving";
  readonly #deps: S2sDeps;
  readonly #onDone: (link: S2sOut) => void;
  #conn: Connection | undefined;
  #queue: Element[] = [];
  #verifies: PendingVerify[] = [];
  #peerStreamId = "";
  #ready = false;
  #auth: S2sAuth = "none";
  #certValid = false;
  #triedExternal = false;
  #dialbackSent = false;
  #timer: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  #failCondition: "remote-server-not-found" | "remote-server-timeout" = "remote-server-not-found";
  #target: Target | undefined;
  since = Date.now();

  constructor(local: string, remote: string, deps: S2sDeps, onDone: (link: S2sOut) => void) {
    this.local = local;
    this.remote = remote;
    this.#deps = deps;
    this.#onDone = onDone;
    void this.#start();
  }

  info(): LinkInfo {
    const tls = this.#conn?.tlsSocket;
    return {
      direction: "out",
      local: this.local,
      peers: [this.remote],
      tls: this.#conn?.secure ?? false,
      tlsVersion: tls?.getProtocol() ?? undefined,
      certificateValid: this.#certValid,
      auth: this.#auth,
      since: this.since,
      remoteAddress: this.#target ? `${this.#target.host}:${this.#target.port}` : "",
      state: this.state,
    };
  }

  /** Send a stanza (jabber:client tree) now, or queue it until the link is established. */
  send(stanza: Element): void {
    if (this.state === "established") {
      this.#conn!.send(stanza);
      this.#touch();
      return;
    }
    if (this.state === "failed" || this.state === "closed") {
      this.#bounce(stanza, this.#failCondition);
      return;
    }
    this.#queue.push(stanza);
  }

  /** Ask the peer (as authoritative server) whether `key` is valid for a stream it opened to us (XEP-0220 §2.3). */
  verify(local: string, id: string, key: string): Promise<"valid" | "invalid" | "error"> {
    return new Promise((resolve) => {
      if (this.state === "failed" || this.state === "closed") return resolve("error");
      const p: PendingVerify = { local, id, key, resolve, sent: false, timer: setTimeout(() => this.#finishVerify(p, "error"), NEGOTIATION_TIMEOUT_MS) };
      p.timer.unref();
      this.#verifies.push(p);
      if (this.#ready) this.#sendVerifies();
    });
  }

  #finishVerify(p: PendingVerify, verdict: "valid" | "invalid" | "error"): void {
    const i = this.#verifies.indexOf(p);
    if (i < 0) return;
    this.#verifies.splice(i, 1);
    clearTimeout(p.timer);
    p.resolve(verdict);
  }

  #sendVerifies(): void {
    for (const p of this.#verifies) {
      if (p.sent) continue;
      p.sent = true;
      this.#conn!.send(new Element("db:verify", NS_DIALBACK, { from: this.local, to: this.remote, id: p.id }, [p.key]));
    }
  }

  async #start(): Promise<void> {
    this.#timer = setTimeout(() => {
      this.#failCondition = "remote-server-timeout";
      this.#fail("negotiation timed out");
    }, NEGOTIATION_TIMEOUT_MS);
    this.#timer.unref();
    let targets: Target[];
    try {
      targets = await this.#deps.resolver.resolve(this.remote);
    } catch {
      targets = [];
    }
    if (targets.length === 0) return this.#fail("no address found (DNS SRV, A/AAAA, s2s.routes)");
    this.state = "connecting";
    for (const t of targets) {
      if (this.state !== "connecting") return;
      try {
        const socket = await this.#connect(t);
        this.#target = t;
        this.#open(socket);
        return;
      } catch (err) {
        this.#deps.log.debug({ remote: this.remote, target: `${t.host}:${t.port}`, err: (err as Error).message }, "s2s out: connect failed");
      }
    }
    this.#fail("could not connect to any address");
  }

  #connect(t: Target): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s: Socket = t.directTls ? tlsConnect(this.#tlsOptions({ host: t.host, port: t.port, ALPNProtocols: ["xmpp-server"] })) : netConnect({ host: t.host, port: t.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error("connect timeout"));
      }, CONNECT_TIMEOUT_MS);
      s.once(t.directTls ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  #tlsOptions(extra: Record<string, unknown>): import("node:tls").ConnectionOptions {
    const cert = this.#deps.certs.get(this.local);
    return {
      servername: this.remote,
      ca: this.#deps.ca,
      rejectUnauthorized: false, // checked below, so that verify_certificates: false can still use dialback
      minVersion: "TLSv1.2",
      ...(cert ? { cert: cert.cert, key: cert.key } : {}),
      ...extra,
    };
  }

  #open(socket: Socket): void {
    this.state = "negotiating";
    socket.setNoDelay(true);
    const c = this.#deps.config;
    this.#conn = new Connection(
      socket,
      {
        streamOpen: (attrs, info) => {
          if (info.name !== "stream" || info.uri !== NS_STREAM || info.contentNs !== NS_SERVER) throw new StreamError("invalid-namespace");
          this.#peerStreamId = attrs["id"] ?? "";
        },
        element: (el) => this.#element(el),
        closed: (reason) => this.#closed(reason),
        // A peer that stopped reading (or a link that closed under queued stanzas): RFC 6120 §8.3.3.17, the
        // sender learns the remote server did not take them in time.
        unsent: (stanzas) => {
          for (const s of stanzas) this.#bounce(s, "remote-server-timeout");
        },
      },
      {
        contentNs: NS_SERVER,
        headerNs: { db: NS_DIALBACK },
        alias: { from: NS_CLIENT, to: NS_SERVER },
        limits: s2sLimits(c),
        maxSendBuffer: c.s2s.max_send_buffer,
        log: this.#deps.log,
      },
    );
    if (this.#conn.secure) this.#checkCert();
    this.#header();
  }

  #header(): void {
    this.#conn!.sendHeader({ from: this.local, to: this.remote, version: "1.0" });
  }

  #checkCert(): boolean {
    this.#certValid = certificateValidFor(this.#conn!.socket as TLSSocket, this.remote);
    if (!this.#certValid && this.#deps.config.s2s.verify_certificates) {
      this.#fail("the peer's certificate is not valid for its domain (s2s.verify_certificates)");
      return false;
    }
    return true;
  }

  async #element(el: Element): Promise<void> {
    const c = this.#conn!;
    if (el.xmlns === NS_STREAM && el.name === "features") return this.#features(el);
    if (el.xmlns === NS_STREAM && el.name === "error") return this.#fail(`stream error from peer: ${el.elements[0]?.name ?? "unknown"}`);
    if (el.xmlns === NS_TLS && el.name === "proceed") {
      c.ignoreRest();
      try {
        await c.upgradeToTlsClient(this.#tlsOptions({}));
      } catch (err) {
        return this.#fail(`TLS handshake failed: ${(err as Error).message}`);
      }
      if (!this.#checkCert()) return;
      this.#header();
      return;
    }
    if (el.xmlns === NS_TLS && el.name === "failure") return this.#fail("peer refused STARTTLS");
    if (el.xmlns === NS_SASL && el.name === "success") {
      this.#auth = "sasl-external";
      c.ignoreRest();
      c.restart();
      this.#header();
      return;
    }
    if (el.xmlns === NS_SASL && el.name === "failure") {
      // XEP-0178 §3: after a failed EXTERNAL, fall back to dialback on the same stream if offered.
      this.#sendDialback();
      return;
    }
    if (el.xmlns === NS_DIALBACK && el.name === "result") return this.#dialbackResult(el);
    if (el.xmlns === NS_DIALBACK && el.name === "verify") {
      const p = this.#verifies.find((v) => v.sent && v.id === el.attrs["id"] && sameDomain(el.attrs["from"], this.remote) && sameDomain(el.attrs["to"], this.local));
      if (!p) return; // unsolicited or mismatched: ignored
      this.#finishVerify(p, el.attrs["type"] === "valid" ? "valid" : el.attrs["type"] === "invalid" ? "invalid" : "error");
      return;
    }
    // Stanzas are not expected on our outgoing stream (no bidirectional streams are negotiated).
    this.#deps.log.debug({ remote: this.remote, name: el.name }, "s2s out: ignored element from peer");
  }

  #features(f: Element): void {
    const c = this.#conn!;
    if (this.#auth === "sasl-external") return this.#established();
    const starttls = f.getChild("starttls", NS_TLS);
    if (!c.secure) {
      if (starttls) {
        c.send(new Element("starttls", NS_TLS));
        return;
      }
      if (this.#deps.config.s2s.encryption === "required") return this.#fail("the peer does not offer STARTTLS and s2s.encryption is required");
    }
    this.#ready = true;
    this.#sendVerifies();
    const mechs = f.getChild("mechanisms", NS_SASL)?.getChildren("mechanism").map((m) => m.text()) ?? [];
    if (c.secure && this.#certValid && mechs.includes("EXTERNAL") && !this.#triedExternal && this.#deps.certs.has(this.local)) {
      this.#triedExternal = true;
      c.send(new Element("auth", NS_SASL, { mechanism: "EXTERNAL" }, [Buffer.from(this.local).toString("base64")]));
      return;
    }
    if (f.getChild("dialback", NS_DIALBACK_FEATURE) || mechs.length === 0) this.#sendDialback();
    else this.#fail("no usable authentication (neither SASL EXTERNAL nor dialback)");
  }

  #sendDialback(): void {
    if (this.#dialbackSent) return;
    this.#dialbackSent = true;
    const key = this.#deps.keys.generate(this.remote, this.local, this.#peerStreamId);
    this.#conn!.send(new Element("db:result", NS_DIALBACK, { from: this.local, to: this.remote }, [key]));
  }

  #dialbackResult(el: Element): void {
    if (!sameDomain(el.attrs["from"], this.remote) || !sameDomain(el.attrs["to"], this.local) || !this.#dialbackSent || this.state === "established") return; // unsolicited
    const type = el.attrs["type"];
    if (type === "valid") {
      this.#auth = "dialback";
      this.#established();
    } else {
      this.#fail(`dialback ${type ?? "unknown"}`);
    }
  }

  #established(): void {
    if (this.state === "established") return;
    this.state = "established";
    this.since = Date.now();
    if (this.#timer) clearTimeout(this.#timer);
    this.#deps.log.info({ local: this.local, remote: this.remote, auth: this.#auth, tls: this.#conn!.secure }, "s2s out: established");
    const queued = this.#queue;
    this.#queue = [];
    for (const s of queued) this.#conn!.send(s);
    this.#touch();
  }

  #touch(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.close(), this.#deps.config.s2s.idle_timeout * 1000);
    this.#idle.unref();
  }

  /** Close the stream cleanly (idle or shutdown). */
  close(): void {
    if (this.state === "closed") return;
    if (this.#conn && !this.#conn.closing) this.#conn.close("closing");
    else this.#closed("closed");
  }

  #bounce(stanza: Element, condition: "remote-server-not-found" | "remote-server-timeout"): void {
    this.#deps.router.bounce(stanza, new StanzaError(condition));
  }

  #fail(reason: string): void {
    if (this.state === "failed" || this.state === "closed") return;
    this.#deps.log.info({ local: this.local, remote: this.remote, reason }, "s2s out: failed");
    this.state = "failed";
    if (this.#timer) clearTimeout(this.#timer);
    const queued = this.#queue;
    this.#queue = [];
    for (const s of queued) this.#bounce(s, this.#failCondition);
    for (const p of [...this.#verifies]) this.#finishVerify(p, "error");
    if (this.#conn && !this.#conn.closing) this.#conn.close(reason);
    this.#onDone(this);
  }

  #closed(reason: string): void {
    if (this.#idle) clearTimeout(this.#idle);
    if (this.state !== "established" && this.state !== "closed" && this.state !== "failed") return this.#fail(reason);
    const wasOpen = this.state === "established";
    this.state = "closed";
    if (this.#timer) clearTimeout(this.#timer);
    for (const p of [...this.#verifies]) this.#finishVerify(p, "error");
    if (wasOpen) this.#deps.log.debug({ local: this.local, remote: this.remote, reason }, "s2s out: closed");
    this.#onDone(this);
  }
}

/** Domain equality after preparation (peers may answer in another case). */
function sameDomain(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  if (a === b) return true;
  try {
    return prepareDomain(a) === b;
  } catch {
    return false;
  }
}
