// XEP-0050: Ad-Hoc Commands <https://xmpp.org/extensions/xep-0050.html> §2.2-2.4 (listing, info), §3.1-3.3 and
// §4 (execution, multi-stage sessions, actions, notes), §4.6 (errors): the command table and session logic of
// one host, independent of the router so it can be tested directly.
import { randomBytes } from "node:crypto";
import { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_DATA } from "../../xmpp/ns.ts";
import type { Jid } from "../../xmpp/jid.ts";
import type { DiscoItem } from "../disco/api.ts";
import { NS_COMMANDS, adhocError, type AdhocAction, type AdhocCommand, type AdhocNote, type AdhocResponse, type StageAction } from "./api.ts";
export { NS_COMMANDS, adhocError, type AdhocCondition } from "./api.ts";
import { checkSubmission, FormValueError, readForm, type SubmittedForm } from "../../xmpp/data-forms.ts";

const ACTIONS: readonly string[] = ["execute", "cancel", "prev", "next", "complete"] satisfies AdhocAction[];

/** One screen shown to the requester: the response and the handler state it was produced with. */
interface Screen {
  response: AdhocResponse;
  actions: StageAction[];
  defaultAction: StageAction | undefined;
  state: Record<string, unknown>;
}

interface Session {
  id: string;
  owner: string;
  node: string;
  screens: Screen[];
  expiresAt: number;
}

/** Options of one host's command table. */
export interface EngineOptions {
  host: string;
  isAdmin(jid: Jid): boolean;
  /** Idle time after which a session expires (default 5 minutes). */
  sessionTtlMs?: number;
  /** Open sessions one requester (full JID) may hold; the oldest is dropped beyond (default 10). */
  maxSessionsPerRequester?: number;
  /** Open sessions on the host; the oldest is dropped beyond (default 1000). */
  maxSessions?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** The commands of one host and their running sessions. */
export class AdhocEngine {
  readonly #host: string;
  readonly #isAdmin: (jid: Jid) => boolean;
  readonly #ttl: number;
  readonly #perRequester: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #commands = new Map<string, AdhocCommand>();
  readonly #sessions = new Map<string, Session>();
  /** Ended or expired session ids (until their expiry), so a late request hears session-expired, not bad-sessionid. */
  readonly #ended = new Map<string, number>();
  #lastSweep = 0;

  constructor(opts: EngineOptions) {
    this.#host = opts.host;
    this.#isAdmin = opts.isAdmin;
    this.#ttl = opts.sessionTtlMs ?? 5 * 60_000;
    this.#perRequester = opts.maxSessionsPerRequester ?? 10;
    this.#max = opts.maxSessions ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  /** Add a command; throws if the node is taken or the definition is incomplete. */
  register(command: AdhocCommand): void {
    if (!command.node || !command.name) throw new Error("an ad-hoc command needs a node and a name");
    if (command.node === NS_COMMANDS) throw new Error(`${NS_COMMANDS} is the command list, not a command`);
    if (this.#commands.has(command.node)) throw new Error(`ad-hoc command ${command.node} is already registered`);
    this.#commands.set(command.node, command);
  }

  /** The registered command for a node, if any. */
  command(node: string): AdhocCommand | undefined {
    return this.#commands.get(node);
  }

  /** Whether `from` may see and run the command: admins run everything; local accounts run commands not adminOnly. */
  allowed(command: AdhocCommand, from: Jid): boolean {
    if (this.#isAdmin(from)) return true;
    return !command.adminOnly && from.domain === this.#host;
  }

  /** disco#items of the command list node (§2.2): only the commands this requester may run. */
  items(from: Jid): DiscoItem[] {
    const out: DiscoItem[] = [];
    for (const c of this.#commands.values()) if (this.allowed(c, from)) out.push({ jid: this.#host, node: c.node, name: c.name });
    return out;
  }

  /** disco#info of a command node (§2.3); item-not-found for unknown nodes, forbidden for others' commands. */
  info(node: string, from: Jid): { identities: { category: string; type: string; name?: string }[]; features: string[] } | undefined {
    const c = this.#commands.get(node);
    if (!c) return undefined;
    if (!this.allowed(c, from)) throw new StanzaError("forbidden");
    return { identities: [{ category: "automation", type: "command-node", name: c.name }], features: [NS_COMMANDS, NS_DATA] };
  }

  /** Number of open sessions (for tests and metrics). */
  get openSessions(): number {
    return this.#sessions.size;
  }

  /** Handle one `<command/>` from `from` and return the `<command/>` to answer with; throws StanzaError. */
  async execute(cmd: Element, from: Jid): Promise<Element> {
    const node = cmd.attrs["node"];
    if (!node) throw new StanzaError("bad-request", { text: "the command has no node" });
    const command = this.#commands.get(node);
    if (!command) throw new StanzaError("item-not-found");
    if (!this.allowed(command, from)) throw new StanzaError("forbidden");
    const action = cmd.attrs["action"] ?? "execute";
    if (!ACTIONS.includes(action)) throw adhocError("malformed-action", `unknown action "${action}"`);
    this.#sweep();

    const sid = cmd.attrs["sessionid"];
    const payload = cmd.elements.filter((e) => !(e.xmlns === NS_COMMANDS && (e.name === "actions" || e.name === "note")));
    if (sid === undefined) {
      if (action !== "execute") throw adhocError("bad-sessionid", `"${action}" needs the sessionid of a running command`);
      const session: Session = { id: randomBytes(12).toString("base64url"), owner: from.toString(), node, screens: [], expiresAt: 0 };
      return this.#run(command, session, from, { action: "execute", payload, state: {} });
    }

    const session = this.#sessions.get(sid);
    if (!session) {
      if (this.#ended.has(sid)) throw adhocError("session-expired");
      throw adhocError("bad-sessionid", "no such session");
    }
    // A session belongs to the requester (full JID) that started it, for that command only.
    if (session.owner !== from.toString() || session.node !== node) throw adhocError("bad-sessionid", "no such session");
    if (session.expiresAt <= this.#now()) {
      this.#end(session);
      throw adhocError("session-expired");
    }
    const screen = session.screens[session.screens.length - 1]!;
    if (action === "cancel") {
      this.#end(session);
      command.onCancel?.({ from, sessionId: sid, stage: session.screens.length - 1, state: screen.state });
      return this.#render(node, sid, { status: "canceled" }, [], undefined);
    }
    const resolved = action === "execute" ? screen.defaultAction : (action as StageAction);
    if (resolved === undefined || !screen.actions.includes(resolved)) throw adhocError("bad-action", `"${action}" is not allowed at this stage`);
    if (resolved === "prev") {
      session.screens.pop();
      session.expiresAt = this.#now() + this.#ttl;
      const back = session.screens[session.screens.length - 1]!;
      return this.#render(node, sid, back.response, back.actions, back.defaultAction);
    }
    return this.#run(command, session, from, { action: resolved, payload, state: structuredClone(screen.state) });
  }

  /** Call the handler for the next screen of a session and keep or end the session by its status. */
  async #run(command: AdhocCommand, session: Session, from: Jid, call: { action: "execute" | "next" | "complete"; payload: Element[]; state: Record<string, unknown> }): Promise<Element> {
    const formEl = call.payload.find((e) => e.name === "x" && e.xmlns === NS_DATA);
    let form: SubmittedForm | undefined;
    if (formEl) {
      try {
        form = readForm(formEl);
      } catch (err) {
        if (err instanceof FormValueError) throw adhocError("bad-payload", err.message);
        throw err;
      }
    }
    // A submission is checked against the form of the screen it answers (required fields, JIDs, booleans);
    // sending no form at all counts as submitting it empty.
    const asked = session.screens[session.screens.length - 1]?.response.form;
    if (asked && asked.attrs["type"] === "form" && (!form || form.type === "submit")) {
      const problems = checkSubmission(asked, form ?? { type: "submit", formType: undefined, values: new Map() });
      if (problems.length > 0) throw adhocError("bad-payload", problems.map((p) => p.message).join("; "));
    }
    const stage = session.screens.length;
    let response: AdhocResponse;
    try {
      response = await command.handler({ from, node: session.node, sessionId: session.id, stage, action: call.action, form, payload: call.payload, state: call.state });
    } catch (err) {
      if (err instanceof FormValueError) throw adhocError("bad-payload", err.message);
      if (err instanceof StanzaError) throw err; // the session stays: the requester may correct and resubmit
      this.#end(session);
      throw err;
    }
    if (response.status !== "executing") {
      this.#end(session);
      return this.#render(session.node, session.id, response, [], undefined);
    }
    const actions = response.actions ?? (stage > 0 ? ["prev", "complete"] : ["complete"]);
    const defaultAction = response.defaultAction ?? (actions.includes("next") ? "next" : actions.includes("complete") ? "complete" : actions[0]);
    if (defaultAction !== undefined && !actions.includes(defaultAction)) throw new Error(`${session.node}: default action ${defaultAction} is not allowed`);
    if (actions.includes("prev") && stage === 0) throw new Error(`${session.node}: the first stage cannot go back`);
    session.screens.push({ response, actions, defaultAction, state: call.state });
    session.expiresAt = this.#now() + this.#ttl;
    if (!this.#sessions.has(session.id)) this.#open(session);
    return this.#render(session.node, session.id, response, actions, defaultAction);
  }

  /** Keep a new session, dropping the requester's (then anyone's) oldest beyond the caps. */
  #open(session: Session): void {
    const mine = [...this.#sessions.values()].filter((s) => s.owner === session.owner);
    if (mine.length >= this.#perRequester) this.#end(mine[0]!);
    if (this.#sessions.size >= this.#max) this.#end(this.#sessions.values().next().value!);
    this.#sessions.set(session.id, session);
  }

  #end(session: Session): void {
    this.#sessions.delete(session.id);
    if (this.#ended.size >= this.#max) this.#ended.delete(this.#ended.keys().next().value!);
    this.#ended.set(session.id, this.#now() + this.#ttl);
  }

  /** Drop expired sessions (and forget long-ended ids), at most every few seconds. */
  #sweep(): void {
    const now = this.#now();
    if (now - this.#lastSweep < 5_000) return;
    this.#lastSweep = now;
    for (const s of this.#sessions.values()) if (s.expiresAt <= now) this.#end(s);
    for (const [id, until] of this.#ended) if (until <= now) this.#ended.delete(id);
  }

  #render(node: string, sid: string, r: AdhocResponse, actions: StageAction[], defaultAction: StageAction | undefined): Element {
    const el = new Element("command", NS_COMMANDS, { node, sessionid: sid, status: r.status });
    if (r.status === "executing") {
      const a = el.c("actions", defaultAction !== undefined ? { execute: defaultAction } : {});
      for (const name of actions) a.c(name);
    }
    if (r.form) el.children.push(r.form.clone());
    for (const p of r.payload ?? []) el.children.push(p.clone());
    for (const n of r.notes ?? []) el.children.push(noteElement(n));
    return el;
  }
}

function noteElement(n: AdhocNote): Element {
  return new Element("note", NS_COMMANDS, { type: n.type }, [n.text]);
}
