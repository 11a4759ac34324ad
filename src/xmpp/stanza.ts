// Small stanza helpers shared by modules (RFC 6120 §8 addressing).
import type { Element } from "../xml/element.ts";

/** A copy of `stanza` with new `from` and `to` (the original, possibly shared with other recipients, is kept). */
export function readdress(stanza: Element, from: string, to: string): Element {
  const el = stanza.clone();
  el.attrs["from"] = from;
  el.attrs["to"] = to;
  return el;
}
