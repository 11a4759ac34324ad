// The load side of the federation bench: one sender on server A and one receiver on server B (c2s STARTTLS +
// SASL PLAIN), chat messages to the receiver's full JID, at most `window` in flight. Latency is measured from
// the sender's write to the receiver's read, both in this process (one clock).
import { performance } from "node:perf_hooks";
import { HEADER, RawClient } from "../../test/kit/raw-client.ts";

/** Where a client logs in. */
export interface Endpoint {
  host: string;
  port: number;
  domain: string;
  user: string;
  password: string;
}

/** XEP-0077 in-band registration over STARTTLS; an existing account (conflict) is fine. */
export async function register(ep: Endpoint): Promise<void> {
  const c = await RawClient.connect(ep.port, { host: ep.host });
  try {
    c.send(HEADER(ep.domain));
    await c.waitFor(/<\/stream:features>/, 10_000);
    await c.starttls(ep.domain);
    c.send(HEADER(ep.domain));
    await c.waitFor(/<\/stream:features>/, 10_000);
    c.buffer = "";
    c.send(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${ep.user}</username><password>${ep.password}</password></query></iq>`);
    const m = await c.waitFor(/<iq[^>]*type=['"](result|error)['"][\s\S]*?(?:\/>|<\/iq>)/, 10_000);
    if (m[1] === "error" && !/conflict/.test(m[0])) throw new Error(`registration of ${ep.user}@${ep.domain} failed: ${m[0]}`);
  } finally {
    c.close();
  }
}

/** One measured phase. */
export interface PhaseResult {
  sent: number;
  received: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU time this process (the load generator) used, as a share of the phase's wall time. */
  clientCpu: number;
  timedOut: boolean;
}

/** A logged-in sender/receiver pair over one s2s link. */
export class Link {
  readonly #sender: RawClient;
  readonly #receiver: RawClient;
  readonly #to: string;
  #seq = 0;
  #phaseStart = 0;
  #received = 0;
  #lat: number[] = [];
  #sentAt = new Map<number, number>();
  #onProgress: (() => void) | undefined;

  private constructor(sender: RawClient, receiver: RawClient, to: string) {
    this.#sender = sender;
    this.#receiver = receiver;
    this.#to = to;
    let carry = "";
    receiver.socket.on("data", (d: string) => {
      // A body may be split across reads: scan up to the last complete one and keep the rest.
      const now = performance.now();
      const text = carry + d;
      const end = text.lastIndexOf("</body>");
      carry = end < 0 ? text.slice(-64) : text.slice(end + 7);
      if (end >= 0) {
        for (const m of text.slice(0, end + 7).matchAll(/<body>m(\d+)<\/body>/g)) {
          const i = Number(m[1]);
          const t = this.#sentAt.get(i);
          if (t === undefined || i < this.#phaseStart) continue;
          this.#sentAt.delete(i);
          this.#lat.push(now - t);
          this.#received++;
        }
      }
      receiver.buffer = "";
      this.#onProgress?.();
    });
  }

  /** Log both clients in; the receiver sends initial presence. */
  static async open(from: Endpoint, to: Endpoint): Promise<Link> {
    const { client: sender } = await RawClient.login(from.port, from.user, from.password, "send", { host: from.host, domain: from.domain });
    const { client: receiver } = await RawClient.login(to.port, to.user, to.password, "recv", { host: to.host, domain: to.domain });
    receiver.send("<presence/>");
    return new Link(sender, receiver, `${to.user}@${to.domain}/recv`);
  }

  /**
   * Send `count` messages keeping at most `window` in flight; resolves when all arrived, or when `timeoutMs`
   * passed since the start, or nothing arrived for `stallMs`.
   */
  async phase(count: number, window: number, opts: { timeoutMs: number; stallMs: number }): Promise<PhaseResult> {
    this.#phaseStart = this.#seq;
    this.#received = 0;
    this.#lat = [];
    this.#sentAt.clear();
    let sent = 0;
    let timedOut = false;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let lastProgress = t0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        const now = performance.now();
        if (this.#received >= count) return finish();
        if (now - t0 > opts.timeoutMs || now - lastProgress > opts.stallMs) {
          timedOut = true;
          return finish();
        }
        while (sent < count && sent - this.#received < window) {
          const i = this.#seq++;
          this.#sentAt.set(i, performance.now());
          this.#sender.send(`<message to='${this.#to}' type='chat' id='m${i}'><body>m${i}</body></message>`);
          sent++;
        }
      };
      const timer = setInterval(pump, 50);
      const finish = () => {
        clearInterval(timer);
        this.#onProgress = undefined;
        resolve();
      };
      this.#onProgress = () => {
        lastProgress = performance.now();
        pump();
      };
      pump();
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const lat = this.#lat.sort((x, y) => x - y);
    const pct = (p: number) => (lat.length === 0 ? NaN : lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!);
    return {
      sent,
      received: this.#received,
      seconds,
      rate: this.#received / seconds,
      p50: pct(0.5),
      p99: pct(0.99),
      max: lat.length === 0 ? NaN : lat[lat.length - 1]!,
      clientCpu: (cpu.user + cpu.system) / 1e6 / seconds,
      timedOut,
    };
  }

  close(): void {
    this.#sender.close();
    this.#receiver.close();
  }
}
