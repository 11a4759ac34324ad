// Federation policy over the XEP-0267 server roster (docs/trust-uses.md "Federation policy"): with
// `federation.policy: buddies-only`, s2s stanzas with peers that are not buddies are refused (policy-violation),
// except the trust handshake itself (domain-to-domain presence, disco#info); per-peer limits for trusted and
// other peers are applied when a link authenticates.
import type { Element } from "../../xml/element.ts";
import { NS_DISCO_INFO, NS_STANZAS } from "../../xmpp/ns.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { HANDLED } from "../../core/events.ts";
import type { ServerRoster } from "../server-buddies/api.ts";

/** Presence types the XEP-0267 handshake and server presence use between domain JIDs. */
const HANDSHAKE_PRESENCE = new Set([undefined, "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"]);

/**
 * Whether a stanza is part of the trust handshake, which must cross even when the peer is not a buddy: presence
 * between the two bare domain JIDs (subscription, probes, server availability) and disco#info queries between them
 * (XEP-0267 asks peers whether they implement server rosters), with their results and errors.
 */
export function isHandshake(stanza: Element, localDomain: string, remoteDomain: string, direction: "in" | "out"): boolean {
  const from = stanza.attrs["from"];
  const to = stanza.attrs["to"];
  const [expFrom, expTo] = direction === "in" ? [remoteDomain, localDomain] : [localDomain, remoteDomain];
  if (from !== expFrom || to !== expTo) return false;
  const type = stanza.attrs["type"];
  if (stanza.name === "presence") return HANDSHAKE_PRESENCE.has(type);
  if (stanza.name !== "iq") return false;
  const payload = stanza.elements.filter((e) => !(e.name === "error" && e.xmlns === stanza.xmlns));
  if (type === "get") return payload.length === 1 && payload[0]!.name === "query" && payload[0]!.xmlns === NS_DISCO_INFO;
  if (type === "result" || type === "error") {
    // A result is empty or a disco#info answer; an error may echo the query and carries its condition.
    return payload.every((e) => (e.name === "query" && e.xmlns === NS_DISCO_INFO) || e.xmlns === NS_STANZAS);
  }
  return false;
}

function setup(ctx: ModuleContext): void {
  const roster = (): ServerRoster | undefined => ctx.use<ServerRoster>("server-roster");
  /**
   * A buddy is a peer our admins approved in either direction: `trusts()` (we approved its request, or it confirmed
   * ours) or `isTrustedBy()` (it approved our request). Pending requests do not count: until a person decides, only
   * the handshake passes.
   */
  const isBuddy = (peer: string): boolean => {
    const r = roster();
    return r !== undefined && (r.trusts(peer) || r.isTrustedBy(peer));
  };

  // Read at each stanza, so the policy is whatever the running config says (no cost beyond one comparison).
  ctx.hook("s2s/filter", (ev) => {
    if (ctx.config.federation.policy !== "buddies-only") return;
    if (isBuddy(ev.remote)) return;
    // Our error replies go out, so a refused peer learns why (they echo only what it sent us).
    if (ev.direction === "out" && ev.stanza.attrs["type"] === "error") return;
    if (isHandshake(ev.stanza, ev.local, ev.remote, ev.direction)) return;
    ctx.log.debug({ peer: ev.remote, direction: ev.direction, stanza: ev.stanza.name }, "federation-policy: refused (peer is not a buddy)");
    ev.error = "policy-violation";
    return HANDLED;
  }, 100);

  // Per-peer limits, decided once when the peer authenticates on a link (a later trust change applies to new links).
  const trustedMax = ctx.config.federation.trusted_limits.max_stanza_size;
  const otherMax = ctx.config.federation.untrusted_limits.max_stanza_size;
  if (trustedMax !== undefined || otherMax !== undefined) {
    ctx.hook("s2s/authenticated", (ev) => {
      const trusted = roster()?.trusts(ev.remote) ?? false;
      const max = trusted ? trustedMax : otherMax;
      if (max === undefined) return;
      ev.setMaxStanzaSize(max);
      ctx.log.debug({ peer: ev.remote, trusted, maxStanzaSize: max }, "federation-policy: link limits set");
      return;
    });
  }
}

export default defineModule({
  name: "federation-policy",
  protocol: [{ xep: 267, version: "0.5" }],
  setup,
});
