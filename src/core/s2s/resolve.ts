// Finding a peer server (RFC 6120 §3.2, XEP-0368): static routes, then SRV _xmpps-server._tcp (direct TLS)
// and _xmpp-server._tcp (STARTTLS) ordered by priority and weight, then the domain's A/AAAA on port 5269.
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { parseListenAddress } from "../../net/listen.ts";

/** One address to try, in order. */
export interface Target {
  host: string;
  port: number;
  directTls: boolean;
  /** How it was found, for logs and `comity s2s list`. */
  via: "route" | "srv" | "srvs" | "fallback";
}

interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** RFC 2782 ordering: by priority, then a weighted random pick within each priority. */
export function orderSrv(records: SrvRecord[], random = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    const list = byPriority.get(r.priority) ?? [];
    list.push(r);
    byPriority.set(r.priority, list);
  }
  const out: SrvRecord[] = [];
  for (const prio of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = [...byPriority.get(prio)!];
    while (pool.length > 0) {
      const total = pool.reduce((s, r) => s + r.weight, 0);
      let pick = 0;
      if (total > 0) {
        let n = random() * total;
        pick = pool.findIndex((r) => (n -= r.weight) < 0);
        if (pick < 0) pick = pool.length - 1;
      }
      out.push(pool.splice(pick, 1)[0]!);
    }
  }
  return out;
}

/** Resolves peer domains to connection targets. */
export class PeerResolver {
  readonly #routes: Record<string, string>;
  readonly #dns: Resolver;

  constructor(opts: { routes: Record<string, string>; dnsServers: string[]; timeoutMs?: number }) {
    this.#routes = opts.routes;
    this.#dns = new Resolver({ timeout: opts.timeoutMs ?? 3000, tries: 2 });
    if (opts.dnsServers.length > 0) this.#dns.setServers(opts.dnsServers);
  }

  async #srv(name: string): Promise<SrvRecord[]> {
    try {
      return await this.#dns.resolveSrv(name);
    } catch {
      return [];
    }
  }

  /** Addresses to try for `domain`, best first; empty when nothing resolves. */
  async resolve(domain: string): Promise<Target[]> {
    const route = this.#routes[domain];
    if (route) {
      const { host, port } = parseListenAddress(route);
      return [{ host, port, directTls: false, via: "route" }];
    }
    if (isIP(domain.replace(/^\[|\]$/g, ""))) return [{ host: domain.replace(/^\[|\]$/g, ""), port: 5269, directTls: false, via: "fallback" }];
    const [tls, plain] = await Promise.all([this.#srv(`_xmpps-server._tcp.${domain}`), this.#srv(`_xmpp-server._tcp.${domain}`)]);
    // RFC 6120 §3.2.1: a single record with target "." means the service is not offered.
    const decline = (l: SrvRecord[]) => l.length === 1 && (l[0]!.name === "." || l[0]!.name === "");
    if (decline(tls) && decline(plain)) return [];
    const targets: Target[] = [];
    const records = [
      ...(decline(tls) ? [] : tls.map((r) => ({ ...r, tls: true }))),
      ...(decline(plain) ? [] : plain.map((r) => ({ ...r, tls: false }))),
    ];
    for (const r of orderSrv(records) as (SrvRecord & { tls: boolean })[]) {
      for (const host of await this.#addresses(r.name)) targets.push({ host, port: r.port, directTls: r.tls, via: r.tls ? "srvs" : "srv" });
    }
    if (records.length === 0) {
      for (const host of await this.#addresses(domain)) targets.push({ host, port: 5269, directTls: false, via: "fallback" });
    }
    return targets;
  }

  async #addresses(name: string): Promise<string[]> {
    const [v4, v6] = await Promise.all([this.#dns.resolve4(name).catch(() => []), this.#dns.resolve6(name).catch(() => [])]);
    return [...v4, ...v6];
  }
}
