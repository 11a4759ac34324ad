// Test kit: a raw BOSH (XEP-0124/XEP-0206) client over node's http/https, one request at a time or pipelined by hand,
// so tests can send exactly the rids, attributes and payloads a protocol edge case needs.
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { parseXml } from "../../src/xml/parser.ts";
import type { Element } from "../../src/xml/element.ts";

export const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
export const NS_XBOSH = "urn:xmpp:xbosh";

export interface BoshReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed <body/> (undefined when the answer is not XML). */
  body: Element | undefined;
}

const agents = new Set<HttpAgent>();

/** Close every keep-alive connection the kit opened (call in `after`). */
export function closeBoshAgents(): void {
  for (const a of agents) a.destroy();
  agents.clear();
}

/** POST (or another method) to a URL and read the whole answer. */
export function httpCall(url: string, body: string | Buffer | undefined, opts: { method?: string; headers?: Record<string, string>; agent?: HttpAgent; signal?: AbortSignal } = {}): Promise<BoshReply> {
  const u = new URL(url);
  const https = u.protocol === "https:";
  const headers: Record<string, string> = { ...(body !== undefined ? { "content-type": "text/xml; charset=utf-8", "content-length": String(Buffer.byteLength(body)) } : {}), ...opts.headers };
  const req = (https ? httpsRequest : httpRequest)(u, { method: opts.method ?? "POST", headers, rejectUnauthorized: false, ...(opts.agent ? { agent: opts.agent } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  return new Promise((resolve, reject) => {
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: Element | undefined;
        try {
          parsed = text.startsWith("<body") ? parseXml(text) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** One BOSH session driven by hand: `rid` is the next rid to use. */
export class BoshClient {
  readonly url: string;
  readonly agent: HttpAgent;
  sid = "";
  rid: number;
  /** Every payload element received, in the order the answers were read. */
  readonly received: Element[] = [];
  creation: BoshReply | undefined;

  constructor(url: string, rid = 1_000_000 + Math.floor(Math.random() * 1_000_000)) {
    this.url = url;
    this.rid = rid;
    // Several sockets: held long-polls must not block the next request.
    this.agent = url.startsWith("https:") ? new HttpsAgent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false }) : new HttpAgent({ keepAlive: true, maxSockets: 8 });
    agents.add(this.agent);
  }

  /** The <body> text for this session with extra attributes and payload. */
  wrap(attrs: Record<string, string | number>, payload = ""): string {
    let s = `<body xmlns='${NS_HTTPBIND}' xmlns:xmpp='${NS_XBOSH}'`;
    for (const [k, v] of Object.entries(attrs)) s += ` ${k}='${String(v).replace(/'/g, "&apos;")}'`;
    return payload === "" ? `${s}/>` : `${s}>${payload}</body>`;
  }

  /** POST raw text to the endpoint. */
  raw(text: string | Buffer, headers: Record<string, string> = {}): Promise<BoshReply> {
    return httpCall(this.url, text, { headers, agent: this.agent });
  }

  /** Send a request with an explicit rid (no rid bookkeeping) and record its payloads. */
  async at(rid: number, payload = "", attrs: Record<string, string | number> = {}): Promise<BoshReply> {
    const r = await this.raw(this.wrap({ sid: this.sid, rid, ...attrs }, payload));
    if (r.body) this.received.push(...r.body.elements);
    return r;
  }

  /** Send the next request in sequence. */
  send(payload = "", attrs: Record<string, string | number> = {}): Promise<BoshReply> {
    return this.at(this.rid++, payload, attrs);
  }

  /** Send the next (empty) request and return a function that drops its connection before the answer, as a closed tab would. */
  drop(): () => void {
    const ctrl = new AbortController();
    void httpCall(this.url, this.wrap({ sid: this.sid, rid: this.rid++ }), { agent: this.agent, signal: ctrl.signal }).catch(() => undefined);
    return () => ctrl.abort();
  }

  /** XEP-0124 §7.1 / XEP-0206 §4 session creation. */
  async create(attrs: Record<string, string | number> = {}): Promise<BoshReply> {
    const r = await this.raw(this.wrap({ to: "localhost", rid: this.rid++, wait: 5, hold: 1, ver: "1.6", "xml:lang": "en", "xmpp:version": "1.0", content: "text/xml; charset=utf-8", ...attrs }));
    this.creation = r;
    this.sid = r.body?.attrs["sid"] ?? "";
    if (r.body) this.received.push(...r.body.elements);
    return r;
  }

  /** Create, authenticate with PLAIN, restart, bind and send initial presence; returns the full JID. */
  async login(user: string, password: string, opts: { presence?: boolean; wait?: number } = {}): Promise<string> {
    const c = await this.create(opts.wait !== undefined ? { wait: opts.wait } : {});
    if (!this.sid) throw new Error(`no session: ${c.text}`);
    const auth = await this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    if (!auth.text.includes("<success")) throw new Error(`auth failed: ${auth.text}`);
    const restart = await this.send("", { "xmpp:restart": "true", to: "localhost", "xml:lang": "en" });
    if (!restart.text.includes("urn:ietf:params:xml:ns:xmpp-bind")) throw new Error(`no bind feature after restart: ${restart.text}`);
    const bind = await this.send(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bosh</resource></bind></iq>`);
    const jid = /<jid>([^<]+)<\/jid>/.exec(bind.text)?.[1];
    if (!jid) throw new Error(`bind failed: ${bind.text}`);
    if (opts.presence !== false) await this.send(`<presence xmlns='jabber:client'/>`);
    return jid;
  }

  /**
   * Poll (empty requests, one at a time) until a received payload matches, or fail after `ms`. Each poll is held by
   * the server until something arrives or `wait` runs out, so this returns as soon as the stanza is there.
   */
  async until(what: string, match: (el: Element) => boolean, ms = 30_000): Promise<Element> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`${what}: not received within ${ms} ms`);
      const r = await this.send();
      if (r.body?.attrs["type"] === "terminate") throw new Error(`${what}: session terminated: ${r.text}`);
    }
  }
}
