// XEP-0115: Entity Capabilities <https://xmpp.org/extensions/xep-0115.html> §5: the verification string of a disco#info
// answer and its sha-1 `ver`, shared by PEP (checking clients' caps) and disco (the server's own caps).
import { createHash } from "node:crypto";
import type { Element } from "../xml/element.ts";
import { NS_DATA, NS_DISCO_INFO } from "./ns.ts";

export const NS_CAPS = "http://jabber.org/protocol/caps";

/** §5.1 over a disco#info `<query/>`: the string S before hashing; undefined when the answer is malformed (§5.4 3.3-3.6). */
export function capsString(query: Element): string | undefined {
  const identities: string[] = [];
  const features: string[] = [];
  const forms: { type: string; fields: string }[] = [];
  for (const el of query.elements) {
    if (el.xmlns !== NS_DISCO_INFO && el.xmlns !== NS_DATA) continue;
    if (el.name === "identity" && el.xmlns === NS_DISCO_INFO) {
      const a = el.attrs;
      identities.push(`${a["category"] ?? ""}/${a["type"] ?? ""}/${a["xml:lang"] ?? ""}/${a["name"] ?? ""}`);
    } else if (el.name === "feature" && el.xmlns === NS_DISCO_INFO) {
      features.push(el.attrs["var"] ?? "");
    } else if (el.name === "x" && el.xmlns === NS_DATA) {
      let type: string | undefined;
      const fields: { v: string; values: string[] }[] = [];
      for (const f of el.getChildren("field", NS_DATA)) {
        const values = f.getChildren("value", NS_DATA).map((v) => v.text());
        if (f.attrs["var"] === "FORM_TYPE") {
          // §5.4 3.6: a FORM_TYPE field that is not hidden, or has other than one value, makes the answer unusable.
          if (values.length !== 1 || type !== undefined) return undefined;
          type = values[0]!;
        } else fields.push({ v: f.attrs["var"] ?? "", values: values.sort(byOctets) });
      }
      if (type === undefined) continue; // §5.4 3.6: forms without FORM_TYPE are ignored
      fields.sort((a, b) => byOctets(a.v, b.v));
      forms.push({ type, fields: fields.map((f) => `${f.v}<${f.values.map((v) => `${v}<`).join("")}`).join("") });
    }
  }
  // §5.4 3.3-3.5: duplicate identities, features or FORM_TYPEs make the answer unusable for caps.
  if (new Set(identities).size !== identities.length || new Set(features).size !== features.length) return undefined;
  if (new Set(forms.map((f) => f.type)).size !== forms.length) return undefined;
  identities.sort(byOctets);
  features.sort(byOctets);
  forms.sort((a, b) => byOctets(a.type, b.type));
  return identities.map((i) => `${i}<`).join("") + features.map((f) => `${f}<`).join("") + forms.map((f) => `${f.type}<${f.fields}`).join("");
}

/** The `ver` a disco#info answer hashes to with sha-1 (the only algorithm §5 mandates and clients use). */
export function capsVer(query: Element): string | undefined {
  const s = capsString(query);
  return s === undefined ? undefined : createHash("sha1").update(s, "utf8").digest("base64");
}

/** §5.1 says "i;octet" collation: compare UTF-8 bytes, not UTF-16 units. */
function byOctets(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
