// Console sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure over TLS), kept in memory; each has
// its own CSRF token for every form, pending flash messages, an idle expiry and an absolute one.
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Flash } from "./html.ts";

export const COOKIE = "comity_admin";

export interface AdminSession {
  readonly id: string;
  readonly jid: string;
  /** Digest of the credentials logged in with: a password change ends the session. */
  readonly fingerprint: string;
  readonly csrf: string;
  readonly created: number;
  lastSeen: number;
  flash: Flash[];
}

export interface SessionOptions {
  /** Ends after this long without a request (ms). */
  idleMs: number;
  /** Ends this long after login whatever happens (ms). */
  maxAgeMs: number;
  /** Most sessions kept; the least recently used go first. */
  max: number;
  /**
   * Most sessions of one JID; its own least recently used go first. Without it one admin (of any host) logging in
   * over and over would push every other admin's session out of the shared `max`.
   */
  maxPerJid: number;
}

export const DEFAULT_SESSIONS: SessionOptions = { idleMs: 8 * 3600_000, maxAgeMs: 24 * 3600_000, max: 10_000, maxPerJid: 20 };

/** In-memory sessions (a restart logs everyone out). */
export class SessionStore {
  readonly #opts: SessionOptions;
  /** In least-recently-used order (Map keeps insertion order; a touched session is moved to the end). */
  readonly #sessions = new Map<string, AdminSession>();

  constructor(opts: Partial<SessionOptions> = {}) {
    this.#opts = { ...DEFAULT_SESSIONS, ...opts };
  }

  create(jid: string, fingerprint: string, now = Date.now()): AdminSession {
    this.#sweep(now);
    const mine = [...this.#sessions.values()].filter((x) => x.jid === jid);
    for (let i = 0; i <= mine.length - this.#opts.maxPerJid; i++) this.#sessions.delete(mine[i]!.id);
    while (this.#sessions.size >= this.#opts.max) this.#sessions.delete(this.#sessions.keys().next().value!);
    const s: AdminSession = { id: randomBytes(32).toString("base64url"), jid, fingerprint, csrf: randomBytes(32).toString("base64url"), created: now, lastSeen: now, flash: [] };
    this.#sessions.set(s.id, s);
    return s;
  }

  /** The live session with this id, touched; expired ones are dropped. */
  get(id: string | undefined, now = Date.now()): AdminSession | undefined {
    if (id === undefined) return undefined;
    const s = this.#sessions.get(id);
    if (s === undefined) return undefined;
    this.#sessions.delete(id);
    if (now - s.lastSeen > this.#opts.idleMs || now - s.created > this.#opts.maxAgeMs) return undefined;
    s.lastSeen = now;
    this.#sessions.set(id, s);
    return s;
  }

  delete(id: string): void {
    this.#sessions.delete(id);
  }

  get size(): number {
    return this.#sessions.size;
  }

  #sweep(now: number): void {
    for (const [id, s] of this.#sessions) {
      if (now - s.lastSeen > this.#opts.idleMs || now - s.created > this.#opts.maxAgeMs) this.#sessions.delete(id);
    }
  }
}

/** The session id from the request's Cookie header. */
export function sessionIdOf(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== "string") return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === COOKIE) {
      const v = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{1,100}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

/** Set-Cookie for a session (no Max-Age: it ends with the browser too; the server ends it when idle). */
export function sessionCookie(id: string, secure: boolean): string {
  return `${COOKIE}=${id}; Path=/admin; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

/** Set-Cookie that removes the session cookie. */
export function clearCookie(secure: boolean): string {
  return `${COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`;
}

/** Whether a submitted CSRF token is the session's (constant time). */
export function csrfOk(session: AdminSession, token: string | null | undefined): boolean {
  if (typeof token !== "string") return false;
  const a = Buffer.from(token, "utf8");
  const b = Buffer.from(session.csrf, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}
