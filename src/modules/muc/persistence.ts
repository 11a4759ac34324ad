// XEP-0045 §10.1.3 muc#roomconfig_persistentroom <https://xmpp.org/extensions/xep-0045.html#roomconfig>: persistent
// rooms outlive a server restart. A room's lasting state (configuration, affiliations, subject) is a versioned JSON
// document in the generic key/value store; an index document lists the stored rooms, because a key/value store
// cannot be listed. Recent history stays in memory.
//
// Layout in storage.keyval("muc"): host = the service's domain; user = the room's local part, key "room" = the room;
// user "", key "rooms" = the index. Writes for one document are serialised and only the newest pending value is
// written, so an older state never overwrites a newer one.
import type { KeyValueStore } from "../../storage/types.ts";
import { tryParseJid } from "../../xmpp/jid.ts";
import { defaultConfig, type AllowPm, type ConfigLimits, type RoomConfig } from "./config.ts";
import type { Affiliation } from "./roles.ts";

/** The keyval store name. */
export const MUC_STORE = "muc";
const ROOM_KEY = "room";
const INDEX_KEY = "rooms";
/** Where a damaged index is kept for the operator before a new one replaces it. */
const DAMAGED_INDEX_KEY = "rooms.damaged";
const VERSION = 1;

/** The subject of a room (§8.1): text, the nickname that set it ("" for the room) and when. */
export interface RoomSubject {
  text: string;
  nick: string;
  stamp: number;
}

/** What a persistent room keeps across restarts. */
export interface RoomState {
  config: RoomConfig;
  /** Bare JIDs (or domains, for bans) and their affiliation; "none" is never listed. */
  affiliations: [string, Exclude<Affiliation, "none">][];
  subject?: RoomSubject;
  /** XEP-0421: the room's secret for occupant ids (base64url), kept so that ids stay the same across restarts. */
  occupantIdSecret?: string;
}

/** A stored room, as read at start. */
export interface StoredRoom {
  name: string;
  state: RoomState;
}

/** Where the store reports what it cannot read or write (a pino logger fits). */
export interface StoreLog {
  warn(details: object, msg: string): void;
  error(details: object, msg: string): void;
}

/** A document that cannot be used: the room is skipped. */
export class DamagedRoomError extends Error {}

const AFFILIATIONS: ReadonlySet<string> = new Set(["owner", "admin", "member", "outcast"]);
const ALLOW_PM: readonly AllowPm[] = ["anyone", "participants", "moderators", "none"];

/** The document stored for a room. */
export function encodeRoom(name: string, state: RoomState): string {
  const doc: Record<string, unknown> = {
    v: VERSION,
    room: name,
    config: state.config,
    affiliations: state.affiliations.map(([jid, affiliation]) => ({ jid, affiliation })),
  };
  if (state.subject) doc["subject"] = state.subject;
  if (state.occupantIdSecret !== undefined) doc["occupantIdSecret"] = state.occupantIdSecret;
  return JSON.stringify(doc);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function damaged(what: string): never {
  throw new DamagedRoomError(what);
}

/**
 * The configuration in a stored document. Fields it lacks take their defaults (documents written before a field
 * existed); fields of the wrong type make it damaged. Sizes are brought within the service's current limits.
 */
function decodeConfig(raw: unknown, limits: ConfigLimits): RoomConfig {
  if (!isObject(raw)) damaged("config is not an object");
  const c = defaultConfig(limits);
  const str = (k: "name" | "description" | "password") => {
    const v = raw[k];
    if (v === undefined) return;
    if (typeof v !== "string") damaged(`config.${k} is not a string`);
    c[k] = v;
  };
  const bool = (k: "persistent" | "public" | "membersOnly" | "moderated" | "changeSubject" | "allowInvites" | "archive") => {
    const v = raw[k];
    if (v === undefined) return;
    if (typeof v !== "boolean") damaged(`config.${k} is not a boolean`);
    c[k] = v;
  };
  const count = (k: "maxUsers" | "maxHistory", min: number, max: number) => {
    const v = raw[k];
    if (v === undefined) return;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) damaged(`config.${k} is not a whole number >= ${min}`);
    c[k] = Math.min(v, max); // the operator may have lowered the limit since
  };
  str("name");
  str("description");
  str("password");
  for (const k of ["persistent", "public", "membersOnly", "moderated", "changeSubject", "allowInvites", "archive"] as const) bool(k);
  // Documents written before room archives lack the field and get the service's default; a service that keeps no
  // archives archives no room, whatever was stored.
  if (!limits.archive) c.archive = false;
  count("maxUsers", 1, limits.maxOccupants);
  count("maxHistory", 0, limits.maxHistory);
  // A stored whois is kept: a room saved while non-anonymous was the default stays non-anonymous, since its occupants
  // chose it with that setting in view. Every document this module writes names whois; only one written by other
  // hands can lack it, and it then gets the built-in default for new rooms (semi-anonymous, the safer one).
  if (raw["whois"] !== undefined) {
    if (raw["whois"] !== "anyone" && raw["whois"] !== "moderators") damaged("config.whois is not anyone or moderators");
    c.whois = raw["whois"];
  }
  if (raw["allowPm"] !== undefined) {
    if (!ALLOW_PM.includes(raw["allowPm"] as AllowPm)) damaged(`config.allowPm is not one of ${ALLOW_PM.join(", ")}`);
    c.allowPm = raw["allowPm"] as AllowPm;
  }
  return c;
}

function decodeAffiliations(raw: unknown): RoomState["affiliations"] {
  if (!Array.isArray(raw)) damaged("affiliations is not a list");
  const out = new Map<string, Exclude<Affiliation, "none">>();
  for (const entry of raw as unknown[]) {
    if (!isObject(entry) || typeof entry["jid"] !== "string" || typeof entry["affiliation"] !== "string") {
      damaged("an affiliation is not { jid, affiliation }");
    }
    const jid = tryParseJid(entry["jid"]);
    if (!jid || jid.resource !== "") damaged(`affiliation for an invalid bare JID: ${JSON.stringify(entry["jid"])}`);
    if (!AFFILIATIONS.has(entry["affiliation"])) damaged(`unknown affiliation ${JSON.stringify(entry["affiliation"])}`);
    out.set(jid.toString(), entry["affiliation"] as Exclude<Affiliation, "none">);
  }
  return [...out];
}

function decodeSubject(raw: unknown): RoomSubject | undefined {
  if (raw === undefined) return undefined;
  if (!isObject(raw) || typeof raw["text"] !== "string" || typeof raw["nick"] !== "string" || typeof raw["stamp"] !== "number" || !Number.isFinite(raw["stamp"])) {
    damaged("subject is not { text, nick, stamp }");
  }
  return { text: raw["text"], nick: raw["nick"], stamp: raw["stamp"] };
}

/** A stored JSON object of our document version; throws DamagedRoomError otherwise. */
function parseDocument(json: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    damaged("not JSON");
  }
  if (!isObject(doc)) damaged("not an object");
  if (doc["v"] !== VERSION) damaged(`unknown version ${JSON.stringify(doc["v"])}`);
  return doc;
}

/** Read a stored room document; throws DamagedRoomError when it cannot be used. */
export function decodeRoom(name: string, json: string, limits: ConfigLimits): RoomState {
  const doc = parseDocument(json);
  if (doc["room"] !== name) damaged(`stored under ${JSON.stringify(name)} but names ${JSON.stringify(doc["room"])}`);
  const state: RoomState = { config: decodeConfig(doc["config"], limits), affiliations: decodeAffiliations(doc["affiliations"]) };
  const subject = decodeSubject(doc["subject"]);
  if (subject) state.subject = subject;
  // Absent from documents written before occupant ids: the room makes a new secret and stores it (service.load).
  const secret = doc["occupantIdSecret"];
  if (secret !== undefined) {
    if (typeof secret !== "string" || !/^[A-Za-z0-9_-]{16,}$/.test(secret)) damaged("occupantIdSecret is not a base64url string");
    state.occupantIdSecret = secret;
  }
  return state;
}

function encodeIndex(names: Iterable<string>): string {
  return JSON.stringify({ v: VERSION, rooms: [...names].sort() });
}

function decodeIndex(json: string): string[] {
  const doc = parseDocument(json);
  const rooms = doc["rooms"];
  if (!Array.isArray(rooms) || !rooms.every((r) => typeof r === "string")) damaged("rooms is not a list of names");
  return [...new Set(rooms as string[])];
}

/**
 * Writes one document: one write at a time, and while one runs only the newest requested value waits, so the last
 * value asked for is the last one written.
 */
class LatestWriter {
  readonly #put: (value: string | undefined) => Promise<void>;
  readonly #onIdle: () => void;
  #pending: { value: string | undefined } | undefined;
  #busy: Promise<void> | undefined;

  constructor(put: (value: string | undefined) => Promise<void>, onIdle: () => void) {
    this.#put = put;
    this.#onIdle = onIdle;
  }

  write(value: string | undefined): void {
    this.#pending = { value };
    this.#busy ??= this.#drain();
  }

  idle(): Promise<void> {
    return this.#busy ?? Promise.resolve();
  }

  async #drain(): Promise<void> {
    // Yield first so that #busy is set before anything below can clear it.
    await Promise.resolve();
    while (this.#pending) {
      const { value } = this.#pending;
      this.#pending = undefined;
      await this.#put(value);
    }
    this.#busy = undefined;
    this.#onIdle();
  }
}

/** The persistent rooms of one chat service in a key/value store. */
export class RoomStore {
  readonly #kv: KeyValueStore;
  readonly #domain: string;
  readonly #log: StoreLog;
  /** Rooms the index lists (stored ones, damaged ones included so their documents are not orphaned). */
  readonly #listed = new Set<string>();
  readonly #writers = new Map<string, LatestWriter>();

  constructor(kv: KeyValueStore, domain: string, log: StoreLog) {
    this.#kv = kv;
    this.#domain = domain;
    this.#log = log;
  }

  /** Whether the room has a stored document. */
  has(name: string): boolean {
    return this.#listed.has(name);
  }

  /**
   * Every stored room that can be read. A damaged document is logged and skipped (and stays listed, for the
   * operator to repair); a listed room without a document is dropped from the index. Storage errors are thrown.
   */
  async load(limits: ConfigLimits): Promise<StoredRoom[]> {
    const rawIndex = await this.#kv.get(this.#domain, "", INDEX_KEY);
    if (rawIndex === undefined) return [];
    let names: string[];
    try {
      names = decodeIndex(rawIndex);
    } catch (err) {
      if (!(err instanceof DamagedRoomError)) throw err;
      // The rooms it listed can no longer be found; keep it for the operator rather than lose it to the next write.
      this.#log.error({ domain: this.#domain, reason: err.message, keptAs: DAMAGED_INDEX_KEY }, "the index of stored chat rooms is damaged; stored rooms are not loaded");
      await this.#kv.set(this.#domain, "", DAMAGED_INDEX_KEY, rawIndex);
      await this.#kv.set(this.#domain, "", INDEX_KEY, undefined);
      return [];
    }
    const rooms: StoredRoom[] = [];
    let missing = false;
    for (const name of names) {
      const jid = tryParseJid(`${name}@${this.#domain}`);
      if (!jid || jid.local !== name || jid.resource !== "") {
        this.#log.warn({ domain: this.#domain, room: name }, "the index of stored chat rooms lists an invalid room name; dropped");
        missing = true;
        continue;
      }
      const raw = await this.#kv.get(this.#domain, name, ROOM_KEY);
      if (raw === undefined) {
        this.#log.warn({ domain: this.#domain, room: name }, "a stored chat room listed in the index has no document; dropped");
        missing = true;
        continue;
      }
      this.#listed.add(name);
      try {
        rooms.push({ name, state: decodeRoom(name, raw, limits) });
      } catch (err) {
        if (!(err instanceof DamagedRoomError)) throw err;
        this.#log.error({ domain: this.#domain, room: name, reason: err.message }, "a stored chat room is damaged; skipped");
      }
    }
    if (missing) this.#writeIndex();
    return rooms;
  }

  /** Store (or update) a persistent room. */
  save(name: string, state: RoomState): void {
    this.#writer(name).write(encodeRoom(name, state));
    if (!this.#listed.has(name)) {
      this.#listed.add(name);
      this.#writeIndex();
    }
  }

  /** Forget a room (destroyed, made temporary); nothing happens when it was not stored. */
  remove(name: string): void {
    if (!this.#listed.delete(name)) return;
    this.#writeIndex();
    this.#writer(name).write(undefined);
  }

  /** Resolves when every write asked for so far is done (before the storage closes). */
  async flush(): Promise<void> {
    await Promise.all([...this.#writers.values()].map((w) => w.idle()));
  }

  #writeIndex(): void {
    this.#writer("").write(encodeIndex(this.#listed));
  }

  /** The writer of a room's document, or of the index (""). */
  #writer(name: string): LatestWriter {
    let w = this.#writers.get(name);
    if (w) return w;
    const key = name === "" ? INDEX_KEY : ROOM_KEY;
    const created: LatestWriter = new LatestWriter(
      async (value) => {
        try {
          await this.#kv.set(this.#domain, name, key, value);
        } catch (err) {
          this.#log.error({ domain: this.#domain, room: name === "" ? undefined : name, err }, "writing a stored chat room failed");
        }
      },
      () => {
        if (this.#writers.get(name) === created) this.#writers.delete(name);
      },
    );
    this.#writers.set(name, created);
    w = created;
    return w;
  }
}
