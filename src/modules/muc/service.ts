// XEP-0045: Multi-User Chat <https://xmpp.org/extensions/xep-0045.html>, the service on its own domain: service
// discovery (§6.1-6.3), rooms by address (§7-§10), creation on first entry by an allowed user (§10.1), errors
// answered in the room's name (§7.2.16), the index of which sessions are in which rooms (session ends), and
// persistent rooms kept in a RoomStore (persistence.ts) across restarts, with their archives (archive.ts).
import { Element } from "../../xml/element.ts";
import { StanzaError, errorReply } from "../../xmpp/errors.ts";
import { parseJid, type Jid } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING } from "../../xmpp/ns.ts";
import type { ConfigLimits, Whois } from "./config.ts";
import { NS_MUC, NS_MUC_STABLE_ID } from "./ns.ts";
import { Room, notInRoom, type RoomDeps } from "./room.ts";
import { orderedSend, type Send } from "./ordered-send.ts";
import type { RoomStore } from "./persistence.ts";
import type { RoomArchive } from "./archive.ts";
import type { HistoryEntry } from "./history.ts";
import { parseXml } from "../../xml/parser.ts";
import { NS_SID } from "../mam/mod.ts";

/** Who may create rooms (hosts[].muc.create). */
export type CreatePolicy = "admins" | "users" | "anyone";

export interface MucServiceOptions {
  /** The service's domain, e.g. conference.example.org. */
  domain: string;
  /** The host that runs it: its users are "users", its admins are "admins". */
  host: string;
  name: string;
  create: CreatePolicy;
  maxRooms: number;
  limits: ConfigLimits;
  /** muc#roomconfig_whois of new rooms (default: moderators, semi-anonymous). */
  defaultWhois?: Whois;
  /** Routes a stanza (the module context's send); its promise, if any, says when routing is done. */
  send: Send;
  isHostAdmin(jid: Jid): boolean;
  now?(): number;
  /** Where persistent rooms are kept; without one they last until the server stops. */
  store?: RoomStore;
  /** The rooms' message archives (XEP-0313); without one no room archives. */
  archive?: RoomArchive;
  /** Most messages one archive query returns. */
  maxPage?: number;
}

/** One chat service and its rooms: in memory, persistent ones also in the store. */
export class MucService {
  readonly domain: string;
  readonly rooms = new Map<string, Room>();
  readonly #opts: MucServiceOptions;
  readonly #send: Send;
  readonly #deps: RoomDeps;
  /** Real full JID → the rooms it is in. */
  readonly #roomsOf = new Map<string, Set<Room>>();

  constructor(opts: MucServiceOptions) {
    this.domain = opts.domain;
    this.#opts = opts;
    this.#send = orderedSend(opts.send);
    this.#deps = {
      send: (stanza) => void this.#send(stanza),
      limits: opts.limits,
      defaultWhois: opts.defaultWhois ?? "moderators",
      now: opts.now ?? Date.now,
      isServiceAdmin: (jid) => opts.isHostAdmin(jid),
      gone: (room, why) => {
        if (this.rooms.get(room.jid.local) === room) this.rooms.delete(room.jid.local);
        // A stopping server keeps its persistent rooms; a destroyed or emptied temporary room is forgotten, and so is
        // its archive (a temporary room's too when the server stops: it will not come back), so that a new room of the
        // same name does not show the old one's messages to its occupants.
        if (why !== "shutdown") opts.store?.remove(room.jid.local);
        if (why !== "shutdown" || !room.config.persistent || room.locked) opts.archive?.clear(room.jid.local);
      },
      changed: (room) => {
        if (!opts.store || room.isGone) return;
        if (room.config.persistent && !room.locked) opts.store.save(room.jid.local, room.snapshot());
        else opts.store.remove(room.jid.local); // turned temporary: a restart will not bring it back
      },
      joined: (room, real) => {
        let set = this.#roomsOf.get(real);
        if (!set) this.#roomsOf.set(real, (set = new Set()));
        set.add(room);
      },
      ...(opts.archive ? { archive: opts.archive } : {}),
      ...(opts.maxPage !== undefined ? { maxPage: opts.maxPage } : {}),
      left: (room, real) => {
        const set = this.#roomsOf.get(real);
        if (!set) return;
        set.delete(room);
        if (set.size === 0) this.#roomsOf.delete(real);
      },
    };
  }

  /** Bring back the stored persistent rooms (at start, before any stanza); returns how many. */
  async load(): Promise<number> {
    const store = this.#opts.store;
    if (!store) return 0;
    const stored = await store.load(this.#opts.limits);
    for (const { name, state } of stored) {
      const jid = parseJid(`${name}@${this.domain}`);
      const history = state.config.archive ? await this.#history(name, state.config.maxHistory) : [];
      const room = new Room(jid, { state, history }, this.#deps);
      this.rooms.set(name, room);
      if (state.occupantIdSecret === undefined) store.save(name, room.snapshot()); // stored before XEP-0421: keep its new secret
    }
    return stored.length;
  }

  /**
   * XEP-0045 §7.2.12-7.2.15: the discussion history of a stored room, from the newest messages with a body in its
   * archive (subject changes are archived too, but the subject is sent on its own), each with its archive id as
   * XEP-0359 stanza id, as when it was live.
   */
  async #history(room: string, max: number): Promise<HistoryEntry[]> {
    const archive = this.#opts.archive;
    if (!archive || max === 0) return [];
    const out: HistoryEntry[] = [];
    // Subject changes (and unreadable rows) take rows without being history: read with a margin for them, bounded.
    for (const m of await archive.recent(room, max * 2 + 10)) {
      let stanza: Element;
      try {
        stanza = parseXml(m.stanza);
      } catch {
        continue; // unreadable rows are skipped, as archive queries skip them
      }
      if (stanza.name !== "message" || !stanza.getChild("body")) continue;
      if (!stanza.getChild("stanza-id", NS_SID)) stanza.children.push(new Element("stanza-id", NS_SID, { id: m.id, by: `${room}@${this.domain}` }));
      out.push({ stanza, stamp: m.timestamp });
    }
    return out.slice(-max);
  }

  /** Resolves when the store and the archives have written every change made so far. */
  async flush(): Promise<void> {
    await this.#opts.store?.flush();
    await this.#opts.archive?.flush();
  }

  /** Everything addressed to the service's domain or a JID on it. */
  handle(stanza: Element, from: Jid, to: Jid): void {
    try {
      if (to.local === "") return this.#serviceStanza(stanza, from, to);
      const room = this.rooms.get(to.local);
      if (!room) return this.#noRoom(stanza, from, to);
      if (stanza.name === "presence") return room.presence(stanza, from, to.resource);
      if (stanza.name === "message") return room.message(stanza, from, to.resource);
      if (stanza.name === "iq") return room.iq(stanza, from, to.resource);
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err; // the router logs it and answers internal-server-error
      this.#refuse(stanza, to, err);
    }
  }

  /** An error in the room's (or service's) name; never in answer to an error or a result (RFC 6120 §8.3.1). */
  #refuse(stanza: Element, to: Jid, err: StanzaError): void {
    const type = stanza.attrs["type"];
    if (type === "error" || (stanza.name === "iq" && type === "result") || stanza.attrs["from"] === undefined) return;
    // Presence errors carry the MUC element only (§7.2.6-7.2.11 examples), never the password that was sent.
    const isPresence = stanza.name === "presence";
    const reply = errorReply(stanza, err, { by: to.bare.toString(), keepPayload: !isPresence });
    if (isPresence) reply.children.unshift(new Element("x", NS_MUC));
    void this.#send(reply);
  }

  /** §6.1-6.3: the service's identity and features, and the public rooms. */
  #serviceStanza(stanza: Element, from: Jid, to: Jid): void {
    if (stanza.name === "presence") return;
    const type = stanza.attrs["type"];
    if (stanza.name === "message") {
      if (type === "error" || type === "groupchat" || type === "headline") return;
      throw new StanzaError("service-unavailable");
    }
    if (type !== "get" && type !== "set") return;
    if (to.resource !== "") throw new StanzaError("service-unavailable");
    const payload = stanza.elements[0];
    if (!payload || type !== "get") throw new StanzaError("service-unavailable");
    if (payload.attrs["node"] !== undefined) throw new StanzaError("item-not-found");
    let result: Element | undefined;
    if (payload.name === "query" && payload.xmlns === NS_DISCO_INFO) {
      result = new Element("query", NS_DISCO_INFO);
      result.c("identity", { category: "conference", type: "text", name: this.#opts.name });
      for (const f of [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_STABLE_ID, NS_PING]) result.c("feature", { var: f });
    } else if (payload.name === "query" && payload.xmlns === NS_DISCO_ITEMS) {
      result = new Element("query", NS_DISCO_ITEMS);
      for (const room of this.rooms.values()) {
        if (room.locked || !room.config.public) continue; // §6.3: hidden rooms are not listed
        result.c("item", { jid: room.address, name: room.config.name || room.jid.local });
      }
    } else if (!(payload.name === "ping" && payload.xmlns === NS_PING)) {
      throw new StanzaError("service-unavailable");
    }
    this.#reply(stanza, from, result);
  }

  #reply(iq: Element, from: Jid, payload: Element | undefined): void {
    const attrs: Record<string, string> = { type: "result", from: iq.attrs["to"] ?? this.domain, to: from.toString() };
    if (iq.attrs["id"] !== undefined) attrs["id"] = iq.attrs["id"];
    void this.#send(new Element("iq", NS_CLIENT, attrs, payload ? [payload] : []));
  }

  /** A stanza for a room that does not exist: entering with <x/> creates it when the sender may (§10.1.1). */
  #noRoom(stanza: Element, from: Jid, to: Jid): void {
    const type = stanza.attrs["type"];
    if (stanza.name === "presence") {
      if (type !== undefined) return; // unavailable, probes, errors: nothing to do
      if (to.resource === "") throw new StanzaError("jid-malformed", { text: "enter with room@service/nick" });
      if (!stanza.getChild("x", NS_MUC)) {
        void this.#send(notInRoom(to.toString(), from.toString()));
        return;
      }
      if (!this.mayCreate(from)) throw new StanzaError("not-allowed", { text: "you may not create rooms here" });
      if (this.rooms.size >= this.#opts.maxRooms) throw new StanzaError("resource-constraint", { text: "the service has too many rooms" });
      const room = new Room(to.bare, { owner: from }, this.#deps);
      this.rooms.set(to.local, room);
      try {
        room.presence(stanza, from, to.resource, { created: true });
      } catch (err) {
        this.rooms.delete(to.local);
        throw err;
      }
      return;
    }
    if (type === "error" || (stanza.name === "iq" && type === "result")) return;
    throw new StanzaError("item-not-found"); // §17.2: messages and IQs for a room that does not exist
  }

  /** hosts[].muc.create: the host's admins, its users, or anyone (remote users included). */
  mayCreate(jid: Jid): boolean {
    switch (this.#opts.create) {
      case "anyone":
        return true;
      case "users":
        return jid.domain === this.#opts.host;
      case "admins":
        return this.#opts.isHostAdmin(jid);
    }
  }

  /** A local session ended: it leaves every room it was in (the others see it go). */
  sessionEnded(jid: Jid): void {
    const real = jid.toString();
    for (const room of [...(this.#roomsOf.get(real) ?? [])]) room.sessionEnded(real);
  }

  /** §13.2: the server stops; every occupant is told (332). */
  shutdown(): void {
    for (const room of [...this.rooms.values()]) room.shutdown();
  }
}
