// RFC 6121 Appendix A (A.2 outbound, A.3 inbound) subscription state tables and §3.4 pre-approval, as pure functions.
import type { Subscription } from "../../storage/types.ts";

/** The four presence types that change a subscription (RFC 6121 §3). */
export type SubscriptionType = "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed";

/** Whether a presence `type` attribute is one of the subscription types. */
export function isSubscriptionType(type: string | undefined): type is SubscriptionType {
  return type === "subscribe" || type === "subscribed" || type === "unsubscribe" || type === "unsubscribed";
}

/** The subscription state of one contact as seen by one user (RFC 6121 Appendix A.1), plus a §3.4 pre-approval. */
export interface SubState {
  subscription: Subscription;
  /** The user asked for the contact's presence and awaits an answer ("Pending Out", ask='subscribe'). */
  pendingOut: boolean;
  /** The contact asked for the user's presence and awaits the user's answer ("Pending In"). */
  pendingIn: boolean;
  /** The user approved a request the contact has not sent yet (§3.4). */
  approved: boolean;
}

/** What to do, besides storing the new state, after a subscription stanza was processed. */
export interface Transition {
  state: SubState;
  /** Outbound: route the stanza to the contact. Inbound: deliver it to the user's available resources. */
  pass: boolean;
  /** Inbound only: answer the contact with `subscribed` in the user's name (§3.1.3 pre-approved or already subscribed). */
  replySubscribed: boolean;
  /**
   * Presence of the user's available resources to send to the contact: "available" when the contact just gained
   * (or re-asked for) a subscription to the user (§3.1.5), "unavailable" when it lost one (§3.2.2, §3.3.3).
   */
  presence: "available" | "unavailable" | undefined;
}

/** The empty state: no item, nothing pending. */
export const NONE: SubState = Object.freeze({ subscription: "none", pendingOut: false, pendingIn: false, approved: false });

const hasFrom = (s: Subscription): boolean => s === "from" || s === "both";
const hasTo = (s: Subscription): boolean => s === "to" || s === "both";

function sub(to: boolean, from: boolean): Subscription {
  return to ? (from ? "both" : "to") : from ? "from" : "none";
}

function result(state: SubState, pass: boolean, extra: Partial<Omit<Transition, "state" | "pass">> = {}): Transition {
  return { state, pass, replySubscribed: extra.replySubscribed ?? false, presence: extra.presence };
}

/**
 * A subscription stanza sent by the user to the contact (RFC 6121 Appendix A.2): whether the user's server routes it,
 * and the user's new state. `subscribed` without a pending request records a pre-approval (§3.4.1) instead of
 * routing; `unsubscribed` cancels one (A.2.4 note).
 */
export function outbound(state: SubState, type: SubscriptionType): Transition {
  const to = hasTo(state.subscription);
  const from = hasFrom(state.subscription);
  switch (type) {
    case "subscribe":
      // A.2.1: always routed (so a lost request or a desynchronised peer can be repaired); asks unless already subscribed.
      return result(to ? state : { ...state, pendingOut: true }, true);
    case "unsubscribe":
      // A.2.2: always routed; the 'to' half and any pending request go.
      return result({ ...state, subscription: sub(false, from), pendingOut: false }, true);
    case "subscribed":
      // A.2.3: approves a pending request; without one it is a pre-approval (§3.4), never routed.
      if (state.pendingIn) return result({ ...state, subscription: sub(to, true), pendingIn: false, approved: false }, true, { presence: "available" });
      if (from) return result(state, false);
      return result({ ...state, approved: true }, false);
    case "unsubscribed":
      // A.2.4: denies a pending request or cancels the contact's subscription; always cancels a pre-approval.
      if (state.pendingIn || from) {
        return result({ ...state, subscription: sub(to, false), pendingIn: false, approved: false }, true, from ? { presence: "unavailable" } : {});
      }
      return result({ ...state, approved: false }, false);
  }
}

/**
 * A subscription stanza from the contact arriving for the user (RFC 6121 Appendix A.3): whether the user's server
 * delivers it to the user's clients, the user's new state and any answer the server gives in the user's name.
 */
export function inbound(state: SubState, type: SubscriptionType): Transition {
  const to = hasTo(state.subscription);
  const from = hasFrom(state.subscription);
  switch (type) {
    case "subscribe":
      // A.3.1 rows From, From + Pending Out, Both: not delivered, answered with `subscribed` (the * note).
      if (from) return result(state, false, { replySubscribed: true, presence: "available" });
      // §3.1.3: a pre-approved request is approved at once, without bothering the user.
      if (state.approved) {
        return result({ ...state, subscription: sub(to, true), pendingIn: false, approved: false }, false, { replySubscribed: true, presence: "available" });
      }
      if (state.pendingIn) return result(state, false);
      return result({ ...state, pendingIn: true }, true);
    case "unsubscribe":
      // A.3.2: delivered when it changes something; a contact that had a subscription is told the user is offline.
      if (!from && !state.pendingIn) return result(state, false);
      return result({ ...state, subscription: sub(to, false), pendingIn: false }, true, from ? { presence: "unavailable" } : {});
    case "subscribed":
      // A.3.3: only an answer to the user's pending request counts.
      if (!state.pendingOut || to) return result(state, false);
      return result({ ...state, subscription: sub(true, from), pendingOut: false }, true);
    case "unsubscribed":
      // A.3.4: a denial of the pending request, or the end of the user's subscription.
      if (!state.pendingOut && !to) return result(state, false);
      return result({ ...state, subscription: sub(false, from), pendingOut: false }, true);
  }
}

/** The RFC 6121 Appendix A.1 name of a state ("None + Pending Out/In", "Both", ...), pre-approval not shown. */
export function stateName(state: SubState): string {
  const base = state.subscription === "none" ? "None" : state.subscription === "to" ? "To" : state.subscription === "from" ? "From" : "Both";
  const pending = state.pendingOut && state.pendingIn ? "Pending Out/In" : state.pendingOut ? "Pending Out" : state.pendingIn ? "Pending In" : "";
  return pending ? `${base} + ${pending}` : base;
}

/** Parse an Appendix A.1 state name back into a state (for table-driven tests and admin tools). */
export function parseStateName(name: string, approved = false): SubState {
  const [base, pending = ""] = name.split(" + ");
  const subscription = ({ None: "none", To: "to", From: "from", Both: "both" } as const)[base as "None" | "To" | "From" | "Both"];
  if (!subscription) throw new Error(`unknown subscription state ${JSON.stringify(name)}`);
  const pendingOut = pending === "Pending Out" || pending === "Pending Out/In";
  const pendingIn = pending === "Pending In" || pending === "Pending Out/In";
  if (pending !== "" && !pendingOut && !pendingIn) throw new Error(`unknown subscription state ${JSON.stringify(name)}`);
  if ((pendingOut && hasTo(subscription)) || (pendingIn && hasFrom(subscription))) throw new Error(`impossible subscription state ${JSON.stringify(name)}`);
  return { subscription, pendingOut, pendingIn, approved };
}
