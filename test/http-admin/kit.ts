// Test kit for the admin console and API: a real server with an HTTP listener, host admins and a plain user, a
// scripted peer server whose domain subscriptions land as pending requests (as test/buddies/negative.test.ts
// makes them: a raw s2s stream authenticated by dialback), and a tiny cookie-keeping client for the console.
import { createTestServer, type TestServer } from "../kit/server.ts";
import { FakeAuthority, RawS2s } from "../kit/raw-s2s.ts";
import { entryOf, waitUntil } from "../buddies/kit.ts";

export const HOST_A = "a.localhost";
export const HOST_B = "b.localhost";
/** Peer servers that ask us for trust (all served by the fake authority). */
export const PEERS = ["raw.localhost", "other.localhost", "third.localhost", "fourth.localhost", "fifth.localhost"];

export const USERS = {
  admin: { jid: `admin@${HOST_A}`, password: "pw-admin" },
  /** An admin of both hosts. */
  multi: { jid: `multi@${HOST_A}`, password: "pw-multi" },
  /** Admin of b.localhost only. */
  boss: { jid: `boss@${HOST_B}`, password: "pw-boss" },
  /** An account that administers nothing. */
  user: { jid: `user@${HOST_A}`, password: "pw-user" },
};

export interface AdminFixture {
  ts: TestServer;
  /** "http://127.0.0.1:PORT" */
  base: string;
  authority: FakeAuthority;
  peer: RawS2s;
  /** Make `peer` ask `HOST_A` for trust and wait until the request is pending. */
  pendingFrom(peer: string): Promise<void>;
  stop(): Promise<void>;
}

/** Start the server (two hosts, admins, HTTP on loopback) and a raw peer stream to a.localhost. */
export async function startAdminFixture(overrides: Record<string, unknown> = {}): Promise<AdminFixture> {
  const authority = await FakeAuthority.start(PEERS[0]!);
  const routes: Record<string, string> = {};
  for (const d of PEERS) routes[d] = `127.0.0.1:${authority.port}`;
  const ts = await createTestServer(
    {
      hosts: [
        { domain: HOST_A, admins: [USERS.admin.jid, USERS.multi.jid] },
        { domain: HOST_B, admins: [USERS.multi.jid, USERS.boss.jid] },
      ],
      c2s: { direct_tls: [] },
      s2s: { listen: ["127.0.0.1:0"], verify_certificates: false, routes },
      http: { listen: ["127.0.0.1:0"], websocket: false },
      buddies: { disco_timeout_ms: 500 },
      ...overrides,
    },
    { users: Object.fromEntries(Object.values(USERS).map((u) => [u.jid, u.password])) },
  );
  const port = ts.server.addresses.http[0]!.port;
  const peer = await RawS2s.open(ts.s2sPort, { from: PEERS[0]!, to: HOST_A, tls: true });
  const authenticated = new Set<string>();
  return {
    ts,
    base: `http://127.0.0.1:${port}`,
    authority,
    peer,
    async pendingFrom(domain: string) {
      if (!authenticated.has(domain)) {
        const r = await peer.dialback(domain, "vouched-by-the-fake-authority");
        if (r.type !== "valid") throw new Error(`dialback for ${domain} failed: ${r.type}`);
        authenticated.add(domain);
      }
      peer.send(`<presence from='${domain}' to='${HOST_A}' type='subscribe' id='sub-${domain}'/>`);
      await waitUntil(`${domain} pending`, () => entryOf(ts, HOST_A, domain)?.pendingIn === true);
    },
    async stop() {
      peer.close();
      await ts.stop();
      await authority.stop();
    },
  };
}

/** An Authorization header for HTTP Basic. */
export function basic(jid: string, password: string): string {
  return `Basic ${Buffer.from(`${jid}:${password}`, "utf8").toString("base64")}`;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body (undefined when not JSON). */
  json: unknown;
}

/** One request without following redirects. */
export async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const r = await fetch(url, { redirect: "manual", ...init });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** A browser without JavaScript: keeps the session cookie, posts forms, reads pages. */
export class FormClient {
  readonly base: string;
  cookie: string | undefined;

  constructor(base: string) {
    this.base = base;
  }

  async get(path: string): Promise<Reply> {
    const r = await request(this.base + path, { headers: this.cookie ? { cookie: this.cookie } : {} });
    this.#keep(r);
    return r;
  }

  async post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Reply> {
    const r = await request(this.base + path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...(this.cookie ? { cookie: this.cookie } : {}), ...headers },
      body: new URLSearchParams(fields).toString(),
    });
    this.#keep(r);
    return r;
  }

  /** Log in through the form; returns the reply to the POST. */
  login(jid: string, password: string): Promise<Reply> {
    return this.post("/admin/login", { jid, password });
  }

  #keep(r: Reply): void {
    const set = r.headers.get("set-cookie");
    if (set === null) return;
    const pair = set.split(";")[0]!;
    this.cookie = pair.endsWith("=") ? undefined : pair;
  }
}

/** The CSRF token in a console page. */
export function csrfOf(page: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(page);
  if (!m) throw new Error("no CSRF token in the page");
  return m[1]!;
}
