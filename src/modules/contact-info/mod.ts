// XEP-0157: Contact Addresses for XMPP Services <https://xmpp.org/extensions/xep-0157.html> §2–§4,
// published as a XEP-0128 form in the host's disco#info.
import { Element } from "../../xml/element.ts";
import { defineModule } from "../../core/module-api.ts";
import { NS_DATA, NS_SERVERINFO } from "../../xmpp/ns.ts";

const FIELDS = ["abuse", "admin", "feedback", "sales", "security", "status", "support"] as const;

export default defineModule({
  name: "contact-info",
  protocol: [{ xep: 157, version: "1.1.1" }],
  setup(ctx) {
    const contact = ctx.hostConfig.contact;
    if (!FIELDS.some((f) => contact[f].length > 0)) return;
    const form = new Element("x", NS_DATA, { type: "result" });
    form.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS_SERVERINFO);
    for (const f of FIELDS) {
      if (contact[f].length === 0) continue;
      const field = form.c("field", { var: `${f}-addresses`, type: "list-multi" });
      for (const uri of contact[f]) field.c("value").t(uri);
    }
    ctx.addDiscoExtension(() => form);
  },
});
