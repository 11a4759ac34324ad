// What one idle client connection keeps on Comity's JavaScript heap, by kind of object.
// Starts Comity from dist/ (plaintext c2s, as the shared harness runs it) with --heapsnapshot-signal, takes a heap
// snapshot with no clients and one with N authenticated sessions (bind + initial presence), and prints the
// difference per connection grouped by constructor (objects) or by V8 node type (strings, code, arrays...).
// Memory outside the V8 heap (kernel socket buffers, OpenSSL, libuv handles) does not show here: compare the
// total with the RSS per connection of `npm run bench:growth`.
//   node --import tsx bench/connection-heap.ts [--sessions 5000] [--top 20]
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HEADER, RawClient } from "../test/kit/raw-client.ts";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const N = Number(args.get("sessions") ?? 5000);
const TOP = Number(args.get("top") ?? 20);
const ROOT = new URL("..", import.meta.url).pathname;
const PORT = 35424;
const DOMAIN = "bench.test";
const work = join(tmpdir(), "comity-bench", "heap");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const conf = join(work, "comity.yaml");
writeFileSync(conf, [
  `hosts: [{domain: ${DOMAIN}}]`, `data_dir: ${join(work, "data")}`,
  `c2s: {listen: ["127.0.0.1:${PORT}"], direct_tls: [], encryption: optional}`, "s2s: {listen: []}",
  "auth: {password_storage: plain, insecure_plain: true, failure_delay_ms: 0}", "log: {level: info}", "mam: {enabled: false}", "",
].join("\n"));

const run = (cmd: string[], input?: string) => new Promise<void>((res, rej) => {
  const p = spawn(process.execPath, cmd, { stdio: [input ? "pipe" : "ignore", "ignore", "inherit"] });
  if (input) p.stdin!.end(input);
  p.on("exit", (c) => (c === 0 ? res() : rej(new Error(`${cmd.join(" ")} exited ${c}`))));
});
const bin = join(ROOT, "bin", "comity.js");
await run([bin, "import-users", "-", "--config", conf], Array.from({ length: N }, (_, i) => `u${i + 1}@${DOMAIN} p${i + 1}`).join("\n") + "\n");

const server = spawn(process.execPath, ["--heapsnapshot-signal=SIGUSR2", bin, "start", "--config", conf], { cwd: work, stdio: ["ignore", "pipe", "inherit"] });
await new Promise<void>((res) => server.stdout!.on("data", (d: Buffer) => { if (d.toString().includes("ready")) res(); }));

/** Ask the server for a snapshot (it writes Heap.*.heapsnapshot in its cwd) and wait until the file is complete. */
async function snapshot(): Promise<string> {
  const before = new Set(readdirSync(work));
  server.kill("SIGUSR2");
  let last = -1;
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const f = readdirSync(work).find((x) => x.endsWith(".heapsnapshot") && !before.has(x));
    if (!f) continue;
    const size = statSync(join(work, f)).size;
    if (size > 0 && size === last) return join(work, f); // the size held still for half a second: written
    last = size;
  }
  throw new Error("no heap snapshot within 300 s");
}

/** Self size and count per group: objects by constructor name, everything else by V8 node type. */
function groups(file: string): Map<string, { size: number; count: number }> {
  const snap = JSON.parse(readFileSync(file, "utf8")) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = [fields.indexOf("type"), fields.indexOf("name"), fields.indexOf("self_size")];
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + ti]!]!;
    const key = type === "object" || type === "closure" ? `${type === "closure" ? "closure " : ""}${snap.strings[snap.nodes[i + ni]!]}` : `(${type})`;
    const g = out.get(key) ?? { size: 0, count: 0 };
    g.size += snap.nodes[i + si]!;
    g.count++;
    out.set(key, g);
  }
  return out;
}

await new Promise((r) => setTimeout(r, 2000));
const base = groups(await snapshot());
const clients: RawClient[] = [];
for (let i = 0; i < N; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, N - i) }, async (_, k) => {
    const n = i + k + 1;
    const c = await RawClient.connect(PORT);
    c.send(HEADER(DOMAIN));
    await c.waitFor(/<\/stream:features>/);
    if (!(await c.authPlain(`u${n}`, `p${n}`, DOMAIN))) throw new Error(`login u${n} failed`);
    c.buffer = "";
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><presence/>");
    await c.waitFor(/<jid>/);
    c.buffer = "";
    clients.push(c);
  }));
}
await new Promise((r) => setTimeout(r, 3000));
const loaded = groups(await snapshot());
for (const c of clients) c.close();
server.kill("SIGTERM");

const rows = [...loaded].map(([k, v]) => {
  const b = base.get(k) ?? { size: 0, count: 0 };
  return { k, bytes: (v.size - b.size) / N, count: (v.count - b.count) / N };
}).filter((r) => r.bytes > 0).sort((a, b) => b.bytes - a.bytes);
const total = rows.reduce((s, r) => s + r.bytes, 0);
console.log(`# Comity: V8 heap per idle client connection, ${N} sessions, node ${process.version}`);
console.log(`| what | bytes per connection | objects per connection |`);
console.log(`|---|---|---|`);
for (const r of rows.slice(0, TOP)) console.log(`| ${r.k} | ${r.bytes.toFixed(0)} | ${r.count.toFixed(2)} |`);
const rest = rows.slice(TOP).reduce((s, r) => s + r.bytes, 0);
console.log(`| everything else | ${rest.toFixed(0)} | |`);
console.log(`| **total** | **${total.toFixed(0)}** (${(total / 1024).toFixed(1)} KiB) | |`);
process.exit(0);
