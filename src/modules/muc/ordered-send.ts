// The room's stanzas to one recipient must arrive in the order XEP-0045 §7.1 gives (presence of the others, own
// presence, history, subject). The router may wait on hooks for a presence where it delivers a message at once, so
// a stanza for a recipient is routed only after the previous one for that recipient has been.
import type { Element } from "../../xml/element.ts";

/** Routes a stanza; a promise (never rejected) when routing had to wait. */
export type Send = (stanza: Element) => void | Promise<void>;

/** Wrap `send` so that stanzas to the same `to` are routed one after the other; others are not held up. */
export function orderedSend(send: Send): Send {
  const tails = new Map<string, Promise<void>>();
  return (stanza) => {
    const to = stanza.attrs["to"] ?? "";
    const tail = tails.get(to);
    let done: void | Promise<void>;
    if (tail === undefined) {
      done = send(stanza);
      if (!(done instanceof Promise)) return; // the common case: routed already, nothing to remember
    } else {
      done = tail.then(() => send(stanza));
    }
    const p: Promise<void> = done.then(() => {
      if (tails.get(to) === p) tails.delete(to);
    });
    tails.set(to, p);
    return p;
  };
}
