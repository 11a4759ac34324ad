// Federation throughput: messages per second over one s2s link, Comity→Comity beside Prosody→ejabberd.
// A sender logs in on server A, a receiver on server B (c2s STARTTLS + PLAIN); the sender pushes N chat
// messages as fast as the link drains them, in windows of W in flight; we report delivered msg/s and latency.
//   node --import tsx bench/s2s-throughput.ts [--messages 20000] [--window 500] [--pairs comity,peers]
// "comity" starts two Comity processes on 127.0.0.21/22 (dialback over STARTTLS, self-signed certs);
// "peers" uses the running ../shared/peers (alice@prosody.test → bob@ejabberd.test).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { RawClient } from "../test/kit/raw-client.ts";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const N = Number(args.get("messages") ?? 20000);
const WINDOW = Number(args.get("window") ?? 500);
const PAIRS = (args.get("pairs") ?? "comity,peers").split(",");
const ROOT = new URL("..", import.meta.url).pathname;

interface Side { host: string; port: number; domain: string; user: string; password: string }

async function startComity(): Promise<{ a: Side; b: Side; stop(): void }> {
  const procs: ChildProcess[] = [];
  const mk = (domain: string, ip: string, peer: string, peerIp: string) => {
    const dir = mkdtempSync(join(tmpdir(), `comity-s2sbench-${domain}-`));
    const file = join(dir, "comity.yaml");
    writeFileSync(file, [
      `hosts: [{domain: ${domain}}]`, `data_dir: ${dir}`,
      `c2s: {listen: ["${ip}:25222"], direct_tls: []}`,
      `s2s: {listen: ["${ip}:25269"], verify_certificates: false, routes: {${peer}: "${peerIp}:25269"}}`,
      `log: {level: info}`, "",
    ].join("\n"));
    return file;
  };
  const fa = mk("a.bench", "127.0.0.21", "b.bench", "127.0.0.22");
  const fb = mk("b.bench", "127.0.0.22", "a.bench", "127.0.0.21");
  const bin = join(ROOT, "bin", "comity.js");
  for (const [f, u] of [[fa, "alice@a.bench"], [fb, "bob@b.bench"]] as const) {
    await new Promise<void>((res, rej) => spawn(process.execPath, [bin, "adduser", u, "bench-pass", "--config", f], { stdio: "ignore" }).on("exit", (c) => (c === 0 ? res() : rej(new Error("adduser failed")))));
  }
  for (const f of [fa, fb]) {
    const p = spawn(process.execPath, [bin, "start", "--config", f], { stdio: ["ignore", "pipe", "inherit"] });
    procs.push(p);
    await new Promise<void>((res) => p.stdout!.on("data", (d: Buffer) => { if (d.toString().includes("ready")) res(); }));
  }
  return {
    a: { host: "127.0.0.21", port: 25222, domain: "a.bench", user: "alice", password: "bench-pass" },
    b: { host: "127.0.0.22", port: 25222, domain: "b.bench", user: "bob", password: "bench-pass" },
    stop: () => procs.forEach((p) => p.kill("SIGTERM")),
  };
}

async function run(label: string, a: Side, b: Side): Promise<void> {
  const { client: sender } = await RawClient.login(a.port, a.user, a.password, "send", { host: a.host, domain: a.domain });
  const { client: receiver } = await RawClient.login(b.port, b.user, b.password, "recv", { host: b.host, domain: b.domain });
  receiver.send("<presence/>");
  const to = `${b.user}@${b.domain}/recv`;
  // Warm up: establish the link in both directions.
  sender.send(`<message to='${to}' type='chat'><body>warmup</body></message>`);
  await receiver.waitFor(/warmup/, 30_000);
  receiver.buffer = "";
  let received = 0;
  const lat: number[] = [];
  const sentAt = new Float64Array(N);
  let carry = "";
  receiver.socket.on("data", (d: string) => {
    // A body may be split across two reads: scan up to the last complete one and keep the rest.
    const text = carry + d;
    const end = text.lastIndexOf("</body>");
    carry = end < 0 ? text : text.slice(end + 7);
    for (const m of text.slice(0, end < 0 ? 0 : end + 7).matchAll(/<body>m(\d+)<\/body>/g)) {
      const i = Number(m[1]);
      lat.push(performance.now() - sentAt[i]!);
      received++;
    }
    receiver.buffer = "";
  });
  const t0 = performance.now();
  let sent = 0;
  while (sent < N) {
    while (sent - received < WINDOW && sent < N) {
      sentAt[sent] = performance.now();
      sender.send(`<message to='${to}' type='chat' id='m${sent}'><body>m${sent}</body></message>`);
      sent++;
    }
    await new Promise((r) => setImmediate(r));
    if (performance.now() - t0 > 120_000) break;
  }
  const deadline = performance.now() + 30_000;
  while (received < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const secs = (performance.now() - t0) / 1000;
  lat.sort((x, y) => x - y);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]?.toFixed(1) ?? "n/a";
  console.log(`| ${label} | ${received}/${sent} | ${(received / secs).toFixed(0)} | ${pct(0.5)} | ${pct(0.99)} |`);
  sender.close();
  receiver.close();
}

console.log(`s2s throughput: ${N} messages, window ${WINDOW} in flight, TLS on every hop`);
console.log("| link | delivered | msg/s | p50 ms | p99 ms |\n|---|---|---|---|---|");
if (PAIRS.includes("comity")) {
  const c = await startComity();
  try {
    await run("Comity → Comity", c.a, c.b);
  } finally {
    c.stop();
  }
}
if (PAIRS.includes("peers")) {
  await run("Prosody → ejabberd", { host: "127.0.0.2", port: 25122, domain: "prosody.test", user: "alice", password: "alice-pass" }, { host: "127.0.0.3", port: 25322, domain: "ejabberd.test", user: "bob", password: "bob-pass" });
  await run("ejabberd → Prosody", { host: "127.0.0.3", port: 25322, domain: "ejabberd.test", user: "bob", password: "bob-pass" }, { host: "127.0.0.2", port: 25122, domain: "prosody.test", user: "alice", password: "alice-pass" });
}
process.exit(0);
