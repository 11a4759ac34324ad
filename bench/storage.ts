// Storage micro-benchmark (docs/storage.md "Measured figures"):
//   node --import tsx bench/storage.ts [sqlite|memory|postgres [URL]]
// postgres runs against URL (default: COMITY_BENCH_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test) in a
// throwaway schema comity_bench_<random>, dropped at the end.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { deriveCredentials } from "../src/sasl/credentials.ts";
import { openStorage } from "../src/storage/open.ts";

const kind = (process.argv[2] ?? "sqlite") as "sqlite" | "memory" | "postgres";
const pgUrl = process.argv[3] ?? process.env["COMITY_BENCH_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const pgSchema = `comity_bench_${randomBytes(4).toString("hex")}`;
const EACH = kind === "sqlite" ? " (one transaction each, synchronous=FULL)" : kind === "postgres" ? " (one transaction each, synchronous_commit=on)" : "";
const HOST = "bench.example";
const ACCOUNTS = 10_000;

/** Run `fn` repeatedly for about `ms` milliseconds and return operations per second. */
async function opsPerSecond(ms: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let k = 0; k < 100; k++) await fn(n++);
    elapsed = performance.now() - start;
  }
  return Math.round((n / elapsed) * 1000);
}

/** Median and 99th percentile of `n` sequential calls, in microseconds. */
async function latency(n: number, fn: (i: number) => Promise<unknown>): Promise<string> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    us.push((performance.now() - t0) * 1000);
  }
  us.sort((a, b) => a - b);
  const at = (q: number): string => Math.round(us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? 0).toLocaleString("en-US");
  return `p50 ${at(0.5)} µs, p99 ${at(0.99)} µs`;
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

const dataDir = mkdtempSync(join(tmpdir(), "comity-bench-"));
try {
  // One real credential derived once (PBKDF2 is the caller's cost, not the store's) and reused for every account.
  const credentials = deriveCredentials("correct horse battery staple", { storage: "scram", iterations: 4096 });
  const storage = await openStorage({ dataDir, kind, postgres: { url: pgUrl, schema: pgSchema } });
  console.log(`storage bench: ${kind}, node ${process.version}, ${kind === "postgres" ? `schema ${pgSchema}` : dataDir}`);

  const entries = Array.from({ length: ACCOUNTS }, (_, i) => ({ username: `user${i}`, credentials }));
  let t = performance.now();
  const created = await storage.accounts.createMany(HOST, entries);
  console.log(`createMany ${fmt(created)} accounts (one transaction): ${(performance.now() - t).toFixed(1)} ms`);

  t = performance.now();
  const replaced = await storage.accounts.createMany(HOST, entries, { replace: true });
  console.log(`createMany ${fmt(replaced)} accounts with replace: ${(performance.now() - t).toFixed(1)} ms`);

  const gets = await opsPerSecond(1000, (i) => storage.accounts.get(HOST, `user${(i * 7919) % ACCOUNTS}`));
  console.log(`accounts.get: ${fmt(gets)} /s`);

  const creates = await opsPerSecond(1000, (i) => storage.accounts.create(HOST, `single${i}`, credentials));
  console.log(`accounts.create${EACH}: ${fmt(creates)} /s`);

  const kv = storage.keyval("bench");
  const value = "<query xmlns='jabber:iq:private'><note>hello</note></query>";
  const sets = await opsPerSecond(1000, (i) => kv.set(HOST, `user${i % ACCOUNTS}`, "doc", value));
  console.log(`keyval.set${EACH}: ${fmt(sets)} /s`);

  const kvGets = await opsPerSecond(1000, (i) => kv.get(HOST, `user${i % ACCOUNTS}`, "doc"));
  console.log(`keyval.get: ${fmt(kvGets)} /s`);

  // Offline queues: each push checks the quota and inserts in one transaction; list reads a full queue.
  const QUEUE = 100;
  const message = "<message from='juliet@capulet.lit/balcony' to='romeo@montague.lit' type='chat'><body>Art thou not Romeo?</body></message>";
  const pushes = await opsPerSecond(1000, (i) => storage.offline.push(HOST, `user${i % ACCOUNTS}`, message, { stamp: Date.now(), quota: 1_000_000 }));
  console.log(`offline.push${EACH}: ${fmt(pushes)} /s`);
  for (let i = 0; i < QUEUE; i++) await storage.offline.push(HOST, "queue", message, { stamp: Date.now(), quota: QUEUE });
  const lists = await opsPerSecond(1000, () => storage.offline.list(HOST, "queue"));
  console.log(`offline.list of ${QUEUE} messages: ${fmt(lists)} /s (${fmt(lists * QUEUE)} messages/s)`);

  const rosterSets = await opsPerSecond(1000, (i) =>
    storage.rosters.setItem(HOST, "roster", { jid: `contact${i % 200}@capulet.lit`, name: `Contact ${i}`, subscription: "both", ask: false, approved: false, groups: ["Friends"] }),
  );
  console.log(`rosters.setItem${EACH}: ${fmt(rosterSets)} /s`);
  const rosterGets = await opsPerSecond(1000, () => storage.rosters.get(HOST, "roster"));
  console.log(`rosters.get of 200 items: ${fmt(rosterGets)} /s`);

  // Latency of single calls (one after the other), where throughput alone hides the round trip and the fsync.
  console.log(`latency accounts.get: ${await latency(2000, (i) => storage.accounts.get(HOST, `user${(i * 7919) % ACCOUNTS}`))}`);
  console.log(`latency keyval.set: ${await latency(1000, (i) => kv.set(HOST, `user${i % ACCOUNTS}`, "doc", value))}`);
  console.log(`latency offline.push: ${await latency(1000, (i) => storage.offline.push(HOST, `lat${i % 50}`, message, { stamp: Date.now(), quota: 1_000_000 }))}`);
  console.log(
    `latency rosters.setItem: ${await latency(1000, (i) =>
      storage.rosters.setItem(HOST, "roster", { jid: `contact${i % 200}@capulet.lit`, subscription: "both", ask: false, approved: false, groups: [] }),
    )}`,
  );

  // Reads that many connections make at once (a server's sessions do): what a pool adds over one connection.
  const parallelGets = async (n: number): Promise<number> => {
    const start = performance.now();
    let done = 0;
    await Promise.all(Array.from({ length: n }, async (_, w) => {
      while (performance.now() - start < 1000) {
        await storage.accounts.get(HOST, `user${(done++ * 7919 + w) % ACCOUNTS}`);
      }
    }));
    return Math.round((done / (performance.now() - start)) * 1000);
  };
  console.log(`accounts.get, 16 at once: ${fmt(await parallelGets(16))} /s`);
  const parallelPushes = async (n: number): Promise<number> => {
    const start = performance.now();
    let done = 0;
    await Promise.all(Array.from({ length: n }, async (_, w) => {
      while (performance.now() - start < 1000) {
        await storage.offline.push(HOST, `user${w}`, message, { stamp: Date.now(), quota: 1_000_000 });
        done++;
      }
    }));
    return Math.round((done / (performance.now() - start)) * 1000);
  };
  console.log(`offline.push${EACH}, 16 users at once: ${fmt(await parallelPushes(16))} /s`);

  await storage.close();
} finally {
  rmSync(dataDir, { recursive: true, force: true });
  if (kind === "postgres") {
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${pgSchema} CASCADE`);
    await c.end();
  }
}
