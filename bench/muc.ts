// What a busy room costs (issue 13 "npm run bench:muc"): --occupants clients in one room (its XEP-0313 archive on, the
// default), one of them sending groupchat messages at a fixed --rate for --secs seconds after a warm-up of the same
// length; then, for comparison, the same rate of one-to-one chat messages between two of them (their user archives on,
// the default).
//   node --import tsx bench/muc.ts [--occupants 200] [--rate 50] [--secs 10] [--port 35434]
// A fresh Comity (this tree's src/, SQLite in an empty data dir, plaintext c2s, plain passwords) runs pinned to CPU 1
// when taskset exists; the clients (this process) to CPU 0. Printed, per phase: messages sent and delivered per second,
// delivery latency p50/p99 (sent → received, over every delivery) and server CPU µs per message sent and per delivered
// stanza (utime+stime from /proc over the measured step). Run it under `flock /tmp/comity-bench.lock` (npm run
// bench:muc). Not run in CI. Internal: `bench/muc.ts --serve CONFIG` is the server process.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DOMAIN = "bench.test";
const SERVICE = `conference.${DOMAIN}`;
const ROOM = `bench@${SERVICE}`;

function options(): { occupants: number; rate: number; secs: number; port: number } {
  const o = { occupants: 200, rate: 50, secs: 10, port: 35434 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, "") as keyof typeof o;
    if (!(k in o) || argv[i + 1] === undefined) throw new Error(`unknown option or missing value: ${argv[i]}`);
    o[k] = Number(argv[i + 1]);
  }
  if (o.occupants < 2) throw new Error("--occupants must be at least 2");
  return o;
}

/** A minimal plaintext client: SASL PLAIN, bind, presence; reports the bodies "m<n>" it receives. */
class Client {
  readonly socket: Socket;
  #buf = "";
  #waiters: { re: RegExp; ok: (m: RegExpMatchArray) => void }[] = [];
  onBody: (id: string) => void = () => {};

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.setNoDelay(true);
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => this.#data(d));
  }

  #data(d: string): void {
    this.#buf += d;
    for (const m of this.#buf.matchAll(/<body>(m[0-9]+)<\/body>/g)) this.onBody(m[1]!);
    for (const w of [...this.#waiters]) {
      const m = this.#buf.match(w.re);
      if (m) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.ok(m);
      }
    }
    const cut = this.#buf.lastIndexOf(">");
    if (this.#waiters.length === 0 && cut >= 0) this.#buf = this.#buf.slice(cut + 1);
  }

  wait(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.#buf.match(re);
    if (m) {
      this.#buf = "";
      return Promise.resolve(m);
    }
    return new Promise((ok) => this.#waiters.push({ re, ok: (m) => ((this.#buf = ""), ok(m)) }));
  }

  send(s: string): void {
    this.socket.write(s);
  }

  async login(user: string, password: string): Promise<void> {
    const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'>`;
    this.send(header);
    await this.wait(/<\/stream:features>/);
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    await this.wait(/<success/);
    this.send(header);
    await this.wait(/<\/stream:features>/);
    this.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
    await this.wait(/<jid>/);
    this.send("<presence/>");
  }

  /** Enter the room (creating it as an instant room when `create`), without history. */
  async join(nick: string, create: boolean): Promise<void> {
    this.send(`<presence to='${ROOM}/${nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`);
    await this.wait(/<subject/);
    if (create) {
      this.send(`<iq type='set' id='cfg' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
      await this.wait(/id='cfg'/);
    }
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
  const work = join(process.env["TMPDIR"] ?? "/tmp", "comity-bench", "muc");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = join(work, "comity.yaml");
  writeFileSync(config, [
    `hosts: [{domain: ${DOMAIN}, muc: {domain: ${SERVICE}, max_occupants: ${o.occupants}, archive: true}}]`,
    `data_dir: ${join(work, "data")}`,
    `c2s: {listen: ["127.0.0.1:${o.port}"], direct_tls: [], encryption: optional}`,
    "s2s: {listen: []}",
    "auth: {password_storage: plain, insecure_plain: true, failure_delay_ms: 0}",
    "log: {level: error}",
    "",
  ].join("\n"));
  const self = fileURLToPath(import.meta.url);
  const users = Array.from({ length: o.occupants }, (_, i) => `u${i}`);
  const imp = spawnSync(process.execPath, ["--import", "tsx", self, "--cli", "import-users", "-", "--config", config], { input: users.map((u) => `${u}@${DOMAIN} pw`).join("\n") + "\n", stdio: ["pipe", "ignore", "inherit"] });
  if (imp.status !== 0) throw new Error("import-users failed");

  const pin = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
  const server = spawn(pin ? "taskset" : process.execPath, [...(pin ? ["-c", "1", process.execPath] : []), "--import", "tsx", self, "--serve", config], { stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<void>((ok) => server.once("exit", () => ok()));
  try {
    await waitPort(o.port);
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    let delivered = 0;
    let measuring = false;
    const clients: Client[] = [];
    for (const [i, u] of users.entries()) {
      const c = new Client(o.port);
      await c.login(u, "pw");
      await c.join(`N${i}`, i === 0);
      c.onBody = (id) => {
        const t = sent.get(id);
        if (t === undefined || !measuring) return;
        delivered++;
        latencies.push(performance.now() - t);
      };
      clients.push(c);
    }
    await new Promise((r) => setTimeout(r, 2000)); // presences settled
    const sender = clients[1]!;
    let n = 0;
    const run = async (secs: number, stanza: (id: string) => string): Promise<number> => {
      const start = performance.now();
      const interval = 1000 / o.rate;
      let count = 0;
      while (performance.now() - start < secs * 1000) {
        const id = `m${++n}`;
        sent.set(id, performance.now());
        sender.send(stanza(id));
        count++;
        const wait = start + count * interval - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      await new Promise((r) => setTimeout(r, 1500)); // drain
      return count;
    };
    const phase = async (name: string, stanza: (id: string) => string, perMessage: number) => {
      measuring = false;
      await run(o.secs, stanza); // warm-up
      latencies.length = 0;
      delivered = 0;
      measuring = true;
      const cpu0 = cpuTicks(server.pid!);
      const count = await run(o.secs, stanza);
      const cpuUs = ((cpuTicks(server.pid!) - cpu0) / 100) * 1e6;
      measuring = false;
      return {
        phase: name,
        rate: o.rate,
        sent: count,
        delivered,
        expected: count * perMessage,
        deliveredPerSec: delivered / o.secs,
        latencyP50Ms: pct(latencies, 50),
        latencyP99Ms: pct(latencies, 99),
        serverUsPerMessage: cpuUs / count,
        serverUsPerDelivery: delivered === 0 ? NaN : cpuUs / delivered,
      };
    };
    const room = await phase(`groupchat, ${o.occupants} occupants, room archive on`, (id) => `<message type='groupchat' to='${ROOM}'><body>${id}</body></message>`, o.occupants);
    const direct = await phase("one-to-one chat, user archives on", (id) => `<message type='chat' to='u0@${DOMAIN}'><body>${id}</body></message>`, 1);
    console.log(JSON.stringify(room));
    console.log(JSON.stringify(direct));
    for (const c of clients) c.socket.destroy();
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
