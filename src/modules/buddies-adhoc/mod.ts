// XEP-0267 server rosters managed over XEP-0050 ad-hoc commands on the host JID (admins only): request trust
// (node http://jabber.org/protocol/admin#server-buddy, field peerjid, as XEP-0267 0.5 and Metronome), list the
// server roster, approve or deny pending requests, cancel our own, remove a peer. Every act goes through the
// "server-roster" API, so it is stored and audited like the CLI's.
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";
import { booleanValue, buildForm, jidValue, multiValue, textValue } from "../../xmpp/data-forms.ts";
import { adhocError, type Adhoc, type AdhocNote, type AdhocRequest, type AdhocResponse } from "../adhoc/api.ts";
import { BuddyError, type BuddyEntry, type Decision, type ServerRoster } from "../server-buddies/api.ts";

export const NODE_SERVER_BUDDY = "http://jabber.org/protocol/admin#server-buddy";
export const NODE_LIST = "urn:comity:buddies:list";
export const NODE_PENDING = "urn:comity:buddies:pending";
export const NODE_CANCEL = "urn:comity:buddies:cancel";
export const NODE_REMOVE = "urn:comity:buddies:remove";

/** XEP-0133's FORM_TYPE for service administration forms (what Metronome's command uses). */
const FORM_TYPE_ADMIN = "http://jabber.org/protocol/admin";
const FORM_TYPE_BUDDIES = "urn:comity:buddies";

function iso(ms: number | null): string {
  return ms === null ? "" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function yesNo(v: boolean | null): string {
  return v === null ? "unknown" : v ? "yes" : "no";
}

/** A one-line account of where we stand with a peer. */
export function describeEntry(host: string, e: BuddyEntry | undefined, peer: string): string {
  if (!e) return `${peer} is not in the server roster of ${host}.`;
  const parts = [`${e.peer}: subscription ${e.subscription}`];
  if (e.pendingOut) parts.push(`our request waits for its administrators since ${iso(e.pendingOutSince)}`);
  if (e.pendingIn) parts.push(`its request waits for ours since ${iso(e.pendingInSince)}`);
  if (e.peerImplementsServerRosters === false) parts.push("the peer does not implement server rosters, so its answer proves no person approved");
  return parts.join("; ") + ".";
}

const done = (...notes: AdhocNote[]): AdhocResponse => ({ status: "completed", notes });

/** The five commands, registered on one host. */
export function registerBuddyCommands(ctx: ModuleContext, adhoc: Adhoc): void {
  const roster = (): ServerRoster => {
    const r = ctx.use<ServerRoster>("server-roster");
    if (!r) throw new StanzaError("service-unavailable", { text: "the server roster (server-buddies module) is not enabled on this host" });
    return r;
  };
  const decision = (from: Jid, note?: string): Decision => ({ actor: from.bare.toString(), via: "xmpp", ...(note !== undefined ? { note } : {}) });
  /** Run an admin action; roster refusals (BuddyError) end the command with an error note. */
  const act = async (fn: () => Promise<AdhocNote>): Promise<AdhocNote> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof BuddyError) return { type: "error", text: `${err.message} (${err.code})` };
      throw err;
    }
  };

  adhoc.register({
    node: NODE_SERVER_BUDDY,
    name: "Request trust of a server (server buddy)",
    adminOnly: true,
    async handler(req) {
      if (req.stage === 0) {
        roster(); // fail before showing the form when there is no server roster
        return {
          status: "executing",
          form: buildForm({
            type: "form",
            formType: FORM_TYPE_ADMIN,
            title: "Request trust of a server",
            instructions: `Ask a server's administrators to let ${ctx.host} subscribe to its presence (XEP-0267).`,
            fields: [
              { var: "peerjid", type: "jid-single", label: "The server's domain", required: true },
              { var: "mutual", type: "boolean", label: "Also accept its request to trust us back", value: true },
              { var: "note", type: "text-single", label: "Note for the audit log" },
            ],
          }),
        };
      }
      if (!req.form) throw adhocError("bad-payload", "the form is missing");
      const peer = jidValue(req.form, "peerjid")!; // required: checked against the form already
      const mutual = booleanValue(req.form, "mutual", true);
      const note = textValue(req.form, "note");
      return done(await act(async () => {
        const e = await roster().request(peer.toString(), { ...decision(req.from, note), mutual });
        if (e.subscription === "to" || e.subscription === "both") return { type: "info", text: `${e.peer} already trusts ${ctx.host}. ${describeEntry(ctx.host, e, e.peer)}` };
        return { type: "info", text: `Asked ${e.peer} to trust ${ctx.host}${mutual ? "; its request to trust us back will be accepted" : ""}. ${describeEntry(ctx.host, e, e.peer)}` };
      }));
    },
  });

  adhoc.register({
    node: NODE_LIST,
    name: "List the server roster",
    adminOnly: true,
    handler() {
      const entries = roster().list();
      return {
        status: "completed",
        notes: [{ type: "info", text: entries.length === 0 ? `The server roster of ${ctx.host} is empty.` : `${entries.length} peer${entries.length === 1 ? "" : "s"} in the server roster of ${ctx.host}.` }],
        form: buildForm({
          type: "result",
          formType: FORM_TYPE_BUDDIES,
          title: `Server roster of ${ctx.host}`,
          reported: [
            { var: "peer", label: "Peer", type: "jid-single" },
            { var: "subscription", label: "Subscription" },
            { var: "pending", label: "Pending" },
            { var: "implements", label: "Implements server rosters" },
            { var: "available", label: "Peer available" },
            { var: "since", label: "Since" },
          ],
          items: entries.map((e) => ({
            peer: e.peer,
            subscription: e.subscription,
            pending: [e.pendingIn ? "in (waiting for us)" : "", e.pendingOut ? "out (waiting for them)" : ""].filter(Boolean).join(", ") || "no",
            implements: yesNo(e.peerImplementsServerRosters),
            available: e.peerAvailable === null ? "unknown" : `${yesNo(e.peerAvailable)}${e.peerStatus ? ` (${e.peerStatus})` : ""}`,
            since: iso(e.since),
          })),
        }),
      };
    },
  });

  /** A two-stage command: pick peers from a list, then apply `apply` to each. */
  const pickAndApply = (opts: {
    node: string;
    name: string;
    title: string;
    which: (e: BuddyEntry) => boolean;
    since: (e: BuddyEntry) => number | null;
    none: string;
    /** Extra choice (approve | deny) or none. */
    choice?: { var: string; label: string; options: string[] };
    apply: (r: ServerRoster, peer: string, d: Decision, choice: string | undefined) => Promise<AdhocNote>;
  }) => {
    adhoc.register({
      node: opts.node,
      name: opts.name,
      adminOnly: true,
      async handler(req: AdhocRequest) {
        const r = roster();
        if (req.stage === 0) {
          const entries = r.list().filter(opts.which);
          if (entries.length === 0) return done({ type: "info", text: opts.none });
          return {
            status: "executing",
            form: buildForm({
              type: "form",
              formType: FORM_TYPE_BUDDIES,
              title: opts.title,
              fields: [
                {
                  var: "peers",
                  type: "list-multi",
                  label: "Peers",
                  required: true,
                  options: entries.map((e) => ({ value: e.peer, label: `${e.peer} (since ${iso(opts.since(e))})` })),
                },
                ...(opts.choice ? [{ var: opts.choice.var, type: "list-single" as const, label: opts.choice.label, required: true, value: opts.choice.options[0]!, options: opts.choice.options.map((o) => ({ value: o })) }] : []),
                { var: "note", type: "text-single" as const, label: "Note for the audit log" },
              ],
            }),
          };
        }
        if (!req.form) throw adhocError("bad-payload", "the form is missing");
        const peers = multiValue(req.form, "peers");
        const choice = opts.choice ? textValue(req.form, opts.choice.var) : undefined;
        if (opts.choice && (choice === undefined || !opts.choice.options.includes(choice))) {
          return done({ type: "error", text: `${opts.choice.var} must be one of ${opts.choice.options.join(", ")}` });
        }
        const d = decision(req.from, textValue(req.form, "note"));
        const notes: AdhocNote[] = [];
        for (const peer of peers) notes.push(await act(() => opts.apply(r, peer, d, choice)));
        return { status: "completed", notes };
      },
    });
  };

  pickAndApply({
    node: NODE_PENDING,
    name: "Pending server trust requests (approve or deny)",
    title: "Servers asking to trust us",
    which: (e) => e.pendingIn,
    since: (e) => e.pendingInSince,
    none: `No server is waiting for ${ctx.host}'s approval.`,
    choice: { var: "action", label: "Decision", options: ["approve", "deny"] },
    async apply(r, peer, d, choice) {
      if (choice === "approve") {
        const e = await r.approve(peer, d);
        return { type: "info", text: `Approved ${peer}. ${describeEntry(ctx.host, e, peer)}` };
      }
      const e = await r.deny(peer, d);
      return { type: "info", text: `Denied ${peer}. ${describeEntry(ctx.host, e, peer)}` };
    },
  });

  pickAndApply({
    node: NODE_CANCEL,
    name: "Withdraw our pending trust requests",
    title: "Our requests still waiting",
    which: (e) => e.pendingOut,
    since: (e) => e.pendingOutSince,
    none: `${ctx.host} has no request waiting for another server.`,
    async apply(r, peer, d) {
      const e = await r.cancel(peer, d);
      return { type: "info", text: `Withdrew the request to ${peer}. ${describeEntry(ctx.host, e, peer)}` };
    },
  });

  pickAndApply({
    node: NODE_REMOVE,
    name: "Remove servers from the server roster",
    title: "Remove trust (both directions)",
    which: () => true,
    since: (e) => e.since,
    none: `The server roster of ${ctx.host} is empty.`,
    async apply(r, peer, d) {
      await r.remove(peer, d);
      return { type: "info", text: `Removed ${peer}: sent unsubscribe and unsubscribed; it is no longer in the server roster.` };
    },
  });
}

export default defineModule({
  name: "buddies-adhoc",
  protocol: [{ xep: 267, version: "0.5" }, { xep: 50, version: "1.3.0" }],
  setup(ctx) {
    const adhoc = ctx.use<Adhoc>("adhoc");
    if (!adhoc) {
      ctx.log.error("the adhoc module is not loaded before buddies-adhoc: no server roster commands");
      return;
    }
    registerBuddyCommands(ctx, adhoc);
  },
});
