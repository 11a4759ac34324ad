// Test harness (no sockets) for the roster and presence modules: the real router, events and host over memory
// storage, with fake client sessions that act as c2s does (RFC 6120 §8.1 stamping, RFC 6121 §4.2 own presence).
import { Element } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { parseJid, type Jid } from "../../xmpp/jid.ts";
import { normalizeConfig } from "../../core/config/load.ts";
import { Events } from "../../core/events.ts";
import { Host } from "../../core/host.ts";
import { silentLogger } from "../../core/log.ts";
import type { ModuleDefinition } from "../../core/module-api.ts";
import { Router } from "../../core/router.ts";
import { SessionRegistry, type LocalSession } from "../../core/sessions.ts";
import { createMemoryStorage } from "../../storage/memory.ts";
import type { Storage } from "../../storage/types.ts";

/** A bound client session that records what it is sent. */
export class FakeSession implements LocalSession {
  readonly jid: Jid;
  priority = 0;
  available = false;
  presence: Element | undefined;
  interested = false;
  readonly directed = new Set<string>();
  received: Element[] = [];

  constructor(jid: Jid) {
    this.jid = jid;
  }

  deliver(stanza: Element): void {
    this.received.push(stanza);
  }

  kick(): void {}

  /** Remove and return what was received so far. */
  take(): Element[] {
    const r = this.received;
    this.received = [];
    return r;
  }

  /** Received stanzas serialised, one line each, for readable assertions. */
  lines(): string[] {
    return this.take().map((e) => e.toString());
  }
}

/** The in-process server of a test. */
export interface Harness {
  storage: Storage;
  router: Router;
  sessions: SessionRegistry;
  events: Events;
  /** Stanzas the router sent to remote domains. */
  remote: Element[];
  addUser(username: string): Promise<void>;
  /** Bind a session (no presence sent yet). */
  login(full: string): FakeSession;
  /** Send a stanza from a session as its client would, and wait until routing settles. */
  send(session: FakeSession, stanza: string | Element): Promise<void>;
  /** End a session as a closed connection does. */
  end(session: FakeSession): Promise<void>;
  settle(): Promise<void>;
}

/** Wait until chains of routed stanzas (ctx.send is fire-and-forget) have run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
}

/** Build a host `localhost` with the given modules over memory storage. */
export async function createHarness(modules: ModuleDefinition[], overrides: Record<string, unknown> = {}): Promise<Harness> {
  const config = normalizeConfig({ hosts: [{ domain: "localhost" }], data_dir: "/nonexistent", ...overrides }, { baseDir: "/" });
  const storage = createMemoryStorage();
  const log = silentLogger();
  const events = new Events();
  const sessions = new SessionRegistry();
  const hosts = new Map(config.hosts.map((h) => [h.domain, new Host(h)]));
  const router = new Router({ hosts, sessions, storage, log, events });
  const remote: Element[] = [];
  router.remote = (stanza) => void remote.push(stanza);
  for (const host of hosts.values()) {
    for (const mod of modules) await host.load(mod, { config, storage, log, events, sessions, send: (s) => router.send(s) });
  }

  async function ownPresence(s: FakeSession, el: Element): Promise<void> {
    const type = el.attrs["type"];
    let initial = false;
    if (type === undefined) {
      initial = !s.available;
      s.available = true;
      s.presence = el;
      s.priority = Number.parseInt(el.getChildText("priority") ?? "0", 10) || 0;
    } else if (type === "unavailable") {
      s.available = false;
      s.presence = undefined;
    } else if (type === "error") {
      return;
    }
    await router.route(el, s.jid, undefined, { kind: "c2s", jid: s.jid });
    if (initial) await events.fire("session/available", { session: s });
  }

  return {
    storage,
    router,
    sessions,
    events,
    remote,
    async addUser(username) {
      await storage.accounts.create("localhost", username, { scram: {} });
    },
    login(full) {
      const s = new FakeSession(parseJid(full));
      sessions.add(s);
      return s;
    },
    async send(s, stanza) {
      const el = typeof stanza === "string" ? parseXml(stanza) : stanza;
      el.attrs["from"] = s.jid.toString();
      const toAttr = el.attrs["to"];
      const to = toAttr === undefined ? undefined : parseJid(toAttr);
      if (el.name === "presence" && to === undefined) await ownPresence(s, el);
      else await router.route(el, s.jid, to, { kind: "c2s", jid: s.jid });
      await settle();
    },
    async end(s) {
      sessions.remove(s);
      await events.fire("session/ended", { session: s, reason: "test" });
      await settle();
    },
    settle,
  };
}
