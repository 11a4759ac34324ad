// Registry of bound client sessions (RFC 6120 §7): bare JID → resource → session.
import type { Element } from "../xml/element.ts";
import type { Jid } from "../xmpp/jid.ts";

/** What the router needs of a bound client session. */
export interface LocalSession {
  readonly jid: Jid;
  /** Presence priority (RFC 6121 §4.7.2.3); sessions that sent no presence yet are not available. */
  priority: number;
  available: boolean;
  /** The last broadcast presence (RFC 6121 §4.2), undefined before initial presence. */
  presence: Element | undefined;
  /** Whether the client fetched its roster (it then gets roster pushes, RFC 6121 §2.1.6). */
  interested: boolean;
  /** Full JIDs this session sent directed presence to (RFC 6121 §4.6), told when it goes offline. */
  readonly directed: Set<string>;
  deliver(stanza: Element): void;
  /** Close the session with a stream error condition (e.g. "conflict" when replaced). */
  kick(condition: "conflict" | "system-shutdown" | "policy-violation" | "not-authorized", text?: string): void;
}

/** All bound sessions of all hosts. */
export class SessionRegistry {
  readonly #byBare = new Map<string, Map<string, LocalSession>>();
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Sessions of a bare JID (empty map when none). */
  ofBare(bare: string): ReadonlyMap<string, LocalSession> {
    return this.#byBare.get(bare) ?? EMPTY;
  }

  /** The session bound to a full JID. */
  get(full: Jid): LocalSession | undefined {
    return this.#byBare.get(full.bareString())?.get(full.resource);
  }

  add(session: LocalSession): void {
    const bare = session.jid.bareString();
    let m = this.#byBare.get(bare);
    if (!m) this.#byBare.set(bare, (m = new Map()));
    if (!m.has(session.jid.resource)) this.#count++;
    m.set(session.jid.resource, session);
  }

  remove(session: LocalSession): void {
    const bare = session.jid.bareString();
    const m = this.#byBare.get(bare);
    if (!m || m.get(session.jid.resource) !== session) return;
    m.delete(session.jid.resource);
    this.#count--;
    if (m.size === 0) this.#byBare.delete(bare);
  }

  /** Every session (for shutdown). */
  *all(): IterableIterator<LocalSession> {
    for (const m of this.#byBare.values()) yield* m.values();
  }
}

const EMPTY: ReadonlyMap<string, LocalSession> = new Map();
