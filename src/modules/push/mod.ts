// XEP-0357: Push Notifications <https://xmpp.org/extensions/xep-0357.html> (v0.4.1): §4 the urn:xmpp:push:0 feature
// on the account's disco#info, §5 <enable/> with an optional publish-options form, §6 <disable/> with or without a
// node, §7 the notification: an XEP-0060 publish of <notification/> with the urn:xmpp:push:summary form to the app
// server's node, with the client's publish-options (XEP-0223). Sent when a message a person waits for (a body, or a
// XEP-0353 call proposal) is stored offline or queued for a session hibernating under XEP-0198. Errors from the app
// server are sorted into "gone" (the registration is removed at once), passing (retried with backoff) and the rest
// (counted; `push.max_failures` in a row disable the registration); see README.md.
import { Element } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import type { LocalSession } from "../../core/sessions.ts";
import { StanzaError, type StanzaCondition } from "../../xmpp/errors.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { NS_DATA } from "../../xmpp/ns.ts";
import { FormValueError, booleanValue, readForm } from "../../xmpp/data-forms.ts";
import { RegistrationStore, regKey, type Registration } from "./store.ts";

export const NS_PUSH = "urn:xmpp:push:0";
export const NS_PUSH_SUMMARY = "urn:xmpp:push:summary";
const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";
const NS_JINGLE_MESSAGE = "urn:xmpp:jingle-message:0";
const NS_CARBONS = "urn:xmpp:carbons:2";
/**
 * Comity's own field in the <enable/> form: a client that wants the message text in its notifications says so here
 * (XEP-0357 has no way to ask). It is removed before the form is forwarded to the app server as publish-options.
 */
export const FIELD_WANTS_BODY = "urn:xmpp:push:summary#last-message-body";

/** Longest node name and serialised publish-options form accepted on <enable/> (bounded memory and storage). */
const MAX_NODE = 1024;
const MAX_OPTIONS_BYTES = 4096;
/** Most accounts whose pending-message count is kept in memory at once (oldest forgotten first). */
const MAX_COUNTED_ACCOUNTS = 100_000;

/** App server answers that mean the node or our right to publish to it is gone for good: the registration is removed. */
const GONE: ReadonlySet<StanzaCondition> = new Set(["item-not-found", "forbidden", "not-authorized", "registration-required"]);
/** Answers worth a retry: the app server or the path to it is down or busy for now. */
const PASSING: ReadonlySet<StanzaCondition> = new Set([
  "remote-server-timeout",
  "remote-server-not-found",
  "service-unavailable",
  "recipient-unavailable",
  "internal-server-error",
  "resource-constraint",
  "policy-violation",
]);

/** Whether a message is one a person is waiting for: a body, or a XEP-0353 call proposal (not carbons, errors, chat). */
export function wantsPush(stanza: Element): boolean {
  if (stanza.name !== "message") return false;
  const type = stanza.attrs["type"] ?? "normal";
  if (type === "error" || type === "groupchat" || type === "headline") return false;
  let important = false;
  for (const c of stanza.elements) {
    // A carbon copy reached another of the user's clients, which is awake (XEP-0280).
    if (c.xmlns === NS_CARBONS) return false;
    if ((c.name === "body" && c.xmlns === stanza.xmlns) || (c.name === "propose" && c.xmlns === NS_JINGLE_MESSAGE)) important = true;
  }
  return important;
}

/** What one notification says (XEP-0357 §7 summary). */
interface Summary {
  count: number;
  sender: string;
  body: string | undefined;
}

/** In-memory delivery state of one registration: coalescing timer, in-flight flag, what the next notification says. */
interface RegState {
  user: string;
  reg: Registration;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
  /** Something happened since the last notification went out. */
  dirty: boolean;
  lastSentAt: number;
  sender: string;
  body: string | undefined;
}

/** The XEP-0357 §7 publish for one registration. */
export function notificationIq(from: string, reg: Registration, summary: Summary, withBody: boolean): Element {
  const iq = new Element("iq", "jabber:client", { type: "set", from, to: reg.jid });
  const pubsub = iq.c("pubsub", {}, NS_PUBSUB);
  const x = pubsub.c("publish", { node: reg.node }).c("item").c("notification", {}, NS_PUSH).c("x", { type: "form" }, NS_DATA);
  const field = (name: string, value: string, type?: string) => x.c("field", type ? { var: name, type } : { var: name }).c("value").t(value);
  field("FORM_TYPE", NS_PUSH_SUMMARY, "hidden");
  field("message-count", String(summary.count));
  field("last-message-sender", summary.sender);
  if (withBody && summary.body !== undefined) field("last-message-body", summary.body);
  if (reg.options !== undefined) pubsub.c("publish-options").children.push(parseXml(reg.options));
  return iq;
}

/** The <enable/> form (XEP-0357 §5): publish-options to forward, and whether the client asked for message bodies. */
function readEnableForm(enable: Element): { options: string | undefined; wantsBody: boolean } {
  const x = enable.getChild("x", NS_DATA);
  if (!x) return { options: undefined, wantsBody: false };
  let wantsBody: boolean;
  try {
    const form = readForm(x);
    if (form.type !== "submit") throw new FormValueError("", "the form must be of type submit");
    if (form.formType !== NS_PUBLISH_OPTIONS) throw new FormValueError("FORM_TYPE", `FORM_TYPE must be ${NS_PUBLISH_OPTIONS}`);
    wantsBody = booleanValue(form, FIELD_WANTS_BODY, false);
  } catch (err) {
    if (err instanceof FormValueError) throw new StanzaError("bad-request", { text: err.message });
    throw err;
  }
  const forward = new Element("x", NS_DATA, { type: "submit" });
  for (const c of x.elements) if (!(c.name === "field" && c.attrs["var"] === FIELD_WANTS_BODY)) forward.children.push(c);
  const options = forward.toString();
  if (Buffer.byteLength(options) > MAX_OPTIONS_BYTES) throw new StanzaError("not-acceptable", { text: `the publish-options form is larger than ${MAX_OPTIONS_BYTES} bytes` });
  return { options: forward.elements.length > 1 ? options : undefined, wantsBody };
}

/** The app server JID and node of an <enable/> or <disable/>. */
function target(el: Element, nodeRequired: boolean): { jid: Jid; node: string | undefined } {
  const jidAttr = el.attrs["jid"];
  if (jidAttr === undefined || jidAttr === "") throw new StanzaError("bad-request", { text: "the app server's 'jid' is required" });
  const jid = tryParseJid(jidAttr);
  if (!jid) throw new StanzaError("jid-malformed", { text: "the 'jid' is not a valid JID" });
  const node = el.attrs["node"];
  if (node === "" || (node === undefined && nodeRequired)) throw new StanzaError("bad-request", { text: "a 'node' is required" });
  if (node !== undefined && node.length > MAX_NODE) throw new StanzaError("not-acceptable", { text: `the node is longer than ${MAX_NODE} characters` });
  return { jid, node };
}

export default defineModule({
  name: "push",
  protocol: [{ xep: 357, version: "0.4.1" }],
  setup(ctx) {
    const cfg = ctx.config.push;
    if (!cfg.enabled) return;
    const store = new RegistrationStore(ctx.storage.map("push"), ctx.host);
    ctx.addFeature(NS_PUSH, "account");
    const pusher = new Pusher(ctx, store);

    /** Registrations each live session enabled: a hibernating session wakes its own device first. */
    const bySession = new WeakMap<LocalSession, Set<string>>();

    ctx.handleIq("set", "account", NS_PUSH, "enable", async (_iq, { from, to, payload }) => {
      // §5: a client enables notifications for its own account only.
      if (!from.bare.equals(to.bare)) throw new StanzaError("forbidden");
      const { jid, node } = target(payload, true);
      const { options, wantsBody } = readEnableForm(payload);
      const reg: Registration = { jid: jid.toString(), node: node!, ...(options !== undefined ? { options } : {}), wantsBody, failures: 0 };
      const dropped = await store.put(from.local, reg, cfg.max_per_account);
      for (const k of dropped) pusher.forget(from.local, k);
      const session = ctx.sessions.get(from);
      if (session) {
        let set = bySession.get(session);
        if (!set) bySession.set(session, (set = new Set()));
        set.add(regKey(reg.jid, reg.node));
      }
      ctx.log.debug({ user: from.local, app: reg.jid }, "push enabled");
    });

    ctx.handleIq("set", "account", NS_PUSH, "disable", async (_iq, { from, to, payload }) => {
      if (!from.bare.equals(to.bare)) throw new StanzaError("forbidden");
      const { jid, node } = target(payload, false);
      const regs = await store.list(from.local);
      await store.remove(from.local, jid.toString(), node);
      // §6: without a node, every registration with that app server goes.
      for (const r of regs) if (r.jid === jid.toString() && (node === undefined || r.node === node)) pusher.forget(from.local, regKey(r.jid, r.node));
    });

    // A message stored offline: the user has no session that takes it, so every device is told.
    const offline = ctx.use<{ onStored(fn: (ev: { username: string; stanza: Element; from: Jid }) => void): void }>("offline");
    offline?.onStored(({ username, stanza, from }) => {
      if (wantsPush(stanza)) pusher.trigger(username, undefined, stanza, from.toString());
    });

    // A message queued for a session waiting for XEP-0198 resumption: the phone sleeps, wake it.
    ctx.hook("session/hibernated-stanza", ({ session, stanza }) => {
      if (!wantsPush(stanza)) return;
      const mine = bySession.get(session);
      // A session that enabled nothing itself (its registration is from an earlier session) wakes every device.
      pusher.trigger(session.jid.local, mine && mine.size > 0 ? mine : undefined, stanza, stanza.attrs["from"] ?? "");
    });

    // The connection died with messages the client never acknowledged: it may never have seen them (a dead TCP
    // connection is often noticed only when acks stop coming), so they wake the device like later ones.
    ctx.hook("session/hibernating", ({ session, queued }) => {
      const mine = bySession.get(session);
      for (const stanza of queued) {
        if (wantsPush(stanza)) pusher.trigger(session.jid.local, mine && mine.size > 0 ? mine : undefined, stanza, stanza.attrs["from"] ?? "");
      }
    });

    // The user is back: nothing is pending any more (message-count starts again).
    ctx.hook("session/available", ({ session }) => void pusher.reset(session.jid.local));
    ctx.hook("session/resumed", ({ session }) => void pusher.reset(session.jid.local));
    ctx.hook("account/deleted", async ({ username }) => {
      pusher.forgetUser(username);
      await store.clear(username);
    });
    ctx.hook("server/stopping", () => void pusher.stop());
  },
});

/** Sends notifications: per registration, at most one in flight, bursts folded together, retries with backoff. */
class Pusher {
  readonly #ctx: ModuleContext;
  readonly #store: RegistrationStore;
  readonly #cfg: ModuleContext["config"]["push"];
  /** Pending messages per account since it was last online (XEP-0357 §7 message-count). */
  readonly #counts = new Map<string, number>();
  /** Delivery state of registrations with something to do (removed when idle). */
  readonly #states = new Map<string, RegState>();
  #stopped = false;

  constructor(ctx: ModuleContext, store: RegistrationStore) {
    this.#ctx = ctx;
    this.#store = store;
    this.#cfg = ctx.config.push;
  }

  /** A message waits for `user`: notify its registrations (only those in `keys` when given). */
  trigger(user: string, keys: ReadonlySet<string> | undefined, stanza: Element, sender: string): void {
    if (this.#stopped) return;
    const count = (this.#counts.get(user) ?? 0) + 1;
    this.#counts.delete(user); // re-inserted last: the map's order is oldest first
    this.#counts.set(user, count);
    if (this.#counts.size > MAX_COUNTED_ACCOUNTS) this.#counts.delete(this.#counts.keys().next().value!);
    const body = stanza.getChild("body", stanza.xmlns)?.text(); // a call proposal has none
    this.#store.list(user).then(
      (regs) => {
        for (const reg of regs) {
          const key = regKey(reg.jid, reg.node);
          if (keys !== undefined && !keys.has(key)) continue;
          const id = stateId(user, key);
          let st = this.#states.get(id);
          if (!st) this.#states.set(id, (st = { user, reg, timer: undefined, inFlight: false, dirty: false, lastSentAt: 0, sender, body }));
          st.reg = reg;
          st.sender = sender;
          st.body = body;
          st.dirty = true;
          this.#schedule(id, st);
        }
      },
      (err: unknown) => this.#ctx.log.error({ err, user }, "could not read push registrations"),
    );
  }

  reset(user: string): void {
    this.#counts.delete(user);
  }

  /** A registration was disabled or trimmed: nothing more goes to it. */
  forget(user: string, key: string): void {
    const id = stateId(user, key);
    const st = this.#states.get(id);
    if (st?.timer !== undefined) clearTimeout(st.timer);
    this.#states.delete(id);
  }

  forgetUser(user: string): void {
    this.#counts.delete(user);
    for (const [id, st] of this.#states) if (st.user === user) this.forget(user, id.slice(user.length + 1));
  }

  stop(): void {
    this.#stopped = true;
    for (const st of this.#states.values()) if (st.timer !== undefined) clearTimeout(st.timer);
    this.#states.clear();
  }

  /** Send when the registration's interval allows; meanwhile later messages only update what will be sent. */
  #schedule(id: string, st: RegState): void {
    if (st.inFlight || st.timer !== undefined || this.#stopped) return;
    const wait = Math.max(0, st.lastSentAt + this.#cfg.min_interval_ms - Date.now());
    st.timer = setTimeout(() => {
      st.timer = undefined;
      void this.#flush(id, st);
    }, wait);
    st.timer.unref();
  }

  async #flush(id: string, st: RegState): Promise<void> {
    if (this.#states.get(id) !== st) return; // forgotten meanwhile
    if (!st.dirty) {
      // Idle for a whole interval: drop the state (memory stays bounded by active registrations).
      this.#states.delete(id);
      return;
    }
    st.dirty = false;
    st.inFlight = true;
    try {
      await this.#deliver(st);
    } finally {
      st.inFlight = false;
      st.lastSentAt = Date.now();
    }
    if (this.#states.get(id) !== st || this.#stopped) return;
    // Either more arrived while we were sending (sent after the interval), or a check that drops the idle state.
    const wait = this.#cfg.min_interval_ms;
    st.timer = setTimeout(() => {
      st.timer = undefined;
      void this.#flush(id, st);
    }, wait);
    st.timer.unref();
  }

  /** One notification, retried with exponential backoff on passing errors; the registration's fate on the others. */
  async #deliver(st: RegState): Promise<void> {
    const { user, reg } = st;
    const from = `${user}@${this.#ctx.host}`;
    const withBody = this.#cfg.include_body && reg.wantsBody;
    for (let attempt = 0; ; attempt++) {
      if (this.#stopped) return;
      // The latest summary at each attempt: a retry carries what arrived meanwhile.
      const summary: Summary = { count: this.#counts.get(user) ?? 1, sender: st.sender, body: st.body };
      let condition: StanzaCondition;
      try {
        await this.#ctx.request(notificationIq(from, reg, summary, withBody), this.#cfg.timeout_ms);
        if (reg.failures > 0) {
          reg.failures = 0;
          await this.#store.setFailures(user, reg, 0);
        }
        this.#ctx.log.debug({ user, app: reg.jid }, "push notification sent");
        return;
      } catch (err) {
        if (!(err instanceof StanzaError)) {
          this.#ctx.log.error({ err, user, app: reg.jid }, "push notification failed");
          return;
        }
        condition = err.condition;
      }
      try {
        if (GONE.has(condition)) {
          // The app server no longer knows this device (node gone) or no longer lets us publish: stop for good.
          this.#ctx.log.info({ user, app: reg.jid, condition }, "push registration removed: the app server refused it");
          await this.#store.remove(user, reg.jid, reg.node);
          this.forget(user, regKey(reg.jid, reg.node));
          return;
        }
        if (PASSING.has(condition) && attempt < this.#cfg.retries) {
          await sleep(this.#cfg.retry_base_ms * 2 ** attempt);
          continue;
        }
        reg.failures++;
        if (reg.failures >= this.#cfg.max_failures) {
          this.#ctx.log.info({ user, app: reg.jid, condition, failures: reg.failures }, "push registration disabled after repeated errors");
          await this.#store.remove(user, reg.jid, reg.node);
          this.forget(user, regKey(reg.jid, reg.node));
        } else {
          this.#ctx.log.debug({ user, app: reg.jid, condition, failures: reg.failures }, "push notification failed");
          await this.#store.setFailures(user, reg, reg.failures);
        }
      } catch (err) {
        this.#ctx.log.error({ err, user }, "could not update a push registration");
      }
      return;
    }
  }
}

function stateId(user: string, key: string): string {
  return `${user}\n${key}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
