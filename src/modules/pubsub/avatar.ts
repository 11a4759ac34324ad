// XEP-0398: User Avatar to vCard-Based Avatars Conversion <https://xmpp.org/extensions/xep-0398.html> §2 and the
// XEP-0153 photo hash in presence it relies on. A vCard-temp PHOTO a client sets (XEP-0054, through the vcard module's
// "vcard" change notices) is published as XEP-0084 avatar data and metadata; XEP-0084 metadata a client publishes is
// written into the vCard's PHOTO (from the avatar data node); the user's own available presence carries
// <x xmlns='vcard-temp:x:update'><photo>sha1</photo></x> for the current avatar (XEP-0398 §2.2, XEP-0153 §3.2).
import { createHash } from "node:crypto";
import { Element, serialize, x } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { defaultConfig } from "./config.ts";
import { itemsEvent, type Face } from "./service.ts";
import type { PubsubStore, StoredItem } from "./store.ts";

export const NS_AVATAR_DATA = "urn:xmpp:avatar:data";
export const NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata";
export const NS_VCARD = "vcard-temp";
export const NS_VCARD_UPDATE = "vcard-temp:x:update";
export const NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0";

/** The vcard module's "vcard" API, as far as conversion uses it (structural: no import of another module). */
export interface VcardStore {
  onChange(listener: (username: string, vcard: string | undefined) => void | Promise<void>): void;
  get(username: string): Promise<string | undefined>;
  set(username: string, vcard: string | undefined): Promise<void>;
}

function parse(s: string | undefined): Element | undefined {
  if (s === undefined || s === "") return undefined;
  try {
    return parseXml(s, { maxStanzaSize: Number.MAX_SAFE_INTEGER });
  } catch {
    return undefined;
  }
}

/** The avatar id (XEP-0084 §4.2: sha1 of the image bytes, hex) announced by the newest metadata item, "" for none. */
export function avatarIdOf(metadata: StoredItem | undefined): string | undefined {
  if (metadata === undefined) return undefined;
  const info = parse(metadata.payload)?.getChild("info", NS_AVATAR_METADATA);
  return info?.attrs["id"] ?? "";
}

/** Converts between vCard photos and PEP avatars for one host, and remembers users' current avatar ids (bounded). */
export class AvatarConversion {
  readonly #store: PubsubStore;
  readonly #vcard: VcardStore;
  readonly #maxBytes: number;
  readonly #maxNodes: number;
  readonly #busy = new Set<string>();
  /** username → current avatar id ("" none); a bounded cache of what the metadata node says. */
  readonly #ids = new Map<string, string>();
  readonly #maxCached: number;

  constructor(store: PubsubStore, vcard: VcardStore, limits: { maxItemBytes: number; maxNodes: number; maxCached: number }) {
    this.#store = store;
    this.#vcard = vcard;
    this.#maxBytes = limits.maxItemBytes;
    this.#maxNodes = limits.maxNodes;
    this.#maxCached = limits.maxCached;
  }

  static watches(node: string): boolean {
    return node === NS_AVATAR_METADATA;
  }

  /** The user's current avatar id for the XEP-0153 hash: undefined when the user never had a PEP avatar. */
  async currentId(face: Face): Promise<string | undefined> {
    const user = face.svc.owner;
    const cached = this.#ids.get(user);
    if (cached !== undefined) return cached;
    const [meta] = await this.#store.latest(face.svc, NS_AVATAR_METADATA, 1);
    const id = avatarIdOf(meta);
    if (id !== undefined) this.#remember(user, id);
    return id;
  }

  forget(user: string): void {
    this.#ids.delete(user);
  }

  #remember(user: string, id: string): void {
    this.#ids.delete(user);
    this.#ids.set(user, id);
    while (this.#ids.size > this.#maxCached) this.#ids.delete(this.#ids.keys().next().value!);
  }

  /** XEP-0398 §2.1: a client published avatar metadata: put the PNG (or first) image into the vCard's PHOTO. */
  async fromPep(face: Face): Promise<void> {
    const user = face.svc.owner;
    if (this.#busy.has(user)) return;
    this.#busy.add(user);
    try {
      const [meta] = await this.#store.latest(face.svc, NS_AVATAR_METADATA, 1);
      const metaEl = meta === undefined ? undefined : parse(meta.payload);
      const infos = metaEl?.getChildren("info", NS_AVATAR_METADATA) ?? [];
      const info = infos.find((i) => i.attrs["type"] === "image/png") ?? infos[0];
      this.#remember(user, info?.attrs["id"] ?? "");
      const vcard = parse(await this.#vcard.get(user)) ?? x("vCard", NS_VCARD);
      vcard.children = vcard.children.filter((c) => typeof c === "string" || !(c.name === "PHOTO" && c.xmlns === NS_VCARD));
      if (info !== undefined && info.attrs["id"] !== undefined && info.attrs["url"] === undefined) {
        const [data] = await this.#store.itemsById(face.svc, NS_AVATAR_DATA, [info.attrs["id"]]);
        const b64 = data === undefined ? undefined : parse(data.payload)?.text().replace(/\s+/g, "");
        if (b64 === undefined || b64 === "") return; // data not (yet) published: leave the vCard as it was
        vcard.children.push(x("PHOTO", NS_VCARD, {}, x("TYPE", NS_VCARD, {}, info.attrs["type"] ?? "image/png"), x("BINVAL", NS_VCARD, {}, b64)));
      }
      await this.#vcard.set(user, vcard.elements.length === 0 ? undefined : serialize(vcard, ""));
    } finally {
      this.#busy.delete(user);
    }
  }

  /** XEP-0398 §2.1: a client set a vCard: publish its PHOTO as avatar data and metadata (or disable the avatar). */
  async fromVcard(face: Face, text: string | undefined): Promise<void> {
    const user = face.svc.owner;
    if (this.#busy.has(user)) return;
    this.#busy.add(user);
    try {
      const photo = parse(text)?.getChild("PHOTO", NS_VCARD);
      const b64 = photo?.getChildText("BINVAL", NS_VCARD)?.replace(/\s+/g, "");
      const type = photo?.getChildText("TYPE", NS_VCARD)?.trim() || "image/png";
      const current = await this.currentId(face);
      if (b64 === undefined || b64 === "") {
        if (current === undefined || current === "") return; // no avatar before, none now
        await this.#publish(face, NS_AVATAR_METADATA, { id: "none", publisher: face.jid.toString(), payload: serialize(x("metadata", NS_AVATAR_METADATA), "") });
        this.#remember(user, "");
        return;
      }
      const bytes = Buffer.from(b64, "base64");
      const id = createHash("sha1").update(bytes).digest("hex");
      if (id === current) return;
      const data = serialize(x("data", NS_AVATAR_DATA, {}, bytes.toString("base64")), "");
      if (Buffer.byteLength(data, "utf8") > this.#maxBytes) return; // too large for an item: the vCard keeps it alone
      if (!(await this.#publish(face, NS_AVATAR_DATA, { id, publisher: face.jid.toString(), payload: data }))) return;
      const info = x("info", NS_AVATAR_METADATA, { id, bytes: String(bytes.length), type });
      await this.#publish(face, NS_AVATAR_METADATA, { id, publisher: face.jid.toString(), payload: serialize(x("metadata", NS_AVATAR_METADATA, {}, info), "") });
      this.#remember(user, id);
    } finally {
      this.#busy.delete(user);
    }
  }

  /** Publish as the owner would (creating the node with PEP defaults within the node limit) and notify. */
  async #publish(face: Face, node: string, item: StoredItem): Promise<boolean> {
    let rec = await this.#store.node(face.svc, node);
    if (rec === undefined) {
      if ((await this.#store.nodeCount(face.svc)) >= this.#maxNodes) return false;
      rec = { config: defaultConfig("pep"), affiliations: {}, created: Date.now() };
      await this.#store.putNode(face.svc, node, rec);
    }
    await this.#store.publish(face.svc, node, item, rec.config.max_items);
    await face.notify(node, rec, itemsEvent(node, [item], rec.config));
    return true;
  }
}

/** XEP-0153 §3.2 / XEP-0398 §2.2: the presence carries the current avatar hash (replacing what the client put there). */
export function stampPhoto(presence: Element, id: string): void {
  presence.children = presence.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.xmlns === NS_VCARD_UPDATE));
  presence.children.push(x("x", NS_VCARD_UPDATE, {}, id === "" ? x("photo", NS_VCARD_UPDATE) : x("photo", NS_VCARD_UPDATE, {}, id)));
}
