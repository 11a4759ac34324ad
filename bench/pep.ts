// What PEP costs (issue 11 "npm run bench:pep"): one account publishes to a node that --subs contacts want (they
// advertise <node>+notify through XEP-0115 caps), at a fixed --rate for --secs seconds after a warm-up of the same length.
//   node --import tsx bench/pep.ts [--subs 200] [--rate 100] [--secs 10] [--port 35433]
// A fresh Comity (this tree's src/, SQLite in an empty data dir, plaintext c2s, plain passwords) runs pinned to CPU 1
// when taskset exists; the clients (this process) to CPU 0. Printed: publishes and notifications per second, publish
// round-trip p50/p99, notification latency p50/p99 (publish sent → event received, over every delivery), and server CPU
// µs per publish and per notification (utime+stime from /proc over the measured step). Run it under
// `flock /tmp/comity-bench.lock` (npm run bench:pep). Internal: `bench/pep.ts --serve CONFIG` is the server process.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NODE = "urn:xmpp:tune";
const DOMAIN = "bench.test";


function options(): { subs: number; rate: number; secs: number; port: number } {
  const o = { subs: 200, rate: 100, secs: 10, port: 35433 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, "") as keyof typeof o;
    if (!(k in o) || argv[i + 1] === undefined) throw new Error(`unknown option or missing value: ${argv[i]}`);
    o[k] = Number(argv[i + 1]);
  }
  return o;
}

/** The disco#info our clients claim, and its XEP-0115 sha-1 ver (§5.1: identity, then features, sorted). */
const FEATURES = ["http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", `${NODE}+notify`].sort();
const VER = createHash("sha1").update(`client/pc//bench<${FEATURES.map((f) => `${f}<`).join("")}`).digest("base64");
const DISCO = `<identity category='client' type='pc' name='bench'/>${FEATURES.map((f) => `<feature var='${f}'/>`).join("")}`;

/** A minimal plaintext client: SASL PLAIN, bind, caps presence, answers caps queries, reports what it receives. */
class Client {
  readonly socket: Socket;
  #buf = "";
  #waiters: { re: RegExp; ok: (m: RegExpMatchArray) => void }[] = [];
  onEvent: (id: string) => void = () => {};
  onResult: (id: string) => void = () => {};

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.setNoDelay(true);
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => this.#data(d));
  }

  #data(d: string): void {
    this.#buf += d;
    // Caps query from the server: answer it.
    for (const m of this.#buf.matchAll(/<iq[^>]*type='get'[^>]*id='([^']+)'[^>]*>\s*<query xmlns='http:\/\/jabber.org\/protocol\/disco#info' node='([^']*)'\/><\/iq>/g)) {
      const from = /from='([^']+)'/.exec(m[0])?.[1] ?? DOMAIN;
      this.socket.write(`<iq type='result' id='${m[1]}' to='${from}'><query xmlns='http://jabber.org/protocol/disco#info' node='${m[2]}'>${DISCO}</query></iq>`);
    }
    for (const m of this.#buf.matchAll(/<item id='([^']+)'/g)) this.onEvent(m[1]!);
    for (const m of this.#buf.matchAll(/<iq[^>]*type='result'[^>]*id='(pub[0-9]+)'/g)) this.onResult(m[1]!);
    for (const w of [...this.#waiters]) {
      const m = this.#buf.match(w.re);
      if (m) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.ok(m);
      }
    }
    // Keep only an unfinished tail: everything above has been seen.
    const cut = this.#buf.lastIndexOf(">");
    if (this.#waiters.length === 0 && cut >= 0) this.#buf = this.#buf.slice(cut + 1);
  }

  #wait(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.#buf.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((ok) => this.#waiters.push({ re, ok }));
  }

  send(s: string): void {
    this.socket.write(s);
  }

  async login(user: string, password: string, caps: boolean): Promise<void> {
    const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'>`;
    this.send(header);
    await this.#wait(/<\/stream:features>/);
    this.#buf = "";
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    await this.#wait(/<success/);
    this.#buf = "";
    this.send(header);
    await this.#wait(/<\/stream:features>/);
    this.#buf = "";
    this.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
    await this.#wait(/<jid>/);
    this.#buf = "";
    this.send(caps ? `<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://comity.test/bench' ver='${VER}'/></presence>` : "<presence/>");
  }
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15 of the whole line)
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), r(true)));
      s.once("error", () => (s.destroy(), r(false)));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function bench(): Promise<void> {
  const o = options();
  const work = join(process.env["TMPDIR"] ?? "/tmp", "comity-bench", "pep");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = join(work, "comity.yaml");
  writeFileSync(config, [
    `hosts: [{domain: ${DOMAIN}}]`,
    `data_dir: ${join(work, "data")}`,
    `c2s: {listen: ["127.0.0.1:${o.port}"], direct_tls: [], encryption: optional}`,
    "s2s: {listen: []}",
    "auth: {password_storage: plain, insecure_plain: true, failure_delay_ms: 0}",
    "log: {level: error}",
    "mam: {enabled: false}",
    "",
  ].join("\n"));
  const self = fileURLToPath(import.meta.url);
  const users = ["pub", ...Array.from({ length: o.subs }, (_, i) => `s${i}`)];
  const imp = spawnSync(process.execPath, ["--import", "tsx", self, "--cli", "import-users", "-", "--config", config], { input: users.map((u) => `${u}@${DOMAIN} pw`).join("\n") + "\n", stdio: ["pipe", "ignore", "inherit"] });
  if (imp.status !== 0) throw new Error("import-users failed");
  // Mutual subscriptions between the publisher and every subscriber, written before the server starts.
  const { openStorage } = await import(join(ROOT, "src/storage/open.ts"));
  const storage = await (openStorage as (o: { dataDir: string }) => Promise<import("../src/storage/types.ts").Storage>)({ dataDir: join(work, "data") });
  for (const u of users.slice(1)) {
    await storage.rosters.setItem(DOMAIN, "pub", { jid: `${u}@${DOMAIN}`, subscription: "both", ask: false, approved: false, groups: [] });
    await storage.rosters.setItem(DOMAIN, u, { jid: `pub@${DOMAIN}`, subscription: "both", ask: false, approved: false, groups: [] });
  }
  await storage.close();

  const pin = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
  const server = spawn(pin ? "taskset" : process.execPath, [...(pin ? ["-c", "1", process.execPath] : []), "--import", "tsx", self, "--serve", config], { stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<void>((ok) => server.once("exit", () => ok()));
  try {
    await waitPort(o.port);
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    const iqLatencies: number[] = [];
    let delivered = 0;
    let measuring = false;
    const subs: Client[] = [];
    for (let i = 0; i < o.subs; i++) {
      const c = new Client(o.port);
      await c.login(`s${i}`, "pw", true);
      c.onEvent = (id) => {
        const t = sent.get(id);
        if (t === undefined || !measuring) return;
        delivered++;
        latencies.push(performance.now() - t);
      };
      subs.push(c);
    }
    const pub = new Client(o.port);
    await pub.login("pub", "pw", false);
    pub.onResult = (id) => {
      const t = sent.get(id.replace("pub", "i"));
      if (t !== undefined && measuring) iqLatencies.push(performance.now() - t);
    };
    await new Promise((r) => setTimeout(r, 2000)); // caps learnt, presences settled
    let n = 0;
    const run = async (secs: number): Promise<number> => {
      const start = performance.now();
      const interval = 1000 / o.rate;
      let published = 0;
      while (performance.now() - start < secs * 1000) {
        const id = `i${++n}`;
        sent.set(id, performance.now());
        pub.send(`<iq type='set' id='pub${n}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='${NODE}'><item id='${id}'><tune xmlns='${NODE}'><title>Song ${n}</title><length>240</length></tune></item></publish></pubsub></iq>`);
        published++;
        const next = start + published * interval;
        const wait = next - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      await new Promise((r) => setTimeout(r, 1000)); // drain
      return published;
    };
    await run(o.secs); // warm-up
    measuring = true;
    const cpu0 = cpuTicks(server.pid!);
    const published = await run(o.secs);
    const cpu1 = cpuTicks(server.pid!);
    const cpuUs = ((cpu1 - cpu0) / 100) * 1e6;
    const out = {
      subscribers: o.subs,
      rate: o.rate,
      published,
      publishesPerSec: published / o.secs,
      notificationsPerSec: delivered / o.secs,
      delivered,
      expected: published * o.subs,
      publishP50Ms: pct(iqLatencies, 50),
      publishP99Ms: pct(iqLatencies, 99),
      notifyP50Ms: pct(latencies, 50),
      notifyP99Ms: pct(latencies, 99),
      serverUsPerPublish: cpuUs / published,
      serverUsPerNotification: delivered === 0 ? NaN : cpuUs / delivered,
    };
    console.log(JSON.stringify(out));
    for (const c of [...subs, pub]) c.socket.destroy();
  } finally {
    server.kill("SIGTERM");
    await Promise.race([exited, new Promise((ok) => setTimeout(ok, 20_000))]);
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  }
}

// Last, so the class above is initialised before the top-level await runs.
if (process.argv[2] === "--serve" || process.argv[2] === "--cli") {
  const { main } = await import(join(ROOT, "src/cli/main.ts"));
  const rest = process.argv[2] === "--serve" ? ["start", "--config", process.argv[3]!] : process.argv.slice(3);
  await (main as (argv: string[]) => Promise<void>)([process.argv[0]!, "comity", ...rest]);
} else {
  await bench();
}
