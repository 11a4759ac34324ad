// XEP-0363: HTTP File Upload <https://xmpp.org/extensions/xep-0363.html> (v1.1), the XMPP side of the service on its
// own domain: discovery (§3: identity store/file, the feature, and the XEP-0128 form with max-file-size), slot
// requests (§4) with their errors (§5: file-too-large, quota as resource-constraint with a retry stamp, not-allowed),
// and the bookkeeping behind them: files on disk under data_dir/upload/<domain>, slot documents in store.ts, the
// sweeper that expires both, and account deletion. The HTTP side (PUT and GET) is http.ts.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING } from "../../xmpp/ns.ts";
import type { OwnerEntry, SlotRecord, UploadStore } from "./store.ts";

export const NS_UPLOAD = "urn:xmpp:http:upload:0";
const NS_DATA = "jabber:x:data";
const DAY_MS = 86_400_000;
/**
 * Most slots one user may request in any 24 hours. The byte quota alone would let a user ask for millions of
 * one-byte slots, each a stored document; this keeps an owner's list (read and rewritten per request) small.
 */
export const MAX_SLOTS_PER_DAY = 1000;
/** Longest file name accepted in a request, in characters (it becomes the URL's last segment). */
const MAX_NAME = 255;
/** A slot id: 16 random bytes, base64url. Only ids of this shape ever reach the file system. */
export const SLOT_ID = /^[A-Za-z0-9_-]{22}$/;
/** A media type (RFC 9110 §8.3.1), parameters allowed. */
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(?:\s*;[\x20-\x7e]*)?$/;

export interface UploadServiceOptions {
  domain: string;
  /** The host whose users may upload. */
  host: string;
  name: string;
  maxFileSize: number;
  /** Bytes per user per 24 hours; 0: no quota. */
  quotaDaily: number;
  /** How long a file is kept after its upload, ms; 0: until its owner's account is deleted. */
  expireAfterMs: number;
  /** How long a PUT URL may be used after it is given out, ms. */
  slotTimeoutMs: number;
  /** Domains or bare JIDs of other servers whose users may upload too. */
  allowFrom: string[];
  /** Where files are written (created when missing). */
  dir: string;
  store: UploadStore;
  /** The base of slot URLs (`<base>/<id>/<name>`), asked at each request (listeners bind after setup). */
  baseUrl(): string | undefined;
  send(stanza: Element): void | Promise<void>;
  /**
   * Whether an owner still has an account (remote owners always do). Accounts may be deleted by the CLI with the
   * server stopped or running, where no event reaches this process: GET and the sweeper ask instead.
   */
  ownerExists?(owner: string): Promise<boolean>;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  now?(): number;
}

/** The essence of a media type (type/subtype, lowercased), for comparing a PUT's type with the slot's. */
export function mediaEssence(type: string): string {
  return type.split(";")[0]!.trim().toLowerCase();
}

/** One upload service: slots, files and their expiry. */
export class UploadService {
  readonly domain: string;
  readonly opts: UploadServiceOptions;
  readonly store: UploadStore;
  readonly now: () => number;
  #secret: Buffer | undefined;
  /** Slots whose PUT is being received: the sweeper and account deletion leave their files to the upload. */
  readonly active = new Map<string, { owner: string; abort(): void }>();
  /** Downloads being sent: a stopping server cuts them rather than wait for slow readers of large files. */
  readonly downloads = new Set<{ destroy(): void }>();
  /** Recently served slot documents (GET is the hot path); bounded, dropped when a slot goes. */
  readonly #cache = new Map<string, SlotRecord>();
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(opts: UploadServiceOptions) {
    this.domain = opts.domain;
    this.opts = opts;
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Before the service is reachable: load the signing key and make the directory, then drop what a crash left
   * behind (partial uploads, and files whose slot was never recorded as complete).
   */
  async start(): Promise<void> {
    this.#secret = await this.store.secret();
    await mkdir(this.opts.dir, { recursive: true, mode: 0o750 });
    let removed = 0;
    for (const name of await readdir(this.opts.dir)) {
      const partial = name.endsWith(".part");
      const id = partial ? name.slice(0, -5) : name;
      if (!partial && SLOT_ID.test(id)) {
        const slot = await this.store.getSlot(id);
        if (slot?.uploaded !== undefined) continue;
      }
      if (!partial && !SLOT_ID.test(id)) continue; // not ours: left alone
      await unlink(join(this.opts.dir, name)).catch(() => {});
      removed++;
    }
    if (removed > 0) this.opts.log.info({ domain: this.domain, removed }, "removed incomplete uploads left by an earlier run");
  }

  /** Sweep every `intervalMs` (timer does not keep the process alive). */
  startSweeper(intervalMs: number): void {
    this.stopSweeper();
    this.#sweeper = setInterval(() => void this.sweep().catch((err: unknown) => this.opts.log.warn({ err }, "upload sweep failed")), intervalMs);
    this.#sweeper.unref();
  }

  stopSweeper(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** Wait for a sweep in progress (before storage closes). */
  async idle(): Promise<void> {
    await this.#sweeping?.catch(() => 0);
  }

  filePath(id: string): string {
    return join(this.opts.dir, id);
  }

  /** The token that authorises the PUT of one slot: HMAC-SHA256 over the service and slot id. */
  token(id: string): string {
    if (!this.#secret) throw new Error("upload service not started");
    return createHmac("sha256", this.#secret).update(`put\n${this.domain}\n${id}`).digest("base64url");
  }

  /** Whether `token` is the slot's PUT token (constant-time comparison). */
  validToken(id: string, token: string | null): boolean {
    if (token === null) return false;
    const want = Buffer.from(this.token(id));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** A slot's document, through the cache. */
  async slot(id: string): Promise<SlotRecord | undefined> {
    const hit = this.#cache.get(id);
    if (hit) return hit;
    const slot = await this.store.getSlot(id);
    // Only complete uploads are cached: they no longer change.
    if (slot?.uploaded !== undefined) {
      if (this.#cache.size >= 1000) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(id, slot);
    }
    return slot;
  }

  /**
   * A PUT completed and the file is in place: record it and start its retention period. Resolves false when the
   * slot went meanwhile (its owner's account was deleted): the caller removes the file.
   */
  async completed(slot: SlotRecord, type: string | undefined): Promise<boolean> {
    const uploaded = this.now();
    return this.store.updateOwner(slot.owner, async (entries) => {
      if (!entries.some((e) => e.id === slot.id)) return { result: false };
      await this.store.putSlot({ ...slot, type: slot.type ?? type, uploaded });
      return { entries: entries.map((e) => (e.id === slot.id ? { ...e, uploaded } : e)), result: true };
    });
  }

  /** Whether a stored file is past its retention (the sweeper may not have run yet). */
  expired(slot: SlotRecord): boolean {
    return slot.uploaded !== undefined && this.opts.expireAfterMs > 0 && slot.uploaded + this.opts.expireAfterMs <= this.now();
  }

  /** Everything addressed to the service's domain or a JID on it. */
  async handle(stanza: Element, from: Jid, to: Jid): Promise<void> {
    const type = stanza.attrs["type"];
    if (stanza.name === "presence") return;
    if (stanza.name === "message") {
      if (type === "error" || type === "groupchat" || type === "headline") return;
      throw new StanzaError("service-unavailable");
    }
    if (stanza.name !== "iq" || (type !== "get" && type !== "set")) return;
    if (to.local !== "" || to.resource !== "") throw new StanzaError("service-unavailable");
    const payload = stanza.elements[0];
    if (!payload || stanza.elements.length !== 1) throw new StanzaError("bad-request");
    if (type === "get" && payload.name === "query" && payload.xmlns === NS_DISCO_INFO) {
      if (payload.attrs["node"] !== undefined) throw new StanzaError("item-not-found");
      return this.#reply(stanza, from, this.discoInfo());
    }
    if (type === "get" && payload.name === "query" && payload.xmlns === NS_DISCO_ITEMS) {
      if (payload.attrs["node"] !== undefined) throw new StanzaError("item-not-found");
      return this.#reply(stanza, from, new Element("query", NS_DISCO_ITEMS));
    }
    if (type === "get" && payload.name === "ping" && payload.xmlns === NS_PING) return this.#reply(stanza, from, undefined);
    if (payload.name === "request" && payload.xmlns === NS_UPLOAD) {
      if (type !== "get") throw new StanzaError("bad-request", { text: "slot requests are IQ get (XEP-0363 §4)" });
      return this.#reply(stanza, from, await this.requestSlot(from, payload));
    }
    throw new StanzaError("service-unavailable");
  }

  /** §3: identity, features and the max-file-size form (XEP-0128). */
  discoInfo(): Element {
    const q = new Element("query", NS_DISCO_INFO);
    q.c("identity", { category: "store", type: "file", name: this.opts.name });
    for (const f of [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_UPLOAD]) q.c("feature", { var: f });
    const x = q.c("x", { xmlns: NS_DATA, type: "result" });
    x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS_UPLOAD);
    x.c("field", { var: "max-file-size" }).c("value").t(String(this.opts.maxFileSize));
    return q;
  }

  /** Whether this sender may upload: the host's users, and the domains or JIDs configured in allow_from. */
  mayUpload(from: Jid): boolean {
    if (from.local === "") return false; // a server or service has no quota to charge
    if (from.domain === this.opts.host) return true;
    return this.opts.allowFrom.includes(from.domain) || this.opts.allowFrom.includes(from.bare.toString());
  }

  /** §4: check the request, charge the quota, record the slot and answer with its URLs. */
  async requestSlot(from: Jid, req: Element): Promise<Element> {
    if (!this.mayUpload(from)) throw new StanzaError("not-allowed", { type: "cancel", text: "only this server's users may upload files here" });
    const rawName = req.attrs["filename"];
    const rawSize = req.attrs["size"];
    const rawType = req.attrs["content-type"];
    if (rawName === undefined || rawSize === undefined) throw new StanzaError("bad-request", { text: "filename and size are required" });
    // The name only becomes the URL's last segment: keep the part after any path, without control characters.
    const name = rawName.replace(/^.*[/\\]/, "").replace(/[\x00-\x1f\x7f]/g, "").trim();
    if (name === "" || name === "." || name === "..") throw new StanzaError("bad-request", { text: "the file name is empty" });
    if ([...name].length > MAX_NAME) throw new StanzaError("bad-request", { text: `the file name is longer than ${MAX_NAME} characters` });
    if (!/^[0-9]{1,16}$/.test(rawSize)) throw new StanzaError("bad-request", { text: "size must be a number of bytes" });
    const size = Number(rawSize);
    if (rawType !== undefined && (rawType.length > 255 || !MEDIA_TYPE.test(rawType))) throw new StanzaError("bad-request", { text: "content-type is not a media type" });
    if (size > this.opts.maxFileSize) {
      // §5 example: not-acceptable with the limit in a file-too-large element.
      const app = new Element("file-too-large", NS_UPLOAD);
      app.c("max-file-size").t(String(this.opts.maxFileSize));
      throw new StanzaError("not-acceptable", { type: "modify", text: `File too large. The maximum file size is ${this.opts.maxFileSize} bytes`, app });
    }
    const base = this.opts.baseUrl();
    if (base === undefined) throw new StanzaError("service-unavailable", { text: "the HTTP listener is not running" });
    const owner = from.bare.toString();
    const now = this.now();
    const id = randomBytes(16).toString("base64url");
    const entry: OwnerEntry = { id, size, created: now, uploaded: 0 };
    const refusal = await this.store.updateOwner(owner, async (entries) => {
      const quota = this.#quota(entries, size, now);
      if (quota) return { result: quota };
      await this.store.putSlot({ id, owner, name, size, type: rawType, created: now, uploaded: undefined });
      return { entries: [...entries, entry], result: undefined };
    });
    if (refusal) throw refusal;
    const url = `${base}/${id}/${encodeURIComponent(name)}`;
    const slot = new Element("slot", NS_UPLOAD);
    slot.c("put", { url: `${url}?token=${this.token(id)}` });
    slot.c("get", { url });
    this.opts.log.debug({ domain: this.domain, owner, id, size }, "upload slot given out");
    return slot;
  }

  /** The daily quota (bytes and slot count over the last 24 hours), or undefined when the request fits. */
  #quota(entries: OwnerEntry[], size: number, now: number): StanzaError | undefined {
    const recent = entries.filter((e) => e.created > now - DAY_MS).sort((a, b) => a.created - b.created);
    const used = recent.reduce((n, e) => n + e.size, 0);
    const quota = this.opts.quotaDaily;
    const overBytes = quota > 0 && used + size > quota;
    const overCount = recent.length + 1 > MAX_SLOTS_PER_DAY;
    if (!overBytes && !overCount) return undefined;
    // §5: when the request would fit again: once enough of the oldest recent uploads are a day old.
    let freedBytes = 0;
    let retry: number | undefined;
    if (quota === 0 || size <= quota) {
      for (let i = 0; i < recent.length; i++) {
        freedBytes += recent[i]!.size;
        const bytesOk = quota === 0 || used - freedBytes + size <= quota;
        const countOk = recent.length - (i + 1) + 1 <= MAX_SLOTS_PER_DAY;
        if (bytesOk && countOk) {
          retry = recent[i]!.created + DAY_MS;
          break;
        }
      }
    }
    const app = retry === undefined ? undefined : new Element("retry", NS_UPLOAD, { stamp: new Date(retry).toISOString().replace(/\.\d{3}Z$/, "Z") });
    const text = overBytes
      ? `Quota reached: ${quota} bytes per user in 24 hours (${used} used)`
      : `Quota reached: ${MAX_SLOTS_PER_DAY} uploads per user in 24 hours`;
    return new StanzaError("resource-constraint", { type: "wait", text, ...(app ? { app } : {}) });
  }

  #reply(iq: Element, from: Jid, payload: Element | undefined): void {
    const attrs: Record<string, string> = { type: "result", from: iq.attrs["to"] ?? this.domain, to: from.toString() };
    if (iq.attrs["id"] !== undefined) attrs["id"] = iq.attrs["id"];
    void this.opts.send(new Element("iq", NS_CLIENT, attrs, payload ? [payload] : []));
  }

  /** Delete a slot's file and document (not while its PUT runs). */
  async #remove(id: string): Promise<void> {
    this.#cache.delete(id);
    await unlink(this.filePath(id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
    await this.store.deleteSlot(id);
  }

  /**
   * Whether the sweeper removes an entry: a file past expire_after (as configured now, so that shortening it
   * applies to files already stored), or a slot never used (a minute after its PUT URL expired).
   */
  #due(e: OwnerEntry, now: number): boolean {
    if (e.uploaded === 0) return e.created + this.opts.slotTimeoutMs + 60_000 <= now;
    return this.opts.expireAfterMs > 0 && e.uploaded + this.opts.expireAfterMs <= now;
  }

  /** Remove expired files and unused slots; resolves to how many slots went. */
  sweep(): Promise<number> {
    if (this.#sweeping) return this.#sweeping;
    const run = (async () => {
      const now = this.now();
      let removed = 0;
      for (const owner of await this.store.owners()) {
        if (this.opts.ownerExists && !(await this.opts.ownerExists(owner))) {
          removed += await this.deleteOwner(owner);
          continue;
        }
        const gone = await this.store.updateOwner(owner, async (entries) => {
          const drop = entries.filter((e) => this.#due(e, now) && !this.active.has(e.id));
          if (drop.length === 0) return { result: 0 };
          for (const e of drop) await this.#remove(e.id);
          const ids = new Set(drop.map((e) => e.id));
          return { entries: entries.filter((e) => !ids.has(e.id)), result: drop.length };
        });
        removed += gone;
      }
      if (removed > 0) this.opts.log.info({ domain: this.domain, removed }, "expired uploads removed");
      return removed;
    })();
    this.#sweeping = run;
    void run.finally(() => (this.#sweeping = undefined)).catch(() => {});
    return run;
  }

  /** An account was deleted: its uploads in progress stop and its files and slots go. Resolves to how many. */
  async deleteOwner(owner: string): Promise<number> {
    for (const up of this.active.values()) if (up.owner === owner) up.abort();
    const gone = await this.store.updateOwner(owner, async (entries) => {
      for (const e of entries) await this.#remove(e.id);
      return { entries: [], result: entries.length };
    });
    if (gone > 0) this.opts.log.info({ domain: this.domain, owner, removed: gone }, "deleted account's uploads removed");
    return gone;
  }
}
