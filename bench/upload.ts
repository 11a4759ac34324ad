// XEP-0363 upload and download throughput beside nginx, and the server's memory while it streams
// (docs/upload.md "Figures"):
//   node --import tsx bench/upload.ts [--clients 50] [--mib 20] [--rounds 1]     (npm run bench:upload)
// Comity (this tree's src/, run with tsx, SQLite in an empty data dir) and nginx (Debian's, one worker, WebDAV PUT)
// are each pinned to CPU 1 (taskset), the load to CPU 0. For each server: --clients concurrent PUTs of one --mib MiB
// file (Comity: to slots requested over XMPP first, one per client), then --clients concurrent GETs of what was
// uploaded, checked by size. Printed: MiB/s both ways (bytes moved / wall time) and, for Comity, its RSS before,
// at the highest sample (every 50 ms) during each phase, and after: streaming keeps it flat whatever the file size.
// Internal: `bench/upload.ts --serve CONFIG` is the server process itself (`comity start` from src/).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { request, Agent } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");


interface Options {
  clients: number;
  mib: number;
  rounds: number;
}

function options(): Options {
  const o: Options = { clients: 50, mib: 20, rounds: 1 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, "") as keyof Options;
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) throw new Error(`unknown option or missing value: ${argv[i]}`);
    o[k] = Number(v);
  }
  return o;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Run `fn` while sampling the process's RSS; returns its result, the wall time and the highest sample. */
async function measured<T>(pid: number | undefined, fn: () => Promise<T>): Promise<{ result: T; secs: number; peak: number }> {
  let peak = pid ? rssOf(pid) : 0;
  const timer = pid ? setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50) : undefined;
  const t0 = process.hrtime.bigint();
  try {
    const result = await fn();
    return { result, secs: Number(process.hrtime.bigint() - t0) / 1e9, peak };
  } finally {
    if (timer) clearInterval(timer);
  }
}

const agent = new Agent({ keepAlive: false, maxSockets: 1000 });

function put(url: string, file: string, size: number, type: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "PUT", agent, headers: { "content-length": String(size), "content-type": type } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    createReadStream(file).pipe(req);
  });
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      let n = 0;
      res.on("data", (d: Buffer) => (n += d.length));
      res.on("end", () => resolve(res.statusCode === 200 ? n : -1));
      res.on("error", reject);
    }).on("error", reject).end();
  });
}

async function waitHttp(url: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      await new Promise<void>((resolve, reject) => request(url, { agent }, (res) => (res.resume(), resolve())).on("error", reject).end());
      return;
    } catch {
      if (Date.now() > end) throw new Error(`${url} did not answer`);
      await sleep(100);
    }
  }
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Row {
  server: string;
  putMiBs: number;
  getMiBs: number;
  rss?: { before: number; putPeak: number; getPeak: number; after: number };
}

async function comity(o: Options, file: string, size: number, dir: string): Promise<Row> {
  const data = join(dir, "comity");
  mkdirSync(data);
  const [c2s, http] = [await freePort(), await freePort()];
  const config = join(data, "comity.yaml");
  writeFileSync(config, [
    "hosts:",
    "  - domain: localhost",
    "    upload:",
    "      domain: upload.localhost",
    `      max_file_size: ${size}`,
    "      quota_daily: 0",
    `data_dir: ${data}`,
    `c2s: { listen: ["127.0.0.1:${c2s}"], direct_tls: [], encryption: optional }`,
    "s2s: { listen: [] }",
    `http: { listen: ["127.0.0.1:${http}"], websocket: false, admin_console: false, api: false }`,
    "auth: { insecure_plain: true, password_storage: plain }",
    "log: { level: warn }",
    "",
  ].join("\n"));
  // The account, through storage, before the server opens it.
  const { loadConfig } = await import(join(ROOT, "src/core/config/load.ts"));
  const cfg = (loadConfig as (p: string) => import("../src/core/config/schema.ts").Config)(config);
  const { openStorage, storageOptions } = await import(join(ROOT, "src/storage/open.ts"));
  const { deriveCredentials } = await import(join(ROOT, "src/sasl/credentials.ts"));
  const storage = await openStorage(storageOptions(cfg));
  await storage.accounts.create("localhost", "bench", deriveCredentials("bench", { storage: "plain", iterations: 4096 }));
  await storage.close();

  const child: ChildProcess = spawn("taskset", ["-c", "1", process.execPath, "--import", "tsx", fileURLToPath(import.meta.url), "--serve", config], { stdio: ["ignore", "inherit", "inherit"], cwd: ROOT });
  try {
    await waitHttp(`http://127.0.0.1:${http}/`);
    // Slots over XMPP: one plaintext client (c2s.encryption optional, PLAIN allowed), one slot per uploader.
    const { connect } = await import("node:net");
    const sock = connect(c2s, "127.0.0.1");
    let buf = "";
    sock.setEncoding("utf8").on("data", (d: string) => (buf += d));
    const until = async (re: RegExp) => {
      for (let i = 0; i < 6000 && !re.test(buf); i++) await sleep(10);
      if (!re.test(buf)) throw new Error(`no ${re} in ${buf.slice(-500)}`);
    };
    const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
    sock.write(header);
    await until(/<\/stream:features>/);
    sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0bench\0bench").toString("base64")}</auth>`);
    await until(/<success/);
    buf = "";
    sock.write(header);
    await until(/<\/stream:features>/);
    sock.write("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    await until(/<jid>/);
    const slots: { put: string; get: string }[] = [];
    for (let i = 0; i < o.clients; i++) {
      buf = "";
      sock.write(`<iq type='get' id='s${i}' to='upload.localhost'><request xmlns='urn:xmpp:http:upload:0' filename='file${i}.bin' size='${size}' content-type='application/octet-stream'/></iq>`);
      await until(/<get url='[^']+'/);
      const un = (s: string) => s.replace(/&amp;/g, "&");
      slots.push({ put: un(/<put url='([^']+)'/.exec(buf)![1]!), get: un(/<get url='([^']+)'/.exec(buf)![1]!) });
    }
    sock.destroy();
    const pid = child.pid!;
    await sleep(500);
    const before = rssOf(pid);
    const up = await measured(pid, () => Promise.all(slots.map((s) => put(s.put, file, size, "application/octet-stream"))));
    if (!up.result.every((s) => s === 201)) throw new Error(`PUT statuses: ${up.result.join(",")}`);
    const down = await measured(pid, () => Promise.all(slots.map((s) => get(s.get))));
    if (!down.result.every((n) => n === size)) throw new Error(`GET sizes: ${down.result.join(",")}`);
    await sleep(500);
    const after = rssOf(pid);
    const total = (size * o.clients) / 1048576;
    return { server: "Comity", putMiBs: total / up.secs, getMiBs: total / down.secs, rss: { before, putPeak: up.peak, getPeak: down.peak, after } };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

async function nginx(o: Options, file: string, size: number, dir: string): Promise<Row | undefined> {
  if (spawnSync("nginx", ["-v"]).status !== 0) {
    console.log("nginx is not installed (apt-get install nginx-light): no comparison");
    return undefined;
  }
  const root = join(dir, "nginx");
  // nginx started as root runs its worker as another user (www-data or nobody): it must reach and write these.
  chmodSync(dir, 0o755);
  mkdirSync(join(root, "files"), { recursive: true, mode: 0o777 });
  mkdirSync(join(root, "tmp"), { mode: 0o777 });
  chmodSync(root, 0o755);
  chmodSync(join(root, "files"), 0o777);
  chmodSync(join(root, "tmp"), 0o777);
  const port = await freePort();
  const conf = join(root, "nginx.conf");
  writeFileSync(conf, [
    "worker_processes 1;",
    "daemon off;",
    `pid ${root}/nginx.pid;`,
    `error_log ${root}/error.log warn;`,
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    `  client_body_temp_path ${root}/tmp;`,
    `  proxy_temp_path ${root}/tmp; fastcgi_temp_path ${root}/tmp; uwsgi_temp_path ${root}/tmp; scgi_temp_path ${root}/tmp;`,
    "  sendfile on;",
    "  server {",
    `    listen 127.0.0.1:${port};`,
    `    root ${root}/files;`,
    "    client_max_body_size 0;",
    "    location / { dav_methods PUT; }",
    "  }",
    "}",
    "",
  ].join("\n"));
  const child = spawn("taskset", ["-c", "1", "nginx", "-c", conf, "-p", root], { stdio: ["ignore", "inherit", "inherit"] });
  try {
    await waitHttp(`http://127.0.0.1:${port}/`);
    const urls = Array.from({ length: o.clients }, (_, i) => `http://127.0.0.1:${port}/file${i}.bin`);
    const up = await measured(undefined, () => Promise.all(urls.map((u) => put(u, file, size, "application/octet-stream"))));
    if (!up.result.every((s) => s === 201 || s === 204)) throw new Error(`nginx PUT statuses: ${up.result.join(",")}`);
    const down = await measured(undefined, () => Promise.all(urls.map((u) => get(u))));
    if (!down.result.every((n) => n === size)) throw new Error(`nginx GET sizes: ${down.result.join(",")}`);
    const total = (size * o.clients) / 1048576;
    return { server: "nginx", putMiBs: total / up.secs, getMiBs: total / down.secs };
  } finally {
    child.kill("SIGQUIT");
    await new Promise((r) => child.once("exit", r));
  }
}

async function bench(): Promise<void> {
  const o = options();
  // The load generator on CPU 0, the servers on CPU 1.
  spawnSync("taskset", ["-p", "-c", "0", String(process.pid)]);
  const dir = mkdtempSync(join(tmpdir(), "comity-bench-upload-"));
  try {
    const size = o.mib * 1048576;
    const file = join(dir, "payload.bin");
    const fd = openSync(file, "w");
    for (let left = size; left > 0; left -= 1048576) writeSync(fd, randomBytes(Math.min(left, 1048576)));
    closeSync(fd);
    const mib = (n: number) => `${(n / 1048576).toFixed(0)} MiB`;
    for (let r = 0; r < o.rounds; r++) {
      rmSync(join(dir, "comity"), { recursive: true, force: true });
      rmSync(join(dir, "nginx"), { recursive: true, force: true });
      const rows = [await comity(o, file, size, dir), await nginx(o, file, size, dir)].filter((x): x is Row => x !== undefined);
      console.log(`\n${o.clients} concurrent ${o.mib} MiB uploads, then downloads; servers on one core (round ${r + 1})`);
      console.log("| server | PUT MiB/s | GET MiB/s | RSS before | RSS peak (PUT) | RSS peak (GET) | RSS after |");
      console.log("|---|---|---|---|---|---|---|");
      for (const row of rows) {
        const rss = row.rss ? `${mib(row.rss.before)} | ${mib(row.rss.putPeak)} | ${mib(row.rss.getPeak)} | ${mib(row.rss.after)}` : "— | — | — | —";
        console.log(`| ${row.server} | ${row.putMiBs.toFixed(0)} | ${row.getMiBs.toFixed(0)} | ${rss} |`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Last, so that every constant above is initialised before it runs.
if (process.argv[2] === "--serve") {
  const { main } = await import(join(ROOT, "src/cli/main.ts"));
  await (main as (argv: string[]) => Promise<void>)([process.argv[0]!, "comity", "start", "--config", process.argv[3]!]);
} else {
  await bench();
}
