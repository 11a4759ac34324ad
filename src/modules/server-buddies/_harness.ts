// Test harness (no sockets) for the server-buddies module (XEP-0267): one host over memory storage, with every
// stanza the module sends captured, IQ requests answered by a script, and inbound presence fired as the router does.
import { Element } from "../../xml/element.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DISCO_INFO } from "../../xmpp/ns.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { normalizeConfig } from "../../core/config/load.ts";
import type { Config } from "../../core/config/schema.ts";
import { Events } from "../../core/events.ts";
import { Host } from "../../core/host.ts";
import { silentLogger } from "../../core/log.ts";
import type { Origin } from "../../core/module-api.ts";
import { SessionRegistry } from "../../core/sessions.ts";
import { createMemoryStorage } from "../../storage/memory.ts";
import type { Storage } from "../../storage/types.ts";
import serverBuddies, { NS_SERVER_PRESENCE } from "./mod.ts";
import type { HostRoster } from "./roster.ts";

export const HOST = "comity.example";
export const ADMIN = `admin@${HOST}`;

/** One host running only the server-buddies module. */
export interface BuddyHarness {
  config: Config;
  storage: Storage;
  events: Events;
  host: Host;
  roster: HostRoster;
  control: Map<string, (params: Record<string, unknown>) => unknown>;
  /** Every stanza the module sent (ctx.send and ctx.request), oldest first. */
  sent: Element[];
  /** Whether each peer's disco#info answer includes urn:xmpp:server-presence (missing: time out). */
  discoFeature: Map<string, boolean>;
  /** Fire presence to the host as the router would; `from` defaults to the peer domain. */
  inbound(peer: string, type: string | undefined, opts?: { from?: string; kind?: Origin["kind"]; status?: string }): Promise<boolean>;
  /** Remove and return the sent stanzas, serialised. */
  take(): string[];
  settle(): Promise<void>;
  /** Set up the module again over the same storage (a restart). */
  restart(): Promise<BuddyHarness>;
}

/** Wait until fire-and-forget work (disco queries, their storage writes) has run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** Build the harness; `buddies` overrides that config section. */
export async function createBuddyHarness(opts: { buddies?: Record<string, unknown>; storage?: Storage } = {}): Promise<BuddyHarness> {
  const config = normalizeConfig(
    { hosts: [{ domain: HOST, admins: [ADMIN, "second@elsewhere.example"] }], data_dir: "/nonexistent", buddies: { disco_timeout_ms: 100, ...opts.buddies } },
    { baseDir: "/" },
  );
  const storage = opts.storage ?? createMemoryStorage();
  const events = new Events();
  const host = new Host(config.hosts[0]!);
  const sent: Element[] = [];
  const control = new Map<string, (params: Record<string, unknown>) => unknown>();
  const discoFeature = new Map<string, boolean>();
  await host.load(serverBuddies, {
    config,
    storage,
    log: silentLogger(),
    events,
    sessions: new SessionRegistry(),
    control,
    send: (s) => void sent.push(s),
    request: async (iq) => {
      sent.push(iq);
      const to = iq.attrs["to"]!;
      const feature = discoFeature.get(to);
      if (feature === undefined) throw new StanzaError("remote-server-timeout");
      const res = new Element("iq", NS_CLIENT, { type: "result", from: to, to: HOST, id: iq.attrs["id"]! });
      const q = res.c("query", {}, NS_DISCO_INFO);
      q.c("identity", { category: "server", type: "im" });
      if (feature) q.c("feature", { var: NS_SERVER_PRESENCE });
      return res;
    },
  });
  const roster = host.provided.get("server-roster") as HostRoster;
  const h: BuddyHarness = {
    config,
    storage,
    events,
    host,
    roster,
    control,
    sent,
    discoFeature,
    async inbound(peer, type, o = {}) {
      const stanza = new Element("presence", NS_CLIENT, { from: o.from ?? peer, to: HOST, ...(type === undefined ? {} : { type }) });
      if (o.status !== undefined) stanza.c("status").t(o.status);
      const from = parseJid(o.from ?? peer);
      const handled = await events.fire("presence/host", { stanza, from, to: parseJid(HOST), origin: { kind: o.kind ?? "s2s", jid: o.kind === "c2s" ? from : parseJid(peer) } });
      await settle();
      return handled;
    },
    take() {
      const out = sent.splice(0).map((e) => e.toString());
      return out;
    },
    settle,
    restart: () => createBuddyHarness({ ...opts, storage }),
  };
  return h;
}
