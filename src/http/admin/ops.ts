// What the console and the API do, in one place: they call the same control methods as `comity buddies ...`
// (and the ad-hoc commands' roster), with the admin's JID as actor and "web" or "api" as the surface, and map the
// methods' stable COMITY_ERR_* codes to HTTP statuses. Also: reading a request body within a size limit.
import type { IncomingMessage } from "node:http";
import type { ControlMethod } from "../../admin/control.ts";
import type { LinkInfo } from "../../core/s2s/types.ts";
import type { Logger } from "../../core/log.ts";
import type { AuditRecord, BuddyEntry } from "../../modules/server-buddies/api.ts";
import type { HostBuddyMetrics } from "../../modules/server-buddies/control.ts";
import type { IncidentSummary } from "../../modules/incidents/mod.ts";
import type { PepAccountSummary, PepNodeSummary } from "../../modules/pubsub/admin.ts";
import type { ServerStatus } from "../../server.ts";
import type { AdminIdentity } from "./auth.ts";

/** The admin actions on a server roster entry (the `buddies.*` control methods of the same names). */
export const BUDDY_ACTIONS = ["request", "approve", "deny", "cancel", "remove"] as const;
export type BuddyAction = (typeof BUDDY_ACTIONS)[number];

export function isBuddyAction(s: string): s is BuddyAction {
  return (BUDDY_ACTIONS as readonly string[]).includes(s);
}

/** An error with the HTTP status and stable code it is answered with. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** HTTP status of each COMITY_ERR_* code the control methods throw; other codes are 500. */
const STATUS_OF_CODE: Record<string, number> = {
  COMITY_ERR_CONTROL_BAD_REQUEST: 400,
  COMITY_ERR_BUDDY_UNKNOWN: 404,
  COMITY_ERR_BUDDY_NOT_PENDING: 409,
  COMITY_ERR_BUDDY_INVALID_PEER: 422,
};

/** The largest request body read (JSON or form), bytes. */
export const MAX_BODY = 64 * 1024;

/** Read the whole body, refusing more than `limit` bytes with 413 (the connection is then closed). */
export function readBody(req: IncomingMessage, limit = MAX_BODY): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, "COMITY_ERR_HTTP_BODY_TOO_LARGE", `the request body is larger than ${limit} bytes`, { connection: "close" }));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        reject(new HttpError(413, "COMITY_ERR_HTTP_BODY_TOO_LARGE", `the request body is larger than ${limit} bytes`, { connection: "close" }));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
    req.on("error", (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

/** The media type of a request, lower-cased, without parameters ("" when there is none). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
}

export interface DecisionInput {
  note?: string;
  /** request only: also accept the peer's reciprocal request (default true, as the CLI). */
  mutual?: boolean;
}

/** The server's control methods, called on behalf of one admin through one surface. */
export class AdminOps {
  readonly #control: Map<string, ControlMethod>;
  readonly #log: Logger;

  constructor(control: Map<string, ControlMethod>, log: Logger) {
    this.#control = control;
    this.#log = log;
  }

  /** Whether a control method exists (e.g. `incidents.list` when the incidents module is loaded). */
  has(method: string): boolean {
    return this.#control.has(method);
  }

  /**
   * Call a control method; the errors it means for the caller (the codes in STATUS_OF_CODE) become HttpErrors with
   * their status and text. Any other error, COMITY_ERR_* ones included (storage errors name database addresses
   * and file paths), is logged and answered with a generic 500: a host admin is not necessarily the operator.
   */
  async call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const fn = this.#control.get(method);
    if (fn === undefined) throw new HttpError(404, "COMITY_ERR_NOT_AVAILABLE", `${method} is not available on this server`);
    try {
      return (await fn(params)) as T;
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      const status = typeof code === "string" && Object.hasOwn(STATUS_OF_CODE, code) ? STATUS_OF_CODE[code]! : undefined;
      if (err instanceof Error && status !== undefined) throw new HttpError(status, code as string, err.message);
      this.#log.warn({ err, method }, "admin http: control method failed");
      throw new HttpError(500, "COMITY_ERR_INTERNAL", "internal error (see the server log)");
    }
  }

  /** The server roster entries of these hosts (the objects of `comity buddies list --json`). */
  async buddies(hosts: string[]): Promise<BuddyEntry[]> {
    const out: BuddyEntry[] = [];
    for (const host of hosts) out.push(...(await this.call<BuddyEntry[]>("buddies.list", { host })));
    return out;
  }

  /** Audit records of these hosts, newest first. */
  async audit(hosts: string[], opts: { peer?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for (const host of hosts) out.push(...(await this.call<AuditRecord[]>("buddies.audit", { host, ...opts })));
    out.sort((a, b) => b.at - a.at || b.id - a.id);
    return opts.limit === undefined ? out : out.slice(0, opts.limit);
  }

  async metrics(hosts: string[]): Promise<HostBuddyMetrics[]> {
    const out: HostBuddyMetrics[] = [];
    for (const host of hosts) out.push(...(await this.call<HostBuddyMetrics[]>("buddies.metrics", { host })));
    return out;
  }

  /** Decide about `peer` in `host`'s roster as `admin`, through `via`; resolves with the entry after it (null: gone). */
  async decide(admin: AdminIdentity, via: "api" | "web", host: string, action: BuddyAction, peer: string, input: DecisionInput = {}): Promise<BuddyEntry | null> {
    if (!admin.hosts.includes(host)) throw new HttpError(403, "COMITY_ERR_NOT_HOST_ADMIN", `${admin.jid} is not an admin of ${host}`);
    const params: Record<string, unknown> = { host, peer, actor: admin.jid, via };
    if (input.note !== undefined && input.note !== "") params["note"] = input.note;
    if (action === "request") params["mutual"] = input.mutual !== false;
    const entry = await this.call<BuddyEntry | null | undefined>(`buddies.${action}`, params);
    return entry ?? null;
  }

  async status(): Promise<ServerStatus> {
    return this.call<ServerStatus>("status");
  }

  /** Server links of these local hosts. */
  async links(hosts: string[]): Promise<LinkInfo[]> {
    const links = await this.call<LinkInfo[]>("s2s.list");
    return links.filter((l) => hosts.includes(l.local));
  }

  /** Incident records (XEP-0268) of these hosts, without their payloads, newest first. */
  /** Accounts of these hosts with PEP nodes (`comity pubsub list`); empty when the pubsub module is not loaded. */
  async pepAccounts(hosts: string[]): Promise<(PepAccountSummary & { host: string })[]> {
    if (!this.has("pubsub.list")) return [];
    const out: (PepAccountSummary & { host: string })[] = [];
    for (const host of hosts) for (const a of await this.call<PepAccountSummary[]>("pubsub.list", { host })) out.push({ host, ...a });
    return out;
  }

  /** One account's PEP nodes: names, access models, sizes; never payloads (`comity pubsub show`). */
  pepNodes(host: string, account: string): Promise<{ account: string; nodes: PepNodeSummary[] }> {
    return this.call("pubsub.show", { host, account });
  }

  async incidents(hosts: string[], opts: { status?: string; limit?: number } = {}): Promise<IncidentSummary[]> {
    const out: IncidentSummary[] = [];
    for (const host of hosts) out.push(...(await this.call<IncidentSummary[]>("incidents.list", { host, ...opts })));
    out.sort((a, b) => b.at - a.at || b.id - a.id);
    return opts.limit === undefined ? out : out.slice(0, opts.limit);
  }
}
