// XEP-0049: Private XML Storage <https://xmpp.org/extensions/xep-0049.html> §2 (get/set of namespaced fragments)
// and §3 (error conditions), for the user's own account only.
import { Element, serialize } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";
import { defineModule, type IqHandler } from "../../core/module-api.ts";

/** The jabber:iq:private namespace. */
export const NS_PRIVATE = "jabber:iq:private";
const STORE = "private";

/** The storage key of a fragment: its qualified name in Clark notation, `{namespace}name`. */
export function fragmentKey(el: Element): string {
  return `{${el.xmlns}}${el.name}`;
}

/** The fragments of a query, checked: at least one, none in jabber:iq:private itself (§2.3, §3). */
function fragments(query: Element): Element[] {
  const list = query.elements;
  // §2.3: a query without a namespaced child is refused with not-acceptable (the error the XEP's example shows).
  if (list.length === 0) throw new StanzaError("not-acceptable", { text: "the query needs a namespaced child element" });
  for (const el of list) {
    // A child without its own namespace inherits jabber:iq:private, which is not a fragment namespace.
    if (el.xmlns === NS_PRIVATE) throw new StanzaError("not-acceptable", { text: "jabber:iq:private is reserved" });
  }
  return list;
}

/**
 * What the private module offers other modules of its host as "private-xml": change notices and direct access, so PEP
 * can keep XEP-0048 bookmarks and XEP-0402 bookmarks in sync (XEP-0402 §3 "#compat"). Writes through `set` tell no
 * listener (the writer is the one keeping things in sync).
 */
export interface PrivateXmlApi {
  onChange(listener: (username: string, key: string, value: string | undefined) => void | Promise<void>): void;
  get(username: string, key: string): Promise<string | undefined>;
  set(username: string, key: string, value: string | undefined): Promise<void>;
}

export default defineModule({
  name: "private",
  protocol: [{ xep: 49, version: "1.2" }],
  setup(ctx) {
    const store = ctx.storage.keyval(STORE);
    const maxSize = ctx.config.vcard.max_size;
    ctx.addFeature(NS_PRIVATE, "account");
    // Also on the server's disco#info, where clients such as poezio look for it before using XEP-0048 bookmarks in
    // private storage (Prosody lists it there too); the data is still the account's own (§2).
    ctx.addFeature(NS_PRIVATE);
    const listeners: Parameters<PrivateXmlApi["onChange"]>[0][] = [];
    ctx.provide("private-xml", {
      onChange: (listener) => void listeners.push(listener),
      get: (username, key) => store.get(ctx.host, username, key),
      set: (username, key, value) => store.set(ctx.host, username, key, value),
    } satisfies PrivateXmlApi);

    const own = (from: Jid, to: Jid): void => {
      // §3: another user's data is forbidden (the XEP prefers it over service-unavailable).
      if (!from.bare.equals(to.bare)) throw new StanzaError("forbidden");
    };

    const get: IqHandler = async (_iq, { from, to, payload }) => {
      own(from, to);
      const query = new Element("query", NS_PRIVATE);
      for (const el of fragments(payload)) {
        const stored = await store.get(ctx.host, to.local, fragmentKey(el));
        // Nothing stored: the empty element comes back, as in §2.3's examples.
        query.children.push(stored === undefined ? new Element(el.name, el.xmlns) : parseXml(stored));
      }
      return query;
    };

    const set: IqHandler = async (_iq, { from, to, payload }) => {
      own(from, to);
      const list = fragments(payload);
      // Check everything before writing anything, so a refused set changes nothing.
      const writes: [string, string | undefined][] = list.map((el) => {
        if (el.children.length === 0 && Object.keys(el.attrs).length === 0) return [fragmentKey(el), undefined];
        const text = serialize(el, "");
        if (Buffer.byteLength(text, "utf8") > maxSize) {
          throw new StanzaError("not-acceptable", { text: `private XML larger than ${maxSize} bytes` });
        }
        return [fragmentKey(el), text];
      });
      for (const [key, value] of writes) await store.set(ctx.host, to.local, key, value);
      for (const [key, value] of writes) for (const l of listeners) await l(to.local, key, value);
    };

    ctx.handleIq("get", "account", NS_PRIVATE, "query", get);
    ctx.handleIq("set", "account", NS_PRIVATE, "query", set);
  },
});
