// XEP-0357 §5 registrations, kept in the generic map kind (STYLE.md §5): owner = the account's localpart, one key per
// (app server JID, node), so one account may have several devices and a restart loses none of them.
import type { MapStore } from "../../storage/types.ts";

/** One device's registration: where to publish, and what the client asked for when enabling. */
export interface Registration {
  /** The app server's JID (XEP-0357 §5 `jid`). */
  jid: string;
  /** The app server's node for this device (`node`). */
  node: string;
  /** The publish-options form the client gave (serialised `<x/>`, our own extension field removed), if any. */
  options?: string;
  /** The client asked for `last-message-body` (granted only when `push.include_body` allows it). */
  wantsBody: boolean;
  /** Notifications in a row that failed for good (after retries); reset by a success. */
  failures: number;
}

/** The map key of a registration: both parts, unambiguous whatever the node contains. */
export function regKey(jid: string, node: string): string {
  return JSON.stringify([jid, node]);
}

/** The account's registrations in the generic map kind. */
export class RegistrationStore {
  readonly #map: MapStore;
  readonly #host: string;

  constructor(map: MapStore, host: string) {
    this.#map = map;
    this.#host = host;
  }

  /** Every registration of the account, oldest first. */
  async list(user: string): Promise<Registration[]> {
    const out: Registration[] = [];
    for (const e of await this.#map.entries(this.#host, user)) {
      const r = parse(e.value);
      if (r) out.push(r);
    }
    return out;
  }

  async get(user: string, jid: string, node: string): Promise<Registration | undefined> {
    const v = await this.#map.get(this.#host, user, regKey(jid, node));
    return v === undefined ? undefined : parse(v);
  }

  /** Insert or replace, then keep only the `keep` newest (resolves the keys dropped). */
  async put(user: string, reg: Registration, keep: number): Promise<string[]> {
    await this.#map.set(this.#host, user, regKey(reg.jid, reg.node), JSON.stringify(reg));
    return this.#map.trim(this.#host, user, keep);
  }

  /** Update the failure count (the map then counts it as written last: trimming drops registrations that stay quiet first). */
  async setFailures(user: string, reg: Registration, failures: number): Promise<void> {
    const cur = await this.get(user, reg.jid, reg.node);
    if (!cur) return; // disabled meanwhile: do not bring it back
    await this.#map.set(this.#host, user, regKey(reg.jid, reg.node), JSON.stringify({ ...cur, failures }));
  }

  /** Remove one registration (node given) or every registration with that app server (XEP-0357 §6). */
  async remove(user: string, jid: string, node?: string): Promise<number> {
    if (node !== undefined) return (await this.#map.delete(this.#host, user, regKey(jid, node))) ? 1 : 0;
    let n = 0;
    for (const r of await this.list(user)) if (r.jid === jid && (await this.#map.delete(this.#host, user, regKey(r.jid, r.node)))) n++;
    return n;
  }

  clear(user: string): Promise<number> {
    return this.#map.clear(this.#host, user);
  }
}

function parse(v: string): Registration | undefined {
  try {
    const r = JSON.parse(v) as Partial<Registration>;
    if (typeof r.jid !== "string" || typeof r.node !== "string") return undefined;
    return { jid: r.jid, node: r.node, ...(typeof r.options === "string" ? { options: r.options } : {}), wantsBody: r.wantsBody === true, failures: typeof r.failures === "number" ? r.failures : 0 };
  } catch {
    return undefined;
  }
}
