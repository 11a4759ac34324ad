// XEP-0050: Ad-Hoc Commands: the API other modules use to offer commands on the host JID, obtained per host with
// `ctx.use<Adhoc>("adhoc")` (the adhoc module is loaded before the modules that register commands).
import { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";
import type { SubmittedForm } from "../../xmpp/data-forms.ts";

/** The actions a requester may send (XEP-0050 §4.4, "action" values). */
export type AdhocAction = "execute" | "cancel" | "prev" | "next" | "complete";

/** The actions a stage may allow (the children of `<actions/>`). */
export type StageAction = "prev" | "next" | "complete";

/** Note severities (XEP-0050 §4.4, `<note/>`). */
export interface AdhocNote {
  type: "info" | "warn" | "error";
  text: string;
}

/** One call of a command's handler: the first execute (stage 0) or a submission moving on from a stage. */
export interface AdhocRequest {
  /** The requester's full JID. */
  from: Jid;
  node: string;
  sessionId: string;
  /** How many stages the requester has already gone through (0 on the first execute). */
  stage: number;
  /** "execute" on the first call; then "next" or "complete" ("execute" resolved to the stage's default). */
  action: "execute" | "next" | "complete";
  /** The submitted data form, if the requester sent one. */
  form: SubmittedForm | undefined;
  /** Every payload child of the `<command/>` (forms included), for commands that take other payloads. */
  payload: Element[];
  /** Data the handler keeps across the stages of one session (restored on "prev"; keep it JSON-like). */
  state: Record<string, unknown>;
}

/** What a handler answers. */
export interface AdhocResponse {
  /** "executing": more stages follow (the session is kept); "completed" / "canceled": the session ends. */
  status: "executing" | "completed" | "canceled";
  /** A data form (see forms.ts buildForm): a form to fill when executing, or results. */
  form?: Element;
  notes?: AdhocNote[];
  /** Allowed actions while executing; default ["complete"], with "prev" added after the first stage. */
  actions?: StageAction[];
  /** What "execute" means at this stage; default "next" if allowed, else "complete". */
  defaultAction?: StageAction;
  /** Other payload elements to include. */
  payload?: Element[];
}

/** A command's logic. Throw a StanzaError to fail (see mod.ts adhocError), or complete with an error note. */
export type AdhocHandler = (req: AdhocRequest) => AdhocResponse | Promise<AdhocResponse>;

/** A command offered on the host JID. */
export interface AdhocCommand {
  node: string;
  /** Human-readable name (disco#items). */
  name: string;
  /** Only the host's administrators see and run it (others get `<forbidden/>`). */
  adminOnly: boolean;
  handler: AdhocHandler;
  /** Called when the requester cancels a session of this command (optional clean-up). */
  onCancel?: (req: { from: Jid; sessionId: string; stage: number; state: Record<string, unknown> }) => void;
}

/** The "adhoc" API provided to other modules of the host. */
export interface Adhoc {
  /** Offer a command; throws if its node is taken. */
  register(command: AdhocCommand): void;
}

export const NS_COMMANDS = "http://jabber.org/protocol/commands";

/** The application-specific error conditions of XEP-0050 §4.6. */
export type AdhocCondition = "malformed-action" | "bad-action" | "bad-locale" | "bad-payload" | "bad-sessionid" | "session-expired";

/** A StanzaError with a XEP-0050 §4.6 condition (session-expired: cancel/not-allowed; the others: modify/bad-request). */
export function adhocError(condition: AdhocCondition, text?: string): StanzaError {
  const app = new Element(condition, NS_COMMANDS);
  const opts = text === undefined ? { app } : { app, text };
  return condition === "session-expired" ? new StanzaError("not-allowed", { type: "cancel", ...opts }) : new StanzaError("bad-request", { type: "modify", ...opts });
}
