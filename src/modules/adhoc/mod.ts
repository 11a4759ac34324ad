// XEP-0050: Ad-Hoc Commands <https://xmpp.org/extensions/xep-0050.html> on the host JID: the command list node
// (§2.2), command nodes (§2.3), execution (§3, §4) and the "adhoc" API other modules register commands with.
import { defineModule } from "../../core/module-api.ts";
import type { DiscoNodes } from "../disco/api.ts";
import type { Adhoc } from "./api.ts";
import { AdhocEngine, NS_COMMANDS } from "./engine.ts";

export { NS_COMMANDS, adhocError } from "./engine.ts";

export default defineModule({
  name: "adhoc",
  protocol: [{ xep: 50, version: "1.3.0" }, { xep: 4, version: "2.13.1" }],
  setup(ctx) {
    const engine = new AdhocEngine({ host: ctx.host, isAdmin: (jid) => ctx.isAdmin(jid) });
    ctx.addFeature(NS_COMMANDS);
    const disco = ctx.use<DiscoNodes>("disco-nodes");
    if (!disco) ctx.log.warn("disco-nodes is not provided: the command list is not discoverable");
    disco?.add(NS_COMMANDS, {
      info: () => ({ identities: [{ category: "automation", type: "command-list", name: "Commands" }], features: [NS_COMMANDS] }),
      items: (from) => engine.items(from),
    });
    ctx.handleIq("set", "host", NS_COMMANDS, "command", (_iq, { from, payload }) => engine.execute(payload, from));
    const api: Adhoc = {
      register(command) {
        engine.register(command);
        disco?.add(command.node, { info: (from) => engine.info(command.node, from) });
      },
    };
    ctx.provide("adhoc", api);
    // A command every local user may run: it answers at once, so a client can check that commands work at all
    // (aioxmpp's end-to-end tests look for it; Prosody and biboumi offer the same node).
    api.register({
      node: "ping",
      name: "Ping",
      adminOnly: false,
      handler: () => ({ status: "completed", notes: [{ type: "info", text: "Pong" }] }),
    });
  },
});
