// XEP-0092: Software Version <https://xmpp.org/extensions/xep-0092.html> §2, answered for the host.
import { platform, release } from "node:os";
import { Element } from "../../xml/element.ts";
import { defineModule } from "../../core/module-api.ts";
import { NS_VERSION } from "../../xmpp/ns.ts";
import { VERSION } from "../../version.ts";

export default defineModule({
  name: "version",
  protocol: [{ xep: 92, version: "1.1" }],
  setup(ctx) {
    ctx.addFeature(NS_VERSION);
    const os = `${platform()} ${release()}`;
    ctx.handleIq("get", "host", NS_VERSION, "query", () => {
      const q = new Element("query", NS_VERSION);
      q.c("name").t(ctx.config.server_info.name);
      q.c("version").t(VERSION);
      if (!ctx.config.server_info.hide_os) q.c("os").t(os);
      return q;
    });
  },
});
