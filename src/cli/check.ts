// `comity check`: validates config, storage, certificates (RFC 6120 §13.7.1.2, RFC 6125) and DNS records (RFC 6120 §3.2,
// XEP-0368, and the group chat and external component domains federation reaches), saying what to fix.
import { Resolver } from "node:dns/promises";
import { readFile, stat } from "node:fs/promises";
import type { Command } from "commander";
import { generatedCertPaths, inspectCertificate } from "../core/certs.ts";
import { ConfigError, listenersByDefault, parseListenAddress } from "../core/config/load.ts";
import { tlsPolicyFor } from "../core/tls-contexts.ts";
import type { Config } from "../core/config/schema.ts";
import { checkStorage } from "./check-storage.ts";
import { printJson, resolveConfig, withConfig } from "./common.ts";

export type Severity = "error" | "warning" | "info" | "ok";

/** One result of a check: what was found and, for problems, how to fix it. */
export interface Finding {
  severity: Severity;
  area: "config" | "storage" | "tls" | "dns";
  host?: string;
  message: string;
  fix?: string;
}

/** The subset of dns.promises.Resolver the DNS checks use (a fake in tests). */
export interface DnsResolver {
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

const EXPIRY_WARNING_DAYS = 14;

/** Domains that never have public DNS: RFC 6761 special-use names and `localhost`. */
export function isLocalDomain(domain: string): boolean {
  return domain === "localhost" || /\.(localhost|test|example|invalid)$/.test(domain) || /^(test|example|invalid)$/.test(domain);
}

/** Whether a listen address only accepts connections from this machine. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

function finding(severity: Severity, area: Finding["area"], message: string, extra: { host?: string; fix?: string } = {}): Finding {
  const f: Finding = { severity, area, message };
  if (extra.host !== undefined) f.host = extra.host;
  if (extra.fix !== undefined) f.fix = extra.fix;
  return f;
}

/** Warnings about valid but risky settings. */
export function checkConfigSettings(config: Config, path: string | undefined): Finding[] {
  const out: Finding[] = [];
  const where = path ?? "the config file";
  out.push(finding("ok", "config", `configuration is valid (${config.hosts.length} host${config.hosts.length === 1 ? "" : "s"}: ${config.hosts.map((h) => h.domain).join(", ")})`));
  if (path === undefined) {
    out.push(finding("info", "config", "no config file given and ./comity.yaml not found: using the built-in default (host localhost)", { fix: "write comity.yaml (see comity.example.yaml) or pass --config FILE" }));
  }
  for (const host of config.hosts) {
    if (host.admins.length === 0) {
      out.push(finding("warning", "config", "no admins: nobody is told about or can approve server buddy requests", { host: host.domain, fix: `add admins: [you@${host.domain}] to this host in ${where}` }));
    }
  }
  // Listeners nobody wrote down still open ports: say which, so a clash at start (or an unexpected open port) is
  // traced to a default rather than to the file.
  for (const l of listenersByDefault(config)) {
    out.push(finding("info", "config", `${l.key} not set: listening on ${l.addresses.length === 0 ? "nothing" : l.addresses.join(", ")} (${l.from})`, { fix: `set ${l.key} in ${where} to choose` }));
  }
  // The TLS policy in effect on each listener section (docs/tls.md), so an operator sees what testssl.sh would.
  for (const section of ["c2s", "s2s", "http"] as const) {
    const p = tlsPolicyFor(config, section);
    const suites = p.ciphers.split(":");
    const weak = suites.filter((s) => !s.startsWith("TLS_") && (!/^ECDHE-/.test(s) || !/(GCM|CHACHA20|CCM)/.test(s)));
    out.push(finding(weak.length > 0 ? "warning" : "info", "config", `TLS on ${section}: ${p.min_version} and later, ${suites.length} suite${suites.length === 1 ? "" : "s"} (${p.ciphers})${weak.length > 0 ? `; without forward secrecy or AEAD: ${weak.join(", ")}` : ""}; renegotiation refused`, weak.length > 0 ? { fix: `remove those suites from ${section}.tls_policy / tls_policy in ${where}` } : {}));
  }
  if (config.c2s.encryption === "optional") {
    out.push(finding("warning", "config", "c2s.encryption is optional: clients may log in without TLS", { fix: `set c2s.encryption: required in ${where} outside development` }));
  }
  if (config.s2s.encryption === "optional") {
    out.push(finding("warning", "config", "s2s.encryption is optional: server links may run without TLS", { fix: `set s2s.encryption: required in ${where}` }));
  }
  if (!config.s2s.verify_certificates) {
    out.push(finding("warning", "config", "s2s.verify_certificates is false: peers with certificates that do not verify are accepted and authenticated by dialback", { fix: `set s2s.verify_certificates: true in ${where} once peers have valid certificates` }));
  }
  // XEP-0114 has no TLS and a secret that travels hashed with a stream id anyone on the path sees: the protocol
  // assumes the bridge runs on the same machine (or a private link), so a listener that is not loopback is flagged.
  config.components.listen.forEach((addr, i) => {
    if (!isLoopbackAddress(parseListenAddress(addr).host)) {
      out.push(finding("warning", "config", `components.listen[${i}] (${addr}) is not a loopback address: external components (XEP-0114) talk in plaintext`, {
        fix: `listen on 127.0.0.1 or ::1 in ${where} and run the bridge on this machine (or tunnel it, e.g. over WireGuard or SSH)`,
      }));
    }
  });
  if (config.components.services.length > 0 && config.components.listen.length === 0) {
    out.push(finding("warning", "config", `${config.components.services.length} component(s) configured but components.listen is empty: none can connect`, { fix: `set components.listen: ["127.0.0.1:5347"] in ${where}` }));
  }
  if (config.auth.password_storage === "plain") {
    out.push(finding("warning", "config", "auth.password_storage is plain: passwords are stored as given", { fix: `set auth.password_storage: scram in ${where} (existing accounts keep their stored form until passwd)` }));
  }
  return out;
}

/** Check each host's certificate: presence, parse, key match, validity period, domain coverage. */
export async function checkCertificates(config: Config, now = new Date()): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const host of config.hosts) {
    const domain = host.domain;
    const local = isLocalDomain(domain);
    const tls = host.tls ?? config.tls;
    const source = host.tls ? "hosts[].tls" : "tls";
    const files = tls ? { certFile: tls.cert, keyFile: tls.key } : generatedCertPaths(config.data_dir, domain);
    let cert: string;
    let key: string;
    try {
      cert = await readFile(files.certFile, "utf8");
      key = await readFile(files.keyFile, "utf8");
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (!tls && e.code === "ENOENT") {
        out.push(finding(local ? "info" : "warning", "tls", `no certificate configured; a self-signed one will be generated at ${files.certFile} on first start`, {
          host: domain,
          ...(local ? {} : { fix: "set tls.cert and tls.key to a certificate from a public CA (e.g. Let's Encrypt) so clients and peers trust this server" }),
        }));
      } else {
        out.push(finding("error", "tls", `cannot read ${e.path ?? files.certFile}: ${e.code === "ENOENT" ? "no such file" : e.message}`, {
          host: domain,
          fix: `fix the path in ${source} or make the file readable by the user comity runs as`,
        }));
      }
      continue;
    }
    let info;
    try {
      info = inspectCertificate(cert, key);
    } catch (err) {
      out.push(finding("error", "tls", `${files.certFile} is not a PEM certificate (${(err as Error).message})`, { host: domain, fix: `point ${source}.cert at a PEM file starting with -----BEGIN CERTIFICATE-----` }));
      continue;
    }
    let problems = 0;
    const problem = (severity: "error" | "warning", message: string, fix: string): void => {
      problems++;
      out.push(finding(severity, "tls", message, { host: domain, fix }));
    };
    if (info.matchesKey === false) problem("error", `${files.keyFile} is not the private key of ${files.certFile}`, `set ${source}.key to the key the certificate was issued for`);
    if (info.notBefore.getTime() > now.getTime()) problem("error", `certificate is not valid before ${info.notBefore.toISOString()}`, "check the system clock, or wait");
    const daysLeft = (info.notAfter.getTime() - now.getTime()) / 86_400_000;
    if (daysLeft < 0) problem("error", `certificate expired on ${info.notAfter.toISOString()}`, tls ? "renew the certificate" : `delete ${files.certFile} and ${files.keyFile} (or run comity cert generate ${domain} --force) to get a new one`);
    else if (daysLeft < EXPIRY_WARNING_DAYS) problem("warning", `certificate expires in ${Math.floor(daysLeft)} days (${info.notAfter.toISOString()})`, "renew the certificate soon");
    if (!info.coversDomain(domain)) {
      problem("error", `certificate does not cover ${domain} (it names: ${info.altNames.join(", ") || info.subject})`, `get a certificate whose subjectAltName includes DNS:${domain}`);
    }
    if (info.selfSigned && !local) {
      problem("warning", "certificate is self-signed: clients and peers that verify certificates will refuse it", "use a certificate from a public CA (e.g. Let's Encrypt) in tls.cert/tls.key");
    }
    try {
      const mode = (await stat(files.keyFile)).mode & 0o777;
      if ((mode & 0o077) !== 0) problem("warning", `private key ${files.keyFile} is readable by other users (mode ${mode.toString(8)})`, `chmod 600 ${files.keyFile}`);
    } catch {
      // read above succeeded; a race here is not worth reporting
    }
    if (problems === 0) {
      out.push(finding("ok", "tls", `${files.certFile} covers ${domain}, valid until ${info.notAfter.toISOString().slice(0, 10)}${info.selfSigned ? " (self-signed)" : ""}`, { host: domain }));
    }
  }
  return out;
}

interface Service {
  srv: string;
  what: string;
  ports: Set<number>;
  /** RFC 6120 §3.2.2 fallback port when there is no SRV record (none for direct TLS). */
  fallbackPort: number | undefined;
}

function errCode(err: unknown): string {
  return String((err as NodeJS.ErrnoException).code ?? (err as Error).message);
}

function isNoData(err: unknown): boolean {
  const code = errCode(err);
  return code === "ENOTFOUND" || code === "ENODATA";
}

/** Check SRV and address records of each host against the configured listeners. */
export async function checkDns(config: Config, resolver: DnsResolver): Promise<Finding[]> {
  const ports = (addrs: string[]) => new Set(addrs.map((a) => parseListenAddress(a).port));
  const services: Service[] = [
    { srv: "_xmpp-client._tcp", what: "clients", ports: ports(config.c2s.listen), fallbackPort: 5222 },
    { srv: "_xmpps-client._tcp", what: "clients (direct TLS)", ports: ports(config.c2s.direct_tls), fallbackPort: undefined },
    { srv: "_xmpp-server._tcp", what: "servers", ports: ports(config.s2s.listen), fallbackPort: 5269 },
    { srv: "_xmpps-server._tcp", what: "servers (direct TLS)", ports: ports(config.s2s.direct_tls), fallbackPort: undefined },
  ].filter((s) => s.ports.size > 0);

  const addrCache = new Map<string, Promise<{ addrs: string[]; error?: string }>>();
  const addresses = (name: string) => {
    let p = addrCache.get(name);
    if (p === undefined) {
      p = Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]).then(([v4, v6]) => {
        const addrs = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])];
        const failure = [v4, v6].find((r) => r.status === "rejected" && !isNoData(r.reason));
        return failure?.status === "rejected" && addrs.length === 0 ? { addrs, error: errCode(failure.reason) } : { addrs };
      });
      addrCache.set(name, p);
    }
    return p;
  };

  // Each host needs its client and server records; a group chat domain only the server ones, so that users on other
  // servers can join its rooms (their servers connect to the chat domain itself).
  const targets: { domain: string; services: Service[] }[] = [];
  for (const host of config.hosts) {
    targets.push({ domain: host.domain, services });
    if (host.muc !== undefined) targets.push({ domain: host.muc.domain, services: services.filter((s) => s.srv.endsWith("-server._tcp")) });
  }
  // External components (XEP-0114) likewise: remote users' servers connect to the bridge's own domain.
  for (const svc of config.components.services) targets.push({ domain: svc.domain, services: services.filter((s) => s.srv.endsWith("-server._tcp")) });
  const perHost = await Promise.all(
    targets.map(async ({ domain, services }): Promise<Finding[]> => {
      if (isLocalDomain(domain)) return [finding("info", "dns", "local/testing domain, DNS not checked", { host: domain })];
      const out: Finding[] = [];
      const add = (severity: Severity, message: string, fix?: string) => out.push(finding(severity, "dns", message, fix === undefined ? { host: domain } : { host: domain, fix }));
      for (const s of services) {
        const name = `${s.srv}.${domain}`;
        const listening = [...s.ports].join(", ");
        let records: Awaited<ReturnType<DnsResolver["resolveSrv"]>> | undefined;
        try {
          records = await resolver.resolveSrv(name);
        } catch (err) {
          if (!isNoData(err)) {
            add("warning", `lookup of ${name} SRV failed (${errCode(err)})`, "check the DNS servers (s2s.dns_servers) and the zone's name servers");
            continue;
          }
        }
        if (records === undefined || records.length === 0) {
          if (s.fallbackPort === undefined) {
            add("warning", `no ${name} SRV record: ${s.what} will not discover the direct TLS port (XEP-0368)`, `add "${name}. 3600 IN SRV 0 5 ${[...s.ports][0]} ${domain}." or drop the listener`);
            continue;
          }
          const { addrs, error } = await addresses(domain);
          if (error !== undefined) add("warning", `lookup of ${domain} A/AAAA failed (${error})`, "check the DNS servers and the zone");
          else if (addrs.length === 0) {
            add("error", `no ${name} SRV record and no A/AAAA record for ${domain}: ${s.what} cannot find this server`, `add "${name}. 3600 IN SRV 0 5 ${[...s.ports][0]} <server name>." (and A/AAAA for the server name)`);
          } else if (!s.ports.has(s.fallbackPort)) {
            add("warning", `no ${name} SRV record: ${s.what} fall back to ${domain}:${s.fallbackPort}, but comity listens on port ${listening}`, `add "${name}. 3600 IN SRV 0 5 ${[...s.ports][0]} ${domain}."`);
          } else {
            add("ok", `no ${name} SRV record; ${s.what} fall back to ${domain}:${s.fallbackPort} (${addrs.join(", ")})`);
          }
          continue;
        }
        if (records.length === 1 && (records[0]?.name === "." || records[0]?.name === "")) {
          add("warning", `${name} SRV says the service is not offered (target "."), but comity listens for ${s.what}`, `replace the "." record with one naming this server, or remove the listener`);
          continue;
        }
        for (const r of records) {
          const { addrs, error } = await addresses(r.name);
          if (error !== undefined) add("warning", `lookup of SRV target ${r.name} failed (${error})`, "check the DNS servers and the zone");
          else if (addrs.length === 0) add("error", `${name} SRV points to ${r.name}, which has no A/AAAA record`, `add an A or AAAA record for ${r.name}`);
          else if (!s.ports.has(r.port)) {
            add("warning", `${name} SRV points to port ${r.port}, but comity listens for ${s.what} on port ${listening}`, "change the SRV port or the listener (unless a proxy or NAT forwards it)");
          } else add("ok", `${name} SRV → ${r.name}:${r.port} (${addrs.join(", ")})`);
        }
      }
      return out;
    }),
  );
  // XEP-0363: clients upload to and download from the host named in slot URLs, so it must resolve: the host of
  // hosts[].upload.url, or the upload domain itself when URLs are built from an HTTP listener on every address.
  const uploads = await Promise.all(
    config.hosts.map(async (host): Promise<Finding[]> => {
      const up = host.upload;
      if (up === undefined) return [];
      const first = [...config.http.tls_listen, ...config.http.listen][0];
      const listenHost = first === undefined ? undefined : parseListenAddress(first).host;
      const name = up.url !== undefined ? new URL(up.url).hostname : listenHost === "0.0.0.0" || listenHost === "::" ? up.domain : undefined;
      if (name === undefined || isLocalDomain(name) || /^[\d.]+$|:/.test(name)) return [];
      const { addrs, error } = await addresses(name);
      const where = { host: up.domain };
      if (error !== undefined) return [finding("warning", "dns", `lookup of ${name} A/AAAA failed (${error})`, { ...where, fix: "check the DNS servers and the zone" })];
      if (addrs.length === 0) {
        return [finding("error", "dns", `no A/AAAA record for ${name}: clients cannot reach the file upload URLs`, { ...where, fix: `add an A or AAAA record for ${name} (or set hosts[].upload.url)` })];
      }
      return [finding("ok", "dns", `${name} (file upload URLs) → ${addrs.join(", ")}`, where)];
    }),
  );
  return [...perHost.flat(), ...uploads.flat()];
}

/** Every check `comity check` runs; DNS is skipped when `dns` is false. */
export async function runChecks(opts: { config?: string | undefined; dns?: boolean; resolver?: DnsResolver; now?: Date }): Promise<{ path: string | undefined; findings: Finding[] }> {
  let config: Config;
  let path: string | undefined;
  try {
    ({ config, path } = resolveConfig(opts));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return {
      path: err.source,
      findings: err.problems.map((p) => finding("error", "config", p, { fix: `edit ${err.source ?? "the config file"} (every key: docs/configuration.md)` })),
    };
  }
  const findings = checkConfigSettings(config, path);
  findings.push(...(await checkStorage(config)));
  findings.push(...(await checkCertificates(config, opts.now)));
  if (opts.dns === false) {
    findings.push(finding("info", "dns", "DNS not checked (--no-dns)"));
  } else {
    let resolver = opts.resolver;
    if (resolver === undefined) {
      const r = new Resolver({ timeout: 3000, tries: 2 });
      if (config.s2s.dns_servers.length > 0) r.setServers(config.s2s.dns_servers);
      resolver = r;
    }
    findings.push(...(await checkDns(config, resolver)));
  }
  return { path, findings };
}

const LABEL: Record<Severity, string> = { error: "error", warning: "warn ", info: "info ", ok: "ok   " };
const AREA: Record<Finding["area"], string> = { config: "Configuration", storage: "Storage", tls: "Certificates", dns: "DNS" };

/** Human-readable report, grouped by area. */
export function formatFindings(path: string | undefined, findings: Finding[]): string {
  const lines: string[] = [`Config file: ${path ?? "(built-in default)"}`];
  for (const area of ["config", "storage", "tls", "dns"] as const) {
    const list = findings.filter((f) => f.area === area);
    if (list.length === 0) continue;
    lines.push("", `${AREA[area]}:`);
    for (const f of list) {
      lines.push(`  ${LABEL[f.severity]} ${f.host === undefined ? "" : `${f.host}: `}${f.message}`);
      if (f.fix !== undefined) lines.push(`        fix: ${f.fix}`);
    }
  }
  const errors = findings.filter((f) => f.severity === "error").length;
  const warnings = findings.filter((f) => f.severity === "warning").length;
  lines.push("", errors + warnings === 0 ? "All checks passed." : `${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}.`);
  return `${lines.join("\n")}\n`;
}

/** Register `comity check`. */
export function registerCheck(program: Command): void {
  withConfig(
    program
      .command("check")
      .description("check the configuration, storage, certificates and DNS records; exit code 1 when something must be fixed")
      .option("--no-dns", "skip DNS lookups"),
    { json: true },
  ).action(async (opts: { config?: string; json?: boolean; dns: boolean }) => {
    const { path, findings } = await runChecks(opts);
    const ok = !findings.some((f) => f.severity === "error");
    if (opts.json === true) printJson({ ok, config: path ?? null, findings });
    else process.stdout.write(formatFindings(path, findings));
    if (!ok) process.exitCode = 1;
  });
}
