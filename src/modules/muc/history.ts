// XEP-0045 §7.2.12 (discussion history, XEP-0203 delay stamps from the room) and §7.2.13 (what a joiner asks for
// with <history maxchars maxstanzas seconds since/>): the last messages of a room, kept in memory.
import { Element } from "../../xml/element.ts";
import { NS_DELAY } from "./ns.ts";

/** One reflected groupchat message (from the occupant JID, no `to`) and when the room received it. */
export interface HistoryEntry {
  stanza: Element;
  stamp: number;
}

/** §7.2.13 limits; absent ones do not limit. */
export interface HistoryRequest {
  maxchars?: number;
  maxstanzas?: number;
  seconds?: number;
  /** Milliseconds since the epoch. */
  since?: number;
}

function count(v: string | undefined): number | undefined {
  if (v === undefined || !/^\s*\d+\s*$/.test(v)) return undefined;
  return Number.parseInt(v, 10);
}

/** Read a <history/> element (unknown or malformed attributes are ignored, as if absent). */
export function parseHistoryRequest(el: Element | undefined): HistoryRequest {
  if (!el) return {};
  const out: HistoryRequest = {};
  const maxchars = count(el.attrs["maxchars"]);
  const maxstanzas = count(el.attrs["maxstanzas"]);
  const seconds = count(el.attrs["seconds"]);
  const since = el.attrs["since"] === undefined ? Number.NaN : Date.parse(el.attrs["since"]);
  if (maxchars !== undefined) out.maxchars = maxchars;
  if (maxstanzas !== undefined) out.maxstanzas = maxstanzas;
  if (seconds !== undefined) out.seconds = seconds;
  if (!Number.isNaN(since)) out.since = since;
  return out;
}

/** XEP-0082 date-time in UTC without milliseconds. */
export function stampOf(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A copy of a history entry for one recipient, stamped with its original time by the room (§7.2.12). */
export function delayed(entry: HistoryEntry, room: string, to: string): Element {
  const el = entry.stanza.clone();
  el.attrs["to"] = to;
  el.children.push(new Element("delay", NS_DELAY, { from: room, stamp: stampOf(entry.stamp) }));
  return el;
}

/** A bounded list of the room's last messages. */
export class History {
  readonly #entries: HistoryEntry[] = [];
  #limit: number;

  constructor(limit: number) {
    this.#limit = Math.max(0, limit);
  }

  get limit(): number {
    return this.#limit;
  }

  /** Change how many messages are kept (the oldest go first). */
  set limit(n: number) {
    this.#limit = Math.max(0, n);
    this.#trim();
  }

  get size(): number {
    return this.#entries.length;
  }

  push(stanza: Element, stamp: number): void {
    if (this.#limit === 0) return;
    this.#entries.push({ stanza, stamp });
    this.#trim();
  }

  /** Forget the entries `drop` picks (a moderated message is no longer history). */
  remove(drop: (e: HistoryEntry) => boolean): void {
    for (let i = this.#entries.length - 1; i >= 0; i--) if (drop(this.#entries[i]!)) this.#entries.splice(i, 1);
  }

  #trim(): void {
    if (this.#entries.length > this.#limit) this.#entries.splice(0, this.#entries.length - this.#limit);
  }

  /**
   * The copies to send a joiner, oldest first: the smallest set meeting every limit of the request (§7.2.13),
   * whole stanzas only; `render` builds the stanza as it will be sent, so that maxchars counts its characters.
   */
  select(req: HistoryRequest, now: number, render: (e: HistoryEntry) => Element): Element[] {
    const out: Element[] = [];
    let chars = 0;
    const notBefore = Math.max(req.seconds === undefined ? -Infinity : now - req.seconds * 1000, req.since ?? -Infinity);
    const max = Math.min(req.maxstanzas ?? Infinity, this.#limit);
    for (let i = this.#entries.length - 1; i >= 0 && out.length < max; i--) {
      const e = this.#entries[i]!;
      if (e.stamp < notBefore) break;
      const el = render(e);
      if (req.maxchars !== undefined) {
        chars += el.toString().length;
        if (chars > req.maxchars) break;
      }
      out.push(el);
    }
    return out.reverse();
  }
}
