// Composition root: builds hosts, storage, router and listeners from a validated config.
import type { Server as NetServer, AddressInfo, Socket } from "node:net";
import type { Config } from "./core/config/schema.ts";
import type { Logger } from "./core/log.ts";
import type { Storage } from "./storage/types.ts";
import type { MamStats } from "./modules/mam/mod.ts";
import { openStorage, storageOptions } from "./storage/open.ts";
import { loadCertificates } from "./core/certs.ts";
import { TlsContexts, tlsPolicyFor } from "./core/tls-contexts.ts";
import { Host } from "./core/host.ts";
import { Router } from "./core/router.ts";
import { SessionRegistry } from "./core/sessions.ts";
import { AuthThrottle } from "./core/auth-throttle.ts";
import { C2sSession, type C2sDeps } from "./core/c2s.ts";
import { listen, parseListenAddress } from "./net/listen.ts";
import { listenDirectTls } from "./net/direct-tls.ts";
import { Events } from "./core/events.ts";
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { S2sPool } from "./core/s2s/pool.ts";
import { DialbackKeys } from "./core/s2s/dialback-key.ts";
import { ExternalComponents, type ComponentInfo } from "./core/external-components.ts";
import { PeerResolver } from "./core/s2s/resolve.ts";
import type { HostCertificate } from "./core/certs.ts";
import { startControlServer, type ControlMethod } from "./admin/control.ts";
import { unlinkSync } from "node:fs";
import { builtinModules } from "./modules/builtin.ts";
import { VERSION } from "./version.ts";
import { HttpService } from "./http/server.ts";
import { mountWebSocket } from "./http/websocket.ts";
import { mountHostMeta } from "./http/host-meta.ts";
import { mountBosh } from "./http/bosh.ts";
import { mountAdmin } from "./http/admin/mount.ts";
import { HttpRoutes } from "./core/http-routes.ts";

/** Where each listener ended up (useful with port 0 in tests). */
export interface BoundAddresses {
  c2s: AddressInfo[];
  c2sDirectTls: AddressInfo[];
  s2s: AddressInfo[];
  http: AddressInfo[];
  https: AddressInfo[];
  s2sDirectTls: AddressInfo[];
  /** External component listeners (XEP-0114). */
  components: AddressInfo[];
}

/** The running server's figures, as `comity status --json` prints them (bytes for memory). */
export interface ServerStatus {
  version: string;
  pid: number;
  node: string;
  uptimeSeconds: number;
  hosts: string[];
  /** Open client connections, authenticated or not. */
  c2sConnections: number;
  /** Bound resources. */
  c2sSessions: number;
  s2sIncoming: number;
  s2sOutgoing: number;
  /** Configured external components (XEP-0114) and whether each is connected. */
  components: ComponentInfo[];
  memory: { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
  /**
   * The storage backend, whether it answers, and the archive (XEP-0313) copies that could not be written while it did
   * not (the messages were delivered): missed, written later, waiting, given up. Summed over hosts.
   */
  storage?: { backend: string; available: boolean; failures: number; archiveMisses: number; archiveRetried: number; archiveRetryQueued: number; archiveDropped: number; archiveSlow: number };
}

/** A running Comity server. */
export class ComityServer {
  readonly config: Config;
  readonly log: Logger;
  readonly storage: Storage;
  readonly hosts: Map<string, Host>;
  readonly sessions = new SessionRegistry();
  readonly events = new Events();
  readonly router: Router;
  readonly #tls: TlsContexts;
  readonly #listeners: NetServer[] = [];
  readonly addresses: BoundAddresses = { c2s: [], c2sDirectTls: [], s2s: [], s2sDirectTls: [], http: [], https: [], components: [] };
  readonly s2s: S2sPool;
  /** External components (XEP-0114): their domains are registered at construction, connected or not. */
  readonly components: ExternalComponents;
  readonly #s2sTls: TlsContexts;
  /** HTTPS listeners' contexts: the same certificates under http's TLS policy. */
  readonly #httpTls: TlsContexts;
  #stopping = false;
  /** Methods the CLI can call over the control socket (`comity s2s list`, `comity buddies ...`). */
  readonly control = new Map<string, ControlMethod>();
  #controlServer: NetServer | undefined;
  /** The HTTP listeners (WebSocket, admin console, API), when `http.listen` or `http.tls_listen` is set. */
  http: HttpService | undefined;
  /** Paths modules serve on the HTTP listeners (e.g. XEP-0363 uploads), mounted when they start. */
  readonly httpRoutes = new HttpRoutes();

  private constructor(config: Config, log: Logger, storage: Storage, certs: Map<string, HostCertificate>) {
    this.config = config;
    this.log = log;
    this.storage = storage;
    this.#tls = new TlsContexts(certs, { policy: tlsPolicyFor(config, "c2s") });
    this.#httpTls = new TlsContexts(certs, { policy: tlsPolicyFor(config, "http") });
    this.hosts = new Map(config.hosts.map((h) => [h.domain, new Host(h)]));
    this.router = new Router({ hosts: this.hosts, sessions: this.sessions, storage, log, events: this.events });
    const ca = [...rootCertificates, ...(config.s2s.ca_file ? [readFileSync(config.s2s.ca_file, "utf8")] : [])];
    this.#s2sTls = new TlsContexts(certs, { ca, policy: tlsPolicyFor(config, "s2s") });
    this.s2s = new S2sPool({
      config,
      hosts: this.hosts,
      router: this.router,
      log,
      tls: this.#s2sTls,
      certs,
      ca,
      keys: new DialbackKeys(),
      resolver: new PeerResolver({ routes: config.s2s.routes, dnsServers: config.s2s.dns_servers }),
      events: this.events,
    });
    this.router.remote = (stanza, to) => this.s2s.send(stanza, to);
    this.components = new ExternalComponents({ config, router: this.router, log }, this.hosts);
    this.control.set("s2s.list", () => this.s2s.list());
    this.control.set("status", () => this.status());
    this.control.set("accounts.delete", (p) => this.deleteAccount(String(p["host"]), String(p["username"])));
    // One line when a storage server stops answering and one when it answers again, never one per failed query.
    storage.health?.onChange((available, detail) => {
      if (available) log.info({ backend: storage.kind }, "storage reachable again");
      else log.warn({ backend: storage.kind, detail }, "storage unavailable");
    });
  }

  /**
   * Delete an account while the server runs (`comity deluser` goes through here when it can reach the control
   * socket): its sessions are closed with <not-authorized/> (RFC 6120 §4.9.3.12), its stored data goes with the
   * account row, and `account/deleted` tells the modules, which drop what they hold elsewhere (files, memory).
   * Resolves false when there was no such account.
   */
  async deleteAccount(host: string, username: string): Promise<boolean> {
    if (!this.hosts.has(host)) return false;
    for (const s of [...this.sessions.ofBare(`${username}@${host}`).values()]) s.kick("not-authorized", "the account was deleted");
    const deleted = await this.storage.accounts.delete(host, username);
    if (!deleted) return false;
    this.log.info({ user: `${username}@${host}` }, "account deleted");
    await this.events.fire("account/deleted", { host, username });
    return true;
  }

  /** Open storage, load or generate certificates and set up every host's modules. */
  static async create(config: Config, log: Logger, opts: { storage?: Storage } = {}): Promise<ComityServer> {
    const storage = opts.storage ?? (await openStorage(storageOptions(config)));
    const certs = await loadCertificates(config, log);
    // A host's service domains (hosts[].muc.domain, hosts[].upload.domain) use the host's certificate (the generated one covers
    // *.domain): TLS on s2s streams to that domain, and SASL EXTERNAL from it when the certificate covers it.
    for (const h of config.hosts) {
      const cert = certs.get(h.domain);
      if (h.muc && cert && !certs.has(h.muc.domain)) certs.set(h.muc.domain, cert);
      if (h.upload && cert && !certs.has(h.upload.domain)) certs.set(h.upload.domain, cert);
    }
    // External components' domains likewise use their owning host's certificate on s2s.
    for (const svc of config.components.services) {
      const cert = certs.get(svc.host ?? config.hosts[0]!.domain);
      if (cert && !certs.has(svc.domain)) certs.set(svc.domain, cert);
    }
    const server = new ComityServer(config, log, storage, certs);
    for (const host of server.hosts.values()) {
      for (const mod of builtinModules(host)) {
        await host.load(mod, {
          config,
          storage,
          log,
          events: server.events,
          sessions: server.sessions,
          send: (stanza) => server.router.send(stanza),
          request: (iq, timeoutMs) => server.router.request(iq, timeoutMs),
          control: server.control,
          components: server.router.components,
          http: server.httpRoutes,
        });
      }
    }
    return server;
  }

  #c2sDeps!: C2sDeps;
  readonly #startedAt = Date.now();
  readonly #clients = new Set<C2sSession>();

  #accept = (socket: Socket): void => {
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    // Not the socket's own close event: after STARTTLS the stream lives on a new TLS socket.
    const session: C2sSession = new C2sSession(socket, this.#c2sDeps, () => this.#clients.delete(session));
    this.#clients.add(session);
  };

  /** What `comity status` shows: load, links and memory of this process, read when asked. */
  status(): ServerStatus {
    const links = this.s2s.list();
    const mem = process.memoryUsage();
    return {
      version: VERSION,
      pid: process.pid,
      node: process.version,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
      hosts: [...this.hosts.keys()],
      c2sConnections: this.#clients.size,
      c2sSessions: this.sessions.count,
      s2sIncoming: links.filter((l) => l.direction === "in").length,
      s2sOutgoing: links.filter((l) => l.direction === "out").length,
      components: this.components.list(),
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external, arrayBuffers: mem.arrayBuffers },
      storage: this.#storageStatus(),
    };
  }

  #storageStatus(): NonNullable<ServerStatus["storage"]> {
    const health = this.storage.health;
    const st = { backend: this.storage.kind, available: health?.available ?? true, failures: health?.failures ?? 0, archiveMisses: 0, archiveRetried: 0, archiveRetryQueued: 0, archiveDropped: 0, archiveSlow: 0 };
    for (const host of this.hosts.values()) {
      const m = host.provided.get("mam-stats") as MamStats | undefined;
      if (m === undefined) continue;
      st.archiveMisses += m.archiveMisses;
      st.archiveRetried += m.archiveRetried;
      st.archiveRetryQueued += m.archiveRetryQueued;
      st.archiveDropped += m.archiveDropped;
      st.archiveSlow += m.archiveSlow;
    }
    return st;
  }

  /** Start every listener; resolves when all accept connections. */
  async listen(): Promise<BoundAddresses> {
    this.#c2sDeps = {
      config: this.config,
      hosts: this.hosts,
      router: this.router,
      sessions: this.sessions,
      storage: this.storage,
      log: this.log,
      tls: this.#tls,
      throttle: new AuthThrottle({ baseDelayMs: this.config.auth.failure_delay_ms }),
      events: this.events,
      settling: new Set(),
    };
    for (const addr of this.config.c2s.listen) {
      const { server, address } = await listen(addr, this.#accept);
      this.#listeners.push(server);
      this.addresses.c2s.push(address);
    }
    for (const addr of this.config.c2s.direct_tls) {
      const { server, address } = await listenDirectTls(addr, (s) => this.#accept(s), {
        secureContext: this.#tls.for(undefined),
        SNICallback: this.#tls.sni,
        alpn: "xmpp-client",
      });
      this.#listeners.push(server);
      this.addresses.c2sDirectTls.push(address);
    }
    if (this.config.control_socket) this.#controlServer = await startControlServer(this.config.control_socket, this.control, this.log);
    for (const addr of this.config.s2s.listen) {
      const { server, address } = await listen(addr, (s) => this.s2s.accept(s));
      this.#listeners.push(server);
      this.addresses.s2s.push(address);
    }
    for (const addr of this.config.s2s.direct_tls) {
      const { server, address } = await listenDirectTls(addr, (s) => this.s2s.accept(s), {
        secureContext: this.#s2sTls.for(undefined),
        SNICallback: this.#s2sTls.sni,
        alpn: "xmpp-server",
        requestCert: true,
      });
      this.#listeners.push(server);
      this.addresses.s2sDirectTls.push(address);
    }
    for (const addr of this.config.components.listen) {
      const { server, address } = await listen(addr, (s) => this.components.accept(s));
      this.#listeners.push(server);
      this.addresses.components.push(address);
    }
    await this.#listenHttp();
    for (const domain of this.hosts.keys()) await this.events.fire("server/started", { host: domain });
    return this.addresses;
  }

  async #listenHttp(): Promise<void> {
    const { http: cfg } = this.config;
    if (cfg.listen.length === 0 && cfg.tls_listen.length === 0) return;
    const http = new HttpService({ log: this.log, trustedProxies: cfg.trusted_proxies });
    this.http = http;
    const clients = {
      c2s: this.#c2sDeps,
      track: (session: C2sSession) => this.#clients.add(session),
      untrack: (session: C2sSession) => this.#clients.delete(session),
      stopping: () => this.#stopping,
    };
    if (cfg.websocket) mountWebSocket(http, clients);
    if (cfg.bosh.enabled) mountBosh(http, clients);
    if (cfg.websocket || cfg.bosh.enabled) {
      mountHostMeta(http, {
        websocketUrl: cfg.websocket_url,
        plaintextAllowed: this.config.c2s.encryption === "optional",
        websocket: cfg.websocket,
        bosh: cfg.bosh.enabled,
        boshUrl: cfg.bosh.url,
      });
    }
    if (cfg.admin_console || cfg.api) {
      mountAdmin(http, { config: this.config, hosts: this.hosts, storage: this.storage, log: this.log, control: this.control, throttle: this.#c2sDeps.throttle });
    }
    for (const route of this.httpRoutes.routes()) http.mount(route.path, route.handler, route.options);
    for (const addr of cfg.listen) this.addresses.http.push(await http.listen(addr));
    for (const addr of cfg.tls_listen) {
      this.addresses.https.push(await http.listen(addr, { SNICallback: this.#httpTls.sni, ...this.#httpTls.serverOptions, ALPNProtocols: ["http/1.1"] }));
    }
    // Where modules' URLs point by default (a listener on every address is named by the module's own domain).
    const bound = (addrs: string[], got: AddressInfo[], secure: boolean) =>
      addrs.map((addr, i) => {
        const host = parseListenAddress(addr).host;
        return { secure, host: host === "0.0.0.0" || host === "::" || host === "" ? undefined : host, port: got[i]!.port };
      });
    this.httpRoutes.setListeners([...bound(cfg.tls_listen, this.addresses.https, true), ...bound(cfg.listen, this.addresses.http, false)]);
  }

  /** Close listeners, end every session with <system-shutdown/>, flush and close storage. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const l of this.#listeners) l.close();
    const httpClosed = this.http?.close();
    if (this.#controlServer) {
      this.#controlServer.close();
      try {
        if (this.config.control_socket) unlinkSync(this.config.control_socket);
      } catch {
        // already gone
      }
    }
    // Modules say goodbye first (e.g. unavailable presence to server buddies), while links are still up.
    for (const domain of this.hosts.keys()) await this.events.fire("server/stopping", { host: domain }).catch(() => false);
    for (const s of [...this.#clients]) s.kick("system-shutdown", "server is shutting down");
    const deadline = Date.now() + 3000;
    while (this.#clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.#clients) s.conn.socket.destroy();
    await this.components.stop();
    await this.s2s.stop();
    await httpClosed;
    // Sessions that just ended may still be moving unacknowledged stanzas (XEP-0198) to offline storage.
    if (this.#c2sDeps.settling) await Promise.allSettled([...this.#c2sDeps.settling]);
    await this.storage.close();
  }
}
