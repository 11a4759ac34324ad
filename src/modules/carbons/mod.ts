// XEP-0280: Message Carbons <https://xmpp.org/extensions/xep-0280.html> §4 (discovery), §5 (enable, disable),
// §6 (which messages are copied), §7 (received copies), §8 (sent copies), §9 (<private/>), with the XEP-0334
// <no-copy/> hint. Every resource of a user that enabled carbons sees the user's chats, whichever resource the
// message went to or came from. Costs nothing per message while no session of the host has carbons on.
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import type { StanzaEvent } from "../../core/events.ts";
import type { LocalSession } from "../../core/sessions.ts";
import { x, type Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";
import { NS_CARBONS, NS_CLIENT, NS_FORWARD, NS_HINTS } from "../../xmpp/ns.ts";

/** Payloads that make a message an IM message even without a body (§6.1: chat states, receipts, markers). */
const IM_PAYLOADS: ReadonlySet<string> = new Set([
  "http://jabber.org/protocol/chatstates",
  "urn:xmpp:receipts",
  "urn:xmpp:chat-markers:0",
]);

const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const NS_DIRECT_INVITE = "jabber:x:conference";

/**
 * §6.1: whether a message is one a user's other clients need to see. MUC rules (§6.1, XEP-0045 §7.5): an invitation
 * (mediated or direct) is copied; a private message from a room occupant is not (the room already delivers it to
 * every joined client of the user), one sent to an occupant is.
 */
export function eligible(stanza: Element, direction: "received" | "sent"): boolean {
  const type = stanza.attrs["type"] ?? "normal";
  if (type === "groupchat" || type === "headline" || type === "error") return false;
  if (stanza.getChild("private", NS_CARBONS) || stanza.getChild("no-copy", NS_HINTS)) return false;
  // A copy of a copy is never made (a client forwarding carbons by mistake must not loop).
  if (stanza.getChild("received", NS_CARBONS) || stanza.getChild("sent", NS_CARBONS)) return false;
  const mucUser = stanza.getChild("x", NS_MUC_USER);
  if (mucUser?.getChild("invite") || stanza.getChild("x", NS_DIRECT_INVITE)) return true;
  if (mucUser && direction === "received") return false;
  if (type === "chat") return true;
  if (stanza.getChild("body")) return true;
  return stanza.elements.some((c) => IM_PAYLOADS.has(c.xmlns));
}

/** The wrapper of a carbon copy (§7, §8): from the user's bare JID to one of its resources. */
function copy(kind: "received" | "sent", stanza: Element, user: string, to: LocalSession): Element {
  const inner = stanza.clone();
  if (inner.xmlns !== NS_CLIENT) inner.xmlns = NS_CLIENT;
  return x("message", NS_CLIENT, { from: user, to: to.jid.toString(), type: stanza.attrs["type"] }, x(kind, NS_CARBONS, {}, x("forwarded", NS_FORWARD, {}, inner)));
}

function setup(ctx: ModuleContext): void {
  const host = ctx.host;
  /** Sessions (full JIDs) of this host with carbons enabled. */
  const enabled = new Set<string>();

  ctx.addFeature(NS_CARBONS);

  const toggle = (on: boolean) => (_iq: Element, { from, to }: { from: Jid; to: Jid }) => {
    // §5: a client toggles carbons for its own session, on its own server or its own account.
    if (from.domain !== host || (to.local !== "" && !to.bare.equals(from.bare))) throw new StanzaError("forbidden");
    if (on) enabled.add(from.toString());
    else enabled.delete(from.toString());
    return undefined;
  };
  for (const target of ["host", "account"] as const) {
    ctx.handleIq("set", target, NS_CARBONS, "enable", toggle(true));
    ctx.handleIq("set", target, NS_CARBONS, "disable", toggle(false));
  }
  ctx.hook("session/ended", ({ session }) => {
    enabled.delete(session.jid.toString());
  });

  /** Copy to every enabled resource of `user` except the ones in `skip`. */
  function fanOut(kind: "received" | "sent", stanza: Element, user: Jid, skip: (s: LocalSession) => boolean): void {
    const bare = user.bareString();
    for (const s of ctx.sessions.ofBare(bare).values()) {
      if (skip(s) || !enabled.has(s.jid.toString())) continue;
      s.deliver(copy(kind, stanza, bare, s));
    }
  }

  // §7: a message arriving for one of the user's full JIDs is copied to the user's other enabled resources.
  const arrivedFull = ({ stanza, to }: StanzaEvent): undefined => {
    if (enabled.size === 0 || !to || to.domain !== host || !eligible(stanza, "received")) return;
    fanOut("received", stanza, to, (s) => s.jid.resource === to.resource);
  };
  // §7 for a bare JID: the router delivers to the available resources of highest non-negative priority (RFC 6121
  // §8.5.2.1.1); the enabled resources that will not get it get a copy. No available resource: it goes offline, no copy.
  const arrivedBare = ({ stanza, to }: StanzaEvent): undefined => {
    if (enabled.size === 0 || !to || to.domain !== host || !eligible(stanza, "received")) return;
    let best: number | undefined;
    for (const s of ctx.sessions.ofBare(to.bareString()).values()) if (s.available && s.priority >= 0 && (best === undefined || s.priority > best)) best = s.priority;
    if (best === undefined) return;
    fanOut("received", stanza, to, (s) => s.available && s.priority === best);
  };
  // §8: a message the user sends is copied to the user's other enabled resources; <private/> is removed first (§9).
  const sent = ({ stanza, from, to }: StanzaEvent): undefined => {
    if (stanza.getChild("private", NS_CARBONS)) {
      stanza.children = stanza.children.filter((c) => !(typeof c !== "string" && c.name === "private" && c.xmlns === NS_CARBONS));
      return;
    }
    if (enabled.size === 0 || from.domain !== host || !to || to.bare.equals(from.bare) || !eligible(stanza, "sent")) return;
    fanOut("sent", stanza, from, (s) => s.jid.resource === from.resource);
  };
  // Low priority: after blocking and policy hooks have had their say, so only messages that go on are copied.
  ctx.hook("message/full", arrivedFull, 10);
  ctx.hook("message/bare", arrivedBare, 10);
  ctx.hook("pre-message/full", sent, 10);
  ctx.hook("pre-message/bare", sent, 10);
}

export default defineModule({
  name: "carbons",
  protocol: [{ xep: 280, version: "1.0.1" }],
  setup,
});
