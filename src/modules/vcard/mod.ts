// XEP-0054: vcard-temp <https://xmpp.org/extensions/xep-0054.html> §3.1 (own vCard), §3.2 (update), §3.3 (another
// user's vCard, answered by the server on the user's behalf) and §4 (disco feature).
import { Element, serialize } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { defineModule } from "../../core/module-api.ts";

/** The vcard-temp namespace (also the disco#info feature). */
export const NS_VCARD = "vcard-temp";
/** The keyval store name and the key the vCard is kept under. */
const STORE = "vcard";
const KEY = "vcard";

/**
 * What the vcard module offers other modules of its host as "vcard": change notices and direct access, so PEP can
 * convert between vCard photos and XEP-0084 avatars (XEP-0398). Writes through `set` tell no listener.
 */
export interface VcardApi {
  onChange(listener: (username: string, vcard: string | undefined) => void | Promise<void>): void;
  get(username: string): Promise<string | undefined>;
  set(username: string, vcard: string | undefined): Promise<void>;
}

export default defineModule({
  name: "vcard",
  protocol: [{ xep: 54, version: "1.2" }],
  setup(ctx) {
    const store = ctx.storage.keyval(STORE);
    const maxSize = ctx.config.vcard.max_size;
    ctx.addFeature(NS_VCARD);
    ctx.addFeature(NS_VCARD, "account");
    const listeners: Parameters<VcardApi["onChange"]>[0][] = [];
    const changed = async (username: string, vcard: string | undefined) => {
      for (const l of listeners) await l(username, vcard);
    };
    ctx.provide("vcard", {
      onChange: (listener) => void listeners.push(listener),
      get: (username) => store.get(ctx.host, username, KEY),
      set: (username, vcard) => store.set(ctx.host, username, KEY, vcard),
    } satisfies VcardApi);

    ctx.handleIq("get", "account", NS_VCARD, "vCard", async (_iq, { to }) => {
      const stored = await store.get(ctx.host, to.local, KEY);
      if (stored !== undefined) return parseXml(stored);
      // §3.1 and §3.3 allow an empty vCard or item-not-found when the user never set one; the empty element is what
      // clients expect (slixmpp's itests, Prosody). The router already answered service-unavailable for an account
      // that does not exist, so this reveals nothing beyond what any IQ to the address does.
      return new Element("vCard", NS_VCARD);
    });

    ctx.handleIq("set", "account", NS_VCARD, "vCard", async (_iq, { from, to, payload }) => {
      // §3.2: only the account itself may change its vCard.
      if (!from.bare.equals(to.bare)) throw new StanzaError("forbidden");
      if (payload.elements.length === 0 && payload.text().trim() === "" && Object.keys(payload.attrs).length === 0) {
        await store.set(ctx.host, to.local, KEY, undefined); // an empty vCard removes the stored one
        await changed(to.local, undefined);
        return;
      }
      const text = serialize(payload, "");
      if (Buffer.byteLength(text, "utf8") > maxSize) {
        throw new StanzaError("not-acceptable", { text: `vCard larger than ${maxSize} bytes` });
      }
      await store.set(ctx.host, to.local, KEY, text);
      await changed(to.local, text);
    });
  },
});
