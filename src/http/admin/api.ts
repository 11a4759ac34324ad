// The HTTP API (/api): JSON for scripts, HTTP Basic authentication (bare JID and XMPP password) on every request,
// for host admins only. Decisions go through the same control methods as `comity buddies ...` and are recorded with
// via "api" and the admin's JID as actor. Reference: docs/admin-console.md.
import type { IncomingMessage, ServerResponse } from "node:http";
import { prepareDomain, tryParseJid } from "../../xmpp/jid.ts";
import { sendJson, type HttpHandler } from "../server.ts";
import type { AdminAuth, AdminIdentity } from "./auth.ts";
import { AdminOps, HttpError, isBuddyAction, mediaType, readBody, type DecisionInput } from "./ops.ts";

const REALM = 'Basic realm="Comity admin", charset="UTF-8"';
const MAX_LIMIT = 10_000;

const HEADERS = {
  "cache-control": "no-store",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
};

interface Call {
  req: IncomingMessage;
  url: URL;
  admin: AdminIdentity;
  params: string[];
}

type Endpoint = (call: Call) => Promise<[status: number, body: unknown]>;

interface Route {
  path: RegExp;
  methods: Partial<Record<"GET" | "POST", Endpoint>>;
}

function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.code, message: err.message }, { ...HEADERS, ...err.headers });
}

/** The query parameters, refusing any not in `allowed` (a typo should not silently widen a listing). */
function query(url: URL, allowed: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of url.searchParams) {
    if (!allowed.includes(k)) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `unknown query parameter ${k} (allowed: ${allowed.join(", ") || "none"})`);
    if (out.has(k)) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `query parameter ${k} given twice`);
    out.set(k, v);
  }
  return out;
}

function limitOf(q: Map<string, string>): number | undefined {
  const raw = q.get("limit");
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  return n;
}

/** The hosts a listing covers: the one asked for (if the admin administers it), else all of theirs. */
export function hostsFor(admin: AdminIdentity, host: string | undefined): string[] {
  if (host === undefined) return admin.hosts;
  const h = host.trim().toLowerCase();
  if (!admin.hosts.includes(h)) throw new HttpError(403, "COMITY_ERR_NOT_HOST_ADMIN", `${admin.jid} is not an admin of ${host}`);
  return [h];
}

/** The one host an action is about: the one given, or the admin's only host. */
export function hostOf(admin: AdminIdentity, host: string | undefined): string {
  if (host !== undefined) return hostsFor(admin, host)[0]!;
  if (admin.hosts.length === 1) return admin.hosts[0]!;
  throw new HttpError(400, "COMITY_ERR_HTTP_HOST_REQUIRED", `${admin.jid} administers several hosts (${admin.hosts.join(", ")}): say which with "host"`);
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", "malformed percent-encoding in the path");
  }
}

/** The optional JSON body of a decision: {host?, note?, mutual? (request only)}. */
async function decisionBody(req: IncomingMessage, action: string): Promise<DecisionInput & { host?: string }> {
  const body = await readBody(req);
  const type = mediaType(req);
  if (body.length === 0 && (type === "" || type === "application/json")) return {};
  // Only JSON: a cross-site HTML form (which could carry cached Basic credentials) cannot send it without CORS.
  if (type !== "application/json") throw new HttpError(415, "COMITY_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE", "send the body as application/json");
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(400, "COMITY_ERR_HTTP_BAD_JSON", "the body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_JSON", "the body must be a JSON object");
  const allowed = action === "request" ? ["host", "note", "mutual"] : ["host", "note"];
  const out: DecisionInput & { host?: string } = {};
  for (const [k, v] of Object.entries(value)) {
    if (!allowed.includes(k)) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `unknown field ${k} for ${action} (allowed: ${allowed.join(", ")})`);
    if (v === null) continue;
    if (k === "mutual") {
      if (typeof v !== "boolean") throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", "mutual must be a boolean");
      out.mutual = v;
    } else {
      if (typeof v !== "string") throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `${k} must be a string`);
      if (k === "host") out.host = v;
      else out.note = v;
    }
  }
  return out;
}

/**
 * Whether a browser sent this request from a page of another origin. Scripts send neither header. A browser that
 * has cached Basic credentials attaches them to a same-site `fetch(url, {method: "POST", mode: "no-cors",
 * credentials: "include"})`, and with no body there is no Content-Type for the JSON-only rule to refuse.
 */
function fromOtherOrigin(req: IncomingMessage): boolean {
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined) return site !== "same-origin" && site !== "none";
  // Browsers too old for Sec-Fetch-Site still send Origin with a POST; no page of ours calls the API.
  return req.headers.origin !== undefined;
}

/** Credentials from `Authorization: Basic base64(jid:password)`, or undefined when absent or malformed. */
function basicCredentials(req: IncomingMessage): { jid: string; password: string } | undefined {
  const h = req.headers.authorization;
  if (typeof h !== "string") return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  return { jid: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The /api handler. */
export function apiHandler(auth: AdminAuth, ops: AdminOps): HttpHandler {
  const routes: Route[] = [
    { path: /^\/api\/?$/, methods: { GET: async ({ admin }) => [200, { jid: admin.jid, hosts: admin.hosts }] } },
    { path: /^\/api\/me$/, methods: { GET: async ({ admin }) => [200, { jid: admin.jid, hosts: admin.hosts }] } },
    {
      path: /^\/api\/status$/,
      methods: {
        GET: async ({ url }) => {
          query(url, []);
          return [200, await ops.status()];
        },
      },
    },
    {
      path: /^\/api\/s2s$/,
      methods: {
        GET: async ({ url, admin }) => {
          const q = query(url, ["host"]);
          return [200, await ops.links(hostsFor(admin, q.get("host")))];
        },
      },
    },
    {
      path: /^\/api\/buddies$/,
      methods: {
        GET: async ({ url, admin }) => {
          const q = query(url, ["host"]);
          return [200, await ops.buddies(hostsFor(admin, q.get("host")))];
        },
      },
    },
    {
      path: /^\/api\/buddies\/audit$/,
      methods: {
        GET: async ({ url, admin }) => {
          const q = query(url, ["host", "peer", "limit"]);
          const opts: { peer?: string; limit?: number } = {};
          const peer = q.get("peer");
          const limit = limitOf(q);
          if (peer !== undefined) opts.peer = peer;
          if (limit !== undefined) opts.limit = limit;
          return [200, await ops.audit(hostsFor(admin, q.get("host")), opts)];
        },
      },
    },
    {
      path: /^\/api\/buddies\/metrics$/,
      methods: {
        GET: async ({ url, admin }) => {
          const q = query(url, ["host"]);
          return [200, await ops.metrics(hostsFor(admin, q.get("host")))];
        },
      },
    },
    {
      path: /^\/api\/buddies\/([^/]+)$/,
      methods: {
        GET: async ({ url, admin, params }) => {
          const q = query(url, ["host"]);
          const host = hostOf(admin, q.get("host"));
          const peer = decodeSegment(params[0]!);
          let wanted: string;
          try {
            wanted = prepareDomain(peer.trim());
          } catch {
            throw new HttpError(422, "COMITY_ERR_BUDDY_INVALID_PEER", `${peer} is not a server domain`);
          }
          const entry = (await ops.buddies([host])).find((e) => e.peer === wanted);
          if (entry === undefined) throw new HttpError(404, "COMITY_ERR_BUDDY_UNKNOWN", `${peer} is not in the server roster of ${host}`);
          return [200, entry];
        },
      },
    },
    {
      path: /^\/api\/buddies\/([^/]+)\/([a-z]+)$/,
      methods: {
        POST: async ({ req, url, admin, params }) => {
          const action = params[1]!;
          if (!isBuddyAction(action)) throw new HttpError(404, "COMITY_ERR_HTTP_NOT_FOUND", `no such action: ${action} (request, approve, deny, cancel, remove)`);
          const peer = decodeSegment(params[0]!);
          const q = query(url, ["host"]);
          const body = await decisionBody(req, action);
          if (body.host !== undefined && q.has("host") && body.host !== q.get("host")) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", "host given twice, differently");
          const host = hostOf(admin, body.host ?? q.get("host"));
          const entry = await ops.decide(admin, "api", host, action, peer, body);
          return [200, { host, peer: entry?.peer ?? peer, action, entry }];
        },
      },
    },
    {
      // PEP (XEP-0163): which accounts keep nodes, and one account's nodes without their payloads.
      path: /^\/api\/pep$/,
      methods: {
        GET: async ({ url, admin }) => [200, await ops.pepAccounts(hostsFor(admin, query(url, ["host"]).get("host")))],
      },
    },
    {
      path: /^\/api\/pep\/([^/]+)$/,
      methods: {
        GET: async ({ url, admin, params }) => {
          query(url, []);
          const jid = tryParseJid(decodeSegment(params[0]!));
          if (jid === undefined || jid.local === "" || jid.resource !== "") throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", "give an account's bare JID");
          return [200, await ops.pepNodes(hostOf(admin, jid.domain), jid.bareString())];
        },
      },
    },
    {
      path: /^\/api\/incidents$/,
      methods: {
        GET: async ({ url, admin }) => {
          const q = query(url, ["host", "status", "limit"]);
          const opts: { status?: string; limit?: number } = {};
          const status = q.get("status");
          const limit = limitOf(q);
          if (status !== undefined) opts.status = status;
          if (limit !== undefined) opts.limit = limit;
          return [200, await ops.incidents(hostsFor(admin, q.get("host")), opts)];
        },
      },
    },
  ];

  return async (req, res, url) => {
    try {
      // Refuse before looking at credentials: a password that crossed the network in clear must not be checked.
      if (!auth.transportOk(req)) {
        const proxy = auth.viaUnknownProxy(req) ? "; this request came through a proxy that is not listed in http.trusted_proxies" : "";
        throw new HttpError(403, "COMITY_ERR_HTTPS_REQUIRED", `passwords are accepted only over HTTPS (or from this machine): use an http.tls_listen address, or a TLS-terminating proxy listed in http.trusted_proxies${proxy}`);
      }
      const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
      // Refused before the credentials are even checked: reading is harmless (another origin never sees the
      // answer), acting is not.
      if (method !== "GET" && method !== "OPTIONS" && fromOtherOrigin(req)) {
        throw new HttpError(403, "COMITY_ERR_HTTP_CROSS_SITE", "the API does not act on requests that a browser sends from a web page; call it from a script");
      }
      const creds = basicCredentials(req);
      if (creds === undefined) throw new HttpError(401, "COMITY_ERR_HTTP_UNAUTHENTICATED", "HTTP Basic authentication with a host admin's bare JID and XMPP password is required", { "www-authenticate": REALM });
      const result = await auth.login(req, creds.jid, creds.password);
      if (!result.ok) {
        if (result.reason === "throttled") throw new HttpError(429, "COMITY_ERR_HTTP_THROTTLED", `too many failed attempts from your address; try again in ${result.retryAfterS} s`, { "retry-after": String(result.retryAfterS) });
        if (result.reason === "forbidden") throw new HttpError(403, "COMITY_ERR_NOT_ADMIN", `${result.jid} is not an admin of any host served here`);
        throw new HttpError(401, "COMITY_ERR_HTTP_UNAUTHENTICATED", "wrong JID or password", { "www-authenticate": REALM });
      }
      let params: string[] | undefined;
      const route = routes.find((r) => {
        const m = r.path.exec(url.pathname);
        if (m) params = m.slice(1);
        return m !== null;
      });
      if (route === undefined || params === undefined) throw new HttpError(404, "COMITY_ERR_HTTP_NOT_FOUND", `no such endpoint: ${url.pathname}`);
      const endpoint = route.methods[method as "GET" | "POST"];
      if (endpoint === undefined) {
        const allow = Object.keys(route.methods).flatMap((m) => (m === "GET" ? ["GET", "HEAD"] : [m])).join(", ");
        throw new HttpError(405, "COMITY_ERR_HTTP_METHOD_NOT_ALLOWED", `${req.method ?? "?"} is not allowed here (allowed: ${allow})`, { allow });
      }
      const [status, body] = await endpoint({ req, url, admin: result.admin, params });
      sendJson(res, status, body, HEADERS);
    } catch (err) {
      if (err instanceof HttpError) sendError(res, err);
      else throw err;
    }
  };
}
