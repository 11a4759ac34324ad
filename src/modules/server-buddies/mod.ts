// XEP-0267 Server Rosters <https://xmpp.org/extensions/xep-0267.html> (v0.1 rules, v0.5 wire details): the module that
// owns each host's server roster, provides "server-roster" (api.ts), speaks the domain-to-domain presence protocol
// over authenticated s2s links, advertises urn:xmpp:server-presence and offers the `buddies.*` control methods.
import { defineModule } from "../../core/module-api.ts";
import { HANDLED } from "../../core/events.ts";
import type { Config } from "../../core/config/schema.ts";
import { HostRoster, NS_SERVER_PRESENCE } from "./roster.ts";
import { registerControlMethods } from "./control.ts";

export { NS_SERVER_PRESENCE };

/** Presence types that carry subscription state (RFC 6121 §3) or ask for it (§4.3 probe). */
const SUBSCRIPTION_TYPES: ReadonlySet<string | undefined> = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"]);

/** Every host's roster of one running server (keyed by its Config), so `buddies.list` can show all hosts at once. */
const servers = new WeakMap<Config, Map<string, HostRoster>>();

/** The rosters of every host of the server that uses `config` (hosts whose module is set up so far). */
export function rostersOf(config: Config): Map<string, HostRoster> {
  let m = servers.get(config);
  if (m === undefined) servers.set(config, (m = new Map()));
  return m;
}

export default defineModule({
  name: "server-buddies",
  protocol: [{ xep: 267, version: "0.5" }],
  async setup(ctx) {
    const roster = new HostRoster(ctx);
    await roster.load();
    rostersOf(ctx.config).set(ctx.host, roster);
    ctx.provide("server-roster", roster);
    ctx.addFeature(NS_SERVER_PRESENCE);

    // Runs before anything else that might see presence to the host: nobody else answers a server subscription.
    ctx.hook(
      "presence/host",
      async ({ stanza, from, to, origin }) => {
        const type = stanza.attrs["type"];
        if (to === undefined || !to.isDomain) return;
        if (origin.kind !== "s2s") {
          // A local user or the server itself: never a trust request, whatever it says.
          if (!SUBSCRIPTION_TYPES.has(type)) return;
          roster.ignore(from.toString(), `${type ?? "available"} presence from a ${origin.kind} sender`);
          return HANDLED;
        }
        // Only the bare domain the link authenticated speaks for that server (not alice@peer, not peer/resource).
        if (!from.isDomain || from.domain !== origin.jid.domain || !origin.jid.isDomain) {
          roster.ignore(from.toString(), `${type ?? "available"} presence from ${from.toString()}, not from the authenticated domain ${origin.jid.toString()}`);
          return HANDLED;
        }
        if (ctx.config.hosts.some((h) => h.domain === from.domain)) {
          roster.ignore(from.toString(), "presence from one of our own hosts over s2s");
          return HANDLED;
        }
        try {
          await roster.inbound(from.domain, stanza);
        } catch (err) {
          ctx.log.error({ err, peer: from.domain, type }, "server presence handling failed");
        }
        return HANDLED;
      },
      10,
    );

    ctx.hook("server/started", () => {
      roster.announce();
    });
    ctx.hook("server/stopping", () => {
      roster.goodbye();
    });

    registerControlMethods(ctx, roster, () => rostersOf(ctx.config));
  },
});
