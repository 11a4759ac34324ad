// HTTP paths that modules serve on the server's HTTP listeners (http.listen, http.tls_listen), e.g. the XEP-0363
// upload service's PUT and GET URLs. Modules register during setup, before anything listens; server.ts mounts every
// route on the HTTP service once it starts it, then records where the listeners ended up, so that a module can build
// URLs for its clients (a port may be chosen by the system). The HTTP tier sits above modules, so this registry
// lives here, with node:http types only.
import type { IncomingMessage, ServerResponse } from "node:http";

/** Answers one request under the route's path; a thrown error becomes a 500 answer. */
export type HttpRouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface HttpRouteOptions {
  /**
   * The handler bounds slow request bodies itself (an upload of many megabytes may take minutes): the listener's
   * whole-request deadline does not apply to it. Headers must still arrive in time.
   */
  ownRequestTimeout?: boolean;
}

/** One registered path. */
export interface HttpRoute {
  readonly path: string;
  readonly handler: HttpRouteHandler;
  readonly options: HttpRouteOptions;
  /** The module that registered it (for errors and logs). */
  readonly owner: string;
}

/** Where an HTTP listener accepts requests, as bound. */
export interface HttpListener {
  secure: boolean;
  /** The configured address, or undefined when it listens on every address (0.0.0.0, [::]). */
  host: string | undefined;
  port: number;
}

/** The routes of one server and where its HTTP listeners are. */
export class HttpRoutes {
  readonly #routes = new Map<string, HttpRoute>();
  #listeners: HttpListener[] = [];

  /** Register a path ("/upload/upload.example.org" takes it and everything under it); throws when it is taken. */
  add(path: string, handler: HttpRouteHandler, owner: string, options: HttpRouteOptions = {}): void {
    if (!path.startsWith("/") || path.length < 2 || path.endsWith("/")) throw new Error(`${owner}: HTTP path ${path} must start with / and not end with /`);
    const taken = this.#routes.get(path);
    if (taken) throw new Error(`${owner}: HTTP path ${path} is already served by ${taken.owner}`);
    this.#routes.set(path, { path, handler, options, owner });
  }

  routes(): HttpRoute[] {
    return [...this.#routes.values()];
  }

  /** Set by the server once its HTTP listeners accept connections. */
  setListeners(listeners: HttpListener[]): void {
    this.#listeners = listeners.map((l) => ({ ...l }));
  }

  /** The HTTP listeners, HTTPS ones first; empty before they listen or when none is configured. */
  listeners(): HttpListener[] {
    return this.#listeners.map((l) => ({ ...l }));
  }
}
