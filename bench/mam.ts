// What message archiving (XEP-0313, `mam.enabled`) costs per chat message (docs/benchmarks.md "Message archive cost"):
//   node --import tsx bench/mam.ts [--rate 4000] [--secs 10] [--users 1000] [--rounds 2] [--modes off,on] [--profile DIR]
// For each round and mode a fresh Comity (this tree's src/, run with tsx, SQLite storage in an empty data dir, plaintext
// c2s, plain passwords) is pinned to CPU 1 and the shared generator (../shared/bench/gen/xmppbench.js `msg`) to CPU 0.
// The generator logs --users users in and sends one-to-one chat messages (a ~100-byte body, to a random other user's full
// JID) at a fixed --rate for two steps of --secs seconds: the first warms the JIT and the archive, the second is reported.
// Printed per run: server CPU µs per delivered message (server utime+stime over the step / messages delivered in it),
// delivered msg/s and p50/p99 latency; then the median per mode and the on/off ratio. --profile DIR also writes a V8
// CPU profile of each server (node --cpu-prof) to DIR. Run it under `flock /tmp/comity-bench.lock` (npm run bench:mam).
// Internal: `bench/mam.ts --serve CONFIG` is the server process itself (`comity start` from src/).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

if (process.argv[2] === "--serve" || process.argv[2] === "--cli") {
  // The server (or a CLI command) from this tree's sources.
  const { main } = await import(join(ROOT, "src/cli/main.ts"));
  const rest = process.argv[2] === "--serve" ? ["start", "--config", process.argv[3]!] : process.argv.slice(3);
  await (main as (argv: string[]) => Promise<void>)([process.argv[0]!, "comity", ...rest]);
} else {
  await bench();
}

interface Options {
  rate: number;
  secs: number;
  users: number;
  rounds: number;
  modes: string;
  port: number;
  profile: string;
  gen: string;
}

function options(): Options {
  const o: Options = {
    rate: 4000,
    secs: 10,
    users: 1000,
    rounds: 2,
    modes: "off,on",
    port: 35432,
    profile: "",
    gen: process.env["COMITY_BENCH_DIR"] ? join(process.env["COMITY_BENCH_DIR"], "gen/xmppbench.js") : join(ROOT, "../shared/bench/gen/xmppbench.js"),
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, "") as keyof Options;
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) throw new Error(`unknown option or missing value: ${argv[i]}`);
    (o as unknown as Record<string, string | number>)[k] = typeof o[k] === "number" ? Number(v) : v;
  }
  return o;
}

interface Step {
  target_rate: number;
  delivered_rate: number;
  delivered_in_window: number;
  undelivered_after_drain: number;
  lat_ms_p50: number | null;
  lat_ms_p99: number | null;
  server_cpu_pct: number;
  gen_cpu_pct: number;
}

interface Run {
  mode: string;
  usPerMsg: number;
  msgPerSec: number;
  p50: number | null;
  p99: number | null;
  serverPct: number;
  genPct: number;
  undelivered: number;
}

function waitPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((ok, fail) => {
    const attempt = () => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        ok();
      });
      s.once("error", () => {
        s.destroy();
        if (Date.now() > until) fail(new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

async function runOnce(o: Options, mode: string, round: number): Promise<Run> {
  const work = join(process.env["TMPDIR"] ?? "/tmp", "comity-bench", "mam", mode);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = join(work, "comity.yaml");
  writeFileSync(
    config,
    [
      "hosts: [{domain: bench.test}]",
      `data_dir: ${join(work, "data")}`,
      `c2s: {listen: ["127.0.0.1:${o.port}"], direct_tls: [], encryption: optional, max_sessions_per_user: 10}`,
      "s2s: {listen: []}",
      "auth: {password_storage: plain, insecure_plain: true, failure_delay_ms: 0}",
      "log: {level: error}",
      `mam: {enabled: ${mode === "on"}}`,
      "",
    ].join("\n"),
  );
  const users = Array.from({ length: o.users }, (_, i) => `u${i + 1}@bench.test p${i + 1}`).join("\n") + "\n";
  const self = fileURLToPath(import.meta.url);
  const imp = spawnSync(process.execPath, ["--import", "tsx", self, "--cli", "import-users", "-", "--config", config], { input: users, stdio: ["pipe", "ignore", "inherit"] });
  if (imp.status !== 0) throw new Error("import-users failed");

  // One directory per run: the main thread and tsx's loader thread each write a profile (the larger is the server's).
  const prof = o.profile ? ["--cpu-prof", "--cpu-prof-dir", join(resolve(o.profile), `mam-${mode}-${round}`)] : [];
  const server = spawn("taskset", ["-c", "1", process.execPath, ...prof, "--import", "tsx", self, "--serve", config], { stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<void>((ok) => server.once("exit", () => ok()));
  try {
    await waitPort(o.port, 30_000);
    const out = join(work, "gen.json");
    const rates = `${o.rate},${o.rate}`;
    const gen = spawnSync(
      "taskset",
      ["-c", "0", process.execPath, o.gen, "msg", "--port", String(o.port), "--domain", "bench.test", "--users", String(o.users), "--rates", rates, "--step", String(o.secs), "--extra-steps", "9", "--pid", String(server.pid), "--out", out, "--timeout", String(o.secs * 2 + 60)],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    if (gen.status !== 0) throw new Error(`generator exited with ${gen.status}`);
    const result = JSON.parse(readFileSync(out, "utf8")) as { steps: Step[] };
    const s = result.steps.at(-1)!;
    const delivered = s.delivered_in_window / o.secs;
    return {
      mode,
      usPerMsg: (s.server_cpu_pct / 100) * 1e6 / delivered,
      msgPerSec: delivered,
      p50: s.lat_ms_p50,
      p99: s.lat_ms_p99,
      serverPct: s.server_cpu_pct,
      genPct: s.gen_cpu_pct,
      undelivered: s.undelivered_after_drain,
    };
  } finally {
    server.kill("SIGTERM");
    await Promise.race([exited, new Promise((ok) => setTimeout(ok, 20_000))]);
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function bench(): Promise<void> {
  const o = options();
  const modes = o.modes.split(",");
  console.log(`mam bench: ${o.rate} msg/s, ${o.users} users, ${o.secs} s measured after ${o.secs} s warm-up, ${o.rounds} round(s), node ${process.version}, ${new Date().toISOString()}`);
  const runs: Run[] = [];
  for (let r = 1; r <= o.rounds; r++) {
    for (const mode of modes) {
      const run = await runOnce(o, mode, r);
      runs.push(run);
      console.log(
        `round ${r} mam ${mode.padEnd(3)}: ${run.usPerMsg.toFixed(1)} µs/msg, ${Math.round(run.msgPerSec)} msg/s delivered, ` +
          `p50/p99 ${run.p50}/${run.p99} ms, server ${run.serverPct}% gen ${run.genPct}%, undelivered ${run.undelivered}`,
      );
    }
  }
  const med: Record<string, number> = {};
  for (const mode of modes) {
    const mine = runs.filter((r) => r.mode === mode);
    med[mode] = median(mine.map((r) => r.usPerMsg));
    console.log(`median mam ${mode}: ${med[mode]!.toFixed(1)} µs/msg, ${Math.round(median(mine.map((r) => r.msgPerSec)))} msg/s`);
  }
  if (med["off"] !== undefined && med["on"] !== undefined) console.log(`on/off: ${(med["on"] / med["off"]).toFixed(2)}`);
}
