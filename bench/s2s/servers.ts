// Benchmark instances of Comity, Prosody 0.12 and ejabberd 23.01 for the federation throughput bench, each
// with the same s2s setup: STARTTLS required, self-signed RSA-2048 certificates (not verified), dialback,
// peers found through DNS SRV served by ../shared/peers/lib/dns_server.py, TCP_NODELAY, warn logging, no
// traffic shaping on c2s or s2s. Everything generated lives under /tmp/comity-bench/s2s/<instance>/; each
// start wipes its directory, so every pair begins from empty storage.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";

export const BASE = "/tmp/comity-bench/s2s";
const ROOT = new URL("../..", import.meta.url).pathname;
const DNS_SCRIPT = join(ROOT, "..", "shared", "peers", "lib", "dns_server.py");
export const DNS = { ip: "127.0.0.31", port: 35753 };
export const C2S_PORT = 35722;
export const S2S_PORT = 35769;

export type Kind = "comity" | "prosody" | "ejabberd";

/** One server of a pair: its software, XMPP domain and loopback address. */
export interface NodeSpec {
  name: string;
  kind: Kind;
  domain: string;
  ip: string;
}

/** Every instance the bench can start; all are published in the DNS zone. */
export const NODES: Record<string, NodeSpec> = {
  "comity-a": { name: "comity-a", kind: "comity", domain: "comity-a.test", ip: "127.0.0.21" },
  "comity-b": { name: "comity-b", kind: "comity", domain: "comity-b.test", ip: "127.0.0.22" },
  "prosody-a": { name: "prosody-a", kind: "prosody", domain: "prosody-a.test", ip: "127.0.0.31" },
  "prosody-b": { name: "prosody-b", kind: "prosody", domain: "prosody-b.test", ip: "127.0.0.32" },
  "ejabberd-a": { name: "ejabberd-a", kind: "ejabberd", domain: "ejabberd-a.test", ip: "127.0.0.33" },
  "ejabberd-b": { name: "ejabberd-b", kind: "ejabberd", domain: "ejabberd-b.test", ip: "127.0.0.34" },
};

/** A running server process. `pid` is the server itself (taskset, erl and prosody all exec). */
export interface Running {
  spec: NodeSpec;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** taskset CPU list for the server, or undefined for no pinning. */
  cpus: string | undefined;
  /** Extra node flags for Comity (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** The Comity tree to run (its bin/comity.js and dist/); default this checkout. */
  comityRoot?: string;
}

/** A user created on the server before the run (Comity, Prosody) or to register in-band after it (ejabberd). */
export interface Account {
  user: string;
  password: string;
}

function pinned(cpus: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpus === undefined ? [cmd, args] : ["taskset", ["-c", cpus, cmd, ...args]];
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        res(true);
      });
      s.once("error", () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function launch(dir: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const out = openSync(join(dir, "stdout.log"), "a");
  const p = spawn(cmd, args, { cwd: dir, env, stdio: ["ignore", out, out] });
  closeSync(out);
  return p;
}

/** SIGTERM, then SIGKILL after `graceMs`; only the process we started. */
function stopper(p: ChildProcess, graceMs = 15_000): () => Promise<void> {
  return async () => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(t);
  };
}

/** A self-signed RSA-2048 certificate for `domain` (SAN domain, *.domain), shared by all runs. */
export function certFor(domain: string): { key: string; crt: string; pem: string } {
  const dir = join(BASE, "certs");
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${domain}.key`);
  const crt = join(dir, `${domain}.crt`);
  const pem = join(dir, `${domain}.pem`);
  if (!existsSync(pem)) {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650", "-keyout", key, "-out", crt, "-subj", `/CN=${domain}`, "-addext", `subjectAltName=DNS:${domain},DNS:*.${domain}`], { stdio: "ignore" });
    writeFileSync(pem, readFileSync(key, "utf8") + readFileSync(crt, "utf8"), { mode: 0o600 });
  }
  return { key, crt, pem };
}

/** The tiny authoritative DNS of ../shared/peers, with A and _xmpp-server._tcp SRV records for every node. */
export async function startDns(cpus: string | undefined): Promise<{ stop(): Promise<void> }> {
  const dir = join(BASE, "dns");
  mkdirSync(dir, { recursive: true });
  const zone = join(dir, "zone.txt");
  const lines = ["# generated by bench/s2s/servers.ts"];
  for (const n of Object.values(NODES)) lines.push(`${n.domain} A ${n.ip}`, `_xmpp-server._tcp.${n.domain} SRV 0 5 ${S2S_PORT} ${n.domain}`);
  writeFileSync(zone, lines.join("\n") + "\n");
  const [cmd, args] = pinned(cpus, "/usr/bin/python3", [DNS_SCRIPT, "--zone", zone, "--addr", DNS.ip, "--port", String(DNS.port)]);
  const p = launch(dir, cmd, args);
  await waitPort(DNS.ip, DNS.port, 10_000);
  return { stop: stopper(p) };
}

function freshDir(spec: NodeSpec): string {
  const dir = join(BASE, spec.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function ready(spec: NodeSpec, p: ChildProcess, dir: string, timeoutMs: number): Promise<void> {
  const died = new Promise<never>((_, rej) => p.once("exit", (c, s) => rej(new Error(`${spec.name} exited (${c ?? s}); see ${dir}`))));
  await Promise.race([died, waitPort(spec.ip, C2S_PORT, timeoutMs).then(() => waitPort(spec.ip, S2S_PORT, timeoutMs))]);
}

async function startComity(spec: NodeSpec, accounts: Account[], opts: StartOptions): Promise<Running> {
  const dir = freshDir(spec);
  const cert = certFor(spec.domain);
  const file = join(dir, "comity.yaml");
  writeFileSync(file, [
    "# generated by bench/s2s/servers.ts",
    `hosts: [{domain: ${spec.domain}, tls: {cert: ${cert.crt}, key: ${cert.key}}}]`,
    `data_dir: ${dir}/data`,
    `c2s: {listen: ["${spec.ip}:${C2S_PORT}"], direct_tls: []}`,
    // STARTTLS required (the default), self-signed peers accepted, dialback proves the domain.
    `s2s: {listen: ["${spec.ip}:${S2S_PORT}"], direct_tls: [], verify_certificates: false, dns_servers: ["${DNS.ip}:${DNS.port}"]}`,
    "auth: {password_storage: plain}",
    "log: {level: warn}",
    "",
  ].join("\n"));
  const bin = join(opts.comityRoot ?? ROOT, "bin", "comity.js");
  for (const a of accounts) execFileSync(process.execPath, [bin, "adduser", `${a.user}@${spec.domain}`, a.password, "--config", file], { stdio: "ignore" });
  const [cmd, args] = pinned(opts.cpus, process.execPath, [...(opts.nodeFlags ?? []), bin, "start", "--config", file]);
  const p = launch(dir, cmd, args);
  await ready(spec, p, dir, 30_000);
  return { spec, pid: p.pid!, dir, stop: stopper(p) };
}

async function startProsody(spec: NodeSpec, accounts: Account[], opts: StartOptions): Promise<Running> {
  const dir = freshDir(spec);
  const cert = certFor(spec.domain);
  const file = join(dir, "prosody.cfg.lua");
  writeFileSync(file, `-- generated by bench/s2s/servers.ts
run_as_root = true
daemonize = false
data_path = "${dir}/data"
certificates = "${join(BASE, "certs")}"
log = { warn = "${dir}/prosody.log" }
network_backend = "epoll"
network_settings = { tcp_backlog = 1024; nagle = false }  -- nagle = false: TCP_NODELAY, also on outgoing s2s
interfaces = { "${spec.ip}" }
local_interfaces = { "${spec.ip}" }
use_ipv6 = false
c2s_ports = { ${C2S_PORT} }
s2s_ports = { ${S2S_PORT} }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
-- Passwords stored in plain (as ejabberd's auth_password_format: plain and Comity's password_storage: plain);
-- clients use SASL PLAIN over STARTTLS, so no hashing per login on any server.
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
-- s2s: STARTTLS required; the self-signed certificate is not accepted as authentication
-- (s2s_secure_auth = false), so the peer is authenticated with dialback.
s2s_require_encryption = true
s2s_secure_auth = false
-- Minimal module set. mod_limits (traffic shaping) is NOT loaded; mod_offline is dropped (nothing goes
-- offline in the bench); s2s_bidi off: one connection per direction, as the other servers do.
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping" }
modules_disabled = { "offline"; "s2s_bidi" }
unbound = {
  resolvconf = false;
  hoststxt = false;
  forward = "${DNS.ip}@${DNS.port}";
  options = { ["local-zone:"] = "test. transparent" };  -- libunbound blocks .test by default
}
VirtualHost "${spec.domain}"
  ssl = { key = "${cert.key}"; certificate = "${cert.crt}" }
`);
  // internal_plain keeps one Lua file per account: write them directly instead of running prosodyctl.
  const acc = join(dir, "data", spec.domain.replace(/\./g, "%2e").replace(/-/g, "%2d"), "accounts");
  mkdirSync(acc, { recursive: true });
  for (const a of accounts) writeFileSync(join(acc, `${a.user}.dat`), `return {\n\t["password"] = ${JSON.stringify(a.password)};\n};\n`);
  const [cmd, args] = pinned(opts.cpus, "prosody", ["--config", file, "-F"]);
  const p = launch(dir, cmd, args);
  await ready(spec, p, dir, 30_000);
  return { spec, pid: p.pid!, dir, stop: stopper(p) };
}

async function startEjabberd(spec: NodeSpec, _accounts: Account[], opts: StartOptions): Promise<Running> {
  const dir = freshDir(spec);
  const cert = certFor(spec.domain);
  mkdirSync(join(dir, "db"));
  mkdirSync(join(dir, "log"));
  const file = join(dir, "ejabberd.yml");
  writeFileSync(file, `# generated by bench/s2s/servers.ts
hosts: ["${spec.domain}"]
loglevel: warning
log_rotate_count: 0
hide_sensitive_log_data: true
certfiles: ["${cert.pem}"]
define_macro: {}
listen:
  -
    port: ${C2S_PORT}
    ip: "${spec.ip}"
    module: ejabberd_c2s
    shaper: none
    max_stanza_size: 262144
    backlog: 1024
    starttls_required: true
  -
    port: ${S2S_PORT}
    ip: "${spec.ip}"
    module: ejabberd_s2s_in
    shaper: none
    max_stanza_size: 524288
    backlog: 1024
# s2s: STARTTLS required. SASL EXTERNAL fails on the self-signed certificate and mod_s2s_dialback takes over
# (there is no "do not verify" switch in ejabberd 23.01).
s2s_use_starttls: required
s2s_access: s2s
outgoing_s2s_families: [ipv4]
s2s_dns_timeout: 3
s2s_dns_retries: 1
s2s_max_retry_delay: 5
# No traffic shaping anywhere: no shapers defined, no shaper rules (listeners say "none" above).
shaper: {}
shaper_rules: {}
max_fsm_queue: 100000
auth_method: internal
auth_password_format: plain
registration_timeout: infinity
acl: {}
access_rules:
  c2s: {allow: all}
  s2s: {allow: all}
  register: {allow: all}
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_s2s_dialback: {}
  mod_register:
    access: register
    ip_access: all
`);
  // Erlang's resolver reads only this file: the bench DNS for SRV and A, no /etc/resolv.conf or /etc/hosts.
  const inetrc = join(dir, "inetrc");
  writeFileSync(inetrc, [
    '{resolv_conf, ""}.',
    '{hosts_file, ""}.',
    '{host, {127,0,0,1}, ["localhost"]}.',
    "{lookup, [file, dns]}.",
    `{nameserver, {${DNS.ip.replace(/\./g, ",")}}, ${DNS.port}}.`,
    "{timeout, 2000}.",
    "{retry, 2}.",
    "",
  ].join("\n"));
  const env = {
    ...process.env,
    ERL_LIBS: "/usr/lib/x86_64-linux-gnu",
    EJABBERD_CONFIG_PATH: file,
    EJABBERD_LOG_PATH: join(dir, "log", "ejabberd.log"),
    ERL_CRASH_DUMP: join(dir, "log", "erl_crash.dump"),
    ERL_CRASH_DUMP_BYTES: "0",
    ERL_INETRC: inetrc,
    HOME: dir,
  };
  // SRV records come from the bench DNS (inet_res, per inetrc), but ejabberd 23.01 resolves the SRV target's
  // address with net:getaddrinfo, i.e. libc: /etc/hosts or port-53 DNS only. So ejabberd runs in its own mount
  // namespace where /etc/hosts also lists the bench domains; the machine's /etc/hosts is not touched.
  const hosts = join(dir, "hosts");
  writeFileSync(hosts, readFileSync("/etc/hosts", "utf8").trimEnd() + "\n" + Object.values(NODES).map((n) => `${n.ip} ${n.domain}`).join("\n") + "\n");
  // As ../shared/bench/servers/ejabberd.sh: no distribution (no epmd), scheduler busy-wait off so that CPU time
  // is work done. TCP_NODELAY on accepted (listen options) and outgoing (connect options) sockets.
  // unshare and sh exec, so the pid is still beam.smp's.
  const [cmd, args] = pinned(opts.cpus, "unshare", ["-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, "erl",
    "+K", "true", "-P", "250000", "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none", "-noshell", "-noinput",
    "-kernel", "inet_default_listen_options", "[{nodelay,true}]",
    "-kernel", "inet_default_connect_options", "[{nodelay,true}]",
    "-mnesia", "dir", JSON.stringify(join(dir, "db")), "-ejabberd", "log_rotate_count", "0", "-s", "ejabberd",
  ]);
  const p = launch(dir, cmd, args, env);
  await ready(spec, p, dir, 60_000);
  return { spec, pid: p.pid!, dir, stop: stopper(p, 30_000) };
}

/** Start one instance with `accounts` (ejabberd's are registered in-band by the caller: see needsRegistration). */
export function start(spec: NodeSpec, accounts: Account[], opts: StartOptions): Promise<Running> {
  switch (spec.kind) {
    case "comity":
      return startComity(spec, accounts, opts);
    case "prosody":
      return startProsody(spec, accounts, opts);
    case "ejabberd":
      return startEjabberd(spec, accounts, opts);
  }
}

/** ejabberd accounts are created over c2s with XEP-0077 (ejabberdctl would need Erlang distribution). */
export function needsRegistration(spec: NodeSpec): boolean {
  return spec.kind === "ejabberd";
}

/** CPU time (user + system, all threads) of a process in clock ticks (USER_HZ, 100 on Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
  return Number(f[11]) + Number(f[12]);
}

/** Write-type system calls (write, writev: how all three servers send on TLS sockets) a process made so far. */
export function writeCalls(pid: number): number {
  const m = readFileSync(`/proc/${pid}/io`, "utf8").match(/^syscw:\s*(\d+)/m);
  return m ? Number(m[1]) : NaN;
}

/**
 * Jiffies of one CPU from /proc/stat: `busy` is everything but idle and iowait; `proc` only the time spent running
 * processes (user, nice, system), which is where the pinned servers' own CPU time is counted (not irq/softirq).
 */
export function cpuJiffies(cpu: number): { busy: number; proc: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return { busy: 0, proc: 0, total: 0 };
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((s, x) => s + x, 0);
  return { busy: total - idle, proc: (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0), total };
}

/** Software versions for the report. */
export function versions(): Record<string, string> {
  const q = (pkg: string) => {
    try {
      return execFileSync("dpkg-query", ["-W", "-f", "${Version}", pkg], { encoding: "utf8" });
    } catch {
      return "?";
    }
  };
  return { node: process.version, prosody: q("prosody"), ejabberd: q("ejabberd"), erlang: q("erlang-base"), openssl: q("openssl") };
}
