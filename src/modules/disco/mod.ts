// XEP-0030: Service Discovery <https://xmpp.org/extensions/xep-0030.html> (§3 info, §4 items) on the host
// and on local accounts, with XEP-0128 extended info forms (e.g. XEP-0157 contact addresses).
import { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_DISCO_INFO, NS_DISCO_ITEMS } from "../../xmpp/ns.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import type { Host } from "../../core/host.ts";
import type { DiscoAccountExtension, DiscoAccounts, DiscoItem, DiscoNode, DiscoNodes } from "./api.ts";
import type { Identity } from "../../core/module-api.ts";
import { capsVer, NS_CAPS } from "../../xmpp/caps.ts";

/** XEP-0115 §4: the URI naming this software in the server's caps. */
export const CAPS_NODE = "urn:comity:server";

/** disco#info and disco#items for one host; needs the Host to read what every module registered. */
export function discoModule(host: Host) {
  return defineModule({
    name: "disco",
    protocol: [{ xep: 30, version: "2.5rc3" }, { xep: 128, version: "1.0.1" }],
    setup(ctx: ModuleContext) {
      ctx.addIdentity({ category: "server", type: "im", name: ctx.config.server_info.name });
      ctx.addFeature(NS_DISCO_INFO);
      ctx.addFeature(NS_DISCO_ITEMS);
      ctx.addFeature(NS_DISCO_INFO, "account");
      ctx.addFeature(NS_DISCO_ITEMS, "account");
      // Nodes on the host answered by other modules (XEP-0030 §3.2, §4.2), e.g. XEP-0050 command lists.
      const nodes = new Map<string, DiscoNode>();
      const registry: DiscoNodes = {
        add(node, handler) {
          if (nodes.has(node)) throw new Error(`disco node ${node} is already registered`);
          nodes.set(node, handler);
        },
      };
      ctx.provide("disco-nodes", registry);

      /** The host's own disco#info answer (identities, features, XEP-0128 forms). */
      const hostInfo = (node?: string): Element => {
        const q = new Element("query", NS_DISCO_INFO, node === undefined ? {} : { node });
        for (const id of host.identities) q.c("identity", { category: id.category, type: id.type, ...(id.name ? { name: id.name } : {}) });
        for (const f of [...host.features.host].sort()) q.c("feature", { var: f });
        for (const ext of host.discoExtensions) {
          const form = ext();
          if (form) q.children.push(form);
        }
        return q;
      };
      // XEP-0115 for the server itself: c2s puts <c/> in stream features (from "server-caps"), and disco#info on
      // node#ver answers the same as the host. Computed on first use, when every module has registered its features.
      let ver: string | undefined;
      const serverVer = (): string | undefined => (ver ??= capsVer(hostInfo()));
      ctx.provide("server-caps", (): Element | undefined => {
        const v = serverVer();
        return v === undefined ? undefined : new Element("c", NS_CAPS, { hash: "sha-1", node: CAPS_NODE, ver: v });
      });
      ctx.handleIq("get", "host", NS_DISCO_INFO, "query", (_iq, { from, payload }) => {
        const node = payload.attrs["node"];
        if (node !== undefined && node === `${CAPS_NODE}#${serverVer() ?? ""}`) return hostInfo(node);
        if (node !== undefined) {
          const info = nodes.get(node)?.info?.(from);
          if (!info) throw new StanzaError("item-not-found");
          const q = new Element("query", NS_DISCO_INFO, { node });
          for (const id of info.identities) q.c("identity", { category: id.category, type: id.type, ...(id.name ? { name: id.name } : {}) });
          for (const f of info.features) q.c("feature", { var: f });
          return q;
        }
        return hostInfo();
      });
      ctx.handleIq("get", "host", NS_DISCO_ITEMS, "query", (_iq, { from, payload }) => {
        const node = payload.attrs["node"];
        if (node !== undefined) {
          const items = nodes.get(node)?.items?.(from);
          if (!items) throw new StanzaError("item-not-found");
          const q = new Element("query", NS_DISCO_ITEMS, { node });
          for (const it of items) q.c("item", { jid: it.jid, ...(it.node !== undefined ? { node: it.node } : {}), ...(it.name !== undefined ? { name: it.name } : {}) });
          return q;
        }
        // Services on their own domains that modules registered (e.g. the XEP-0045 chat service).
        const q = new Element("query", NS_DISCO_ITEMS);
        for (const it of host.discoItems) q.c("item", { jid: it.jid, ...(it.name !== undefined ? { name: it.name } : {}) });
        return q;
      });
      // Accounts (RFC 6121 gives no presence leak here: only the account's owner gets the full answer). Modules may add
      // identities, features and items (PEP, XEP-0163 §6), and decide what a contact sees.
      const accountExts: DiscoAccountExtension[] = [];
      ctx.provide("disco-accounts", { add: (ext) => void accountExts.push(ext) } satisfies DiscoAccounts);
      const identityEl = (q: Element, id: Identity) => q.c("identity", { category: id.category, type: id.type, ...(id.name ? { name: id.name } : {}) });
      ctx.handleIq("get", "account", NS_DISCO_INFO, "query", async (_iq, { from, to, payload }) => {
        const node = payload.attrs["node"];
        const own = from.bare.equals(to.bare);
        const identities: Identity[] = own && node === undefined ? [{ category: "account", type: "registered" }] : [];
        const features = new Set<string>(own && node === undefined ? host.features.account : []);
        let answered = own && node === undefined;
        for (const ext of accountExts) {
          const r = await ext.info?.(from, to, node);
          if (r === undefined) continue;
          answered = true;
          identities.push(...r.identities);
          for (const f of r.features) features.add(f);
        }
        if (!answered) throw new StanzaError(own ? "item-not-found" : "service-unavailable");
        const q = new Element("query", NS_DISCO_INFO, node === undefined ? {} : { node });
        for (const id of identities) identityEl(q, id);
        for (const f of [...features].sort()) q.c("feature", { var: f });
        return q;
      });
      ctx.handleIq("get", "account", NS_DISCO_ITEMS, "query", async (_iq, { from, to, payload }) => {
        const node = payload.attrs["node"];
        const own = from.bare.equals(to.bare);
        const items: DiscoItem[] = [];
        let answered = own && node === undefined;
        for (const ext of accountExts) {
          const r = await ext.items?.(from, to, node);
          if (r === undefined) continue;
          answered = true;
          items.push(...r);
        }
        if (!answered) throw new StanzaError(own ? "item-not-found" : "service-unavailable");
        const q = new Element("query", NS_DISCO_ITEMS, node === undefined ? {} : { node });
        for (const it of items) q.c("item", { jid: it.jid, ...(it.node !== undefined ? { node: it.node } : {}), ...(it.name !== undefined ? { name: it.name } : {}) });
        return q;
      });
    },
  });
}
