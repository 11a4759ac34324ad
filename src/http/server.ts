// The HTTP listener: one node:http (or https) server per configured address, shared by the WebSocket transport
// (RFC 7395, /xmpp-websocket), the web admin console (/admin) and the HTTP API (/api). Each part mounts its
// paths here; this file only routes by path prefix, answers what nobody mounted, and says whether a request came
// over TLS and from which address (believing X-Forwarded-* headers only from configured trusted proxies).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { parseListenAddress } from "../net/listen.ts";

export type HttpHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpServiceOptions {
  log: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  /** Addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed. */
  trustedProxies?: string[];
  /** How long a whole request (headers and body) may take to arrive, except on mounts that bound it themselves. */
  requestTimeoutMs?: number;
}

export interface MountOptions {
  /** The handler bounds slow bodies itself (large uploads): the whole-request deadline does not apply. */
  ownRequestTimeout?: boolean;
}

/** Send a small response with a body; ends the response. */
export function sendText(res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8", headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body), "x-content-type-options": "nosniff", ...headers });
  res.end(body);
}

/** Send a JSON body; ends the response. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, JSON.stringify(value) + "\n", "application/json; charset=utf-8", headers);
}

function normalise(address: string | undefined): string {
  if (!address) return "unknown";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/** Routes requests by path prefix to the parts mounted on it; every configured listener serves the same routes. */
export class HttpService {
  readonly #log: HttpServiceOptions["log"];
  readonly #proxies: Set<string>;
  readonly #mounts: { prefix: string; handler: HttpHandler; own: boolean }[] = [];
  readonly #requestTimeoutMs: number;
  readonly #upgrades = new Map<string, UpgradeHandler>();
  readonly #servers: Server[] = [];

  constructor(opts: HttpServiceOptions) {
    this.#log = opts.log;
    this.#proxies = new Set((opts.trustedProxies ?? []).map(normalise));
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  }

  /** Serve `prefix` and everything under it ("/admin" takes "/admin" and "/admin/..."); the longest prefix wins. */
  mount(prefix: string, handler: HttpHandler, opts: MountOptions = {}): void {
    this.#mounts.push({ prefix, handler, own: opts.ownRequestTimeout === true });
    this.#mounts.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Take HTTP Upgrade requests for exactly this path (e.g. "/xmpp-websocket"). */
  onUpgrade(path: string, handler: UpgradeHandler): void {
    this.#upgrades.set(path, handler);
  }

  /** Whether the request reached us over TLS: directly, or through a trusted proxy that says so. */
  isSecure(req: IncomingMessage): boolean {
    if (req.socket instanceof TLSSocket) return true;
    if (!this.#proxies.has(normalise(req.socket.remoteAddress))) return false;
    const proto = req.headers["x-forwarded-proto"];
    return typeof proto === "string" && proto.split(",")[0]!.trim().toLowerCase() === "https";
  }

  /**
   * The client's address: the socket's, or, when the socket is a trusted proxy, the last X-Forwarded-For hop that is
   * not one.
   */
  clientAddress(req: IncomingMessage): string {
    return this.#forwardedClient(req) ?? normalise(req.socket.remoteAddress);
  }

  /**
   * Whether the request says it was forwarded for someone else (X-Forwarded-For, Forwarded, X-Real-IP) but that is
   * not believed: the socket is not a trusted proxy, or a trusted one named no client in X-Forwarded-For. The
   * address seen is then a proxy's, not the client's, and the client's own hop may not have been encrypted.
   */
  forwardedUnbelieved(req: IncomingMessage): boolean {
    const h = req.headers;
    if (h["x-forwarded-for"] === undefined && h["forwarded"] === undefined && h["x-real-ip"] === undefined) return false;
    return this.#forwardedClient(req) === undefined;
  }

  /**
   * The client named by a trusted proxy. A proxy appends the address it received the request from (nginx's
   * $proxy_add_x_forwarded_for), so the left end is whatever the client wrote: walk from the right past our own
   * proxies and stop at the first hop that is not one.
   */
  #forwardedClient(req: IncomingMessage): string | undefined {
    if (!this.#proxies.has(normalise(req.socket.remoteAddress))) return undefined;
    const fwd = req.headers["x-forwarded-for"];
    const hops = typeof fwd === "string" ? fwd.split(",").map((h) => h.trim()).filter((h) => h !== "").map(normalise) : [];
    for (let i = hops.length - 1; i >= 0; i--) {
      if (i === 0 || !this.#proxies.has(hops[i]!)) return hops[i]!;
    }
    return undefined;
  }

  #request = (req: IncomingMessage, res: ServerResponse): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      sendText(res, 400, "bad request\n");
      return;
    }
    const path = url.pathname;
    const m = this.#mounts.find((x) => path === x.prefix || path.startsWith(x.prefix.endsWith("/") ? x.prefix : `${x.prefix}/`));
    if (!m) {
      sendText(res, 404, "not found\n");
      return;
    }
    if (!m.own) this.#deadline(req, res);
    Promise.resolve()
      .then(() => m.handler(req, res, url))
      .catch((err: unknown) => {
        this.#log.warn({ err, path }, "http handler failed");
        sendText(res, 500, "internal server error\n");
      });
  };

  /**
   * The whole-request deadline, per request rather than node's server-wide requestTimeout, so that a mount that
   * receives large bodies (uploads) can bound them itself while every other path keeps the limit. A request whose
   * body has fully arrived (`complete`) is never cut, however long its handler takes to answer.
   */
  #deadline(req: IncomingMessage, res: ServerResponse): void {
    if (this.#requestTimeoutMs <= 0) return;
    const timer = setTimeout(() => {
      if (req.complete) return;
      if (!res.headersSent) sendText(res, 408, "request timeout\n", undefined, { connection: "close" });
      req.socket.destroy();
    }, this.#requestTimeoutMs);
    timer.unref();
    res.once("close", () => clearTimeout(timer));
  }

  #upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", () => {});
    const path = (req.url ?? "/").split("?")[0]!;
    const handler = this.#upgrades.get(path);
    if (!handler) {
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    try {
      handler(req, socket, head);
    } catch (err) {
      this.#log.warn({ err, path }, "http upgrade failed");
      socket.destroy();
    }
  };

  /** Listen on "host:port" (HTTPS when `tls` is given); resolves with the bound address. */
  listen(addr: string, tls?: HttpsOptions): Promise<AddressInfo> {
    const { host, port } = parseListenAddress(addr);
    const server = tls ? createHttpsServer(tls, this.#request) : createServer(this.#request);
    server.on("upgrade", this.#upgrade);
    server.on("clientError", (_err, socket) => socket.destroy());
    if (tls) server.on("tlsClientError", () => {});
    // Slow clients must not hold sockets forever: headers within 20 s here, the whole request within
    // requestTimeoutMs per request (#deadline), since node's own requestTimeout cannot spare upload paths.
    server.headersTimeout = 20_000;
    server.requestTimeout = 0;
    this.#servers.push(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, backlog: 511 }, () => {
        server.removeListener("error", reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stop accepting; open keep-alive connections are closed, including those that go idle while closing (a BOSH
   * long-poll answered at shutdown would otherwise keep its connection open for the keep-alive timeout). Upgraded
   * sockets belong to their owners.
   */
  async close(): Promise<void> {
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => {
      const idle = setInterval(() => s.closeIdleConnections(), 100);
      s.close(() => {
        clearInterval(idle);
        r();
      });
      s.closeIdleConnections();
    })));
  }
}
