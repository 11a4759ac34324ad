// XEP-0313: Message Archive Management <https://xmpp.org/extensions/xep-0313.html> for rooms (§3.2: a MUC service
// keeps the archive of each room and answers queries sent to the room's JID), with XEP-0359 stanza ids (the archive id
// is the id the room stamps as <stanza-id by='room@service'/> on the live message).
//
// Rows live in the user-archive store (storage.archive, types.ts ArchiveStore) under host = the service's domain and
// user = the room's local part: that store already has the (owner, with, id) and time indexes a MAM query needs on
// every backend, and a chat service's domain is never a host with accounts, so the owners cannot collide. `with` is the
// sender's occupant JID (room@service/nick), so a query `with` a nickname finds what that occupant said; direction is
// always "in" (the room received it).
import type { ArchivedMessage, ArchivePage, ArchiveQuery, ArchiveStore } from "../../storage/types.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { StoreLog } from "./persistence.ts";

/** Appends since a room's last trim: the cap is enforced every TRIM_EVERY appends (so it is soft by that much). */
const TRIM_EVERY = 100;
/** How long a due trim may wait, so that the trims of a busy second run together, off the message's path. */
const TRIM_DELAY_MS = 1000;

/** The archives of the rooms of one chat service. */
export class RoomArchive {
  readonly #store: ArchiveStore;
  readonly #domain: string;
  readonly #keep: number;
  readonly #log: StoreLog;
  readonly #sinceTrim = new Map<string, number>();
  readonly #trimDue = new Set<string>();
  #trimTimer: NodeJS.Timeout | undefined;
  /** Writes not done yet (clears, trims) that a stopping server waits for. */
  readonly #pending = new Set<Promise<unknown>>();

  constructor(store: ArchiveStore, domain: string, keep: number, log: StoreLog) {
    this.#store = store;
    this.#domain = domain;
    this.#keep = keep;
    this.#log = log;
  }

  /**
   * Archive one message of `room` sent by occupant JID `sender`. Returns its id at once where the store allocates ids
   * itself (SQLite, memory), a promise where that takes a round trip (PostgreSQL); undefined (or a promise of it) when
   * storing failed, which is logged: the message still goes out, without an archive id.
   */
  append(room: string, sender: string, xml: string, timestamp: number): string | undefined | Promise<string | undefined> {
    const m = { with: sender, direction: "in" as const, stanza: xml, timestamp };
    const failed = (err: unknown): undefined => {
      this.#log.error({ domain: this.#domain, room, err }, "archiving a room message failed");
      return undefined;
    };
    let id: string | Promise<string>;
    try {
      id = this.#store.appendNow !== undefined ? this.#store.appendNow(this.#domain, room, m) : this.#store.append(this.#domain, room, m);
    } catch (err) {
      return failed(err);
    }
    this.#counted(room);
    return typeof id === "string" ? id : id.catch(failed);
  }

  #counted(room: string): void {
    const n = (this.#sinceTrim.get(room) ?? 0) + 1;
    if (n >= TRIM_EVERY || !this.#sinceTrim.has(room)) {
      this.#sinceTrim.set(room, 0);
      this.#trimDue.add(room);
      this.#trimTimer ??= setTimeout(() => void this.#runTrims(), TRIM_DELAY_MS).unref();
    } else this.#sinceTrim.set(room, n);
  }

  #runTrims(): Promise<unknown> {
    clearTimeout(this.#trimTimer);
    this.#trimTimer = undefined;
    const rooms = [...this.#trimDue];
    this.#trimDue.clear();
    return this.#track(
      Promise.all(
        rooms.map((room) =>
          this.#store.trim(this.#domain, room, { keep: this.#keep }).catch((err: unknown) => this.#log.error({ domain: this.#domain, room, err }, "trimming a room archive failed")),
        ),
      ),
    );
  }

  #track(p: Promise<unknown>): Promise<unknown> {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
    return p;
  }

  /** One page of `room`'s archive; item-not-found for an unknown after/before id (§4.1.2 / XEP-0059 §2.6). */
  async query(room: string, q: ArchiveQuery): Promise<ArchivePage> {
    let page: ArchivePage | undefined;
    try {
      page = await this.#store.query(this.#domain, room, q);
    } catch (err) {
      this.#log.error({ domain: this.#domain, room, err }, "querying a room archive failed");
      throw new StanzaError("internal-server-error", { text: "the archive cannot be read now" });
    }
    if (page === undefined) throw new StanzaError("item-not-found", { text: "no such message in the archive" });
    return page;
  }

  /** A stored row that cannot be parsed: skipped from results, and said in the log. */
  unreadable(room: string, id: string, err: unknown): void {
    this.#log.warn({ domain: this.#domain, room, id, err }, "skipping an unreadable archived room message");
  }

  /** The newest `n` messages of `room`, oldest first (the discussion history of a room that came back from storage). */
  async recent(room: string, n: number): Promise<ArchivedMessage[]> {
    if (n === 0) return [];
    try {
      return (await this.#store.query(this.#domain, room, { before: "", max: n }))?.items ?? [];
    } catch (err) {
      this.#log.error({ domain: this.#domain, room, err }, "reading a room archive failed; the room starts without history");
      return [];
    }
  }

  /**
   * Replace one archived message of `room` with what `make` builds from it (XEP-0425: a tombstone); resolves the
   * message as it was, or item-not-found when the id is not in the room's archive.
   */
  async replace(room: string, id: string, make: (current: ArchivedMessage) => string): Promise<ArchivedMessage> {
    let before: ArchivedMessage | undefined;
    try {
      before = await this.#store.replace(this.#domain, room, id, make);
    } catch (err) {
      if (err instanceof StanzaError) throw err;
      this.#log.error({ domain: this.#domain, room, err }, "changing a room archive failed");
      throw new StanzaError("internal-server-error", { text: "the archive cannot be changed now" });
    }
    if (before === undefined) throw new StanzaError("item-not-found", { text: "no such message in the archive" });
    return before;
  }

  /** Forget `room`'s archive (the room was destroyed, or a temporary room ended): a new room of that name starts empty. */
  clear(room: string): void {
    this.#sinceTrim.delete(room);
    this.#trimDue.delete(room);
    void this.#track(this.#store.clear(this.#domain, room).catch((err: unknown) => this.#log.error({ domain: this.#domain, room, err }, "removing a room archive failed")));
  }

  /** Run the due trims and wait for every write asked for so far (before the storage closes). */
  async flush(): Promise<void> {
    if (this.#trimDue.size > 0) void this.#runTrims();
    await Promise.all([...this.#pending]);
  }
}
