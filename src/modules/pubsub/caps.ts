// XEP-0115: Entity Capabilities <https://xmpp.org/extensions/xep-0115.html> as PEP needs it (XEP-0163 §4.3.2 "filtered
// notifications"): the verification string of §5.1 to check a disco#info answer against the advertised `ver` (§5.4),
// a bounded cache of verified feature sets by `ver` (§6.3: a `ver` is valid for every entity once verified), and, per
// available full JID, which `<node>+notify` features it has, so a publish can tell who wants which node.
import type { Element } from "../../xml/element.ts";
import { NS_DISCO_INFO } from "../../xmpp/ns.ts";
export { capsString, capsVer } from "../../xmpp/caps.ts";

/** A caps `<c/>` as read from a presence. */
export interface CapsClaim {
  hash: string | undefined;
  node: string;
  ver: string;
}

/** The features of a disco#info answer. */
export function featuresOf(query: Element): Set<string> {
  return new Set(query.getChildren("feature", NS_DISCO_INFO).map((f) => f.attrs["var"] ?? ""));
}

/** Only the `+notify` features matter to PEP; keeping just those bounds what a large feature list costs us. */
function notifyNodes(features: Iterable<string>, maxPerEntity: number): Set<string> {
  const out = new Set<string>();
  for (const f of features) {
    if (!f.endsWith("+notify")) continue;
    out.add(f.slice(0, -"+notify".length));
    if (out.size >= maxPerEntity) break;
  }
  return out;
}

/** One available full JID we have seen presence from. */
interface Entity {
  bare: string;
  /** The claimed caps; undefined when the presence carried none. */
  ver: string | undefined;
  /** Nodes it wants, when known only for this entity (an unverifiable `ver`); otherwise read from the ver cache. */
  own: Set<string> | undefined;
  /** Local accounts this entity's current presence was delivered to (whose last items it has been sent). */
  owners: Set<string>;
}

/** Limits of one {@link CapsTracker}. */
export interface CapsLimits {
  /** Verified `ver` strings kept (least recently used dropped). */
  maxVers: number;
  /** Full JIDs tracked at once (oldest dropped). */
  maxEntities: number;
  /** `+notify` nodes kept per feature set. */
  maxNotifyPerEntity: number;
}

/**
 * Per host: verified caps by `ver` and the available full JIDs with their caps. Everything is bounded: the cache and the
 * entity table evict their oldest entries, so a flood of distinct vers or resources costs a fixed amount of memory.
 */
export class CapsTracker {
  readonly #limits: CapsLimits;
  readonly #vers = new Map<string, Set<string>>();
  readonly #entities = new Map<string, Entity>();
  readonly #byBare = new Map<string, Set<string>>();

  constructor(limits: CapsLimits) {
    this.#limits = limits;
  }

  /** The `+notify` nodes of a verified ver, or undefined when the ver is unknown. */
  known(ver: string): ReadonlySet<string> | undefined {
    const v = this.#vers.get(ver);
    if (v !== undefined) {
      // LRU: a hit moves the ver to the newest end.
      this.#vers.delete(ver);
      this.#vers.set(ver, v);
    }
    return v;
  }

  /** Remember a verified feature set under its ver. */
  remember(ver: string, features: Iterable<string>): void {
    this.#vers.delete(ver);
    this.#vers.set(ver, notifyNodes(features, this.#limits.maxNotifyPerEntity));
    while (this.#vers.size > this.#limits.maxVers) this.#vers.delete(this.#vers.keys().next().value!);
  }

  /**
   * An available presence from `full` reached local account `owner` (or the owner's own resource): record it and say
   * whether this is news for that owner (first presence, or a different ver), i.e. whether last items should be sent.
   */
  available(full: string, bare: string, ver: string | undefined, owner: string): boolean {
    const e = this.#entities.get(full);
    if (e !== undefined && e.ver === ver) {
      if (e.owners.has(owner)) return false;
      if (e.owners.size < 64) e.owners.add(owner);
      return true;
    }
    if (e !== undefined) this.#drop(full);
    this.#entities.set(full, { bare, ver, own: undefined, owners: new Set([owner]) });
    let fulls = this.#byBare.get(bare);
    if (fulls === undefined) this.#byBare.set(bare, (fulls = new Set()));
    fulls.add(full);
    while (this.#entities.size > this.#limits.maxEntities) this.#drop(this.#entities.keys().next().value!);
    return true;
  }

  /** Features learnt for this entity alone (its ver could not be verified, or it sent no hash). */
  setOwn(full: string, ver: string | undefined, features: Iterable<string>): void {
    const e = this.#entities.get(full);
    if (e !== undefined && e.ver === ver) e.own = notifyNodes(features, this.#limits.maxNotifyPerEntity);
  }

  /** The entity went unavailable (or its session ended). */
  unavailable(full: string): void {
    this.#drop(full);
  }

  /** The ver an available entity claimed, and whether it is tracked at all. */
  verOf(full: string): { tracked: boolean; ver: string | undefined } {
    const e = this.#entities.get(full);
    return { tracked: e !== undefined, ver: e?.ver };
  }

  /** The nodes `full` wants notifications for (empty when unknown). */
  interests(full: string): ReadonlySet<string> {
    const e = this.#entities.get(full);
    if (e === undefined) return EMPTY;
    if (e.own !== undefined) return e.own;
    return (e.ver === undefined ? undefined : this.#vers.get(e.ver)) ?? EMPTY;
  }

  /** Available full JIDs of a bare JID that want notifications for `node`. */
  interested(bare: string, node: string): string[] {
    const out: string[] = [];
    for (const full of this.#byBare.get(bare) ?? []) if (this.interests(full).has(node)) out.push(full);
    return out;
  }

  /** How many entities and vers are held (for status and tests). */
  get size(): { entities: number; vers: number } {
    return { entities: this.#entities.size, vers: this.#vers.size };
  }

  #drop(full: string): void {
    const e = this.#entities.get(full);
    if (e === undefined) return;
    this.#entities.delete(full);
    const fulls = this.#byBare.get(e.bare);
    fulls?.delete(full);
    if (fulls !== undefined && fulls.size === 0) this.#byBare.delete(e.bare);
  }
}

const EMPTY: ReadonlySet<string> = new Set<string>() as ReadonlySet<string>;
