// XEP-0198: Stream Management <https://xmpp.org/extensions/xep-0198.html> (v1.6) for client streams, TCP and
// WebSocket alike: §2 the stream feature, §3 enabling, §4 acks (counting both ways, <r/>/<a/>, handled-count-too-high),
// §5 resumption of a hibernating session, §6 <failed/> conditions. Unacknowledged stanzas of a session that ends are
// settled by c2s (C2sSession.end: offline storage or bounce, RFC 6121 §8.5).
import { randomBytes } from "node:crypto";
import { Element } from "../../xml/element.ts";
import { defineModule } from "../../core/module-api.ts";
import { NS_SM, type C2sSession, type StreamManagementHooks, type StreamManager } from "../../core/c2s.ts";
import type { Logger } from "../../core/log.ts";
import { StreamError } from "../../xmpp/errors.ts";
import { NS_STANZAS } from "../../xmpp/ns.ts";

/** How one host runs stream management (from `c2s.stream_management`). */
export interface SmOptions {
  /** Longest hibernation offered, seconds; 0: no resumption. */
  resumeTimeoutSeconds: number;
  maxUnacked: number;
  ackEvery: number;
  ackDelayMs: number;
}

/**
 * A connected stream over its limit is closed only if the client has not acknowledged anything for this long: a
 * burst (offline messages and a large roster's presence at login, a busy chat) passes the limit long before the
 * client's acks can come back, and closing a stream that is being read would only move its queue to offline storage.
 */
export const ACK_GRACE_MS = 60_000;

const MAX_H = 0xffffffff;
const R = new Element("r", NS_SM);

/** `h` as XEP-0198 §4 defines it: an unsigned 32-bit integer; undefined when malformed. */
export function parseH(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,10}$/.test(value)) return undefined;
  const n = Number(value);
  return n <= MAX_H ? n : undefined;
}

/** `<failed/>` with a stanza error condition (XEP-0198 §6), optionally with our `h` (§5, v1.6). */
export function failed(condition: string, h?: number, extra?: Element): Element {
  const f = new Element("failed", NS_SM, h === undefined ? {} : { h: String(h) });
  f.c(condition, {}, NS_STANZAS);
  if (extra) f.children.push(extra);
  return f;
}

/** The XEP-0198 state of one session: inbound count, outbound count and the queue of unacknowledged stanzas. */
export class SmState implements StreamManager {
  handled = 0;
  readonly session: C2sSession;
  /** The resumption id (SM-ID), when the client asked for resumption. */
  readonly id: string | undefined;
  readonly resumeSeconds: number;
  readonly #opts: SmOptions;
  readonly #registry: Map<string, SmState>;
  /** Stanzas sent since <enabled/>, modulo 2^32. */
  #sent = 0;
  /** The client's last `h`: the queue holds stanzas #acked+1 … #sent. */
  #acked = 0;
  /** Unacknowledged stanzas are #queue[#head …], oldest first (acks move #head: no copying per ack). */
  #queue: Element[] = [];
  #head = 0;
  /** #sent when we last asked for an ack. */
  #requested = 0;
  #lastAckAt = Date.now();
  #ackTimer: NodeJS.Timeout | undefined;
  #resumeTimer: NodeJS.Timeout | undefined;
  #overflowed = false;
  #closed = false;

  constructor(session: C2sSession, opts: SmOptions, resume: { id: string; seconds: number } | undefined, registry: Map<string, SmState>) {
    this.session = session;
    this.#opts = opts;
    this.#registry = registry;
    this.id = resume?.id;
    this.resumeSeconds = resume?.seconds ?? 0;
    if (resume) registry.set(resume.id, this);
  }

  /** Stanzas sent and not yet acknowledged. */
  get unacked(): number {
    return this.#queue.length - this.#head;
  }

  /** Stanzas sent since enabling (modulo 2^32). */
  get sent(): number {
    return this.#sent;
  }

  send(stanza: Element): void {
    const q = this.#queue;
    q.push(stanza);
    this.#sent = (this.#sent + 1) >>> 0;
    const session = this.session;
    if (q.length - this.#head > this.#opts.maxUnacked && this.#overLimit()) return;
    const conn = session.conn;
    if (session.hibernating || conn.closing) return; // kept for the resumed stream, or for settling at the end
    conn.send(stanza);
    if (((this.#sent - this.#requested) >>> 0) >= this.#opts.ackEvery) this.#request();
    if (this.#ackTimer === undefined) this.#armAckTimer();
  }

  /** The queue passed max_unacked: true when the session is being ended for it. */
  #overLimit(): boolean {
    if (this.#overflowed) return true;
    const session = this.session;
    if (session.hibernating) {
      // Bounded memory for a client that may never come back: end now, the queue goes to offline storage.
      this.#overflowed = true;
      void session.end("too many stanzas queued for resumption");
      return true;
    }
    if (Date.now() - this.#lastAckAt > ACK_GRACE_MS) {
      this.#overflowed = true;
      session.conn.streamError(new StreamError("policy-violation", { text: "too many unacknowledged stanzas" }));
      return true;
    }
    return false;
  }

  #request(): void {
    this.#requested = this.#sent;
    this.session.conn.send(R);
  }

  /**
   * At most one timer per session and per ack_delay (never one per stanza): when it fires, stanzas sent since the
   * last <r/> are asked for; the next stanza or ack arms it again.
   */
  #armAckTimer(): void {
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.unacked > 0 && this.#sent !== this.#requested && !this.session.hibernating && !this.session.conn.closing) this.#request();
    }, this.#opts.ackDelayMs);
    this.#ackTimer.unref();
  }

  #clearAckTimer(): void {
    if (this.#ackTimer !== undefined) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    }
  }

  /** The client handled stanzas up to `h` (§4): free them. False when `h` counts more than were sent. */
  ack(h: number): boolean {
    const n = (h - this.#acked) >>> 0;
    const left = this.#queue.length - this.#head;
    if (n > left) return false;
    if (n > 0) {
      this.#acked = h;
      if (n === left) {
        this.#queue = [];
        this.#head = 0;
      } else {
        this.#head += n;
        // Compact once the freed prefix is the larger part, so the array never keeps more than twice what is unacked.
        if (this.#head > 64 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
      }
    }
    this.#lastAckAt = Date.now();
    if (n < left && this.#ackTimer === undefined && !this.session.conn.closing) this.#armAckTimer();
    return true;
  }

  hibernate(): boolean {
    this.#clearAckTimer();
    if (this.id === undefined || this.resumeSeconds === 0 || this.#closed) return false;
    this.#resumeTimer = setTimeout(() => void this.session.end("not resumed in time"), this.resumeSeconds * 1000);
    this.#resumeTimer.unref();
    return true;
  }

  /** The session continues on a new stream (§5): write what the client has not acknowledged again, then ask. */
  resumed(): void {
    if (this.#resumeTimer !== undefined) clearTimeout(this.#resumeTimer);
    this.#resumeTimer = undefined;
    const conn = this.session.conn;
    const q = this.#queue;
    for (let i = this.#head; i < q.length; i++) conn.send(q[i]!);
    if (q.length > this.#head) this.#request();
  }

  queued(): Element[] {
    return this.#queue.slice(this.#head);
  }

  close(): Element[] {
    this.#closed = true;
    this.#clearAckTimer();
    if (this.#resumeTimer !== undefined) clearTimeout(this.#resumeTimer);
    this.#resumeTimer = undefined;
    if (this.id !== undefined && this.#registry.get(this.id) === this) this.#registry.delete(this.id);
    const q = this.#head === 0 ? this.#queue : this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    return q;
  }
}

/** The protocol: what each urn:xmpp:sm:3 element from a client does. */
export function streamManagementHooks(opts: SmOptions, registry: Map<string, SmState>, log: Logger): StreamManagementHooks {
  const enable = (session: C2sSession, el: Element): void => {
    const conn = session.conn;
    // §3: only after binding, and only once per stream.
    if (!session.bound || session.sm) {
      conn.send(failed("unexpected-request"));
      return;
    }
    const wants = el.attrs["resume"] === "true" || el.attrs["resume"] === "1";
    let seconds = opts.resumeTimeoutSeconds;
    const max = parseH(el.attrs["max"]);
    if (max !== undefined && max > 0) seconds = Math.min(seconds, max); // §5: the client's preferred maximum
    const resume = wants && seconds > 0 ? { id: randomBytes(18).toString("base64url"), seconds } : undefined;
    const state = new SmState(session, opts, resume, registry);
    conn.send(new Element("enabled", NS_SM, resume ? { id: resume.id, resume: "true", max: String(resume.seconds) } : {}));
    session.sm = state; // counting starts after <enabled/> in both directions
  };

  const resume = (stream: C2sSession, el: Element): void => {
    const conn = stream.conn;
    const account = stream.account;
    // §5: after authentication, instead of binding.
    if (!account || stream.bound) {
      conn.send(failed("unexpected-request"));
      return;
    }
    const h = parseH(el.attrs["h"]);
    const previd = el.attrs["previd"] ?? "";
    const state = registry.get(previd);
    if (!state || !state.session.account?.equals(account)) {
      // Someone else's session looks exactly like an expired one: the id reveals nothing.
      if (state) log.warn({ account: account.toString(), owner: state.session.account?.toString() }, "resumption attempt for another account's session");
      conn.send(failed("item-not-found"));
      return;
    }
    if (h === undefined) {
      conn.send(failed("bad-request"));
      return;
    }
    const old = state.session;
    if (!state.ack(h)) {
      // The client claims stanzas that were never sent: its view of the session cannot be trusted. End the session
      // (what it did not acknowledge goes to offline storage) and let the client bind afresh.
      conn.send(failed("undefined-condition", undefined, tooHigh(h, state.sent)));
      void old.end("resumption with handled-count-too-high");
      return;
    }
    old.takeOver(stream);
    log.debug({ jid: old.jid.toString(), unacked: state.unacked }, "c2s session resumed");
    conn.send(new Element("resumed", NS_SM, { previd, h: String(state.handled) }));
    state.resumed();
  };

  return {
    element(session, el) {
      switch (el.name) {
        case "enable":
          return enable(session, el);
        case "resume":
          return resume(session, el);
        case "r": {
          const sm = session.sm;
          if (sm) session.conn.send(new Element("a", NS_SM, { h: String(sm.handled) }));
          return;
        }
        case "a": {
          const sm = session.sm;
          if (!(sm instanceof SmState)) return; // not enabled on this stream: nothing to free
          const h = parseH(el.attrs["h"]);
          if (h === undefined) throw new StreamError("invalid-xml", { text: "<a/> needs an unsigned 32-bit 'h'" });
          if (sm.ack(h)) return;
          // §4: an h beyond what was sent is a stream error.
          const err = new StreamError("undefined-condition", { text: "acknowledged more stanzas than were sent" }).toElement();
          err.children.push(tooHigh(h, sm.sent));
          session.conn.send(err);
          session.conn.close("stream error: handled-count-too-high");
          return;
        }
        default:
          throw new StreamError("unsupported-stanza-type", { text: `<${el.name}/> is not a stream management element` });
      }
    },
  };
}

function tooHigh(h: number, sent: number): Element {
  return new Element("handled-count-too-high", NS_SM, { h: String(h), "send-count": String(sent) });
}

export default defineModule({
  name: "stream-management",
  protocol: [{ xep: 198, version: "1.6" }],
  setup(ctx) {
    const cfg = ctx.config.c2s.stream_management;
    if (!cfg.enabled) return;
    const opts: SmOptions = {
      resumeTimeoutSeconds: cfg.resume_timeout_seconds,
      maxUnacked: cfg.max_unacked,
      ackEvery: cfg.ack_every,
      ackDelayMs: cfg.ack_delay_seconds * 1000,
    };
    /** Resumable sessions of this host by SM-ID (connected or hibernating). */
    const registry = new Map<string, SmState>();
    ctx.provide("stream-management", streamManagementHooks(opts, registry, ctx.log));
    // A clean shutdown ends hibernating sessions while storage is still open: their messages go to offline storage.
    ctx.hook("server/stopping", async () => {
      const ending: Promise<void>[] = [];
      for (const s of [...registry.values()]) if (s.session.hibernating) ending.push(s.session.end("server shutting down"));
      await Promise.all(ending);
    });
  },
});
