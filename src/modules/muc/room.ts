// XEP-0045: Multi-User Chat <https://xmpp.org/extensions/xep-0045.html>, one room: entering (§7.2), presence
// (§7.6, §7.7), groupchat and private messages (§7.4, §7.5), subject (§8.1), invitations (§7.8.2), exit (§7.14),
// moderation (§8: kick, voice), affiliations (§9: ban, members, admins; §10: owners), configuration (§10.1-10.2),
// destruction (§10.9), ghosts (§18.1.2) and shutdown (§13.2). The service stores the lasting state of persistent
// rooms (snapshot(), restored by the constructor); occupants and recent history are kept in memory. Rooms whose
// configuration says so (muc#roomconfig_enablearchiving) archive their messages (XEP-0313, archive.ts), stamp them with
// XEP-0359 stanza ids and answer archive queries; a stored room's history comes back from its archive.
import { createHmac, randomBytes } from "node:crypto";
import { Element } from "../../xml/element.ts";
import { StanzaError, errorReply, type StanzaCondition } from "../../xmpp/errors.ts";
import { finElement, parseQuery, queryForm, resultMessage, stripStanzaIds, NS_MAM, NS_SID } from "../mam/mod.ts";
import type { RoomArchive } from "./archive.ts";
import { parseJid, tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { parseXml } from "../../xml/parser.ts";
import { NS_CLIENT, NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_STANZAS } from "../../xmpp/ns.ts";
import { buildForm } from "../../xmpp/data-forms.ts";
import { applyConfigForm, configForm, defaultConfig, type ConfigLimits, type RoomConfig, type Whois } from "./config.ts";
import { History, delayed, parseHistoryRequest, stampOf, type HistoryEntry } from "./history.ts";
import type { RoomState, RoomSubject } from "./persistence.ts";
import {
  NS_DELAY,
  NS_MUC,
  NS_MUC_ADMIN,
  NS_MUC_OWNER,
  NS_MUC_ROOMINFO,
  NS_MUC_SELF_PING,
  NS_MUC_STABLE_ID,
  NS_MUC_USER,
  NS_FASTEN,
  NS_MODERATE,
  NS_OCCUPANT_ID,
  NS_RETRACT,
  NS_VCARD,
} from "./ns.ts";
import {
  affiliationAtLeast,
  affiliationChangeRefusal,
  defaultRole,
  isAffiliation,
  isRole,
  roleAtLeast,
  roleChangeRefusal,
  type Affiliation,
  type Role,
} from "./roles.ts";

/** What a room needs from its service. */
export interface RoomDeps {
  /** Route a stanza the room generated (from the room or an occupant JID). */
  send(stanza: Element): void;
  limits: ConfigLimits;
  /** muc#roomconfig_whois of a new room (hosts[].muc.default_whois). */
  defaultWhois: Whois;
  /** Milliseconds since the epoch (a parameter so tests can move time). */
  now(): number;
  /** Administrators of the service's host act as owners of every room. */
  isServiceAdmin(jid: Jid): boolean;
  /** The room ended: destroyed (§10.9, or the initial configuration cancelled), left empty while not persistent, or the server stops. */
  gone(room: Room, why: "destroyed" | "empty" | "shutdown"): void;
  /** The room's lasting state (configuration, affiliations, subject) changed: see snapshot(). */
  changed(room: Room): void;
  /** A real full JID entered / left the room (the service keeps an index for session ends). */
  joined(room: Room, real: string): void;
  left(room: Room, real: string): void;
  /** The service's room archives (hosts[].muc.archive); absent: no room archives. */
  archive?: RoomArchive;
  /** Most messages one archive query returns (mam.max_page). */
  maxPage?: number;
}

/**
 * §18.1.2: the conditions of an error from an occupant's real JID that say the room's stanzas no longer reach it (a
 * "ghost"), so it is removed with status 333 (removed because of an error: a technical reason, not a kick). The set
 * Prosody kicks on: the RFC 6120 §8.3.3 conditions of an address that is wrong, gone or moved, of a server that cannot
 * be reached or failed, and service-unavailable, which is what a server answers for a groupchat message to a resource
 * that is not online (RFC 6121 §8.5.3.2.1; our router too, for a local session that went away meanwhile). Errors that
 * refuse one stanza (not-acceptable, forbidden, feature-not-implemented...) leave the occupant in the room.
 */
const GONE_ERRORS: ReadonlySet<string> = new Set([
  "gone",
  "internal-server-error",
  "item-not-found",
  "jid-malformed",
  "recipient-unavailable",
  "redirect",
  "remote-server-not-found",
  "remote-server-timeout",
  "service-unavailable",
]);

/** Whether an error stanza says its sender is gone; one without a defined condition is malformed and counts too. */
function isGoneError(stanza: Element): boolean {
  const condition = stanzaCondition(stanza);
  return condition === undefined || GONE_ERRORS.has(condition);
}

/**
 * Most messages of one room waiting for their archive ids (a store that allocates them with a round trip); beyond it
 * the room refuses messages with resource-constraint (wait) until the store catches up, so memory stays bounded.
 */
const MAX_WAITING_FOR_ARCHIVE = 1000;

/** How long the room waits for the answer to an IQ it forwarded to an occupant. */
const FORWARD_TIMEOUT_MS = 60_000;

/** One nickname in the room, with the session(s) of one user behind it (§7.2.9: same bare JID, same nick). */
class Occupant {
  nick: string;
  readonly bare: string;
  /** XEP-0421 occupant id, set by the room (the same for every session of the user). */
  occupantId = "";
  role: Role;
  /** Real full JIDs of the user's sessions in the room. */
  readonly sessions = new Map<string, Jid>();
  /** The session whose presence is shown (the last to send one). */
  current: string;
  /** Children of the last presence, without MUC protocol elements (§17.3: never reflected). */
  presence: Element[];

  constructor(nick: string, bare: string, role: Role, real: Jid, presence: Element[]) {
    this.nick = nick;
    this.bare = bare;
    this.role = role;
    this.current = real.toString();
    this.sessions.set(this.current, real);
    this.presence = presence;
  }
}

/** Extra information in a presence the room sends about an occupant. */
interface PresenceInfo {
  unavailable?: boolean;
  /** Status codes for every recipient (110 is added for the occupant's own sessions). */
  codes?: number[];
  /** Status codes for the occupant's own sessions only (e.g. 100, 201 on entering). */
  selfCodes?: number[];
  /** §7.6: the new nickname, in the unavailable presence of a nickname change (303). */
  newNick?: string;
  actor?: string;
  reason?: string;
  /** Override what the item says (e.g. role none when leaving, affiliation none when destroyed). */
  role?: Role;
  affiliation?: Affiliation;
  /** The real JID the item shows (default: the occupant's current session). */
  jid?: string;
  /** Children instead of the stored presence (e.g. the <status/> of an exit). */
  children?: Element[];
  destroy?: Element;
  id?: string;
}

/** An IQ the room forwarded to an occupant (§17.4), awaiting the answer. */
interface Forwarded {
  id: string;
  requester: string;
  /** The occupant JID the answer comes from. */
  via: string;
  /** Where the request went: the answer must come from there. */
  target: string;
  timer: NodeJS.Timeout;
}

/** XEP-0421 §4: an occupant id only the room may add; one a client sent is dropped. */
function isOccupantId(c: Element["children"][number]): boolean {
  return typeof c !== "string" && c.name === "occupant-id" && c.xmlns === NS_OCCUPANT_ID;
}

/** Remove the MUC protocol elements a client put in its presence (§17.3), and any occupant id (XEP-0421 §4). */
function sanitize(presence: Element): Element[] {
  const out: Element[] = [];
  for (const c of presence.children) {
    if (typeof c === "string") continue;
    if (c.name === "x" && (c.xmlns === NS_MUC || c.xmlns === NS_MUC_USER)) continue;
    if (c.name === "error" || isOccupantId(c)) continue;
    out.push(c);
  }
  return out;
}

function sameChildren(a: Element[], b: Element[]): boolean {
  return a.length === b.length && a.every((e, i) => e.toString() === b[i]!.toString());
}

function newId(): string {
  return randomBytes(9).toString("base64url");
}

function stanzaCondition(stanza: Element): string | undefined {
  return stanza.getChild("error")?.elements.find((e) => e.xmlns === NS_STANZAS)?.name;
}

/**
 * §7.2.1 (since 1.32): the answer to presence without <x xmlns='http://jabber.org/protocol/muc'/> from someone who is
 * not in the room (a groupchat 1.0 join, or a client that lost track): an explicit kick, 110 + 307 + 333.
 */
export function notInRoom(occupantJid: string, to: string): Element {
  const p = new Element("presence", NS_CLIENT, { from: occupantJid, to, type: "unavailable" });
  const x = p.c("x", {}, NS_MUC_USER);
  x.c("item", { affiliation: "none", role: "none" }).c("reason").t("You are not in the room.");
  for (const code of [110, 307, 333]) x.c("status", { code: String(code) });
  return p;
}

/** One chat room. */
export class Room {
  readonly jid: Jid;
  readonly address: string;
  config: RoomConfig;
  /** §10.1.1: a new room admits only its owner until the owner accepts or submits a configuration. */
  locked = true;
  readonly #deps: RoomDeps;
  /** Lasting affiliations by bare JID (or domain, for bans); "none" is the absence of an entry. */
  readonly #affiliations = new Map<string, Affiliation>();
  readonly #byNick = new Map<string, Occupant>();
  readonly #byReal = new Map<string, Occupant>();
  readonly #history: History;
  #subject: RoomSubject | undefined;
  readonly #forwarded = new Map<string, Forwarded>();
  #gone = false;
  /** Messages waiting for their archive id (a store that allocates ids with a round trip), in the order received. */
  #queue: Promise<void> | undefined;
  #waiting = 0;
  /** XEP-0421: the key occupant ids are made with; stored with a persistent room so ids outlive restarts. */
  readonly #occupantIdSecret: string;

  /**
   * A new room owned by `from.owner` (locked until configured), or a stored one (`from.state`, unlocked) with the
   * discussion history read back from its archive (`from.history`, oldest first).
   */
  constructor(jid: Jid, from: { owner: Jid } | { state: RoomState; history?: HistoryEntry[] }, deps: RoomDeps) {
    this.jid = jid;
    this.address = jid.toString();
    this.#deps = deps;
    if ("owner" in from) {
      this.config = defaultConfig(deps.limits, deps.defaultWhois);
      this.#affiliations.set(from.owner.bareString(), "owner");
    } else {
      this.config = { ...from.state.config };
      for (const [who, affiliation] of from.state.affiliations) this.#affiliations.set(who, affiliation);
      if (from.state.subject) this.#subject = { ...from.state.subject };
      this.locked = false;
    }
    this.#occupantIdSecret = ("state" in from ? from.state.occupantIdSecret : undefined) ?? randomBytes(32).toString("base64url");
    this.#history = new History(this.config.maxHistory);
    if ("state" in from) for (const e of from.history ?? []) this.#history.push(e.stanza, e.stamp);
  }

  /** The lasting state, as a persistent room stores it. */
  snapshot(): RoomState {
    const affiliations: RoomState["affiliations"] = [];
    for (const [who, a] of this.#affiliations) if (a !== "none") affiliations.push([who, a]);
    const state: RoomState = { config: { ...this.config }, affiliations };
    if (this.#subject) state.subject = { ...this.#subject };
    state.occupantIdSecret = this.#occupantIdSecret;
    return state;
  }

  /**
   * XEP-0421 §4: an occupant's id, the same for a real bare JID in this room whatever its nickname or session, and
   * telling nothing about the JID to those who cannot see it: an HMAC-SHA-256 of the bare JID keyed with the room's
   * secret (another room's ids for the same user differ).
   */
  occupantIdOf(bare: string): string {
    return createHmac("sha256", this.#occupantIdSecret).update(bare).digest("base64");
  }

  get occupantCount(): number {
    return this.#byNick.size;
  }

  get isGone(): boolean {
    return this.#gone;
  }

  /** Whether a user may see the room exists (locked rooms only show to their owners). */
  visibleTo(jid: Jid): boolean {
    return !this.locked || this.#privilege(jid) === "owner";
  }

  /** §5.2: the lasting affiliation of a user (a domain ban covers everyone on the domain). */
  affiliationOf(jid: Jid): Affiliation {
    const own = this.#affiliations.get(jid.bareString());
    if (own !== undefined) return own;
    return this.#affiliations.get(jid.domain) === "outcast" ? "outcast" : "none";
  }

  /** The affiliation that decides admin and owner requests: host administrators count as owners. */
  #privilege(jid: Jid): Affiliation {
    return this.#deps.isServiceAdmin(jid) ? "owner" : this.affiliationOf(jid);
  }

  #occupantJid(o: Occupant): string {
    return `${this.address}/${o.nick}`;
  }

  // ---- presence -------------------------------------------------------------------------------------------------

  /** Presence from a user to the room's bare JID or to an occupant JID (`nick`, "" for the bare JID). */
  presence(stanza: Element, from: Jid, nick: string, opts: { created?: boolean } = {}): void {
    const type = stanza.attrs["type"];
    const real = from.toString();
    const o = this.#byReal.get(real);
    if (type === "error") {
      // §18.1.2: an error presence from an occupant's real JID is about that occupant (a presence the room sent it
      // bounced); never answered.
      if (o && isGoneError(stanza)) this.#removeSession(o, real, { codes: [333] });
      return;
    }
    // §17.3: only "unavailable" leaves; any occupant JID of the room will do, and non-occupants are ignored.
    if (type === "unavailable") {
      if (o) this.#exit(o, real, stanza);
      return;
    }
    if (type !== undefined) return; // probes, subscriptions: not MUC protocol
    if (nick === "") throw new StanzaError("jid-malformed", { text: "enter with room@service/nick" });
    const x = stanza.getChild("x", NS_MUC);
    if (!o) {
      // §7.2.1 groupchat 1.0 / desynchronised client: presence without <x/> from a non-occupant is answered with a kick.
      if (!x) return this.#notInRoom(from, nick);
      return this.#enter(stanza, from, nick, x, opts.created === true);
    }
    if (o.nick !== nick) return this.#changeNick(o, real, nick, stanza);
    const children = sanitize(stanza);
    const changed = !sameChildren(children, o.presence);
    o.presence = children;
    o.current = real;
    if (x) this.#sendRoomState(o, from, x, []); // §7.2.1: a second join from the same session resynchronises it
    if (changed || !x) this.#broadcastPresence(o, {}, x ? real : undefined);
  }

  #notInRoom(to: Jid, nick: string): void {
    this.#deps.send(notInRoom(`${this.address}/${nick}`, to.toString()));
  }

  /** §7.2: admission checks, then the room roster, self-presence, history and subject for the newcomer. */
  #enter(stanza: Element, from: Jid, nick: string, x: Element, created: boolean): void {
    if (nick.trim() === "") throw new StanzaError("jid-malformed", { text: "the nickname is empty" }); // §17.1
    const real = from.toString();
    const affiliation = this.affiliationOf(from);
    const owner = affiliation === "owner" || this.#deps.isServiceAdmin(from);
    if (this.locked && !owner) throw new StanzaError("item-not-found", { text: "the room is not configured yet" }); // §7.2.11
    if (affiliation === "outcast") throw new StanzaError("forbidden", { text: "you are banned from this room" }); // §7.2.8
    if (this.config.membersOnly && !affiliationAtLeast(affiliation, "member") && !owner) {
      throw new StanzaError("registration-required", { text: "this room is members-only" }); // §7.2.7
    }
    const holder = this.#byNick.get(nick);
    if (holder && holder.bare !== from.bareString()) throw new StanzaError("conflict", { text: "this nickname is taken" }); // §7.2.9
    if (this.config.password !== "" && !owner && x.getChildText("password", NS_MUC) !== this.config.password) {
      throw new StanzaError("not-authorized", { text: "a password is needed" }); // §7.2.6
    }
    // §7.2.10: a full room refuses newcomers, but admins and owners still get in.
    if (!holder && this.#byNick.size >= this.config.maxUsers && !affiliationAtLeast(affiliation, "admin") && !owner) {
      throw new StanzaError("service-unavailable", { type: "wait", text: "the room is full" });
    }
    let o = holder;
    if (o) {
      o.sessions.set(real, from);
      o.current = real;
      o.presence = sanitize(stanza);
    } else {
      o = new Occupant(nick, from.bareString(), defaultRole(affiliation, this.config.moderated), from, sanitize(stanza));
      o.occupantId = this.occupantIdOf(o.bare);
      this.#byNick.set(nick, o);
    }
    this.#byReal.set(real, o);
    this.#deps.joined(this, real);
    const selfCodes = created ? [201] : [];
    this.#sendRoomState(o, from, x, selfCodes, stanza.attrs["id"]);
    // Everyone else learns of the newcomer (a user's second session under the same nick is not news).
    if (!holder) this.#broadcastPresence(o, {}, undefined, o);
  }

  /** To one session: the others' presence, its own (110), then history and subject (§7.1 order of events). */
  #sendRoomState(o: Occupant, to: Jid, x: Element, selfCodes: number[], id?: string): void {
    const dest = to.toString();
    for (const other of this.#byNick.values()) {
      if (other !== o) this.#deps.send(this.#presenceOf(other, dest, o, {}));
    }
    const codes = [...selfCodes];
    if (this.config.whois === "anyone") codes.push(100); // §7.2.4: non-anonymous room
    this.#deps.send(this.#presenceOf(o, dest, o, { selfCodes: codes, jid: dest, ...(id !== undefined ? { id } : {}) }));
    const request = parseHistoryRequest(x.getChild("history", NS_MUC));
    for (const m of this.#history.select(request, this.#deps.now(), (e) => delayed(e, this.address, dest))) this.#deps.send(m);
    this.#deps.send(this.#subjectMessage(dest));
  }

  /** §7.2.15: the current subject (an empty one when none was ever set). */
  #subjectMessage(to: string): Element {
    const s = this.#subject;
    const from = s && s.nick !== "" ? `${this.address}/${s.nick}` : this.address;
    const m = new Element("message", NS_CLIENT, { from, to, type: "groupchat", id: newId() });
    const subject = m.c("subject");
    if (s) {
      if (s.text !== "") subject.t(s.text);
      m.c("delay", { from: this.address, stamp: stampOf(s.stamp) }, NS_DELAY);
    }
    return m;
  }

  /**
   * The presence of occupant `o` for recipient session `to`, who is occupant `viewer` (undefined: not an occupant).
   * Real JIDs are shown to the occupant itself, to everyone in a non-anonymous room, to moderators otherwise (§7.2.3-4).
   */
  #presenceOf(o: Occupant, to: string, viewer: Occupant | undefined, info: PresenceInfo): Element {
    const attrs: Record<string, string> = { from: this.#occupantJid(o), to };
    if (info.unavailable) attrs["type"] = "unavailable";
    if (info.id !== undefined) attrs["id"] = info.id;
    const p = new Element("presence", NS_CLIENT, attrs, [...(info.children ?? (info.unavailable ? [] : o.presence))]);
    p.c("occupant-id", { id: o.occupantId }, NS_OCCUPANT_ID); // XEP-0421 §4: on every presence about the occupant
    const x = p.c("x", {}, NS_MUC_USER);
    const self = viewer === o;
    const item: Record<string, string> = {
      affiliation: info.affiliation ?? this.affiliationOf(parseJid(o.bare)),
      role: info.role ?? (info.unavailable ? "none" : o.role),
    };
    if (self || this.config.whois === "anyone" || viewer?.role === "moderator") item["jid"] = info.jid ?? o.current;
    if (info.newNick !== undefined) item["nick"] = info.newNick;
    const it = x.c("item", item);
    if (info.actor !== undefined) it.c("actor", { nick: info.actor });
    if (info.reason !== undefined) it.c("reason").t(info.reason);
    if (info.destroy) x.children.push(info.destroy);
    const codes = [...(info.codes ?? []), ...(self ? [110, ...(info.selfCodes ?? [])] : [])];
    for (const code of [...new Set(codes)].sort((a, b) => a - b)) x.c("status", { code: String(code) });
    return p;
  }

  /** Send `o`'s presence to every session in the room (`skipSession`: already told; `skipOccupant`: not told). */
  #broadcastPresence(o: Occupant, info: PresenceInfo, skipSession?: string, skipOccupant?: Occupant): void {
    for (const viewer of this.#byNick.values()) {
      if (viewer === skipOccupant) continue;
      for (const s of viewer.sessions.keys()) {
        if (s !== skipSession) this.#deps.send(this.#presenceOf(o, s, viewer, info));
      }
    }
  }

  /** §7.14: the session leaves; the occupant is gone when it was its last session. */
  #exit(o: Occupant, real: string, stanza: Element | undefined, tellSelf = true): void {
    const status = stanza ? stanza.getChildren("status", stanza.xmlns) : []; // §7.14: a custom exit message
    const info: PresenceInfo = { unavailable: true, children: status, jid: real };
    this.#detach(o, real);
    if (o.sessions.size > 0) {
      if (tellSelf) this.#deps.send(this.#presenceOf(o, real, o, info));
      return;
    }
    if (tellSelf) this.#deps.send(this.#presenceOf(o, real, o, info));
    this.#broadcastPresence(o, info);
    this.#afterLeave();
  }

  /** A session ended without saying goodbye (the server's session/ended): the others are told. */
  sessionEnded(real: string): void {
    const o = this.#byReal.get(real);
    if (o) this.#exit(o, real, undefined, false);
  }

  #detach(o: Occupant, real: string): void {
    o.sessions.delete(real);
    this.#byReal.delete(real);
    this.#deps.left(this, real);
    if (o.sessions.size === 0) {
      this.#byNick.delete(o.nick);
    } else if (o.current === real) {
      o.current = o.sessions.keys().next().value!;
    }
  }

  /** Remove one session of an occupant on the room's initiative (errors); the whole occupant if it was the last. */
  #removeSession(o: Occupant, real: string, info: PresenceInfo): void {
    if (o.sessions.size > 1) {
      this.#detach(o, real);
      this.#deps.send(this.#presenceOf(o, real, o, { ...info, unavailable: true, jid: real }));
      return;
    }
    this.#removeOccupant(o, info);
  }

  /** Remove an occupant (kick, ban, affiliation change, error): each session and every other occupant is told. */
  #removeOccupant(o: Occupant, info: PresenceInfo): void {
    const all: PresenceInfo = { ...info, unavailable: true };
    const sessions = [...o.sessions.keys()];
    for (const s of sessions) this.#deps.send(this.#presenceOf(o, s, o, { ...all, jid: s }));
    for (const s of sessions) this.#detach(o, s);
    this.#broadcastPresence(o, all);
    this.#afterLeave();
  }

  /** §7.14 note: a temporary room ends with its last occupant. */
  #afterLeave(): void {
    if (this.#byNick.size === 0 && (!this.config.persistent || this.locked)) this.#end("empty");
  }

  #end(why: "destroyed" | "empty" | "shutdown"): void {
    if (this.#gone) return;
    this.#gone = true;
    for (const f of this.#forwarded.values()) clearTimeout(f.timer);
    this.#forwarded.clear();
    for (const real of [...this.#byReal.keys()]) this.#deps.left(this, real);
    this.#byReal.clear();
    this.#byNick.clear();
    this.#deps.gone(this, why);
  }

  /** §7.6: unavailable from the old nickname with 303, then available from the new one. */
  #changeNick(o: Occupant, real: string, nick: string, stanza: Element): void {
    if (nick.trim() === "") throw new StanzaError("jid-malformed", { text: "the nickname is empty" });
    const holder = this.#byNick.get(nick);
    if (holder && holder !== o) throw new StanzaError("conflict", { text: "this nickname is taken" });
    if (o.sessions.size > 1) throw new StanzaError("not-acceptable", { text: "leave with your other sessions first" });
    o.current = real;
    this.#broadcastPresence(o, { unavailable: true, role: o.role, codes: [303], newNick: nick });
    this.#byNick.delete(o.nick);
    o.nick = nick;
    this.#byNick.set(nick, o);
    o.presence = sanitize(stanza);
    this.#broadcastPresence(o, {});
  }

  // ---- messages -------------------------------------------------------------------------------------------------

  /** A message to the room (`nick` "") or to an occupant JID. */
  message(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs["type"] ?? "normal";
    const real = from.toString();
    const o = this.#byReal.get(real);
    if (type === "error") {
      // Never answered. The error is about the occupant whose real JID sent it, whatever occupant JID it is addressed
      // to: a groupchat message or a private message the room delivered from room@service/Sender bounced on the way
      // to it. So a ghost is removed (§18.1.2) and the sender of the message it bounced stays.
      if (o && isGoneError(stanza)) this.#removeSession(o, real, { codes: [333] });
      return;
    }
    if (this.locked && !this.visibleTo(from)) throw new StanzaError("item-not-found");
    if (nick !== "") return this.#privateMessage(o, nick, stanza);
    if (type === "groupchat") return this.#groupchat(o, stanza);
    const ux = stanza.getChild("x", NS_MUC_USER);
    if (ux?.getChild("invite", NS_MUC_USER)) return this.#invite(o, from, ux);
    if (ux?.getChild("decline", NS_MUC_USER)) return this.#decline(from, ux);
    if (!o) throw new StanzaError("not-acceptable", { text: "you are not in this room" });
    throw new StanzaError("bad-request", { text: "messages to the room are of type groupchat" });
  }

  /** §7.4: reflected to every occupant from the sender's occupant JID, with the sender's id (muc#stable_id). */
  #groupchat(o: Occupant | undefined, stanza: Element): void {
    if (!o) throw new StanzaError("not-acceptable", { text: "you are not in this room" });
    const subject = stanza.getChild("subject");
    if (subject && !stanza.getChild("body") && !stanza.getChild("thread")) return this.#setSubject(o, stanza, subject.text());
    if (!roleAtLeast(o.role, "participant")) throw new StanzaError("forbidden", { text: "you have no voice in this room" });
    this.#checkBacklog();
    const out = this.#reflected(stanza, o);
    this.#publish(out, o, out.getChild("body") !== undefined);
  }

  /**
   * Send a reflected message (groupchat with a body, or a subject change) to every occupant, and into the recent
   * history when `toHistory`. A room that archives stores it first (XEP-0313 §3.2: messages with a body and subject
   * changes) and stamps the archive id as <stanza-id by='room@service'/> (XEP-0359 §4), the id a client pages from.
   * Where the store hands out ids at once (SQLite, memory) nothing waits; where the id comes later (PostgreSQL) the
   * room's messages wait for theirs in the order they were received.
   */
  #publish(out: Element, sender: Occupant, toHistory: boolean): void {
    const archive = this.#deps.archive;
    if (!archive || !this.config.archive) return this.#deliver(out, toHistory, this.#deps.now(), undefined);
    const stamp = this.#deps.now();
    const id = archive.append(this.jid.local, this.#occupantJid(sender), out.toString(), stamp);
    if (!(id instanceof Promise) && this.#queue === undefined) return this.#deliver(out, toHistory, stamp, id);
    this.#waiting++;
    const queued: Promise<void> = (this.#queue ?? Promise.resolve())
      .then(() => id)
      .then((id) => {
        this.#waiting--;
        if (!this.#gone) this.#deliver(out, toHistory, stamp, id);
      });
    this.#queue = queued;
    void queued.finally(() => {
      if (this.#queue === queued) this.#queue = undefined;
    });
  }

  #checkBacklog(): void {
    if (this.#waiting >= MAX_WAITING_FOR_ARCHIVE) throw new StanzaError("resource-constraint", { type: "wait", text: "the room's archive is behind; try again shortly" });
  }

  #deliver(out: Element, toHistory: boolean, stamp: number, id: string | undefined): void {
    if (id !== undefined) out.children.push(new Element("stanza-id", NS_SID, { id, by: this.address }));
    this.#toAll(out);
    if (toHistory) this.#history.push(out, stamp);
  }

  /**
   * The stanza as the room sends it: from the occupant JID, the sender's id (or one made here), no `to`. A stanza id
   * the sender wrote in the room's name is dropped (XEP-0359 §5: only the room may say what its archive id is).
   */
  #reflected(stanza: Element, o: Occupant): Element {
    const attrs: Record<string, string> = { type: "groupchat", from: this.#occupantJid(o), id: stanza.attrs["id"] ?? newId() };
    const lang = stanza.attrs["xml:lang"];
    if (lang !== undefined) attrs["xml:lang"] = lang;
    const out = new Element("message", NS_CLIENT, attrs, stanza.children.filter((c) => typeof c !== "string" && !isOccupantId(c)));
    stripStanzaIds(out, this.address);
    out.c("occupant-id", { id: o.occupantId }, NS_OCCUPANT_ID); // XEP-0421 §4, archived with the message
    return out;
  }

  #toAll(out: Element): void {
    for (const viewer of this.#byNick.values()) {
      for (const s of viewer.sessions.keys()) this.#deps.send(new Element(out.name, out.xmlns, { ...out.attrs, to: s }, [...out.children]));
    }
  }

  /** §8.1: moderators (and participants when the room allows it) set the subject; joiners get it after history. */
  #setSubject(o: Occupant, stanza: Element, text: string): void {
    const allowed = o.role === "moderator" || (this.config.changeSubject && roleAtLeast(o.role, "participant"));
    if (!allowed) throw new StanzaError("forbidden", { text: "only moderators may change the subject" });
    this.#checkBacklog();
    this.#subject = { text, nick: o.nick, stamp: this.#deps.now() };
    this.#deps.changed(this);
    this.#publish(this.#reflected(stanza, o), o, false);
  }

  /** §7.5: to the sessions of the occupant with that nickname, from the sender's occupant JID. */
  #privateMessage(o: Occupant | undefined, nick: string, stanza: Element): void {
    if (!o) throw new StanzaError("not-acceptable", { text: "you are not in this room" });
    if (stanza.attrs["type"] === "groupchat") throw new StanzaError("bad-request", { text: "private messages are not of type groupchat" });
    const target = this.#byNick.get(nick);
    if (!target) throw new StanzaError("item-not-found", { text: "nobody has this nickname here" });
    const pm = this.config.allowPm;
    const allowed = pm === "anyone" || (pm === "participants" && roleAtLeast(o.role, "participant")) || (pm === "moderators" && o.role === "moderator");
    if (!allowed) throw new StanzaError("forbidden", { text: "private messages are not allowed here" });
    const attrs: Record<string, string> = { ...stanza.attrs, from: this.#occupantJid(o) };
    delete attrs["to"];
    const children = stanza.children.filter((c) => typeof c !== "string" && !isOccupantId(c));
    // §7.5: marked as a MUC private message (so carbons and archives can tell).
    if (!stanza.getChild("x", NS_MUC_USER)) children.push(new Element("x", NS_MUC_USER));
    children.push(new Element("occupant-id", NS_OCCUPANT_ID, { id: o.occupantId })); // XEP-0421 §4
    for (const s of target.sessions.keys()) this.#deps.send(new Element("message", NS_CLIENT, { ...attrs, to: s }, [...children]));
  }

  /** §7.8.2: a mediated invitation, sent from the room with the inviter's address (and the password). */
  #invite(o: Occupant | undefined, from: Jid, ux: Element): void {
    if (!o) throw new StanzaError("not-acceptable", { text: "you are not in this room" });
    const affiliation = this.#privilege(from);
    if (this.config.membersOnly && !affiliationAtLeast(affiliation, "admin") && !(this.config.allowInvites && affiliation === "member")) {
      throw new StanzaError("forbidden", { text: "only admins may invite to this members-only room" });
    }
    const inviter = this.config.whois === "anyone" ? from.bareString() : this.#occupantJid(o);
    for (const inv of ux.getChildren("invite", NS_MUC_USER)) {
      const invitee = tryParseJid(inv.attrs["to"] ?? "");
      if (!invitee) throw new StanzaError("jid-malformed", { text: "invite to whom?" });
      // In a members-only room the invitee becomes a member, or the invitation could not be used (§7.8.2 MAY).
      if (this.config.membersOnly && this.affiliationOf(invitee) === "none") {
        this.#affiliations.set(invitee.bare.toString(), "member");
        this.#deps.changed(this);
      }
      const m = new Element("message", NS_CLIENT, { from: this.address, to: invitee.toString(), id: newId() });
      const x = m.c("x", {}, NS_MUC_USER);
      const i = x.c("invite", { from: inviter });
      const reason = inv.getChildText("reason", NS_MUC_USER);
      if (reason !== undefined) i.c("reason").t(reason);
      if (this.config.password !== "") x.c("password").t(this.config.password);
      m.c("body").t(`You are invited to ${this.address}${reason ? `: ${reason}` : ""}`);
      this.#deps.send(m);
    }
  }

  /** §7.8.2: the invitee declines; the room passes it on to the inviter. */
  #decline(from: Jid, ux: Element): void {
    const d = ux.getChild("decline", NS_MUC_USER)!;
    const to = tryParseJid(d.attrs["to"] ?? "");
    if (!to) throw new StanzaError("jid-malformed", { text: "decline to whom?" });
    const m = new Element("message", NS_CLIENT, { from: this.address, to: to.toString(), id: newId() });
    const out = m.c("x", {}, NS_MUC_USER).c("decline", { from: from.bareString() });
    const reason = d.getChildText("reason", NS_MUC_USER);
    if (reason !== undefined) out.c("reason").t(reason);
    this.#deps.send(m);
  }

  // ---- IQs ------------------------------------------------------------------------------------------------------

  /** An IQ to the room (`nick` "") or an occupant JID; answers through `send`, throws StanzaError to refuse. */
  iq(iq: Element, from: Jid, nick: string): void {
    const type = iq.attrs["type"];
    if (type === "result" || type === "error") {
      if (nick !== "") this.#forwardedAnswer(iq, from);
      return;
    }
    if (type !== "get" && type !== "set") throw new StanzaError("bad-request");
    const payload = iq.elements[0];
    if (!payload) throw new StanzaError("bad-request");
    if (!this.visibleTo(from)) throw new StanzaError("item-not-found");
    if (nick !== "") return this.#occupantIq(iq, from, nick, payload);
    const key = `${type} ${payload.xmlns} ${payload.name}`;
    switch (key) {
      case `get ${NS_DISCO_INFO} query`:
        if (payload.attrs["node"] !== undefined) throw new StanzaError("item-not-found");
        return this.#result(iq, this.#discoInfo());
      case `get ${NS_DISCO_ITEMS} query`:
        if (payload.attrs["node"] !== undefined) throw new StanzaError("item-not-found");
        return this.#result(iq, new Element("query", NS_DISCO_ITEMS)); // occupants are not listed (privacy)
      case `get ${NS_PING} ping`:
        return this.#result(iq);
      case `get ${NS_MUC_ADMIN} query`:
        return this.#result(iq, this.#adminGet(from, payload));
      case `set ${NS_MUC_ADMIN} query`:
        return this.#adminSet(iq, from, payload);
      case `get ${NS_MUC_OWNER} query`:
        if (this.#privilege(from) !== "owner") throw new StanzaError("forbidden", { text: "only owners configure the room" });
        return this.#result(iq, new Element("query", NS_MUC_OWNER, {}, [configForm(this.address, this.config, this.#deps.limits)]));
      case `set ${NS_MUC_OWNER} query`:
        return this.#ownerSet(iq, from, payload);
      case `set ${NS_FASTEN} apply-to`:
        if (!payload.getChild("moderate", NS_MODERATE)) throw new StanzaError("feature-not-implemented", { text: "only moderation is applied to messages here" });
        return this.#moderate(iq, from, payload);
      case `get ${NS_MAM} query`:
        this.#mayReadArchive(from);
        return this.#result(iq, new Element("query", NS_MAM, {}, [queryForm()]));
      case `set ${NS_MAM} query`:
        this.#mayReadArchive(from);
        void this.#archiveQuery(iq, from, payload).catch((err: unknown) => {
          const e = err instanceof StanzaError ? err : new StanzaError("internal-server-error");
          this.#deps.send(errorReply(iq, e, { by: this.address }));
        });
        return;
      default:
        throw new StanzaError("service-unavailable");
    }
  }

  /**
   * Who may read the archive (XEP-0313 §4.1.1 leaves it to the room, XEP-0045's own rules apply): in a members-only
   * room its members, admins and owners, present or not; in an open room its occupants (and members and above);
   * nobody banned. A room that does not archive has no archive to offer.
   */
  #mayReadArchive(from: Jid): void {
    if (!this.#deps.archive || !this.config.archive) throw new StanzaError("service-unavailable", { text: "this room keeps no archive" });
    const affiliation = this.#privilege(from);
    if (affiliation === "outcast") throw new StanzaError("forbidden", { text: "you are banned from this room" });
    if (affiliationAtLeast(affiliation, "member")) return;
    if (this.config.membersOnly) throw new StanzaError("forbidden", { text: "only members may read this room's archive" });
    if (!this.#byReal.has(from.toString())) throw new StanzaError("forbidden", { text: "only occupants may read this room's archive" });
  }

  /**
   * XEP-0425 (0.2/0.3, as slixmpp 1.8 sends it): a moderator retracts a message by its stanza id. The archived
   * message becomes a tombstone (its sender, id and time stay; the content is replaced by <moderated/> with
   * <retracted/>, the moderator's occupant JID and id, and the reason), it leaves the recent history, and every
   * occupant gets the retraction (<apply-to id><moderated by><retract/>…) from the room.
   */
  #moderate(iq: Element, from: Jid, applyTo: Element): void {
    const mod = this.#byReal.get(from.toString());
    if (mod?.role !== "moderator") throw new StanzaError("forbidden", { text: "only moderators may moderate messages" });
    const archive = this.#deps.archive;
    if (!archive || !this.config.archive) throw new StanzaError("item-not-found", { text: "this room keeps no archive" });
    const id = applyTo.attrs["id"];
    const moderate = applyTo.getChild("moderate", NS_MODERATE)!;
    if (!id || !moderate.getChild("retract", NS_RETRACT)) throw new StanzaError("bad-request", { text: "apply-to needs an id and moderate a <retract/>" });
    const reason = moderate.getChildText("reason", NS_MODERATE);
    const by = this.#occupantJid(mod);
    const stamp = stampOf(this.#deps.now());
    const moderated = (inner: Element): Element => {
      const m = new Element("moderated", NS_MODERATE, { by });
      m.children.push(inner);
      if (reason !== undefined && reason !== "") m.c("reason").t(reason);
      m.c("occupant-id", { id: mod.occupantId }, NS_OCCUPANT_ID);
      return m;
    };
    const tombstone = (current: string): string => {
      let old: Element;
      try {
        old = parseXml(current);
      } catch {
        old = new Element("message", NS_CLIENT, { type: "groupchat" });
      }
      const attrs: Record<string, string> = {};
      for (const k of ["type", "from", "id", "xml:lang"]) if (old.attrs[k] !== undefined) attrs[k] = old.attrs[k];
      const t = new Element("message", NS_CLIENT, attrs, [moderated(new Element("retracted", NS_RETRACT, { stamp }))]);
      // The sender's occupant id stays: clients match the tombstone to the occupant who wrote it.
      const sender = old.getChild("occupant-id", NS_OCCUPANT_ID);
      if (sender) t.children.push(new Element("occupant-id", NS_OCCUPANT_ID, { id: sender.attrs["id"] ?? "" }));
      return t.toString();
    };
    void archive
      .replace(this.jid.local, id, (m) => {
        if (m.stanza.includes(`xmlns='${NS_MODERATE}'`) && /<moderated\b/.test(m.stanza)) throw new StanzaError("item-not-found", { text: "this message was moderated already" });
        return tombstone(m.stanza);
      })
      .then(
        () => {
          this.#history.remove((e) => e.stanza.getChild("stanza-id", NS_SID)?.attrs["id"] === id);
          this.#result(iq);
          const m = new Element("message", NS_CLIENT, { from: this.address, type: "groupchat", id: newId() });
          m.c("apply-to", { id }, NS_FASTEN).children.push(moderated(new Element("retract", NS_RETRACT)));
          // A fallback for clients that know no moderation (XEP-0428 would mark it; a plain body is what they show).
          m.c("body").t(`A message was moderated${reason ? `: ${reason}` : ""}.`);
          this.#toAll(m);
        },
        (err: unknown) => {
          const e = err instanceof StanzaError ? err : new StanzaError("internal-server-error");
          this.#deps.send(errorReply(iq, e, { by: this.address }));
        },
      );
  }

  /** XEP-0313 §4: a query to the room; the results (§5) come from the room's JID, then the IQ result with <fin/>. */
  async #archiveQuery(iq: Element, from: Jid, payload: Element): Promise<void> {
    const q = parseQuery(payload, this.#deps.maxPage ?? 250, { fullWith: true });
    const page = await this.#deps.archive!.query(this.jid.local, q);
    // Results, then the answer (XEP-0313 §4.2), all through the ordered sender: they reach the querier in this order.
    const to = from.toString();
    const queryid = payload.attrs["queryid"];
    const archive = this.#deps.archive!;
    for (const m of page.items) {
      const result = resultMessage(m, { from: this.address, to, queryid }, (err) => archive.unreadable(this.jid.local, m.id, err));
      if (result) this.#deps.send(result);
    }
    this.#result(iq, finElement(page));
  }

  #result(iq: Element, payload?: Element): void {
    const attrs: Record<string, string> = { type: "result", from: iq.attrs["to"] ?? this.address, to: iq.attrs["from"]! };
    if (iq.attrs["id"] !== undefined) attrs["id"] = iq.attrs["id"];
    this.#deps.send(new Element("iq", NS_CLIENT, attrs, payload ? [payload] : []));
  }

  /** XEP-0410 self-ping is answered here; other IQs go to the occupant's real JID (§17.4) and back. */
  #occupantIq(iq: Element, from: Jid, nick: string, payload: Element): void {
    const o = this.#byReal.get(from.toString());
    if (!o) throw new StanzaError("not-acceptable", { text: "you are not in this room" });
    const target = this.#byNick.get(nick);
    if (!target) throw new StanzaError("item-not-found");
    if (target === o && payload.name === "ping" && payload.xmlns === NS_PING) return this.#result(iq);
    // vCards live on the account, not on a session (XEP-0054 §3.1): those go to the bare JID.
    const to = payload.xmlns === NS_VCARD ? target.bare : target.current;
    const id = `muc-${newId()}`;
    const f: Forwarded = {
      id: iq.attrs["id"] ?? "",
      requester: from.toString(),
      via: this.#occupantJid(target),
      target: to,
      timer: setTimeout(() => {
        if (!this.#forwarded.delete(id)) return;
        const e = new Element("iq", NS_CLIENT, { type: "error", from: f.via, to: f.requester, id: f.id });
        e.children.push(new StanzaError("remote-server-timeout").toElement(NS_CLIENT));
        this.#deps.send(e);
      }, FORWARD_TIMEOUT_MS),
    };
    f.timer.unref();
    this.#forwarded.set(id, f);
    this.#deps.send(new Element("iq", NS_CLIENT, { type: iq.attrs["type"]!, id, from: this.#occupantJid(o), to }, [...iq.children]));
  }

  #forwardedAnswer(iq: Element, from: Jid): void {
    const id = iq.attrs["id"] ?? "";
    const f = this.#forwarded.get(id);
    if (!f || (from.toString() !== f.target && from.bareString() !== f.target)) return;
    this.#forwarded.delete(id);
    clearTimeout(f.timer);
    this.#deps.send(new Element("iq", NS_CLIENT, { type: iq.attrs["type"]!, id: f.id, from: f.via, to: f.requester }, [...iq.children]));
  }

  /** §6.4: identity, the room's features (its type) and a muc#roominfo form (XEP-0128). */
  #discoInfo(): Element {
    const c = this.config;
    const q = new Element("query", NS_DISCO_INFO);
    q.c("identity", { category: "conference", type: "text", name: c.name || this.jid.local });
    const features = [
      NS_MUC,
      NS_MUC_STABLE_ID,
      NS_MUC_SELF_PING,
      NS_OCCUPANT_ID,
      NS_DISCO_INFO,
      c.public ? "muc_public" : "muc_hidden",
      c.membersOnly ? "muc_membersonly" : "muc_open",
      c.password !== "" ? "muc_passwordprotected" : "muc_unsecured",
      c.whois === "anyone" ? "muc_nonanonymous" : "muc_semianonymous",
      c.persistent ? "muc_persistent" : "muc_temporary",
      c.moderated ? "muc_moderated" : "muc_unmoderated",
      ...(this.#deps.archive && c.archive ? [NS_MAM, NS_SID, NS_MODERATE] : []), // XEP-0313 §8, XEP-0359 §6, XEP-0425
    ];
    for (const f of features) q.c("feature", { var: f });
    q.children.push(
      buildForm({
        type: "result",
        formType: NS_MUC_ROOMINFO,
        fields: [
          { var: "muc#roominfo_description", label: "Description", value: c.description },
          { var: "muc#roominfo_occupants", label: "Number of occupants", value: String(this.#byNick.size) },
          { var: "muc#roominfo_subject", label: "Subject", value: this.#subject?.text ?? "" },
          { var: "muc#roominfo_subjectmod", type: "boolean", label: "Participants may change the subject", value: c.changeSubject },
          { var: "muc#roomconfig_roomname", label: "Name", value: c.name },
        ],
      }),
    );
    return q;
  }

  // ---- muc#admin (§8, §9) -----------------------------------------------------------------------------------------

  #adminGet(from: Jid, q: Element): Element {
    const item = q.getChild("item", NS_MUC_ADMIN);
    if (!item) throw new StanzaError("bad-request");
    const out = new Element("query", NS_MUC_ADMIN);
    const role = item.attrs["role"];
    const affiliation = item.attrs["affiliation"];
    if (role !== undefined) {
      // §8.5, §9.8: lists by role are for moderators.
      if (!isRole(role) || role === "none") throw new StanzaError("bad-request");
      const me = this.#byReal.get(from.toString());
      if (me?.role !== "moderator") throw new StanzaError("forbidden");
      for (const o of this.#byNick.values()) {
        if (o.role === role) out.c("item", { affiliation: this.affiliationOf(parseJid(o.bare)), jid: o.current, nick: o.nick, role: o.role });
      }
      return out;
    }
    if (!isAffiliation(affiliation) || affiliation === "none") throw new StanzaError("bad-request");
    // §9.5: admins and owners read every list; in a non-anonymous room, members and occupants may read the members.
    const mine = this.#privilege(from);
    const readable =
      affiliationAtLeast(mine, "admin") ||
      (affiliation === "member" && this.config.whois === "anyone" && (affiliationAtLeast(mine, "member") || this.#byReal.has(from.toString())));
    if (!readable) throw new StanzaError("forbidden");
    for (const [jid, a] of this.#affiliations) {
      if (a !== affiliation) continue;
      const attrs: Record<string, string> = { affiliation: a, jid };
      const inRoom = a === "outcast" ? undefined : [...this.#byNick.values()].find((o) => o.bare === jid);
      if (inRoom) attrs["nick"] = inRoom.nick;
      out.c("item", attrs);
    }
    return out;
  }

  /** §8-§10: role changes by nick, affiliation changes by JID; all items are checked before any is applied. */
  #adminSet(iq: Element, from: Jid, q: Element): void {
    const items = q.getChildren("item", NS_MUC_ADMIN);
    if (items.length === 0) throw new StanzaError("bad-request");
    const actor = this.#byReal.get(from.toString());
    const privilege = this.#privilege(from);
    const actorParty = { role: actor?.role ?? ("none" as Role), affiliation: privilege };
    type Change = { kind: "role"; target: Occupant; role: Role; reason?: string } | { kind: "affiliation"; jid: Jid; affiliation: Affiliation; reason?: string };
    const changes: Change[] = [];
    let owners = [...this.#affiliations.values()].filter((a) => a === "owner").length;
    for (const item of items) {
      const role = item.attrs["role"];
      const affiliation = item.attrs["affiliation"];
      const reason = item.getChildText("reason", NS_MUC_ADMIN);
      const why = reason !== undefined ? { reason } : {};
      if ((role === undefined) === (affiliation === undefined)) throw new StanzaError("bad-request", { text: "an item changes either a role or an affiliation" });
      if (role !== undefined) {
        if (!isRole(role)) throw new StanzaError("bad-request");
        const target = this.#byNick.get(item.attrs["nick"] ?? "");
        if (!target) throw new StanzaError("item-not-found", { text: "nobody has this nickname here" });
        const refusal = roleChangeRefusal(actorParty, { role: target.role, affiliation: this.affiliationOf(parseJid(target.bare)) }, role);
        if (refusal) throw new StanzaError(refusal);
        changes.push({ kind: "role", target, role, ...why });
      } else {
        if (!isAffiliation(affiliation)) throw new StanzaError("bad-request");
        const jid = tryParseJid(item.attrs["jid"] ?? "");
        if (!jid) throw new StanzaError(item.attrs["jid"] === undefined ? "bad-request" : "jid-malformed");
        const bare = jid.bare;
        const current = this.#affiliations.get(bare.toString()) ?? "none";
        const refusal: StanzaCondition | undefined = affiliationChangeRefusal(privilege, current, affiliation, {
          self: bare.equals(from.bare),
          owners,
        });
        if (refusal) throw new StanzaError(refusal);
        if (current === "owner" && affiliation !== "owner") owners--;
        if (current !== "owner" && affiliation === "owner") owners++;
        changes.push({ kind: "affiliation", jid: bare, affiliation, ...why });
      }
    }
    // §8.2, §9.1: the requester learns of its success, then the occupants concerned and everyone else.
    this.#result(iq);
    const actorNick = actor?.nick;
    for (const c of changes) {
      const by = { ...(actorNick !== undefined ? { actor: actorNick } : {}), ...(c.reason !== undefined ? { reason: c.reason } : {}) };
      if (c.kind === "role") this.#setRole(c.target, c.role, by);
      else this.#setAffiliation(c.jid, c.affiliation, by);
    }
  }

  /** §8.2 kick (role none, 307), §8.3-8.4 voice, §9.6-9.7 moderator: the change is announced to everyone. */
  #setRole(o: Occupant, role: Role, by: { actor?: string; reason?: string }): void {
    if (this.#byNick.get(o.nick) !== o) return; // removed by an earlier item of the same request
    if (role === "none") return this.#removeOccupant(o, { codes: [307], ...by });
    const before = o.role;
    o.role = role;
    this.#broadcastPresence(o, by.reason !== undefined ? { reason: by.reason } : {});
    if ((before === "moderator") !== (role === "moderator")) this.#showRosterAgain(o);
  }

  /**
   * §7.2.3: in a semi-anonymous room moderators see real JIDs and others do not, so an occupant who became (or stopped
   * being) a moderator, or every occupant when the room's whois changed, gets everyone's presence again, now with
   * (or without) the JIDs; Prosody does the same. Without it a new moderator could not see who is in the room it
   * now moderates until each occupant happened to update their presence.
   */
  #showRosterAgain(o: Occupant, opts: { whoisChanged?: boolean } = {}): void {
    if (this.config.whois === "anyone" && !opts.whoisChanged) return; // everyone saw every JID already
    if (this.#byNick.get(o.nick) !== o) return;
    for (const s of o.sessions.keys()) {
      for (const other of this.#byNick.values()) if (other !== o) this.#deps.send(this.#presenceOf(other, s, o, {}));
    }
  }

  /** §9.1 ban (301), §9.3-9.4 membership (321 when it closes a members-only room to them), admins and owners. */
  #setAffiliation(jid: Jid, affiliation: Affiliation, by: { actor?: string; reason?: string }): void {
    const key = jid.toString();
    const before = this.#affiliations.get(key) ?? "none";
    if (affiliation === "none") this.#affiliations.delete(key);
    else this.#affiliations.set(key, affiliation);
    if (affiliation !== before) this.#deps.changed(this);
    // Occupants concerned: the user (bare JID) or, for a domain, everyone from it.
    const concerned = [...this.#byNick.values()].filter((o) => (jid.local === "" ? parseJid(o.bare).domain === jid.domain : o.bare === key));
    for (const o of concerned) {
      const now = this.affiliationOf(parseJid(o.bare));
      if (now === "outcast") {
        this.#removeOccupant(o, { codes: [301], affiliation: "outcast", ...by });
      } else if (this.config.membersOnly && !affiliationAtLeast(now, "member")) {
        this.#removeOccupant(o, { codes: [321], affiliation: now, ...by });
      } else {
        // The role that goes with the new affiliation (§5.1.3 note): admins and owners moderate; someone who lost
        // it gets the room's default; a visitor made member gets voice.
        const roleBefore = o.role;
        if (affiliationAtLeast(now, "admin") || affiliationAtLeast(before, "admin") || (now === "member" && o.role === "visitor")) {
          o.role = defaultRole(now, this.config.moderated);
        }
        this.#broadcastPresence(o, by.reason !== undefined ? { reason: by.reason } : {});
        if ((roleBefore === "moderator") !== (o.role === "moderator")) this.#showRosterAgain(o);
      }
    }
  }

  // ---- muc#owner (§10) ----------------------------------------------------------------------------------------------

  #ownerSet(iq: Element, from: Jid, q: Element): void {
    if (this.#privilege(from) !== "owner") throw new StanzaError("forbidden", { text: "only owners configure or destroy the room" });
    const destroy = q.getChild("destroy", NS_MUC_OWNER);
    if (destroy) {
      this.#result(iq);
      return this.destroy(destroy);
    }
    const x = q.getChild("x", NS_DATA);
    if (!x) throw new StanzaError("bad-request");
    const type = x.attrs["type"];
    if (type === "cancel") {
      this.#result(iq);
      if (this.locked) this.destroy(undefined); // §10.1.3: cancelling the initial configuration destroys the room
      return;
    }
    if (type !== "submit") throw new StanzaError("bad-request");
    const next = applyConfigForm(this.config, x, this.#deps.limits);
    const before = this.config;
    const wasLocked = this.locked;
    this.config = next;
    this.locked = false;
    this.#history.limit = next.maxHistory;
    this.#deps.changed(this); // before anyone is removed below: a room that empties and ends is then forgotten after
    this.#result(iq);
    // §10.2: who was let in under the old settings and is no member of a now members-only room leaves (322).
    if (next.membersOnly && !before.membersOnly) {
      for (const o of [...this.#byNick.values()]) {
        if (!affiliationAtLeast(this.affiliationOf(parseJid(o.bare)), "member")) this.#removeOccupant(o, { codes: [322] });
      }
    }
    if (wasLocked) return;
    // §10.2.1: occupants are told the configuration changed (172/173 when anonymity did).
    const codes = [104];
    if (next.whois !== before.whois) codes.push(next.whois === "anyone" ? 172 : 173);
    const m = new Element("message", NS_CLIENT, { from: this.address, type: "groupchat", id: newId() });
    const ux = m.c("x", {}, NS_MUC_USER);
    for (const code of codes) ux.c("status", { code: String(code) });
    this.#toAll(m);
    // Who sees real JIDs changed for everyone but moderators (who always do).
    if (next.whois !== before.whois) {
      for (const o of this.#byNick.values()) if (o.role !== "moderator") this.#showRosterAgain(o, { whoisChanged: true });
    }
  }

  /** §10.9: everyone is told (with the alternate venue and reason, if any), then the room is gone. */
  destroy(destroy: Element | undefined): void {
    const d = new Element("destroy", NS_MUC_USER);
    if (destroy?.attrs["jid"] !== undefined) d.attrs["jid"] = destroy.attrs["jid"];
    const reason = destroy?.getChildText("reason", NS_MUC_OWNER);
    if (reason !== undefined) d.c("reason").t(reason);
    const password = destroy?.getChildText("password", NS_MUC_OWNER);
    if (password !== undefined) d.c("password").t(password);
    for (const o of this.#byNick.values()) {
      for (const s of o.sessions.keys()) {
        this.#deps.send(this.#presenceOf(o, s, o, { unavailable: true, affiliation: "none", role: "none", destroy: d, jid: s }));
      }
    }
    this.#end("destroyed");
  }

  /** §13.2: the service is shutting down; every session gets unavailable with 332 (no broadcast). */
  shutdown(): void {
    for (const o of this.#byNick.values()) {
      for (const s of o.sessions.keys()) this.#deps.send(this.#presenceOf(o, s, o, { unavailable: true, codes: [332], jid: s }));
    }
    this.#end("shutdown");
  }
}
