// XEP-0199: XMPP Ping <https://xmpp.org/extensions/xep-0199.html> §3 (client-to-server ping).
import { defineModule } from "../../core/module-api.ts";
import { NS_PING } from "../../xmpp/ns.ts";

export default defineModule({
  name: "ping",
  protocol: [{ xep: 199, version: "2.0.1" }],
  setup(ctx) {
    ctx.addFeature(NS_PING);
    ctx.handleIq("get", "host", NS_PING, "ping", () => undefined);
  },
});
