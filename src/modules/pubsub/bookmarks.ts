// XEP-0402: PEP Native Bookmarks <https://xmpp.org/extensions/xep-0402.html> §3 compatibility ("#compat" and
// "#compat-pep"): older clients keep XEP-0048 bookmarks as one <storage xmlns='storage:bookmarks'/> document in private
// XML storage (XEP-0049) or in the PEP node storage:bookmarks; newer ones keep one item per room in the PEP node
// urn:xmpp:bookmarks:1. Whichever a client writes, the server rewrites the others, so poezio, Gajim, Conversations and
// profanity see the same rooms. Conversion keeps room JID, name, autojoin, nick and password; XEP-0048 <url/> entries
// have no XEP-0402 form and are kept in the legacy document only.
import { Element, serialize, x } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { tryParseJid } from "../../xmpp/jid.ts";
import { defaultConfig, type NodeConfig } from "./config.ts";
import { itemsEvent, type Face } from "./service.ts";
import { NS_PUBSUB_EVENT } from "./ns.ts";
import type { NodeRecord, PubsubStore, StoredItem } from "./store.ts";

export const NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1";
export const NS_BOOKMARKS_LEGACY = "storage:bookmarks";
/** The private XML storage key of the legacy document (the private module keys fragments by `{namespace}name`). */
export const PRIVATE_KEY = `{${NS_BOOKMARKS_LEGACY}}storage`;

/** The private module's "private-xml" API, as far as bookmarks use it (structural: no import of another module). */
export interface PrivateXml {
  onChange(listener: (username: string, key: string, value: string | undefined) => void | Promise<void>): void;
  get(username: string, key: string): Promise<string | undefined>;
  set(username: string, key: string, value: string | undefined): Promise<void>;
}

/** One room bookmark in a neutral form. */
interface Bookmark {
  jid: string;
  name: string | undefined;
  autojoin: boolean;
  nick: string | undefined;
  password: string | undefined;
}

const truthy = (v: string | undefined): boolean => v === "true" || v === "1";

/** The rooms of a XEP-0048 <storage/> (invalid JIDs skipped), and its <url/> entries. */
export function readLegacy(storage: Element): { rooms: Bookmark[]; urls: Element[] } {
  const rooms: Bookmark[] = [];
  const seen = new Set<string>();
  for (const c of storage.getChildren("conference", NS_BOOKMARKS_LEGACY)) {
    const jid = tryParseJid(c.attrs["jid"] ?? "");
    if (jid === undefined || jid.local === "" || seen.has(jid.toString())) continue;
    seen.add(jid.toString());
    rooms.push({
      jid: jid.toString(),
      name: c.attrs["name"],
      autojoin: truthy(c.attrs["autojoin"]),
      nick: c.getChildText("nick", NS_BOOKMARKS_LEGACY),
      password: c.getChildText("password", NS_BOOKMARKS_LEGACY),
    });
  }
  return { rooms, urls: storage.getChildren("url", NS_BOOKMARKS_LEGACY) };
}

/** A XEP-0048 <storage/> with these rooms and urls. */
export function writeLegacy(rooms: Bookmark[], urls: Element[]): Element {
  const storage = x("storage", NS_BOOKMARKS_LEGACY);
  for (const r of rooms) {
    const c = x("conference", NS_BOOKMARKS_LEGACY, { jid: r.jid, autojoin: r.autojoin ? "true" : "false", name: r.name });
    if (r.nick !== undefined) c.children.push(x("nick", NS_BOOKMARKS_LEGACY, {}, r.nick));
    if (r.password !== undefined) c.children.push(x("password", NS_BOOKMARKS_LEGACY, {}, r.password));
    storage.children.push(c);
  }
  for (const u of urls) storage.children.push(u.clone());
  return storage;
}

/** A XEP-0402 <conference/> payload (the room JID is the item id). */
export function writeConference(r: Bookmark): Element {
  const c = x("conference", NS_BOOKMARKS2, { name: r.name, autojoin: r.autojoin ? "true" : "false" });
  if (r.nick !== undefined) c.children.push(x("nick", NS_BOOKMARKS2, {}, r.nick));
  if (r.password !== undefined) c.children.push(x("password", NS_BOOKMARKS2, {}, r.password));
  return c;
}

/** A XEP-0402 item as a bookmark; undefined when the id is no room JID or the payload is not a conference. */
export function readConference(id: string, payload: Element | undefined): Bookmark | undefined {
  const jid = tryParseJid(id);
  if (jid === undefined || jid.local === "" || payload === undefined || payload.name !== "conference" || payload.xmlns !== NS_BOOKMARKS2) return undefined;
  return {
    jid: jid.toString(),
    name: payload.attrs["name"],
    autojoin: truthy(payload.attrs["autojoin"]),
    nick: payload.getChildText("nick", NS_BOOKMARKS2),
    password: payload.getChildText("password", NS_BOOKMARKS2),
  };
}

function parse(payload: string): Element | undefined {
  if (payload === "") return undefined;
  try {
    return parseXml(payload, { maxStanzaSize: Number.MAX_SAFE_INTEGER });
  } catch {
    return undefined;
  }
}

/** XEP-0402 §5's node configuration: private (whitelist), every item kept, nothing sent on presence. */
function bookmarksConfig(limit: number): NodeConfig {
  return { ...defaultConfig("pep"), access_model: "whitelist", max_items: limit, send_last_published_item: "never" };
}

/** Keeps the three bookmark places of one host in step. */
export class BookmarkSync {
  readonly #store: PubsubStore;
  readonly #priv: PrivateXml | undefined;
  readonly #limit: number;
  readonly #maxNodes: number;
  /** Users whose bookmarks are being rewritten right now: a rewrite never triggers another one. */
  readonly #busy = new Set<string>();

  constructor(store: PubsubStore, priv: PrivateXml | undefined, limits: { maxItems: number; maxNodes: number }) {
    this.#store = store;
    this.#priv = priv;
    this.#limit = limits.maxItems;
    this.#maxNodes = limits.maxNodes;
  }

  /** A node the sync creates counts against the account's node limit like any other (no room: no sync there). */
  async #room(face: Face): Promise<boolean> {
    return (await this.#store.nodeCount(face.svc)) < this.#maxNodes;
  }

  /** Whether a node is one of the synchronised ones. */
  static watches(node: string): boolean {
    return node === NS_BOOKMARKS2 || node === NS_BOOKMARKS_LEGACY;
  }

  /** A client changed a bookmarks node over PEP: rewrite the other two places. */
  async fromPep(face: Face, node: string): Promise<void> {
    const user = face.svc.owner;
    if (this.#busy.has(user)) return;
    this.#busy.add(user);
    try {
      if (node === NS_BOOKMARKS2) {
        const items = await this.#store.latest(face.svc, NS_BOOKMARKS2, this.#limit);
        const rooms = items.reverse().flatMap((it) => readConference(it.id, parse(it.payload)) ?? []);
        const urls = await this.#legacyUrls(face, user);
        const legacy = writeLegacy(rooms, urls);
        await this.#priv?.set(user, PRIVATE_KEY, serialize(legacy, ""));
        await this.#writeLegacyPep(face, legacy, false);
      } else {
        const [current] = await this.#store.latest(face.svc, NS_BOOKMARKS_LEGACY, 1);
        const doc = current === undefined ? undefined : parse(current.payload);
        const legacy = doc ?? x("storage", NS_BOOKMARKS_LEGACY);
        await this.#priv?.set(user, PRIVATE_KEY, serialize(legacy, ""));
        await this.#writeNative(face, readLegacy(legacy).rooms);
      }
    } finally {
      this.#busy.delete(user);
    }
  }

  /** A client wrote XEP-0048 bookmarks to private XML storage: rewrite the PEP nodes. */
  async fromPrivate(face: Face, value: string | undefined): Promise<void> {
    const user = face.svc.owner;
    if (this.#busy.has(user)) return;
    this.#busy.add(user);
    try {
      const legacy = (value === undefined ? undefined : parse(value)) ?? x("storage", NS_BOOKMARKS_LEGACY);
      await this.#writeNative(face, readLegacy(legacy).rooms);
      await this.#writeLegacyPep(face, legacy, true);
    } finally {
      this.#busy.delete(user);
    }
  }

  async #legacyUrls(face: Face, user: string): Promise<Element[]> {
    const stored = await this.#priv?.get(user, PRIVATE_KEY);
    const doc = stored === undefined ? undefined : parse(stored);
    if (doc !== undefined) return readLegacy(doc).urls;
    const [current] = await this.#store.latest(face.svc, NS_BOOKMARKS_LEGACY, 1);
    const pepDoc = current === undefined ? undefined : parse(current.payload);
    return pepDoc === undefined ? [] : readLegacy(pepDoc).urls;
  }

  /** The urn:xmpp:bookmarks:1 node holds exactly these rooms afterwards; changes are announced like a client's would be. */
  async #writeNative(face: Face, rooms: Bookmark[]): Promise<void> {
    let rec = await this.#store.node(face.svc, NS_BOOKMARKS2);
    if (rec === undefined) {
      if (rooms.length === 0 || !(await this.#room(face))) return;
      rec = { config: bookmarksConfig(this.#limit), affiliations: {}, created: Date.now() };
      await this.#store.putNode(face.svc, NS_BOOKMARKS2, rec);
    }
    const wanted = new Map(rooms.slice(0, Math.min(rec.config.max_items, this.#limit)).map((r) => [r.jid, serialize(writeConference(r), "")]));
    const existing = await this.#store.latest(face.svc, NS_BOOKMARKS2, this.#limit);
    const retracted: string[] = [];
    for (const it of existing) {
      if (!wanted.has(it.id)) {
        await this.#store.retract(face.svc, NS_BOOKMARKS2, it.id);
        retracted.push(it.id);
      }
    }
    const have = new Map(existing.map((it) => [it.id, it.payload]));
    const published: StoredItem[] = [];
    for (const [id, payload] of wanted) {
      if (have.get(id) === payload) continue;
      const item = { id, publisher: face.jid.toString(), payload };
      await this.#store.publish(face.svc, NS_BOOKMARKS2, item, rec.config.max_items);
      published.push(item);
    }
    if (retracted.length > 0) {
      const itemsEl = x("items", NS_PUBSUB_EVENT, { node: NS_BOOKMARKS2 }, ...retracted.map((id) => x("retract", NS_PUBSUB_EVENT, { id })));
      await face.notify(NS_BOOKMARKS2, rec, x("event", NS_PUBSUB_EVENT, {}, itemsEl));
    }
    for (const item of published) await face.notify(NS_BOOKMARKS2, rec, itemsEvent(NS_BOOKMARKS2, [item], rec.config));
  }

  /** The XEP-0048-in-PEP node gets the document when it exists (or `create`: a client wrote private XML). */
  async #writeLegacyPep(face: Face, legacy: Element, create: boolean): Promise<void> {
    let rec: NodeRecord | undefined = await this.#store.node(face.svc, NS_BOOKMARKS_LEGACY);
    if (rec === undefined) {
      if (!create || !(await this.#room(face))) return;
      rec = { config: { ...bookmarksConfig(this.#limit), max_items: 1 }, affiliations: {}, created: Date.now() };
      await this.#store.putNode(face.svc, NS_BOOKMARKS_LEGACY, rec);
    }
    const item = { id: "current", publisher: face.jid.toString(), payload: serialize(legacy, "") };
    await this.#store.publish(face.svc, NS_BOOKMARKS_LEGACY, item, 1);
    await face.notify(NS_BOOKMARKS_LEGACY, rec, itemsEvent(NS_BOOKMARKS_LEGACY, [item], rec.config));
  }
}
