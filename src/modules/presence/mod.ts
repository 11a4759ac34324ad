// RFC 6121 §4 presence: initial presence broadcast and probes (§4.2), probe answers (§4.3), updates (§4.4),
// unavailable presence and session end (§4.5), directed presence (§4.6). Subscriptions live in the roster module.
import { readdress } from "../../xmpp/stanza.ts";
import { x, type Element } from "../../xml/element.ts";
import { NS_CLIENT } from "../../xmpp/ns.ts";
import type { Jid } from "../../xmpp/jid.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { HANDLED, type HookResult, type StanzaEvent } from "../../core/events.ts";
import type { LocalSession } from "../../core/sessions.ts";
import type { Subscription } from "../../storage/types.ts";

const hasFrom = (s: Subscription): boolean => s === "from" || s === "both";
const hasTo = (s: Subscription): boolean => s === "to" || s === "both";

/** Presence broadcast, probes and directed presence for one host. */
function setup(ctx: ModuleContext): void {
  const host = ctx.host;
  const rosters = ctx.storage.rosters;

  /** Bare JIDs of the contacts that may see the user's presence ('from' or 'both'). */
  async function subscribers(user: Jid): Promise<string[]> {
    const { items } = await rosters.get(host, user.local);
    return items.filter((i) => hasFrom(i.subscription)).map((i) => i.jid);
  }

  /**
   * Send a session's broadcast presence to its subscribers and to the user's own available resources, the sender
   * included (§4.2.2, §4.4.2, §4.5.2); unavailable presence also goes to every directed-presence recipient (§4.6.3).
   */
  async function broadcast(session: LocalSession, stanza: Element, unavailable: boolean): Promise<void> {
    const from = session.jid.toString();
    const bare = session.jid.bare;
    const told = new Set<string>();
    for (const jid of await subscribers(bare)) {
      ctx.send(readdress(stanza, from, jid));
      told.add(jid);
    }
    for (const s of ctx.sessions.ofBare(bare.toString()).values()) {
      if (s.available || s === session) s.deliver(readdress(stanza, from, s.jid.toString()));
    }
    if (!unavailable) return;
    for (const to of session.directed) {
      const bareTo = to.split("/")[0]!;
      if (!told.has(bareTo) && bareTo !== bare.toString()) ctx.send(readdress(stanza, from, to));
    }
    session.directed.clear();
  }

  // §4.2.2 / §4.4.2 / §4.5.2: presence without `to` from a client (c2s already updated the session's availability).
  ctx.hook("pre-presence/self", async ({ stanza, from }) => {
    const type = stanza.attrs["type"];
    if (type !== undefined && type !== "unavailable") return undefined;
    const session = ctx.sessions.get(from);
    if (!session) return HANDLED;
    await broadcast(session, stanza, type === "unavailable");
    return HANDLED;
  });

  // §4.2.2: after initial presence, probe the contacts the user is subscribed to, and show the new resource the
  // user's other available resources.
  ctx.hook("session/available", async ({ session }) => {
    const bare = session.jid.bare;
    const { items } = await rosters.get(host, bare.local);
    for (const item of items) {
      if (hasTo(item.subscription)) ctx.send(x("presence", NS_CLIENT, { type: "probe", from: bare.toString(), to: item.jid }));
    }
    for (const s of ctx.sessions.ofBare(bare.toString()).values()) {
      if (s !== session && s.available && s.presence) session.deliver(readdress(s.presence, s.jid.toString(), session.jid.toString()));
    }
  });

  // §4.5.2 / §4.6.3: a session that ends without unavailable presence goes offline for everyone who saw it online.
  ctx.hook("session/ended", async ({ session }) => {
    if (!session.available && session.directed.size === 0) return;
    const wasAvailable = session.available;
    session.available = false;
    const unavailable = x("presence", NS_CLIENT, { type: "unavailable" });
    if (wasAvailable) return broadcast(session, unavailable, true);
    for (const to of session.directed) ctx.send(readdress(unavailable, session.jid.toString(), to));
    session.directed.clear();
  });

  /** §4.6: presence a client addresses to someone is routed as is; the recipient is remembered for §4.6.3. */
  function directed(ev: StanzaEvent): HookResult {
    const type = ev.stanza.attrs["type"];
    if ((type !== undefined && type !== "unavailable") || !ev.to || ev.to.bare.equals(ev.from.bare)) return undefined;
    const session = ctx.sessions.get(ev.from);
    if (!session) return undefined;
    if (type === undefined) session.directed.add(ev.to.toString());
    else session.directed.delete(ev.to.toString());
    return undefined;
  }
  ctx.hook("pre-presence/bare", directed);
  ctx.hook("pre-presence/full", directed);

  /** §4.3.2: a probe is answered in the user's name, never delivered; only subscribers learn anything. */
  async function probe(ev: StanzaEvent): Promise<HookResult> {
    if (ev.stanza.attrs["type"] !== "probe" || !ev.to) return undefined;
    const user = ev.to.bare;
    const prober = ev.from;
    if (prober.bare.equals(user)) return HANDLED;
    const item = await rosters.getItem(host, user.local, prober.bare.toString());
    if (!item || !hasFrom(item.subscription)) {
      // Not subscribed (or no such user): reveal nothing, and let the prober's server correct its state.
      ctx.send(x("presence", NS_CLIENT, { type: "unsubscribed", from: user.toString(), to: prober.bare.toString() }));
      return HANDLED;
    }
    let answered = false;
    for (const s of ctx.sessions.ofBare(user.toString()).values()) {
      if (!s.available || !s.presence) continue;
      ctx.send(readdress(s.presence, s.jid.toString(), prober.toString()));
      answered = true;
    }
    if (!answered) ctx.send(x("presence", NS_CLIENT, { type: "unavailable", from: user.toString(), to: prober.toString() }));
    return HANDLED;
  }
  ctx.hook("presence/bare", probe);
  ctx.hook("presence/full", probe);
}

export default defineModule({
  name: "presence",
  protocol: [{ rfc: 6121 }],
  setup,
});
