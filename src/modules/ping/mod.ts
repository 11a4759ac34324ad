// XEP-0199: XMPP Ping <https://xmpp.org/extensions/xep-0199.html> §3 (client-to-server ping).
import { defineModule } from "../../core/module-api.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_PING } from "../../xmpp/ns.ts";

export default defineModule({
  name: "ping",
  protocol: [{ xep: 199, version: "2.0.1" }],
  setup(ctx) {
    ctx.addFeature(NS_PING);
    ctx.handleIq("get", "host", NS_PING, "ping", () => undefined);
    // A keepalive without `to` (or to the account's own bare JID) is addressed to the account (RFC 6120 §10.3.3),
    // and the server answers it for the account: profanity's autoping sends exactly that and turns keepalive off
    // on an error. From anyone else, the bare JID stays a non-answering address, as before.
    ctx.handleIq("get", "account", NS_PING, "ping", (_iq, { from, to }) => {
      if (!from.bare.equals(to.bare)) throw new StanzaError("service-unavailable");
    });
  },
});
