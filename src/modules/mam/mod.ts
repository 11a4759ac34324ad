// XEP-0313: Message Archive Management <https://xmpp.org/extensions/xep-0313.html> for user archives: §4 (querying,
// with XEP-0059 Result Set Management paging), §5 (result messages and <fin/>), §6 (preferences), §7 (what is archived)
// and XEP-0359 stanza ids on delivered messages. One-to-one messages a local user sends or receives are kept once per
// user, after blocking had its say (priority 20: below blocking's 100, above carbons' 10, so carbon copies carry the id).
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import type { StanzaEvent } from "../../core/events.ts";
import { Element, serialize, x } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { buildForm, findForm, FormValueError, readForm, textValue, type SubmittedForm } from "../../xmpp/data-forms.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { NS_CARBONS, NS_CLIENT, NS_FORWARD, NS_HINTS } from "../../xmpp/ns.ts";
import type { ArchivedMessage, ArchivePage, ArchiveQuery } from "../../storage/types.ts";

export const NS_MAM = "urn:xmpp:mam:2";
export const NS_SID = "urn:xmpp:sid:0";
export const NS_RSM = "http://jabber.org/protocol/rsm";
export const NS_DELAY = "urn:xmpp:delay";

/** What the archive could not write and did about it, for `comity status` (provided as `mam-stats`). */
export interface MamStats {
  /** Writes that failed (storage unreachable); each message was delivered all the same. */
  archiveMisses: number;
  /** Of those, written later. */
  archiveRetried: number;
  /** Given up: more misses than the retry queue holds. */
  archiveDropped: number;
  /** Waiting to be written again now. */
  archiveRetryQueued: number;
  /** Messages delivered before their archive write answered (a database that hangs); the write went on. */
  archiveSlow: number;
}

/** An archive copy waiting to be written again. */
interface PendingArchive {
  user: string;
  peer: string;
  direction: "in" | "out";
  xml: string;
  timestamp: number;
}

/** Encrypted payloads that carry no (or only a fallback) body but are still a person's message. */
const ENCRYPTED: ReadonlySet<string> = new Set(["eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0", "jabber:x:encrypted"]);

/**
 * §7 (and XEP-0334): whether a message belongs in an archive. Chat and normal messages with a body (or an encrypted
 * payload, or a <store/> hint); never groupchat, headline or error, nothing marked <no-store/> or
 * <no-permanent-store/>, no <private/> carbon, no carbon copies or archive results forwarded by a client.
 */
export function archivable(stanza: Element): boolean {
  const type = stanza.attrs["type"] ?? "normal";
  if (type !== "chat" && type !== "normal") return false;
  let store = false;
  let content = false;
  for (const c of stanza.children) {
    if (typeof c === "string") continue;
    if (c.xmlns === NS_HINTS) {
      if (c.name === "no-store" || c.name === "no-permanent-store") return false;
      if (c.name === "store") store = true;
    } else if (c.xmlns === NS_CARBONS || c.xmlns === NS_MAM) {
      return false;
    } else if ((c.name === "body" && c.xmlns === stanza.xmlns) || ENCRYPTED.has(c.xmlns)) {
      content = true;
    }
  }
  return store || content;
}

/** Remove every XEP-0359 <stanza-id/> claiming to come from `by` (only our server may say that); true when one was. */
export function stripStanzaIds(stanza: Element, by: string): boolean {
  const forged = (c: Element["children"][number]): boolean => typeof c !== "string" && c.name === "stanza-id" && c.xmlns === NS_SID && c.attrs["by"] === by;
  // Almost no message carries one: look before allocating a filtered copy.
  if (!stanza.children.some(forged)) return false;
  stanza.children = stanza.children.filter((c) => !forged(c));
  return true;
}

/** XEP-0082 date-time (with a zone), as ms since the epoch; undefined when malformed. */
export function parseDateTime(s: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
}

/** The §6 preferences of one user. */
export interface MamPrefs {
  default: "always" | "never" | "roster";
  always: string[];
  never: string[];
}

const DEFAULT_PREFS: MamPrefs = { default: "always", always: [], never: [] };

function prefsElement(p: MamPrefs): Element {
  const list = (name: string, jids: string[]) => x(name, NS_MAM, {}, ...jids.map((j) => x("jid", NS_MAM, {}, j)));
  return x("prefs", NS_MAM, { default: p.default }, list("always", p.always), list("never", p.never));
}

/** Read a <prefs/> set; throws bad-request when malformed. */
export function readPrefs(el: Element): MamPrefs {
  const d = el.attrs["default"];
  if (d !== "always" && d !== "never" && d !== "roster") throw new StanzaError("bad-request", { text: "default must be always, never or roster" });
  const jids = (name: string): string[] => {
    const out: string[] = [];
    for (const j of el.getChild(name, NS_MAM)?.getChildren("jid", NS_MAM) ?? []) {
      const jid = tryParseJid(j.text().trim());
      if (!jid) throw new StanzaError("bad-request", { text: `not a JID: ${j.text()}` });
      out.push(jid.bareString());
    }
    return [...new Set(out)];
  };
  return { default: d, always: jids("always"), never: jids("never") };
}

/** The query form of §4.1.1 (fields discovery, and what a submitted form is read against). */
export function queryForm(): Element {
  return buildForm({
    type: "form",
    formType: NS_MAM,
    fields: [
      { var: "with", type: "jid-single" },
      { var: "start", type: "text-single" },
      { var: "end", type: "text-single" },
    ],
  });
}

/**
 * Turn the <query/> (form and RSM set) into a store query; throws the §4 / XEP-0059 errors. `with` is a bare JID for
 * user archives; a room archive (`fullWith`) keeps the occupant JID's nickname, since its rows are per occupant.
 */
export function parseQuery(query: Element, maxPage: number, opts: { fullWith?: boolean } = {}): ArchiveQuery {
  const q: ArchiveQuery = { max: maxPage };
  const formEl = findForm(query);
  if (formEl) {
    let form: SubmittedForm;
    try {
      form = readForm(formEl);
    } catch (err) {
      throw new StanzaError("bad-request", { text: err instanceof Error ? err.message : "malformed form" });
    }
    if (form.formType !== undefined && form.formType !== NS_MAM) throw new StanzaError("bad-request", { text: `FORM_TYPE must be ${NS_MAM}` });
    for (const name of form.values.keys()) {
      if (name !== "FORM_TYPE" && name !== "with" && name !== "start" && name !== "end") throw new StanzaError("feature-not-implemented", { text: `unsupported field ${name}` });
    }
    try {
      const w = textValue(form, "with");
      if (w !== undefined) {
        const jid = tryParseJid(w.trim());
        if (!jid) throw new StanzaError("bad-request", { text: `with is not a JID: ${w}` });
        q.with = opts.fullWith ? jid.toString() : jid.bareString();
      }
      for (const name of ["start", "end"] as const) {
        const v = textValue(form, name);
        if (v === undefined) continue;
        const t = parseDateTime(v.trim());
        if (t === undefined) throw new StanzaError("bad-request", { text: `${name} is not an XEP-0082 date-time: ${v}` });
        // Messages are stamped to the millisecond, but clients write whole seconds (poezio asks for `end` = now
        // truncated): an `end` without fractions covers the whole of its second, or a message sent in that second
        // would be missing from its history. `start` already begins at the second's first millisecond.
        q[name] = name === "end" && !/\.\d/.test(v) ? t + 999 : t;
      }
    } catch (err) {
      if (err instanceof FormValueError) throw new StanzaError("bad-request", { text: err.message });
      throw err;
    }
  }
  const set = query.getChild("set", NS_RSM);
  if (set) {
    if (set.getChild("index", NS_RSM)) throw new StanzaError("feature-not-implemented", { text: "RSM index is not supported" });
    const max = set.getChild("max", NS_RSM);
    if (max) {
      const text = max.text().trim();
      if (!/^\d{1,9}$/.test(text)) throw new StanzaError("bad-request", { text: "max must be a non-negative integer" });
      q.max = Math.min(Number(text), maxPage);
    }
    const after = set.getChild("after", NS_RSM);
    const before = set.getChild("before", NS_RSM);
    if (after && before) throw new StanzaError("bad-request", { text: "after and before together" });
    if (after) {
      const id = after.text().trim();
      if (id === "") throw new StanzaError("bad-request", { text: "empty after" });
      q.after = id;
    }
    if (before) q.before = before.text().trim();
  }
  return q;
}

/**
 * §5: one archived message as the result message sent to the querier (`from`: the archive's JID, the account or the
 * room), or undefined when its stored text cannot be read (reported to `unreadable`).
 */
export function resultMessage(
  m: ArchivedMessage,
  addr: { from: string; to: string; queryid: string | undefined },
  unreadable: (err: unknown) => void,
): Element | undefined {
  let inner: Element;
  try {
    inner = parseXml(m.stanza);
  } catch (err) {
    unreadable(err);
    return undefined;
  }
  if (inner.xmlns !== NS_CLIENT) inner.xmlns = NS_CLIENT;
  const delay = x("delay", NS_DELAY, { stamp: new Date(m.timestamp).toISOString() });
  const result = x("result", NS_MAM, { queryid: addr.queryid, id: m.id }, x("forwarded", NS_FORWARD, {}, delay, inner));
  return x("message", NS_CLIENT, { from: addr.from, to: addr.to }, result);
}

/** §4.3 / XEP-0059: the <fin/> that ends a query, with the page's first and last ids and the count. */
export function finElement(page: ArchivePage): Element {
  const rsm = x("set", NS_RSM, {});
  if (page.first !== undefined) rsm.children.push(x("first", NS_RSM, {}, page.first), x("last", NS_RSM, {}, page.last!));
  rsm.children.push(x("count", NS_RSM, {}, String(page.count)));
  const fin = x("fin", NS_MAM, {}, rsm);
  if (page.complete) fin.attrs["complete"] = "true";
  return fin;
}

function setup(ctx: ModuleContext): void {
  const cfg = ctx.config.mam;
  if (!cfg.enabled) return;
  const host = ctx.host;
  const store = ctx.storage.archive;
  const prefsStore = ctx.storage.keyval("mam");
  /** Preferences read so far, per username. */
  const prefsCache = new Map<string, MamPrefs>();
  /** Appends since the last trim, per username: the cap is enforced every TRIM_EVERY appends (so it is soft by that much). */
  const sinceTrim = new Map<string, number>();
  const TRIM_EVERY = 200;
  /** How long a due trim may wait, so that the trims of a busy second run together. */
  const TRIM_DELAY_MS = 1000;

  for (const target of ["account", "host"] as const) ctx.addFeature(NS_MAM, target);
  ctx.addFeature(NS_SID);

  const prefsOf = async (user: string): Promise<MamPrefs> => {
    let p = prefsCache.get(user);
    if (p === undefined) {
      const stored = await prefsStore.get(host, user, "prefs");
      p = stored === undefined ? DEFAULT_PREFS : (JSON.parse(stored) as MamPrefs);
      prefsCache.set(user, p);
    }
    return p;
  };

  /** §6 without waiting: whether `user`'s cached preferences let a message with `peer` in; undefined when that takes a lookup. */
  const wantedNow = (user: string, peer: string): boolean | undefined => {
    const p = prefsCache.get(user);
    if (p === undefined) return undefined;
    if (p.never.includes(peer)) return false;
    if (p.always.includes(peer)) return true;
    if (p.default === "always") return true;
    if (p.default === "never") return false;
    return undefined; // "roster": the peer's roster item decides
  };

  /** Whether `user`'s preferences let a message with `peer` into the archive (§6). */
  const wanted = async (user: string, peer: string): Promise<boolean> => {
    const now = wantedNow(user, peer);
    if (now !== undefined) return now;
    const p = await prefsOf(user);
    if (p.never.includes(peer)) return false;
    if (p.always.includes(peer)) return true;
    if (p.default === "always") return true;
    if (p.default === "never") return false;
    return (await ctx.storage.rosters.getItem(host, user, peer)) !== undefined;
  };

  /**
   * Add a row to `user`'s archive. With a store that allocates ids itself (SQLite's write-behind queue, memory) the id
   * comes back at once and nothing on the message's path waits or allocates a promise; PostgreSQL resolves it later.
   */
  const append = (user: string, peer: string, direction: "in" | "out", xml: string): string | Promise<string> => {
    const m = { with: peer, direction, stanza: xml, timestamp: Date.now() };
    const id = store.appendNow !== undefined ? store.appendNow(host, user, m) : store.append(host, user, m);
    const n = (sinceTrim.get(user) ?? 0) + 1;
    if (n >= TRIM_EVERY || !sinceTrim.has(user)) {
      sinceTrim.set(user, 0);
      trimDue.add(user);
      trimTimer ??= setTimeout(runTrims, TRIM_DELAY_MS).unref();
    } else sinceTrim.set(user, n);
    return id;
  };
  // Archive writes that failed (storage unreachable): the message was delivered all the same, its archive copy waits
  // here and is written again once storage answers. Bounded: past RETRY_MAX the oldest misses are given up (counted).
  const RETRY_MAX = 10_000;
  const RETRY_MS = 1000;
  const stats: MamStats = { archiveMisses: 0, archiveRetried: 0, archiveDropped: 0, archiveRetryQueued: 0, archiveSlow: 0 };
  /** Longest an online delivery waits for its archive write (then it goes on without a stanza id). */
  const ARCHIVE_WAIT_MS = 2000;
  const retryQueue: PendingArchive[] = [];
  let retryTimer: NodeJS.Timeout | undefined;
  let retrying = false;
  const missed = (p: PendingArchive, err: unknown): void => {
    stats.archiveMisses++;
    if (retryQueue.length === 0) ctx.log.warn({ err, user: p.user }, "archive write failed; delivering without it and retrying");
    if (retryQueue.length >= RETRY_MAX) {
      retryQueue.shift();
      stats.archiveDropped++;
    }
    retryQueue.push(p);
    stats.archiveRetryQueued = retryQueue.length;
    retryTimer ??= setTimeout(retry, RETRY_MS).unref();
  };
  const retry = async (): Promise<void> => {
    retryTimer = undefined;
    if (retrying) return;
    retrying = true;
    try {
      while (retryQueue.length > 0) {
        const p = retryQueue[0]!;
        try {
          // Preferences are asked again: the miss may have been the lookup itself.
          if (await wanted(p.user, p.peer)) await store.append(host, p.user, { with: p.peer, direction: p.direction, stanza: p.xml, timestamp: p.timestamp });
        } catch {
          break; // still unreachable: try again later, in order
        }
        retryQueue.shift();
        stats.archiveRetried++;
      }
    } finally {
      retrying = false;
      stats.archiveRetryQueued = retryQueue.length;
      if (retryQueue.length > 0) retryTimer ??= setTimeout(retry, RETRY_MS).unref();
      else if (stats.archiveRetried > 0) ctx.log.info({ retried: stats.archiveRetried }, "archive writes caught up");
    }
  };
  ctx.provide("mam-stats", stats);

  // Trims are gathered and run together, off the message's path: a SQLite trim first commits the queued rows, so one
  // per append would split the write-behind batches into many small commits.
  const trimDue = new Set<string>();
  let trimTimer: NodeJS.Timeout | undefined;
  const runTrims = (): Promise<unknown> => {
    trimTimer = undefined;
    const users = [...trimDue];
    trimDue.clear();
    return Promise.all(users.map((user) => store.trim(host, user, { keep: cfg.max_per_user }).catch((err: unknown) => ctx.log.error({ err, user }, "archive trim failed"))));
  };
  ctx.hook("server/stopping", async () => {
    clearTimeout(trimTimer);
    clearTimeout(retryTimer);
    await runTrims();
  });

  // The sent copy's serialisation, kept for the received copy of the same message to a local account: both rows hold
  // the same text, so a message between two local users is serialised once. Only reused for the very stanza object,
  // unchanged in child count and with no forged stanza id stripped in between (then the text could differ).
  let lastSent: Element | undefined;
  let lastSentXml = "";
  let lastSentChildren = 0;
  const xmlOf = (stanza: Element): string => {
    if (stanza === lastSent && stanza.children.length === lastSentChildren) {
      lastSent = undefined;
      return lastSentXml;
    }
    return serialize(stanza, stanza.xmlns);
  };

  const stampId = (stanza: Element, id: string, by: string): undefined => {
    stanza.children.push(new Element("stanza-id", NS_SID, { id, by }));
    return undefined;
  };

  // Received: into the recipient's archive, with a stanza-id the recipient's clients can page from. Synchronous when the
  // recipient is online, its preferences are cached and the store hands out ids at once (the common case).
  const received = ({ stanza, from, to }: StanzaEvent): undefined | Promise<undefined> => {
    if (!to || to.domain !== host || to.local === "") return;
    const user = to.bareString();
    if (stripStanzaIds(stanza, user)) lastSent = undefined;
    if (!archivable(stanza)) return;
    const peer = from.bareString();
    const online = ctx.sessions.ofBare(user).size > 0;
    let xml: string | undefined;
    // A failed write never holds up or bounces the delivery (the archive is not needed to deliver): the message goes
    // on without a stanza id and its copy is retried. Only PostgreSQL can fail here; SQLite queues on its own thread.
    const failed = (err: unknown): undefined => {
      missed({ user: to.local, peer, direction: "in", xml: xml ?? serialize(stanza, stanza.xmlns), timestamp: Date.now() }, err);
      return undefined;
    };
    if (online) {
      const now = wantedNow(to.local, peer);
      if (now === false) return;
      if (now === true) {
        try {
          const id = append(to.local, peer, "in", (xml = xmlOf(stanza)));
          return typeof id === "string" ? stampId(stanza, id, user) : bounded(id.then((id) => (late.has(stanza) ? undefined : stampId(stanza, id, user)), failed), stanza);
        } catch (err) {
          return failed(err);
        }
      }
    }
    const work = (async () => {
      // A message to an account that does not exist is refused by the router; nothing to archive.
      if (!online && !(await ctx.storage.accounts.get(host, to.local))) return;
      try {
        if (!(await wanted(to.local, peer))) return;
        const id = await append(to.local, peer, "in", (xml = xmlOf(stanza)));
        if (!late.has(stanza)) stampId(stanza, id, user);
      } catch (err) {
        failed(err);
      }
      return undefined;
    })();
    // For an online recipient the archive is not needed to deliver: a database that hangs (no answer, no error) holds
    // the message up for ARCHIVE_WAIT_MS at most. Offline delivery needs the database anyway and is not bounded here.
    return online ? bounded(work, stanza) : work;
  };
  /** Messages delivered before their archive id came back: the late id is not stamped on what is already sent. */
  const late = new WeakSet<Element>();
  const bounded = (work: Promise<undefined>, stanza: Element): Promise<undefined> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        late.add(stanza);
        stats.archiveSlow++;
        resolve(undefined);
      }, ARCHIVE_WAIT_MS);
      void work.then(() => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  // Sent by a local client: into the sender's archive (a message to oneself is archived once, on arrival). The message
  // does not wait for the write: nothing in it depends on the sender's archive id. Serialised here, before anything later
  // on its way (the recipient's stanza id) changes it.
  const sent = ({ stanza, from, to, origin }: StanzaEvent): undefined => {
    if (origin.kind !== "c2s" || from.domain !== host || !to || to.bare.equals(from.bare)) return;
    stripStanzaIds(stanza, from.bareString());
    if (!archivable(stanza)) return;
    const peer = to.bareString();
    const now = wantedNow(from.local, peer);
    if (now === false) return;
    const xml = serialize(stanza, stanza.xmlns);
    lastSent = stanza;
    lastSentXml = xml;
    lastSentChildren = stanza.children.length;
    // The message still goes out if archiving fails; its archive copy is retried once storage answers.
    const failed = (err: unknown) => missed({ user: from.local, peer, direction: "out", xml, timestamp: Date.now() }, err);
    if (now === true) {
      try {
        const id = append(from.local, peer, "out", xml);
        if (typeof id !== "string") id.catch(failed);
      } catch (err) {
        failed(err);
      }
      return;
    }
    void (async () => {
      try {
        if (await wanted(from.local, peer)) await append(from.local, peer, "out", xml);
      } catch (err) {
        failed(err);
      }
    })();
    return;
  };
  ctx.hook("message/full", received, 20);
  ctx.hook("message/bare", received, 20);
  ctx.hook("pre-message/full", sent, 20);
  ctx.hook("pre-message/bare", sent, 20);

  const ownArchive = (from: Jid, to: Jid): void => {
    if (from.domain !== host || !to.bare.equals(from.bare)) throw new StanzaError("forbidden", { text: "only the account's own archive can be queried" });
  };

  // §4.1.1: the fields a query form may carry.
  ctx.handleIq("get", "account", NS_MAM, "query", (_iq, { from, to }) => {
    ownArchive(from, to);
    return x("query", NS_MAM, {}, queryForm());
  });

  // §4: a query; results go to the asking resource, then the IQ result carries <fin/>.
  ctx.handleIq("set", "account", NS_MAM, "query", async (_iq, { from, to, payload }) => {
    ownArchive(from, to);
    const q = parseQuery(payload, cfg.max_page);
    const page = await store.query(host, from.local, q);
    if (page === undefined) throw new StanzaError("item-not-found", { text: "no such message in the archive" });
    const session = ctx.sessions.get(from);
    const queryid = payload.attrs["queryid"];
    const archive = from.bareString();
    for (const m of page.items) {
      const result = resultMessage(m, { from: archive, to: from.toString(), queryid }, (err) => ctx.log.warn({ err, id: m.id }, "skipping an unreadable archived message"));
      if (result) session?.deliver(result);
    }
    return finElement(page);
  });

  // §6: preferences, kept per user in the "mam" keyval store.
  ctx.handleIq("get", "account", NS_MAM, "prefs", async (_iq, { from, to }) => {
    ownArchive(from, to);
    return prefsElement(await prefsOf(from.local));
  });
  ctx.handleIq("set", "account", NS_MAM, "prefs", async (_iq, { from, to, payload }) => {
    ownArchive(from, to);
    const p = readPrefs(payload);
    await prefsStore.set(host, from.local, "prefs", JSON.stringify(p));
    prefsCache.set(from.local, p);
    return prefsElement(p);
  });

  ctx.hook("account/deleted", ({ username }) => {
    prefsCache.delete(username);
    sinceTrim.delete(username);
    trimDue.delete(username);
  });
}

export default defineModule({
  name: "mam",
  protocol: [{ xep: 313, version: "1.1.1" }, { xep: 359, version: "0.7.0" }, { xep: 59, version: "1.0" }],
  setup,
});
