// The s2s link pool: one outgoing link per (local domain, remote domain) pair, reused and closed when idle;
// the set of incoming links; routing of stanzas to remote domains (the router's `remote` branch).
import type { Socket } from "node:net";
import type { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";
import { S2sIn } from "./incoming.ts";
import { S2sOut } from "./outgoing.ts";
import type { EventMap } from "../events.ts";
import type { LinkInfo, S2sDeps } from "./types.ts";

/** All server-to-server links of this server. */
export class S2sPool {
  readonly #deps: S2sDeps;
  readonly #out = new Map<string, S2sOut>();
  readonly #in = new Set<S2sIn>();
  #stopping = false;

  constructor(deps: S2sDeps) {
    this.#deps = deps;
  }

  /** Route a stanza to a remote domain; `from` must be one of our hosts or components, or a JID on one. */
  send(stanza: Element, to: Jid): void {
    const fromAttr = stanza.attrs["from"];
    const local = fromAttr ? fromAttr.replace(/^[^@/]*@/, "").replace(/\/.*$/, "") : "";
    // A component's stanzas leave with its own domain as the sender domain (their own link and dialback).
    const host = this.#deps.router.hostOf(local);
    if (host === undefined || this.#stopping) {
      this.#deps.router.bounce(stanza, new StanzaError("remote-server-not-found"));
      return;
    }
    if (this.#deps.events.has("s2s/filter")) {
      const ev: EventMap["s2s/filter"] = { stanza, local, remote: to.domain, direction: "out", host };
      if (this.#deps.events.fireSync("s2s/filter", ev, (err) => this.#deps.log.error({ err, remote: ev.remote }, "s2s/filter handler failed: stanza refused"))) {
        if (!ev.drop) this.#deps.router.bounce(stanza, new StanzaError(ev.error ?? "policy-violation"));
        return;
      }
    }
    this.#link(local, to.domain).send(stanza);
  }

  #link(local: string, remote: string): S2sOut {
    const key = `${local} ${remote}`;
    let link = this.#out.get(key);
    if (!link || link.state === "failed" || link.state === "closed") {
      link = new S2sOut(local, remote, this.#deps, (done) => {
        if (this.#out.get(key) === done) this.#out.delete(key);
      });
      this.#out.set(key, link);
    }
    return link;
  }

  /** Accept an incoming s2s connection. */
  accept(socket: Socket): void {
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    const link = new S2sIn(socket, this.#deps, {
      verify: (local, remote, streamId, key) => this.#link(local, remote).verify(local, streamId, key),
      closed: (l) => this.#in.delete(l),
    });
    this.#in.add(link);
  }

  /** Current links, for `comity s2s list`. */
  list(): LinkInfo[] {
    return [...[...this.#out.values()].map((l) => l.info()), ...[...this.#in].map((l) => l.info())];
  }

  /** Close every link (shutdown). */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const l of this.#out.values()) l.close();
    for (const l of this.#in) l.conn.close("system shutdown");
    const deadline = Date.now() + 2000;
    while ((this.#in.size > 0 || this.#out.size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}
