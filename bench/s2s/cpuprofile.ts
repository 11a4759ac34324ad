// Summarise a V8 .cpuprofile (node --cpu-prof): self time per function and per source area, as shares of
// the busy time (samples that are not "(idle)"). --from/--to (CLOCK_MONOTONIC µs, as printed by
// bench/s2s-throughput.ts for its measured runs) keep only the samples of that window, without start-up and warm-up.
//   node --import tsx bench/s2s/cpuprofile.ts FILE.cpuprofile [--top 25] [--from US --to US]
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (!file) {
  console.error("usage: cpuprofile.ts FILE.cpuprofile [--top N]");
  process.exit(2);
}
const opt = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : undefined;
};
const top = opt("top") ?? 25;
const from = opt("from") ?? -Infinity;
const to = opt("to") ?? Infinity;
const prof = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
// V8 stamps samples with its monotonic clock (CLOCK_MONOTONIC on Linux, µs): startTime plus the running deltas.
let t = prof.startTime;
prof.samples.forEach((id, i) => {
  const d = prof.timeDeltas[i] ?? 0;
  t += d;
  if (t >= from && t <= to) self.set(id, (self.get(id) ?? 0) + d);
});

/** Where a frame's code lives: Comity's own source, a dependency, Node's internals, or a V8 pseudo-frame. */
function area(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "native (V8/C++ builtins)";
  if (url.includes("/node_modules/")) return `dependency ${url.split("/node_modules/")[1]!.split("/")[0]}`;
  const m = url.match(/\/(?:dist|src)\/(.*)$/);
  if (m) return `comity ${m[1]!.split("/").slice(0, -1).join("/") || m[1]}`;
  if (url.startsWith("node:")) return `node ${url.slice(5).split("/")[0]}`;
  return url;
}

const fn = new Map<string, number>();
const areas = new Map<string, number>();
let busy = 0;
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const { functionName, url, lineNumber } = n.callFrame;
  if (functionName === "(idle)") continue;
  busy += us;
  const short = url.replace(/^.*\/(dist|src|node_modules)\//, "$1/");
  const key = `${functionName || "(anonymous)"} ${short ? `${short}:${lineNumber + 1}` : ""}`.trim();
  fn.set(key, (fn.get(key) ?? 0) + us);
  const a = area(url, functionName);
  areas.set(a, (areas.get(a) ?? 0) + us);
}
const pct = (us: number) => `${((us / busy) * 100).toFixed(1)} %`;
console.log(`${file}: ${(busy / 1e6).toFixed(2)} s busy\n\nby area:`);
for (const [k, v] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(v).padStart(7)}  ${k}`);
console.log("\nby function (self time):");
for (const [k, v] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(v).padStart(7)}  ${k}`);
