// Federation throughput: messages per second over one s2s link between two servers of the same or of
// different software (Comity, Prosody 0.12, ejabberd 23.01), all started here with the same settings
// (bench/s2s/servers.ts: STARTTLS + dialback with self-signed certificates, DNS SRV, TCP_NODELAY, warn logs,
// no shapers). A sender on server A pushes chat messages to a receiver on server B, at most --window in flight.
//   flock /tmp/comity-bench.lock node --import tsx bench/s2s-throughput.ts \
//     [--pairs comity,prosody,ejabberd,prosody-ejabberd,ejabberd-prosody] [--messages 20000] [--window 500]
//     [--runs 5] [--warmup 10000] [--latency-messages 1000] [--timeout 120] [--pin 1] [--profile 0] [--comity DIR]
//     [--max-others 0.1] [--max-attempts 15] [--wait-quiet 120]
// A pair "x" is x-a → x-b; "x-y" is x-a → y-a (x, y: comity, prosody, ejabberd). Both servers of a pair run on
// CPU 1 (--server-cpus), this process (both clients) and the DNS on CPU 0 (--client-cpus); --pin 0: no pinning.
// Every pair starts from fresh processes and empty storage, then a warm-up, then --runs measured runs of
// --messages each: delivered msg/s, latency p50/p99 with the window full, CPU time (/proc/PID/stat) and write
// calls (/proc/PID/io) of each server process per message; then --latency-messages one at a time (window 1).
// The machine is shared: each pair waits up to --wait-quiet s for CPU 1 to be idle, and a run in which other
// processes took more than --max-others of CPU 1 is kept in results.json but repeated (--max-attempts in all).
// --profile 1 runs Comity with --cpu-prof (profiles in the results dir). Comity runs from dist/ (npm run build) of
// this checkout, or of --comity DIR. Results (table.md, results.json) go to /tmp/comity-bench/s2s/results/<time>/.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Link, register, type Endpoint, type PhaseResult } from "./s2s/load.ts";
import { BASE, C2S_PORT, NODES, cpuJiffies, cpuTicks, needsRegistration, start, startDns, versions, writeCalls, type Account, type NodeSpec, type Running } from "./s2s/servers.ts";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const num = (k: string, d: number) => Number(args.get(k) ?? d);
const PAIRS = (args.get("pairs") ?? "comity,prosody,ejabberd,prosody-ejabberd,ejabberd-prosody").split(",").filter(Boolean);
const N = num("messages", 20_000);
const WINDOW = num("window", 500);
const RUNS = num("runs", 5);
const WARMUP = num("warmup", 10_000);
const LATENCY_N = num("latency-messages", 1_000);
const TIMEOUT_MS = num("timeout", 120) * 1000;
const STALL_MS = num("stall", 20) * 1000;
const PIN = num("pin", 1) === 1;
const SERVER_CPUS = args.get("server-cpus") ?? "1";
const CLIENT_CPUS = args.get("client-cpus") ?? "0";
const PROFILE = num("profile", 0) === 1;
const MAX_OTHERS = num("max-others", 0.1);
const MAX_ATTEMPTS = num("max-attempts", 3 * RUNS);
const SERVER_CPU = Number(SERVER_CPUS.split(/[,-]/)[0]);
const CLIENT_CPU = Number(CLIENT_CPUS.split(/[,-]/)[0]);
const WAIT_QUIET_MS = num("wait-quiet", 120) * 1000;
// --comity DIR: run another Comity tree (e.g. `git archive HEAD` unpacked and built), default this checkout.
const COMITY = args.get("comity") ?? new URL("..", import.meta.url).pathname;
const NAMES: Record<string, string> = { comity: "Comity", prosody: "Prosody", ejabberd: "ejabberd" };

const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
const OUT = args.get("out") ?? join(BASE, "results", stamp);
mkdirSync(OUT, { recursive: true });

if (PAIRS.some((p) => p.startsWith("comity") || p.endsWith("comity")) && !existsSync(join(COMITY, "dist", "cli", "main.js"))) {
  console.error(`${join(COMITY, "dist")} is missing: run npm run build first`);
  process.exit(1);
}
if (PIN) execFileSync("taskset", ["-a", "-p", "-c", CLIENT_CPUS, String(process.pid)], { stdio: "ignore" });

function pairNodes(pair: string): [NodeSpec, NodeSpec] {
  const [x, y] = pair.split("-");
  const a = NODES[`${x}-a`];
  const b = y === undefined ? NODES[`${x}-b`] : NODES[`${y}-a`];
  if (!a || !b) throw new Error(`unknown pair ${pair} (want comity, prosody, ejabberd or x-y of those)`);
  return [a, b];
}

interface RunResult extends PhaseResult {
  /** Server CPU µs per delivered message: sender's server, receiver's server. */
  cpuA: number;
  cpuB: number;
  /** write/writev calls per delivered message: sender's server, receiver's server. */
  writesA: number;
  writesB: number;
  /** Share of the server CPU that was busy (all processes on it), and the share the two servers used. */
  serverCpuBusy: number;
  pairCpu: number;
  /** Share of the server CPU used by other processes; more than --max-others makes the run contended. */
  othersCpu: number;
  /** How busy the clients' CPU was (all processes). */
  clientCpuBusy: number;
  contended: boolean;
}

interface PairResult {
  pair: string;
  label: string;
  a: string;
  b: string;
  runs: RunResult[];
  latency?: PhaseResult;
  /** How busy the server CPU was (all processes) during the one-at-a-time phase. */
  latencyCpuBusy?: number;
  /** CLOCK_MONOTONIC µs around the measured runs, to cut CPU profiles to them (bench/s2s/cpuprofile.ts). */
  window?: { from: number; to: number };
  error?: string;
}

/** CLOCK_MONOTONIC in µs, the clock V8 stamps profile samples with. */
function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "n/a");

/** Wait (at most --wait-quiet seconds) until the server CPU is under 15 % busy over 2 s: the machine is shared. */
async function waitQuiet(): Promise<number> {
  const deadline = Date.now() + WAIT_QUIET_MS;
  for (;;) {
    const j0 = cpuJiffies(SERVER_CPU);
    await new Promise((r) => setTimeout(r, 2000));
    const j1 = cpuJiffies(SERVER_CPU);
    const busy = j1.total > j0.total ? (j1.busy - j0.busy) / (j1.total - j0.total) : 0;
    if (busy < 0.15 || Date.now() > deadline) return busy;
  }
}

async function measurePair(pair: string): Promise<PairResult> {
  const [sa, sb] = pairNodes(pair);
  const label = `${NAMES[sa.kind]} → ${NAMES[sb.kind]}`;
  const result: PairResult = { pair, label, a: sa.domain, b: sb.domain, runs: [] };
  const alice: Account = { user: "alice", password: "bench-pass" };
  const bob: Account = { user: "bob", password: "bench-pass" };
  const opts = { cpus: PIN ? SERVER_CPUS : undefined, comityRoot: COMITY, ...(PROFILE ? { nodeFlags: ["--cpu-prof", "--cpu-prof-dir", join(OUT, `prof-${pair}`)] } : {}) };
  const running: Running[] = [];
  let link: Link | undefined;
  const idle = await waitQuiet();
  if (idle >= 0.15) console.error(`${label}: CPU ${SERVER_CPU} still ${fmt(idle * 100)} % busy with other work after ${WAIT_QUIET_MS / 1000} s; going ahead`);
  try {
    const ra = await start(sa, [alice], opts);
    running.push(ra);
    const rb = await start(sb, [bob], opts);
    running.push(rb);
    const from: Endpoint = { host: sa.ip, port: C2S_PORT, domain: sa.domain, ...alice };
    const to: Endpoint = { host: sb.ip, port: C2S_PORT, domain: sb.domain, ...bob };
    if (needsRegistration(sa)) await register(from);
    if (needsRegistration(sb)) await register(to);
    link = await Link.open(from, to);
    // The first message sets up the link (DNS, TCP, STARTTLS, dialback both ways); then a warm-up.
    const first = await link.phase(1, 1, { timeoutMs: 30_000, stallMs: 30_000 });
    if (first.received !== 1) throw new Error("the first message did not arrive within 30 s: no s2s link");
    const warm = await link.phase(WARMUP, WINDOW, { timeoutMs: TIMEOUT_MS, stallMs: STALL_MS });
    const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    console.error(`${label}: server processes ${comm(ra.pid)} ${ra.pid} and ${comm(rb.pid)} ${rb.pid}`);
    console.error(`${label}: link up in ${fmt(first.seconds * 1000)} ms; warm-up ${fmt(warm.rate)} msg/s`);
    result.window = { from: monotonicMicros(), to: 0 };
    // A run counts when other processes took at most --max-others of the server CPU during it (the machine is
    // shared); contended runs are kept in results.json and repeated, up to --max-attempts in all.
    for (let attempt = 1; result.runs.filter((x) => !x.contended).length < RUNS && attempt <= MAX_ATTEMPTS; attempt++) {
      const ta = cpuTicks(ra.pid);
      const tb = cpuTicks(rb.pid);
      const wa = writeCalls(ra.pid);
      const wb = writeCalls(rb.pid);
      const j0 = cpuJiffies(SERVER_CPU);
      const c0 = cpuJiffies(CLIENT_CPU);
      const res = await link.phase(N, WINDOW, { timeoutMs: TIMEOUT_MS, stallMs: STALL_MS });
      const j1 = cpuJiffies(SERVER_CPU);
      const c1 = cpuJiffies(CLIENT_CPU);
      const clientCpuBusy = c1.total > c0.total ? (c1.busy - c0.busy) / (c1.total - c0.total) : NaN;
      // USER_HZ is 100: one tick is 10,000 µs.
      const da = cpuTicks(ra.pid) - ta;
      const db = cpuTicks(rb.pid) - tb;
      const perMsg = (ticks: number) => (res.received > 0 ? (ticks * 10_000) / res.received : NaN);
      const busy = j1.total > j0.total ? (j1.busy - j0.busy) / (j1.total - j0.total) : NaN;
      const pairCpu = (da + db) / 100 / res.seconds;
      // Other processes on the server CPU: process time there (user + system) not used by the pair. Interrupt and
      // softirq time (loopback TCP of this very traffic, mostly) is not counted as contention.
      const others = j1.total > j0.total ? (j1.proc - j0.proc) / (j1.total - j0.total) - pairCpu : NaN;
      const run: RunResult = {
        ...res,
        cpuA: perMsg(da),
        cpuB: perMsg(db),
        writesA: (writeCalls(ra.pid) - wa) / res.received,
        writesB: (writeCalls(rb.pid) - wb) / res.received,
        serverCpuBusy: busy,
        pairCpu,
        othersCpu: others,
        clientCpuBusy,
        contended: others > MAX_OTHERS,
      };
      result.runs.push(run);
      console.error(`${label} attempt ${attempt}: ${res.received}/${res.sent} in ${fmt(res.seconds, 2)} s = ${fmt(res.rate)} msg/s, p50 ${fmt(res.p50, 1)} p99 ${fmt(res.p99, 1)} ms, CPU µs/msg ${fmt(run.cpuA, 1)} + ${fmt(run.cpuB, 1)}, writes/msg ${fmt(run.writesA, 2)} + ${fmt(run.writesB, 2)}, CPU ${SERVER_CPU} ${fmt(busy * 100)} % busy (the pair ${fmt(pairCpu * 100)} %, others ${fmt(others * 100)} %), client ${fmt(res.clientCpu * 100)} % (CPU ${CLIENT_CPU} ${fmt(clientCpuBusy * 100)} % busy)${run.contended ? " CONTENDED" : ""}${res.timedOut ? " TIMED OUT" : ""}`);
      if (res.timedOut) break;
    }
    result.window.to = monotonicMicros();
    if (LATENCY_N > 0) {
      const j0 = cpuJiffies(SERVER_CPU);
      result.latency = await link.phase(LATENCY_N, 1, { timeoutMs: TIMEOUT_MS, stallMs: STALL_MS });
      const j1 = cpuJiffies(SERVER_CPU);
      const busy = j1.total > j0.total ? (j1.busy - j0.busy) / (j1.total - j0.total) : NaN;
      result.latencyCpuBusy = busy;
      console.error(`${label} one at a time: p50 ${fmt(result.latency.p50, 2)} p99 ${fmt(result.latency.p99, 2)} ms, CPU ${SERVER_CPU} ${fmt(busy * 100)} % busy`);
    }
  } catch (err) {
    delete result.window;
    result.error = err instanceof Error ? err.message : String(err);
    console.error(`${label}: ${result.error}`);
  } finally {
    link?.close();
    for (const r of running.reverse()) await r.stop();
  }
  if (PROFILE && result.window) {
    console.error(`${label}: profiles in ${join(OUT, `prof-${pair}`)}; the measured runs only: node --import tsx bench/s2s/cpuprofile.ts FILE --from ${result.window.from} --to ${result.window.to}`);
  }
  return result;
}

/** Median of one metric over the runs. */
function median(runs: RunResult[], f: (r: RunResult) => number): number {
  const v = runs.map(f).sort((x, y) => x - y);
  const mid = Math.floor(v.length / 2);
  return v.length === 0 ? NaN : v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function table(results: PairResult[]): string {
  const rows = [
    `| link | msg/s (range) | p50 / p99 ms, ${WINDOW} in flight | p50 / p99 ms, one at a time | server CPU µs per message: sending + receiving = pair | msg/s per CPU-second of the pair | write calls per message: sending, receiving | CPU ${SERVER_CPUS}: busy (the pair) | client CPU (CPU ${CLIENT_CPUS} busy) |`,
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    if (r.runs.length === 0) {
      rows.push(`| ${r.label} | failed: ${r.error ?? "no run"} | | | | | | | |`);
      continue;
    }
    const clean = r.runs.filter((x) => !x.contended);
    const runs = clean.length > 0 ? clean : r.runs;
    const m = (f: (x: RunResult) => number) => median(runs, f);
    const rates = runs.map((x) => x.rate);
    const lost = (runs.some((x) => x.received < x.sent || x.timedOut) ? " (incomplete run)" : "") +
      (clean.length < RUNS ? ` (${clean.length} of ${r.runs.length} runs uncontended)` : "");
    const lat = r.latency ? `${fmt(r.latency.p50, 2)} / ${fmt(r.latency.p99, 2)}` : "n/a";
    const a = m((x) => x.cpuA);
    const b = m((x) => x.cpuB);
    const pair = m((x) => x.cpuA + x.cpuB);
    rows.push(`| ${r.label} | ${fmt(m((x) => x.rate))} (${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))})${lost} | ${fmt(m((x) => x.p50), 1)} / ${fmt(m((x) => x.p99), 1)} | ${lat} | ${fmt(a, 1)} + ${fmt(b, 1)} = ${fmt(pair, 1)} | ${fmt(1e6 / pair)} | ${fmt(m((x) => x.writesA), 2)}, ${fmt(m((x) => x.writesB), 2)} | ${fmt(m((x) => x.serverCpuBusy) * 100)} % (${fmt(m((x) => x.pairCpu) * 100)} %) | ${fmt(m((x) => x.clientCpu) * 100)} % (${fmt(m((x) => x.clientCpuBusy) * 100)} %) |`);
  }
  return rows.join("\n") + `\n\nMedians over ${RUNS} runs of ${N} messages (msg/s: median and range), counting only runs in which other processes took at most ${fmt(MAX_OTHERS * 100)} % of CPU ${SERVER_CPU}.`;
}

const dns = await startDns(PIN ? CLIENT_CPUS : undefined);
const results: PairResult[] = [];
try {
  for (const pair of PAIRS) results.push(await measurePair(pair));
} finally {
  await dns.stop();
}
const header = `s2s throughput ${new Date().toISOString()}: ${N} messages × ${RUNS} runs, window ${WINDOW}, warm-up ${WARMUP}, ` +
  `${LATENCY_N} one at a time; ${PIN ? `servers on CPU ${SERVER_CPUS}, clients on CPU ${CLIENT_CPUS}` : "unpinned"}; results ${OUT}`;
const md = `${header}\n\n${table(results)}\n`;
writeFileSync(join(OUT, "table.md"), md);
writeFileSync(join(OUT, "results.json"), JSON.stringify({ argv: process.argv.slice(2), comity: COMITY, versions: versions(), N, WINDOW, RUNS, WARMUP, LATENCY_N, pin: PIN ? { server: SERVER_CPUS, client: CLIENT_CPUS } : null, results }, null, 2));
console.log(md);
process.exit(results.some((r) => r.error) ? 1 : 0);
