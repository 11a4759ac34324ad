// XEP-0363 slot metadata, kept in the generic key/value store (storage.keyval("upload")) so that expiry, quotas and
// account deletion work after a restart, on SQLite and PostgreSQL alike, without a table of its own. A key/value
// store cannot be listed or queried, so three kinds of document are kept (host = the service's domain):
//
//   user "", key "slot:<id>"  one slot: owner, file name, size, type, when given out and when uploaded (GET, PUT)
//   user <owner bare JID>, key "files"  the owner's slots: size, given out, uploaded (quota, deletion, sweeping)
//   user "", key "owners"     every owner with a "files" document (what the sweeper walks)
//   user "", key "secret"     the key that signs PUT URLs (made once, so URLs given out survive a restart)
//
// An owner's document and the owners index are read-modify-written under a per-document lock (one process owns the
// store), always owner before index, so a quota check and the slot it admits are one step.
import { randomBytes } from "node:crypto";
import type { KeyValueStore } from "../../storage/types.ts";

/** The keyval store name. */
export const UPLOAD_STORE = "upload";
const VERSION = 1;

/** One slot as given out (and, once `uploaded` is set, a stored file). */
export interface SlotRecord {
  id: string;
  /** The bare JID that requested it. */
  owner: string;
  /** The file name as requested (decoded), the last segment of the URL. */
  name: string;
  size: number;
  /** The content type requested; undefined: none was (the PUT's own type is then recorded). */
  type: string | undefined;
  created: number;
  uploaded: number | undefined;
}

/** A slot in its owner's list. */
export interface OwnerEntry {
  id: string;
  size: number;
  created: number;
  /** When the file arrived; 0: not yet (an unused slot). Expiry is computed from it with the current settings. */
  uploaded: number;
}

/** What an owner update returns: the new list (undefined: unchanged) and a result for the caller. */
export interface Update<T> {
  entries?: OwnerEntry[];
  result: T;
}

/** Where the store reports documents it cannot read (a pino logger fits). */
export interface StoreLog {
  warn(details: object, msg: string): void;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parse(raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return null;
  }
}

/** The slot documents of one upload service. */
export class UploadStore {
  readonly #kv: KeyValueStore;
  readonly #domain: string;
  readonly #log: StoreLog;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(kv: KeyValueStore, domain: string, log: StoreLog) {
    this.#kv = kv;
    this.#domain = domain;
    this.#log = log;
  }

  /** Run `fn` after every earlier call on the same lock name has settled. */
  #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#locks.set(name, tail);
    void tail.then(() => {
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    });
    return next;
  }

  /** The URL-signing key: read, or made and stored on first use. */
  secret(): Promise<Buffer> {
    return this.#serial("secret", async () => {
      const raw = await this.#kv.get(this.#domain, "", "secret");
      if (raw !== undefined && /^[0-9a-f]{64}$/.test(raw)) return Buffer.from(raw, "hex");
      const key = randomBytes(32);
      await this.#kv.set(this.#domain, "", "secret", key.toString("hex"));
      return key;
    });
  }

  async getSlot(id: string): Promise<SlotRecord | undefined> {
    const doc = parse(await this.#kv.get(this.#domain, "", `slot:${id}`));
    if (doc === undefined) return undefined;
    if (
      !isObject(doc) || doc["v"] !== VERSION || typeof doc["owner"] !== "string" || typeof doc["name"] !== "string" ||
      typeof doc["size"] !== "number" || typeof doc["created"] !== "number"
    ) {
      this.#log.warn({ domain: this.#domain, id }, "unreadable upload slot document; treated as absent");
      return undefined;
    }
    return {
      id,
      owner: doc["owner"],
      name: doc["name"],
      size: doc["size"],
      type: typeof doc["type"] === "string" ? doc["type"] : undefined,
      created: doc["created"],
      uploaded: typeof doc["uploaded"] === "number" ? doc["uploaded"] : undefined,
    };
  }

  async putSlot(slot: SlotRecord): Promise<void> {
    const doc: Record<string, unknown> = { v: VERSION, owner: slot.owner, name: slot.name, size: slot.size, created: slot.created };
    if (slot.type !== undefined) doc["type"] = slot.type;
    if (slot.uploaded !== undefined) doc["uploaded"] = slot.uploaded;
    await this.#kv.set(this.#domain, "", `slot:${slot.id}`, JSON.stringify(doc));
  }

  async deleteSlot(id: string): Promise<void> {
    await this.#kv.set(this.#domain, "", `slot:${id}`, undefined);
  }

  async #entries(owner: string): Promise<OwnerEntry[]> {
    const doc = parse(await this.#kv.get(this.#domain, owner, "files"));
    if (doc === undefined) return [];
    if (!isObject(doc) || doc["v"] !== VERSION || !Array.isArray(doc["files"])) {
      this.#log.warn({ domain: this.#domain, owner }, "unreadable upload owner document; starting it afresh");
      return [];
    }
    return (doc["files"] as unknown[]).filter(
      (e): e is OwnerEntry => isObject(e) && typeof e["id"] === "string" && typeof e["size"] === "number" && typeof e["created"] === "number" && typeof e["uploaded"] === "number",
    );
  }

  /**
   * Read-modify-write the owner's list: `fn` gets the entries and returns the new list (or undefined: unchanged)
   * and a result. The owners index follows (an owner with no entries leaves it). Slot documents and files of the
   * owner are changed inside `fn`, so that a completing upload and a sweep or account deletion never interleave.
   */
  updateOwner<T>(owner: string, fn: (entries: OwnerEntry[]) => Update<T> | Promise<Update<T>>): Promise<T> {
    return this.#serial(`owner:${owner}`, async () => {
      const before = await this.#entries(owner);
      const { entries, result } = await fn(before);
      if (entries === undefined) return result;
      if (entries.length === 0) {
        await this.#kv.set(this.#domain, owner, "files", undefined);
        if (before.length > 0) await this.#index((set) => set.delete(owner));
      } else {
        await this.#kv.set(this.#domain, owner, "files", JSON.stringify({ v: VERSION, files: entries.map(({ id, size, created, uploaded }) => ({ id, size, created, uploaded })) }));
        if (before.length === 0) await this.#index((set) => set.add(owner));
      }
      return result;
    });
  }

  /** Every owner with stored slots. */
  async owners(): Promise<string[]> {
    return this.#serial("owners", async () => [...(await this.#readIndex())]);
  }

  async #readIndex(): Promise<Set<string>> {
    const doc = parse(await this.#kv.get(this.#domain, "", "owners"));
    if (doc === undefined) return new Set();
    if (!isObject(doc) || !Array.isArray(doc["owners"])) {
      this.#log.warn({ domain: this.#domain }, "unreadable upload owners index; starting it afresh");
      return new Set();
    }
    return new Set((doc["owners"] as unknown[]).filter((o): o is string => typeof o === "string"));
  }

  #index(change: (set: Set<string>) => void): Promise<void> {
    return this.#serial("owners", async () => {
      const set = await this.#readIndex();
      change(set);
      await this.#kv.set(this.#domain, "", "owners", JSON.stringify({ v: VERSION, owners: [...set] }));
    });
  }
}
