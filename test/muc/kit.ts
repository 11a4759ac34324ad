// Test kit for the multi-user chat tests: logged-in raw clients that read what they receive as parsed stanzas.
import { RawClient, WAIT_MS } from "../kit/raw-client.ts";
import { parseXml } from "../../src/xml/parser.ts";
import type { Element } from "../../src/xml/element.ts";

export const MUC = "http://jabber.org/protocol/muc";
export const MUC_USER = "http://jabber.org/protocol/muc#user";
export const MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
export const MUC_OWNER = "http://jabber.org/protocol/muc#owner";

/** A logged-in client and a cursor over the stanzas it received. */
export class Peer {
  readonly client: RawClient;
  readonly jid: string;
  /** Index of the first stanza not taken yet; `#taken` holds the ones taken after it. */
  #seen = 0;
  readonly #taken = new Set<number>();
  #seq = 0;

  constructor(client: RawClient, jid: string) {
    this.client = client;
    this.jid = jid;
  }

  /** Log in over STARTTLS with PLAIN, bind `resource` and send initial presence. */
  static async login(port: number, user: string, password: string, resource: string, domain = "localhost"): Promise<Peer> {
    const { client, jid } = await RawClient.login(port, user, password, resource, { domain });
    const p = new Peer(client, jid);
    p.send("<presence/>");
    await p.iq("<ping xmlns='urn:xmpp:ping'/>", "get", domain);
    p.skip();
    return p;
  }

  send(xml: string): void {
    this.client.send(xml);
  }

  /** Every complete stanza received so far. */
  all(): Element[] {
    const buf = this.client.buffer;
    // The last stanza may still be arriving: cut at the last complete top-level element.
    for (let end = buf.length; end > 0; end = buf.lastIndexOf(">", end - 2) + 1) {
      try {
        return parseXml(`<r xmlns='jabber:client'>${buf.slice(0, end)}</r>`).elements;
      } catch {
        // incomplete: try a shorter prefix
      }
    }
    return [];
  }

  /** Stanzas received and not yet taken by `next`, `skip` or `drain`. */
  pending(): Element[] {
    return this.all().filter((_, i) => i >= this.#seen && !this.#taken.has(i));
  }

  /** Forget everything received so far. */
  skip(): void {
    this.drain();
  }

  /** Take every stanza not taken yet. */
  drain(): Element[] {
    const out = this.pending();
    this.#seen = this.all().length;
    this.#taken.clear();
    return out;
  }

  /**
   * Wait for the first stanza not taken yet that matches `pred` and take it; the ones before it stay available
   * to later calls (so an IQ answer can be awaited while presence broadcasts arrive around it).
   */
  async next(pred: (e: Element) => boolean, what = "a matching stanza", timeoutMs = WAIT_MS): Promise<Element> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = this.all();
      for (let i = this.#seen; i < all.length; i++) {
        if (this.#taken.has(i) || !pred(all[i]!)) continue;
        this.#taken.add(i);
        while (this.#taken.has(this.#seen)) this.#taken.delete(this.#seen++);
        return all[i]!;
      }
      if (this.client.closed) throw new Error(`closed while waiting for ${what}; got: ${this.client.buffer}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}; not taken yet: ${this.pending().map((e) => e.toString()).join("\n")}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Send an IQ and wait for its answer (result or error). */
  async iq(inner: string, type: "get" | "set", to: string): Promise<Element> {
    const id = `q${++this.#seq}`;
    this.send(`<iq type='${type}' id='${id}' to='${to}'>${inner}</iq>`);
    return this.next((e) => e.name === "iq" && e.attrs["id"] === id, `the answer to ${id}`);
  }

  /** Round trip to the server: anything routed to this client before has arrived. */
  async sync(): Promise<void> {
    const id = `s${++this.#seq}`;
    const domain = this.jid.replace(/^[^@]*@/, "").replace(/\/.*$/, "");
    this.send(`<iq type='get' id='${id}' to='${domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.client.waitFor(new RegExp(`id='${id}'`));
  }

  close(): void {
    this.client.close();
  }
}

/** The status codes of a MUC presence or message. */
export function codes(e: Element): number[] {
  return (e.getChild("x", MUC_USER)?.getChildren("status") ?? []).map((s) => Number(s.attrs["code"])).sort((a, b) => a - b);
}

/** The <item/> of a MUC presence. */
export function item(e: Element): Record<string, string> {
  return e.getChild("x", MUC_USER)?.getChild("item")?.attrs ?? {};
}

/** The defined condition of an error stanza. */
export function condition(e: Element): string | undefined {
  return e.getChild("error")?.elements.find((c) => c.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name;
}

export const isPresenceFrom = (from: string) => (e: Element) => e.name === "presence" && e.attrs["from"] === from;
export const isMessageFrom = (from: string) => (e: Element) => e.name === "message" && e.attrs["from"] === from;
