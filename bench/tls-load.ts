// STARTTLS load generator: the benchmark table of docs/benchmarks.md again, with TLS on every client
// connection (issue #6, "where OpenSSL's cost is shared by all"). Same scenarios and the same account
// convention (u<i>/p<i>) as the team's plaintext harness (../shared/bench), so the two tables read alike,
// but every connection does STARTTLS (TLS 1.3, one fixed cipher suite and group), then SASL PLAIN.
//
//   node tls-load.js probe    --port P             one login; prints the negotiated TLS and SASL details
//   node tls-load.js register --port P --users N   XEP-0077 in-band registration over STARTTLS
//   node tls-load.js login    --port P --users 5000 --concurrency 100 --pid SERVER_PID
//   node tls-load.js msg      --port P --users 1000 --rates 1000,2000,4000 --step 10 --pid SERVER_PID
//   node tls-load.js idle     --port P --users 10000 --concurrency 200 --hold 10 --pid SERVER_PID
//   node tls-load.js report   DIR [DIR ...]      markdown table (+ ratios) from the JSON files of a run
//
// Each mode prints one `RESULT {json}` line on stdout (and writes it to --out); progress goes to stderr.
// Every mode is bounded by --timeout (whole run) and --login-timeout (one connection's handshakes).
// The generator scans strings instead of parsing XML and keeps no per-message state beyond a latency
// sample, so that it stays cheap; its own CPU is reported next to the server's so that a generator-bound
// result is visible. scripts/bench-tls.sh runs it pinned to CPU 0 (compiled to JS, see there).
import net from "node:net";
import tls from "node:tls";
import { readFileSync, writeFileSync, existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

const DEFAULTS = {
  host: "127.0.0.1",
  port: 5222,
  domain: "bench.test",
  users: 1000,
  offset: 1,
  concurrency: 100,
  timeout: 170,
  loginTimeout: 60,
  pid: 0,
  out: "",
  label: "",
  rates: "1000,2000,4000,8000,16000,24000,32000,40000,48000",
  step: 10,
  drain: 5,
  satRatio: 0.95,
  satP99: 1000,
  sloP99: 100,
  extraSteps: 1,
  cpuRefRate: 4000,
  hold: 10,
  settle: 5,
  srcAddrs: 16,
  resource: "r",
  cipher: "TLS_AES_256_GCM_SHA384",
  curve: "X25519",
  userPrefix: process.env["BENCH_USER_PREFIX"] ?? "u",
  passPrefix: process.env["BENCH_PASS_PREFIX"] ?? "p",
};
type Options = typeof DEFAULTS;
const MODES = ["probe", "register", "login", "msg", "idle", "report"] as const;
type Mode = (typeof MODES)[number];

const argv = process.argv.slice(2);
const mode = argv.shift() as Mode;
if (!MODES.includes(mode)) {
  console.error(`usage: tls-load ${MODES.join("|")} [--option value ...]`);
  process.exit(2);
}
if (mode === "report") {
  report(argv);
  process.exit(0);
}
const opt: Options = { ...DEFAULTS };
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i]!.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof Options;
  const value = argv[i + 1];
  if (!(key in DEFAULTS) || value === undefined) {
    console.error(`unknown option or missing value: ${argv[i]}`);
    process.exit(2);
  }
  (opt as Record<string, string | number>)[key] = typeof DEFAULTS[key] === "number" ? Number(value) : value;
}

function log(...parts: unknown[]): void {
  console.error(`[${new Date().toISOString().slice(11, 19)}] tls-${mode}:`, ...parts);
}
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------ measurements from /proc
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime+stime of a process (all threads), in seconds; null when unknown. */
function processCpuSeconds(pid: number): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3 (state)
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Resident set size in KiB; null when unknown. */
function rssKib(pid: number): number | null {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Seconds that the threads of a process spent runnable but waiting for a CPU (/proc/PID/task/N/schedstat,
 * second field): how much other work on the same core got in the way (this machine is shared).
 */
function runQueueSeconds(pid: number | "self"): number | null {
  if (!pid) return null;
  try {
    let ns = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[1]);
      } catch {
        // the thread ended meanwhile
      }
    }
    return ns / 1e9;
  } catch {
    return null;
  }
}

interface CpuReading { wall_s: number; gen_cpu_pct: number; server_cpu_pct: number | null; gen_wait_pct: number | null; server_wait_pct: number | null }

/**
 * Starts a CPU meter; calling the result gives generator and server CPU in % of one core since the start,
 * and the time each spent waiting for its core, in % of the wall time.
 */
function cpuMeter(): () => CpuReading {
  const t0 = performance.now();
  const g0 = process.cpuUsage();
  const s0 = processCpuSeconds(opt.pid);
  const gw0 = runQueueSeconds("self");
  const sw0 = runQueueSeconds(opt.pid);
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const g = process.cpuUsage(g0);
    const s1 = processCpuSeconds(opt.pid);
    const gw1 = runQueueSeconds("self");
    const sw1 = runQueueSeconds(opt.pid);
    const pct = (a: number | null, b: number | null) => (a === null || b === null ? null : round((100 * (b - a)) / wall, 1));
    return {
      wall_s: round(wall, 3),
      gen_cpu_pct: round((100 * (g.user + g.system)) / 1e6 / wall, 1),
      server_cpu_pct: pct(s0, s1),
      gen_wait_pct: pct(gw0, gw1),
      server_wait_pct: pct(sw0, sw1),
    };
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Percentile of an ascending array (nearest rank). */
function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!, 2);
}

// ------------------------------------------------------------------ one client connection
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
const streamHeader = () =>
  `<?xml version='1.0'?><stream:stream to='${opt.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
const FEATURES_END = /<\/(?:stream:)?features>/;
const IQ_END = /<\/iq>|<iq\b[^>]*\/>/;

// Source addresses 127.0.100.1-N: spreads the four-tuples so ephemeral ports and TIME_WAIT never run out
// across back-to-back scenarios.
const sourceAddresses: string[] = [];
if (opt.host.startsWith("127.")) for (let i = 1; i <= opt.srcAddrs; i++) sourceAddresses.push(`127.0.100.${i}`);
let connectionCount = 0;

let sharedContext: tls.SecureContext | null = null;

/**
 * One client context for every connection: TLS 1.3 only, one cipher suite and one group, so that every server
 * negotiates the same thing. (Without it, tls.connect builds a context per connection and loads the whole
 * CA store each time, about 1.5 ms of generator CPU per login.) No session is ever resumed.
 */
function clientContext(): tls.SecureContext {
  sharedContext ??= tls.createSecureContext({ minVersion: "TLSv1.3", maxVersion: "TLSv1.3", ciphers: opt.cipher, ecdhCurve: opt.curve });
  return sharedContext;
}

/** What every TLS session negotiated, as "protocol cipher group" → count: proves that no server fell back. */
const tlsSeen = new Map<string, number>();

type Purpose = "login" | "register";
type Phase = "features0" | "proceed" | "handshake" | "features1" | "auth" | "register" | "features2" | "bind" | "session" | "ping" | "online" | "closed";

class Client {
  readonly index: number;
  readonly purpose: Purpose;
  readonly raw: net.Socket;
  sock: net.Socket;
  phase: Phase = "features0";
  buf = "";
  jid = "";
  tlsInfo = "";
  features = "";
  loginMs = -1;
  existed = false;
  #settled = false;
  #t0 = performance.now();
  #timer: NodeJS.Timeout | null;
  #done: (c: Client, err: Error | null) => void;

  constructor(index: number, purpose: Purpose, done: (c: Client, err: Error | null) => void) {
    this.index = index;
    this.purpose = purpose;
    this.#done = done;
    const o: net.NetConnectOpts = { host: opt.host, port: opt.port, noDelay: true };
    if (sourceAddresses.length) o.localAddress = sourceAddresses[connectionCount++ % sourceAddresses.length]!;
    this.raw = this.sock = net.connect(o);
    this.raw.setEncoding("latin1"); // the traffic is ASCII: the cheapest decoding
    this.raw.on("connect", () => this.raw.write(streamHeader()));
    this.raw.on("data", this.#onData);
    this.raw.on("error", this.#onError);
    this.raw.on("close", this.#onClose);
    this.#timer = setTimeout(() => this.fail(`timeout in phase ${this.phase}`), opt.loginTimeout * 1000);
  }

  /** Closes with a TCP RST (SO_LINGER 0), so no TIME_WAIT is left behind. */
  close(): void {
    this.phase = "closed";
    if (this.#timer) clearTimeout(this.#timer);
    try {
      if (!this.raw.destroyed) this.raw.resetAndDestroy();
    } catch {
      this.raw.destroy(); // not connected yet: nothing to reset
    }
    if (this.sock !== this.raw) this.sock.destroy();
  }

  fail(why: string): void {
    const wasOnline = this.phase === "online";
    this.close();
    if (!this.#settled) this.#settle(new Error(why));
    else if (wasOnline) onSessionLost(this, why);
  }

  #settle(err: Error | null): void {
    this.#settled = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#done(this, err);
  }

  #onError = (e: NodeJS.ErrnoException) => this.fail(`socket: ${e.code ?? e.message}`);
  #onClose = () => {
    if (this.phase !== "closed") this.fail(`closed by the server in phase ${this.phase}`);
  };

  #startTls(): void {
    this.phase = "handshake";
    this.raw.off("data", this.#onData);
    this.raw.off("close", this.#onClose);
    const t = tls.connect({
      socket: this.raw,
      servername: opt.domain,
      secureContext: clientContext(),
      rejectUnauthorized: false, // self-signed bench certificate; the handshake is the same work either way
    });
    this.sock = t;
    t.setEncoding("latin1");
    t.on("data", this.#onData);
    t.on("error", this.#onError);
    t.on("close", this.#onClose);
    t.once("secureConnect", () => {
      const cipher = t.getCipher();
      const key = t.getEphemeralKeyInfo() as { name?: string } | null;
      this.tlsInfo = `${t.getProtocol()} ${cipher.standardName ?? cipher.name} ${key?.name ?? "?"}`;
      tlsSeen.set(this.tlsInfo, (tlsSeen.get(this.tlsInfo) ?? 0) + 1);
      this.phase = "features1";
      t.write(streamHeader());
    });
  }

  #onData = (d: string) => {
    if (this.phase === "online") {
      onOnlineData(this, d);
      return;
    }
    this.buf += d;
    if (this.buf.includes("<stream:error")) {
      const at = this.buf.indexOf("<stream:error");
      this.fail(`stream error: ${this.buf.slice(at, at + 200)}`);
      return;
    }
    switch (this.phase) {
      case "features0":
        if (!FEATURES_END.test(this.buf)) return;
        if (!this.buf.includes(NS_TLS)) return this.fail("STARTTLS not offered");
        this.buf = "";
        this.phase = "proceed";
        this.sock.write(`<starttls xmlns='${NS_TLS}'/>`);
        return;
      case "proceed":
        if (this.buf.includes("<proceed")) {
          this.buf = "";
          this.#startTls();
        } else if (this.buf.includes("<failure")) this.fail("STARTTLS refused");
        return;
      case "features1": {
        if (!FEATURES_END.test(this.buf)) return;
        this.features = this.buf.slice(this.buf.search(/<(?:stream:)?features/));
        this.buf = "";
        if (this.purpose === "register") {
          this.phase = "register";
          this.sock.write(
            `<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${user(this.index)}</username>` +
              `<password>${pass(this.index)}</password></query></iq>`,
          );
          return;
        }
        if (!this.features.includes(">PLAIN<")) return this.fail("SASL PLAIN not offered after STARTTLS");
        this.phase = "auth";
        const token = Buffer.from(`\0${user(this.index)}\0${pass(this.index)}`).toString("base64");
        this.sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${token}</auth>`);
        return;
      }
      case "register":
        if (!IQ_END.test(this.buf)) return;
        if (this.buf.includes("<conflict")) this.existed = true;
        else if (!/type=['"]result['"]/.test(this.buf)) return this.fail(`register: ${this.buf.slice(0, 200)}`);
        this.#settle(null);
        this.close();
        return;
      case "auth":
        if (this.buf.includes("<success")) {
          this.buf = "";
          this.phase = "features2";
          this.sock.write(streamHeader());
        } else if (this.buf.includes("<failure")) this.fail(`SASL failure: ${this.buf.slice(0, 200)}`);
        return;
      case "features2": {
        const m = FEATURES_END.exec(this.buf);
        if (!m) return;
        const f = this.buf.slice(0, m.index);
        const s = f.indexOf("urn:ietf:params:xml:ns:xmpp-session");
        const needSession = s >= 0 && !f.slice(s, s + 120).includes("<optional");
        this.buf = "";
        this.phase = needSession ? "session" : "bind";
        this.sock.write(
          `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${opt.resource}</resource></bind></iq>`,
        );
        return;
      }
      case "bind":
      case "session": {
        if (!IQ_END.test(this.buf)) return;
        if (!this.jid) {
          const j = /<jid>([^<]+)<\/jid>/.exec(this.buf);
          if (!j || !/type=['"]result['"]/.test(this.buf)) return this.fail(`bind: ${this.buf.slice(0, 200)}`);
          this.jid = j[1]!;
          this.buf = "";
          if (this.phase === "session") {
            this.sock.write(`<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
            return;
          }
        } else this.buf = ""; // the session reply
        // Initial presence and a ping, pipelined: the ping's reply proves the presence was processed.
        this.phase = "ping";
        this.sock.write(`<presence/><iq type='get' id='ping1' to='${opt.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
        return;
      }
      case "ping":
        if (!/<iq\b[^>]*id=['"]ping1['"]/.test(this.buf)) return;
        this.buf = "";
        this.phase = "online";
        this.loginMs = performance.now() - this.#t0;
        this.#settle(null);
        return;
      default:
        return;
    }
  };
}

const user = (i: number) => `${opt.userPrefix}${i}`;
const pass = (i: number) => `${opt.passPrefix}${i}`;

let onOnlineData: (c: Client, d: string) => void = () => {};
let onSessionLost: (c: Client, why: string) => void = () => {};

interface Batch { clients: Client[]; failed: number; errors: Record<string, number>; loginMs: number[] }

/** Runs n logins (or registrations) with at most `window` connections in their handshakes at once. */
function runMany(n: number, window: number, purpose: Purpose, onEach?: (c: Client, err: Error | null) => void): Promise<Batch> {
  return new Promise((resolve) => {
    const batch: Batch = { clients: [], failed: 0, errors: {}, loginMs: [] };
    let started = 0;
    let finished = 0;
    const done = (c: Client, err: Error | null) => {
      finished++;
      if (err) {
        batch.failed++;
        const k = err.message.slice(0, 120);
        batch.errors[k] = (batch.errors[k] ?? 0) + 1;
      } else if (c.loginMs >= 0) batch.loginMs.push(c.loginMs);
      onEach?.(c, err);
      if (finished === n) resolve(batch);
      else next();
    };
    const next = () => {
      while (started < n && started - finished < window) batch.clients.push(new Client(opt.offset + started++, purpose, done));
    };
    if (n === 0) resolve(batch);
    else next();
  });
}

// ------------------------------------------------------------------ scenarios
const result: Record<string, unknown> = {
  mode, label: opt.label, host: opt.host, port: opt.port, domain: opt.domain, users: opt.users,
  tls_offered: { version: "TLSv1.3", cipher: opt.cipher, group: opt.curve },
};
let finishing = false;

function finish(code: number): never {
  if (!finishing) {
    finishing = true;
    result["tls_negotiated"] = Object.fromEntries(tlsSeen);
    result["gen_rss_kib"] = rssKib(process.pid);
    const json = JSON.stringify(result);
    if (opt.out) writeFileSync(opt.out, json + "\n");
    console.log("RESULT " + json);
  }
  process.exit(code);
}

setTimeout(() => {
  log(`hard timeout of ${opt.timeout} s reached`);
  result["error"] = "timeout";
  finish(3);
}, opt.timeout * 1000).unref();

async function probe(): Promise<number> {
  const b = await runMany(1, 1, "login");
  const c = b.clients[0]!;
  const t = c.sock instanceof tls.TLSSocket ? c.sock : null;
  const cert = t?.getPeerCertificate();
  Object.assign(result, {
    ok: b.failed === 0, errors: b.errors, login_ms: round(c.loginMs, 2), tls: c.tlsInfo,
    mechanisms: [...c.features.matchAll(/<mechanism>([^<]+)<\/mechanism>/g)].map((m) => m[1]),
    peer_certificate: cert ? { subject: cert.subject?.CN, fingerprint256: cert.fingerprint256 } : null,
    session_reused: t?.isSessionReused() ?? null, jid: c.jid,
  });
  log(`${c.tlsInfo || "no TLS"}; mechanisms ${(result["mechanisms"] as string[]).join(",")}; ${b.failed ? JSON.stringify(b.errors) : "login ok"}`);
  c.close();
  return b.failed ? 1 : 0;
}

async function register(): Promise<number> {
  const cpu = cpuMeter();
  let existed = 0;
  const b = await runMany(opt.users, opt.concurrency, "register", (c, err) => {
    if (!err && c.existed) existed++;
  });
  const r = cpu();
  Object.assign(result, { ok: opt.users - b.failed, existed, failed: b.failed, errors: b.errors, per_s: round((opt.users - b.failed) / r.wall_s, 1), ...r });
  log(`registered ${opt.users - b.failed}/${opt.users} (${existed} existed) in ${r.wall_s} s`);
  return b.failed ? 1 : 0;
}

async function login(): Promise<number> {
  const cpu = cpuMeter();
  const b = await runMany(opt.users, opt.concurrency, "login");
  const r = cpu();
  const ok = opt.users - b.failed;
  const perSecond = ok / r.wall_s;
  b.loginMs.sort((x, y) => x - y);
  Object.assign(result, {
    concurrency: opt.concurrency, ok, failed: b.failed, errors: b.errors, secs: r.wall_s,
    logins_per_s: round(perSecond, 1), login_ms_p50: percentile(b.loginMs, 50), login_ms_p99: percentile(b.loginMs, 99),
    ...r,
    // CPU time per login: % of a core × 10 ms / (logins per second)
    server_cpu_ms_per_login: r.server_cpu_pct === null || !ok ? null : round((r.server_cpu_pct * 10) / perSecond, 3),
    gen_cpu_ms_per_login: ok ? round((r.gen_cpu_pct * 10) / perSecond, 3) : null,
    server_rss_kib_after: rssKib(opt.pid),
  });
  log(`${ok} logins in ${r.wall_s} s = ${result["logins_per_s"]}/s, p50 ${result["login_ms_p50"]} p99 ${result["login_ms_p99"]} ms (gen ${r.gen_cpu_pct} %, server ${r.server_cpu_pct} %; waiting for CPU ${r.gen_wait_pct} / ${r.server_wait_pct} %)`);
  for (const c of b.clients) c.close();
  return b.failed ? 1 : 0;
}

async function idle(): Promise<number> {
  await sleep(opt.settle * 1000);
  const rss0 = rssKib(opt.pid);
  const cpu = cpuMeter();
  const b = await runMany(opt.users, opt.concurrency, "login");
  const connect = cpu();
  const ok = opt.users - b.failed;
  log(`${ok} sessions up in ${connect.wall_s} s; holding ${opt.hold} s`);
  const holdCpu = cpuMeter();
  const samples: (number | null)[] = [];
  for (let k = 0; k < opt.hold; k++) {
    await sleep(1000);
    samples.push(rssKib(opt.pid));
  }
  const hold = holdCpu();
  const alive = b.clients.filter((c) => c.phase === "online").length;
  const rssN = samples.at(-1) ?? null;
  Object.assign(result, {
    ok, failed: b.failed, errors: b.errors, alive_at_end: alive, connect_secs: connect.wall_s,
    logins_per_s: round(ok / connect.wall_s, 1), connect_gen_cpu_pct: connect.gen_cpu_pct, connect_server_cpu_pct: connect.server_cpu_pct,
    connect_gen_wait_pct: connect.gen_wait_pct, connect_server_wait_pct: connect.server_wait_pct,
    hold_secs: opt.hold, hold_gen_cpu_pct: hold.gen_cpu_pct, hold_server_cpu_pct: hold.server_cpu_pct,
    server_rss_kib_0: rss0, server_rss_kib_n: rssN, rss_samples_kib: samples,
    rss_kib_per_conn: rss0 !== null && rssN !== null && alive ? round((rssN - rss0) / alive, 2) : null,
  });
  log(`RSS ${rss0} → ${rssN} KiB = ${result["rss_kib_per_conn"]} KiB per connection (${alive} alive)`);
  for (const c of b.clients) c.close();
  return b.failed ? 1 : 0;
}

interface Step {
  target_rate: number; sent: number; sent_rate: number; delivered_in_window: number; delivered_rate: number;
  delivered_total: number; undelivered_after_drain: number; drain_s: number;
  lat_ms_p50: number | null; lat_ms_p90: number | null; lat_ms_p99: number | null; lat_ms_max: number | null;
  gen_cpu_pct: number; server_cpu_pct: number | null; gen_wait_pct: number | null; server_wait_pct: number | null; server_cpu_us_per_msg: number | null; gen_cpu_us_per_msg: number | null;
  saturated: boolean;
}

async function msg(): Promise<number> {
  // Body: "<send time, ms> <step> " + padding, about 100 bytes like a typical chat line.
  const PAD = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt";
  let current = -1;
  const received: number[] = [];
  const latencies: number[][] = [];
  let inWindow = 0;
  let lost = 0;
  let unparsed = 0;
  onSessionLost = (c, why) => {
    if (++lost <= 5) log(`session ${c.jid} lost: ${why}`);
  };
  onOnlineData = (c, d) => {
    const b = c.buf + d;
    let pos = 0;
    for (;;) {
      const end = b.indexOf("</message>", pos);
      if (end < 0) break;
      const body = b.lastIndexOf("<body>", end);
      if (body >= pos) {
        const space = b.indexOf(" ", body + 6);
        const sentAt = Number(b.slice(body + 6, space));
        const step = parseInt(b.slice(space + 1, space + 4), 10);
        if (sentAt > 0 && step >= 0 && step < latencies.length) {
          latencies[step]!.push(performance.now() - sentAt);
          received[step]!++;
          if (step === current) inWindow++;
        } else unparsed++;
      } else unparsed++;
      pos = end + 10;
    }
    let rest = pos ? b.slice(pos) : b;
    // Keep only what may be the start of a message; other stanzas (iq, presence) are dropped.
    const m = rest.lastIndexOf("<message");
    if (m > 0) rest = rest.slice(m);
    else if (m < 0 && rest.length > 4096) rest = rest.slice(-16);
    c.buf = rest;
  };

  const loginCpu = cpuMeter();
  const b = await runMany(opt.users, opt.concurrency, "login");
  const online = b.clients.filter((c) => c.phase === "online");
  result["login"] = { ok: online.length, failed: b.failed, errors: b.errors, ...loginCpu() };
  log(`${online.length}/${opt.users} online`);
  if (online.length < 2) return 1;
  await sleep(1000);

  const rates = opt.rates.split(",").map(Number).filter((x) => x > 0);
  if (rates.length > 99) throw new Error("at most 99 rate steps");
  const steps: Step[] = [];
  const n = online.length;
  let next = 0;
  let saturatedSteps = 0;
  for (let si = 0; si < rates.length; si++) {
    const rate = rates[si]!;
    current = si;
    received.push(0);
    latencies.push([]);
    inWindow = 0;
    let sent = 0;
    const duration = opt.step * 1000;
    const cpu = cpuMeter();
    const t0 = performance.now();
    // Open loop: every 5 ms, send what the target rate says is due, whatever came back.
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        const elapsed = Math.min(now - t0, duration);
        const due = Math.floor((rate * elapsed) / 1000) - sent;
        const stamp = now.toFixed(3);
        for (let k = 0; k < due; k++) {
          const from = next;
          next = (next + 1) % n; // senders take turns
          let to = Math.floor(Math.random() * (n - 1)); // a random other user
          if (to >= from) to++;
          online[from]!.sock.write(`<message to='${online[to]!.jid}' type='chat' id='m${sent + k}'><body>${stamp} ${si} ${PAD}</body></message>`);
        }
        if (due > 0) sent += due;
        if (now - t0 >= duration) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    const windowReceived = inWindow;
    const c = cpu();
    const drainStart = performance.now();
    while (received[si]! < sent && performance.now() - drainStart < opt.drain * 1000) await sleep(50);
    const lat = latencies[si]!.sort((x, y) => x - y);
    const deliveredRate = windowReceived / opt.step;
    const st: Step = {
      target_rate: rate, sent, sent_rate: round(sent / opt.step, 1), delivered_in_window: windowReceived,
      delivered_rate: round(deliveredRate, 1), delivered_total: received[si]!, undelivered_after_drain: sent - received[si]!,
      drain_s: round((performance.now() - drainStart) / 1000, 2),
      lat_ms_p50: percentile(lat, 50), lat_ms_p90: percentile(lat, 90), lat_ms_p99: percentile(lat, 99), lat_ms_max: percentile(lat, 100),
      gen_cpu_pct: c.gen_cpu_pct, server_cpu_pct: c.server_cpu_pct, gen_wait_pct: c.gen_wait_pct, server_wait_pct: c.server_wait_pct,
      server_cpu_us_per_msg: c.server_cpu_pct === null || !deliveredRate ? null : round((c.server_cpu_pct * 1e4) / deliveredRate, 1),
      gen_cpu_us_per_msg: deliveredRate ? round((c.gen_cpu_pct * 1e4) / deliveredRate, 1) : null,
      saturated: false,
    };
    st.saturated = deliveredRate < opt.satRatio * rate || (st.lat_ms_p99 !== null && st.lat_ms_p99 > opt.satP99) || st.undelivered_after_drain > 0.01 * sent;
    steps.push(st);
    latencies[si] = [];
    log(
      `step ${si} ${rate}/s: delivered ${st.delivered_rate}/s p50 ${st.lat_ms_p50} p99 ${st.lat_ms_p99} ms, undelivered ${st.undelivered_after_drain}, ` +
        `gen ${st.gen_cpu_pct} % server ${st.server_cpu_pct} % (${st.server_cpu_us_per_msg} µs/msg; waiting for CPU ${st.gen_wait_pct} / ${st.server_wait_pct} %)${st.saturated ? " SATURATED" : ""}`,
    );
    if (st.saturated && ++saturatedSteps > opt.extraSteps) break;
    await sleep(500);
  }
  const best = steps.reduce((a, s) => (s.delivered_rate > a.delivered_rate ? s : a), steps[0]!);
  const withinSlo = steps.filter(
    (s) => s.delivered_rate >= opt.satRatio * s.target_rate && s.undelivered_after_drain <= 0.01 * s.sent && s.lat_ms_p99 !== null && s.lat_ms_p99 <= opt.sloP99,
  );
  const slo = withinSlo.length ? withinSlo.reduce((a, s) => (s.target_rate > a.target_rate ? s : a)) : null;
  const ref = steps.find((s) => s.target_rate === opt.cpuRefRate) ?? null;
  Object.assign(result, {
    steps, sessions_lost: lost, unparsed, saturated: steps.some((s) => s.saturated),
    max_delivered_rate: best.delivered_rate, max_delivered_at_target: best.target_rate,
    gen_cpu_pct_at_max: best.gen_cpu_pct, server_cpu_pct_at_max: best.server_cpu_pct,
    slo_p99_ms: opt.sloP99, slo_rate: slo?.target_rate ?? null, slo_lat_ms_p50: slo?.lat_ms_p50 ?? null, slo_lat_ms_p99: slo?.lat_ms_p99 ?? null,
    first_step: steps[0], cpu_ref_rate: opt.cpuRefRate,
    server_cpu_us_per_msg_at_ref: ref?.server_cpu_us_per_msg ?? null, gen_cpu_us_per_msg_at_ref: ref?.gen_cpu_us_per_msg ?? null,
  });
  for (const c of online) c.close();
  return 0;
}

// ------------------------------------------------------------------ report
/** Prints the markdown table of one run: one row per results dir (probe/login/msg/idle.json), then ratios. */
function report(dirs: string[]): void {
  const load = (dir: string, name: string): Record<string, any> | null => {
    const f = join(dir, `${name}.json`);
    if (!existsSync(f)) return null;
    try {
      return JSON.parse(readFileSync(f, "utf8"));
    } catch {
      return null;
    }
  };
  const num = (v: unknown, digits = 0): string =>
    typeof v === "number" ? v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "n/a";
  const mib = (k: unknown) => (typeof k === "number" ? num(k / 1024) : "n/a");
  const rows = dirs.filter((dir) => statSync(dir).isDirectory()).map((dir) => {
    const p = load(dir, "probe"), l = load(dir, "login"), m = load(dir, "msg"), i = load(dir, "idle");
    const label = (p ?? l ?? m ?? i)?.["label"] || dir.split("/").pop();
    const first = m?.["first_step"];
    const ref = (m?.["steps"] as Record<string, any>[] | undefined)?.find((st) => st["target_rate"] === m?.["cpu_ref_rate"]);
    const w = (g: unknown, sv: unknown) => `${num(g)} / ${num(sv)}`;
    const wait = [
      l ? `login ${w(l["gen_wait_pct"], l["server_wait_pct"])}` : null,
      ref ? `msg @${num(ref["target_rate"])}/s ${w(ref["gen_wait_pct"], ref["server_wait_pct"])}` : null,
      i ? `idle connect ${w(i["connect_gen_wait_pct"], i["connect_server_wait_pct"])}` : null,
    ].filter(Boolean).join(", ");
    return {
      label,
      wait,
      tls: p?.["tls"] ?? "n/a",
      cells: [
        label,
        l ? num(l["logins_per_s"]) + (l["failed"] ? ` (${l["failed"]} failed)` : "") : "n/a",
        l ? `${num(l["login_ms_p50"])} / ${num(l["login_ms_p99"])}` : "n/a",
        l ? num(l["server_cpu_ms_per_login"], 2) : "n/a",
        l ? `${num(l["gen_cpu_pct"])} / ${num(l["server_cpu_pct"])}` : "n/a",
        m ? num(m["max_delivered_rate"]) + (m["saturated"] === false ? " (not saturated)" : "") : "n/a",
        first ? `${num(first["lat_ms_p50"], 1)} / ${num(first["lat_ms_p99"], 1)}` : "n/a",
        m ? num(m["slo_rate"]) : "n/a",
        m ? num(m["server_cpu_us_per_msg_at_ref"], 1) : "n/a",
        m ? `${num(m["gen_cpu_pct_at_max"])} / ${num(m["server_cpu_pct_at_max"])}` : "n/a",
        i ? num(i["rss_kib_per_conn"], 1) + (i["failed"] ? ` (${i["failed"]} failed)` : "") : "n/a",
        i ? `${mib(i["server_rss_kib_0"])} → ${mib(i["server_rss_kib_n"])}` : "n/a",
      ],
      v: {
        logins: l?.["logins_per_s"], loginCpu: l?.["server_cpu_ms_per_login"], slo: m?.["slo_rate"], max: m?.["max_delivered_rate"],
        cpuMsg: m?.["server_cpu_us_per_msg_at_ref"], kib: i?.["rss_kib_per_conn"],
      },
    };
  });
  const head = [
    "server", "logins/s", "login p50 / p99 ms", "server CPU ms per login", "login CPU % gen / server", "max msg/s",
    "p50 / p99 ms @1,000 msg/s", "msg/s with p99 ≤ 100 ms", "CPU µs per message @4,000 msg/s", "msg CPU % gen / server @max",
    "KiB per idle connection", "RSS MiB 0 → N",
  ];
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.cells.join(" | ")} |`);
  console.log("");
  for (const r of rows) console.log(`TLS negotiated with ${r.label}: ${r.tls}`);
  console.log("\nTime spent waiting for a CPU (other work on the pinned cores), % of wall time, generator / server:");
  for (const r of rows) console.log(`${r.label}: ${r.wait}`);
  const ours = rows.find((r) => /comity/i.test(String(r.label)));
  if (!ours || rows.length < 2) return;
  const q = (a: unknown, b: unknown) => (typeof a === "number" && typeof b === "number" && b ? (a / b).toFixed(2) : "n/a");
  console.log("\nRatios (this run; Comity / other): logins/s and msg/s higher is better, CPU and KiB lower is better.");
  for (const r of rows) {
    if (r === ours) continue;
    console.log(
      `Comity / ${r.label}: logins/s ×${q(ours.v.logins, r.v.logins)}, CPU per login ×${q(ours.v.loginCpu, r.v.loginCpu)}, ` +
        `msg/s at p99 ≤ 100 ms ×${q(ours.v.slo, r.v.slo)}, max msg/s ×${q(ours.v.max, r.v.max)}, ` +
        `CPU per message ×${q(ours.v.cpuMsg, r.v.cpuMsg)}, KiB per connection ×${q(ours.v.kib, r.v.kib)}`,
    );
  }
}

const scenarios: Record<Exclude<Mode, "report">, () => Promise<number>> = { probe, register, login, msg, idle };
scenarios[mode as Exclude<Mode, "report">]().then(
  (code) => finish(code),
  (e: unknown) => {
    log("error", e);
    result["error"] = String(e);
    finish(4);
  },
);
