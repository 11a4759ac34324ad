// XML element tree used as the routing currency of the server (STYLE.md §2: raw Element, typed views
// only where a payload is handled). Namespaces are resolved by the parser: each element carries its
// namespace URI in `xmlns`; serialisation re-declares it only where it differs from the parent.

/** A child node: an element or a run of character data. */
export type Node = Element | string;

/** An XML element with resolved namespace, attributes (no namespace declarations) and children. */
export class Element {
  name: string;
  xmlns: string;
  attrs: Record<string, string>;
  children: Node[];

  constructor(name: string, xmlns: string, attrs: Record<string, string> = {}, children: Node[] = []) {
    this.name = name;
    this.xmlns = xmlns;
    this.attrs = attrs;
    this.children = children;
  }

  /** Value of attribute `name`, or undefined. */
  attr(name: string): string | undefined {
    return this.attrs[name];
  }

  /** Set (or with undefined, remove) an attribute; returns this for chaining. */
  setAttr(name: string, value: string | undefined): this {
    if (value === undefined) delete this.attrs[name];
    else this.attrs[name] = value;
    return this;
  }

  /** First child element with this local name (and namespace, default: any). */
  getChild(name: string, xmlns?: string): Element | undefined {
    for (const c of this.children) {
      if (typeof c !== "string" && c.name === name && (xmlns === undefined || c.xmlns === xmlns)) return c;
    }
    return undefined;
  }

  /** All child elements, optionally filtered by name and namespace. */
  getChildren(name?: string, xmlns?: string): Element[] {
    const out: Element[] = [];
    for (const c of this.children) {
      if (typeof c === "string") continue;
      if (name !== undefined && c.name !== name) continue;
      if (xmlns !== undefined && c.xmlns !== xmlns) continue;
      out.push(c);
    }
    return out;
  }

  /** Child elements only. */
  get elements(): Element[] {
    return this.getChildren();
  }

  /** Concatenated character data of direct children. */
  text(): string {
    let s = "";
    for (const c of this.children) if (typeof c === "string") s += c;
    return s;
  }

  /** Text of the first child element named `name`, or undefined. */
  getChildText(name: string, xmlns?: string): string | undefined {
    return this.getChild(name, xmlns)?.text();
  }

  /** Append a child (element or text) and return the child when it is an element, for building. */
  c(name: string, attrs: Record<string, string> = {}, xmlns?: string): Element {
    const child = new Element(name, xmlns ?? this.xmlns, attrs);
    this.children.push(child);
    return child;
  }

  /** Append nodes; returns this. */
  append(...nodes: Node[]): this {
    for (const n of nodes) this.children.push(n);
    return this;
  }

  /** Append character data; returns this. */
  t(text: string): this {
    this.children.push(text);
    return this;
  }

  /** Deep copy. */
  clone(): Element {
    const el = new Element(this.name, this.xmlns, { ...this.attrs });
    for (const c of this.children) el.children.push(typeof c === "string" ? c : c.clone());
    return el;
  }

  /** Serialise, declaring the namespace when it differs from `parentNs`. */
  toString(parentNs = ""): string {
    return serialize(this, parentNs);
  }
}

const ESC_TEXT = /[&<>]/g;
const ESC_ATTR = /[&<>"']/g;
const HAS_TEXT = /[&<>]/;
const HAS_ATTR = /[&<>"']/;
const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Escape character data. */
export function escapeText(s: string): string {
  return HAS_TEXT.test(s) ? s.replace(ESC_TEXT, (ch) => ENTITIES[ch]!) : s;
}

/** Escape an attribute value (for use inside single or double quotes). */
export function escapeAttr(s: string): string {
  return HAS_ATTR.test(s) ? s.replace(ESC_ATTR, (ch) => ENTITIES[ch]!) : s;
}

/** Serialise attributes (namespace declarations for prefixed attributes are kept as attributes by the parser). */
function serializeAttrs(attrs: Record<string, string>): string {
  let out = "";
  for (const k in attrs) out += ` ${k}='${escapeAttr(attrs[k]!)}'`;
  return out;
}

/** Serialise an element tree to a string (the only way stanzas reach the wire). */
export function serialize(el: Element, parentNs = "", alias?: { from: string; to: string }): string {
  let out = "<" + el.name;
  // A prefixed name (stream:features, stream:error) uses a prefix bound on the stream root, so the default
  // namespace in scope does not change for it or its children.
  const prefixed = el.name.includes(":");
  // `alias` writes one namespace as another: stanzas are kept in jabber:client internally and written
  // as jabber:server on server-to-server streams.
  const own = alias !== undefined && el.xmlns === alias.from ? alias.to : el.xmlns;
  const ns = prefixed ? parentNs : own;
  if (!prefixed && own !== parentNs) out += ` xmlns='${escapeAttr(own)}'`;
  out += serializeAttrs(el.attrs);
  if (el.children.length === 0) return out + "/>";
  out += ">";
  for (const c of el.children) out += typeof c === "string" ? escapeText(c) : serialize(c, ns, alias);
  return out + "</" + el.name + ">";
}

/** Rewrite namespace `from` to `to` in a tree, in place (jabber:server stanzas become jabber:client on input). */
export function renameNamespace(el: Element, from: string, to: string): Element {
  if (el.xmlns === from) el.xmlns = to;
  for (const c of el.children) if (typeof c !== "string") renameNamespace(c, from, to);
  return el;
}

/** Shorthand builder: `x("message", "jabber:client", { to }, x("body", undefined, {}, "hi"))`. */
export function x(name: string, xmlns: string, attrs: Record<string, string | undefined> = {}, ...children: Node[]): Element {
  const a: Record<string, string> = {};
  for (const k in attrs) if (attrs[k] !== undefined) a[k] = attrs[k];
  return new Element(name, xmlns, a, children);
}
