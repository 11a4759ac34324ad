// Who may use /admin and /api: the JIDs in some host's `hosts[].admins`, authenticated with their XMPP password
// against the stored credentials (SCRAM keys or plain, compared in constant time). Failures are slowed per client
// address with the same throttle as SASL; passwords are refused on plaintext HTTP unless the client is on loopback.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { AuthThrottle, networkOf } from "../../core/auth-throttle.ts";
import { checkPassword } from "../../sasl/plain.ts";
import type { StoredCredentials } from "../../storage/types.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import type { AdminHttpDeps } from "../deps.ts";
import type { HttpService } from "../server.ts";

/** An authenticated admin and the hosts they administer (in configuration order). */
export interface AdminIdentity {
  jid: string;
  hosts: string[];
}

export type LoginResult =
  | { ok: true; admin: AdminIdentity; fingerprint: string }
  | { ok: false; reason: "credentials" }
  | { ok: false; reason: "forbidden"; jid: string }
  | { ok: false; reason: "throttled"; retryAfterS: number };

/** How long a verified password is remembered, so that scripts polling the API do not pay PBKDF2 every time. */
const VERIFIED_TTL_MS = 5 * 60_000;
const MAX_BLOCKED = 10_000;
/** Most remembered passwords; the least recently verified go first. */
const MAX_VERIFIED = 10_000;

/** Whether an address (as HttpService.clientAddress gives it) is on this machine: 127.0.0.0/8 or ::1. */
export function isLoopback(address: string): boolean {
  if (address === "::1") return true;
  return isIP(address) === 4 && address.startsWith("127.");
}

/** A stable digest of stored credentials: it changes when the password changes (or the account is recreated). */
function fingerprintOf(creds: StoredCredentials): string {
  return createHash("sha256").update(JSON.stringify(creds)).digest("base64url");
}

/** Authentication and authorisation shared by the console and the API. */
export class AdminAuth {
  readonly #http: HttpService;
  readonly #deps: AdminHttpDeps;
  readonly #throttle: AuthThrottle;
  /** Addresses refused until a time (ms): repeated failures are not even checked until then. */
  readonly #blockedUntil = new Map<string, number>();
  /** Per JID: an HMAC of the last password verified, with the credentials it matched and until when. */
  readonly #verified = new Map<string, { mac: Buffer; fingerprint: string; expires: number }>();
  readonly #secret = randomBytes(32);

  constructor(http: HttpService, deps: AdminHttpDeps) {
    this.#http = http;
    this.#deps = deps;
    this.#throttle = deps.throttle ?? new AuthThrottle({ baseDelayMs: deps.config.auth.failure_delay_ms });
  }

  /** The client's address (behind a trusted proxy: the forwarded one). */
  address(req: IncomingMessage): string {
    return this.#http.clientAddress(req);
  }

  /** Whether the request arrived over TLS (directly or through a trusted proxy that says so). */
  secure(req: IncomingMessage): boolean {
    return this.#http.isSecure(req);
  }

  /**
   * Whether the request came through a proxy that is not believed (it says it forwards for someone, but it is not
   * in http.trusted_proxies or named no client): then the address seen is the proxy's, not the user's.
   */
  viaUnknownProxy(req: IncomingMessage): boolean {
    return this.#http.forwardedUnbelieved(req);
  }

  /**
   * Whether passwords and session cookies may travel on this request: over TLS, or from a loopback client. A
   * loopback socket that forwards for someone else is a proxy, and the user's hop to it may be plain HTTP.
   */
  transportOk(req: IncomingMessage): boolean {
    return this.secure(req) || (isLoopback(this.address(req)) && !this.viaUnknownProxy(req));
  }

  /** The hosts served here that list `jid` among their admins. */
  hostsOf(jid: Jid): string[] {
    return [...this.#deps.hosts.values()].filter((h) => h.isAdmin(jid)).map((h) => h.domain);
  }

  /** Check a bare JID and password; failures count against the client's address. */
  async login(req: IncomingMessage, jidText: string, password: string): Promise<LoginResult> {
    const address = this.address(req);
    const now = Date.now();
    const network = networkOf(address);
    const until = this.#blockedUntil.get(network);
    if (until !== undefined) {
      if (until > now) return { ok: false, reason: "throttled", retryAfterS: Math.max(1, Math.ceil((until - now) / 1000)) };
      this.#blockedUntil.delete(network);
    }
    const jid = tryParseJid(jidText.trim());
    const account = jid !== undefined && jid.local !== "" && jid.resource === "" && this.#deps.hosts.has(jid.domain)
      ? await this.#deps.storage.accounts.get(jid.domain, jid.local)
      : undefined;
    const creds = account?.credentials;
    const fingerprint = creds === undefined ? "" : fingerprintOf(creds);
    let ok = false;
    if (creds !== undefined && jid !== undefined && this.#remembered(jid.bareString(), password, fingerprint, now)) {
      ok = true;
    } else {
      // Unknown accounts get a decoy check of the same cost, so timing does not say which JIDs exist.
      ok = password !== "" && checkPassword(creds, jid?.local ?? "unknown", password, this.#deps.config.auth.scram_iterations, this.#deps.config.auth.password_storage) && creds !== undefined;
    }
    if (!ok || jid === undefined) {
      const delay = this.#throttle.failure(address, { user: jid?.bareString() ?? jidText.slice(0, 100), now });
      if (delay > 0) this.#block(network, now + delay);
      this.#deps.log.info({ remote: address, jid: jidText.slice(0, 100) }, "admin http: authentication failed");
      return { ok: false, reason: "credentials" };
    }
    this.#throttle.success(address, jid.bareString());
    const bare = jid.bareString();
    // Remembered for accounts that administer nothing too: a right password is a success for the throttle, so
    // otherwise any account holder could make the server run the key derivation, which blocks its event loop,
    // for every request they send.
    this.#remember(bare, password, fingerprint, now);
    const hosts = this.hostsOf(jid);
    if (hosts.length === 0) {
      this.#deps.log.info({ remote: address, jid: bare }, "admin http: refused a user who is not a host admin");
      return { ok: false, reason: "forbidden", jid: bare };
    }
    return { ok: true, admin: { jid: bare, hosts }, fingerprint };
  }

  /**
   * For a console session: the admin again, if the account still exists with the same credentials (a password
   * change ends every session) and still administers a host here.
   */
  async revalidate(jidText: string, fingerprint: string): Promise<AdminIdentity | undefined> {
    const jid = tryParseJid(jidText);
    if (jid === undefined || jid.local === "") return undefined;
    const account = await this.#deps.storage.accounts.get(jid.domain, jid.local);
    if (account === undefined || fingerprintOf(account.credentials) !== fingerprint) return undefined;
    const hosts = this.hostsOf(jid);
    return hosts.length === 0 ? undefined : { jid: jid.bareString(), hosts };
  }

  #mac(password: string): Buffer {
    return createHmac("sha256", this.#secret).update(password, "utf8").digest();
  }

  #remember(jid: string, password: string, fingerprint: string, now: number): void {
    this.#verified.delete(jid);
    if (this.#verified.size >= MAX_VERIFIED) this.#verified.delete(this.#verified.keys().next().value!);
    this.#verified.set(jid, { mac: this.#mac(password), fingerprint, expires: now + VERIFIED_TTL_MS });
  }

  #remembered(jid: string, password: string, fingerprint: string, now: number): boolean {
    const v = this.#verified.get(jid);
    if (v === undefined) return false;
    if (v.expires <= now || v.fingerprint !== fingerprint) {
      this.#verified.delete(jid);
      return false;
    }
    return timingSafeEqual(v.mac, this.#mac(password));
  }

  /** Refuse a network (networkOf: an IPv4 address or an IPv6 /64) until a time. */
  #block(network: string, until: number): void {
    if (this.#blockedUntil.size >= MAX_BLOCKED) {
      const now = Date.now();
      for (const [a, t] of this.#blockedUntil) if (t <= now) this.#blockedUntil.delete(a);
    }
    this.#blockedUntil.set(network, until);
  }
}
