// XEP-0004: Data Forms <https://xmpp.org/extensions/xep-0004.html> §3 (form types, field types), §3.4 (reported
// and item results), §3.2-3.3 (field values): typed helpers to build forms and read submitted values.
import { Element } from "../xml/element.ts";
import { NS_DATA } from "./ns.ts";
import { tryParseJid, type Jid } from "./jid.ts";

/** The field types of XEP-0004 §3.3. */
export type FieldType =
  | "boolean" | "fixed" | "hidden" | "jid-multi" | "jid-single" | "list-multi" | "list-single"
  | "text-multi" | "text-private" | "text-single";

/** The form types of XEP-0004 §3.1. */
export type FormType = "form" | "submit" | "cancel" | "result";

/** One field to put in a form. */
export interface FieldSpec {
  var?: string;
  type?: FieldType;
  label?: string;
  desc?: string;
  required?: boolean;
  /** Initial or result value(s); booleans are written as "1"/"0". */
  value?: string | string[] | boolean;
  /** For list-single / list-multi. */
  options?: { value: string; label?: string }[];
}

/** A whole form to build. */
export interface FormSpec {
  type: FormType;
  /** The FORM_TYPE hidden field (XEP-0068), if any. */
  formType?: string;
  title?: string;
  instructions?: string | string[];
  fields?: FieldSpec[];
  /** Tabular results (§3.4): the column definitions and one record per row, keyed by field var. */
  reported?: FieldSpec[];
  items?: Record<string, string | string[] | boolean | undefined>[];
}

/** The values of one submitted form, read with typed getters. */
export interface SubmittedForm {
  type: FormType;
  /** The FORM_TYPE value, if the form had one. */
  formType: string | undefined;
  /** Raw values per field var (in order). */
  values: Map<string, string[]>;
}

/** A submitted value that does not fit its field (→ XEP-0050 bad-payload). */
export class FormValueError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = "FormValueError";
    this.field = field;
  }
}

function valueList(v: string | string[] | boolean | undefined): string[] {
  if (v === undefined) return [];
  if (typeof v === "boolean") return [v ? "1" : "0"];
  return Array.isArray(v) ? v : [v];
}

function fieldElement(f: FieldSpec, withMeta: boolean): Element {
  const attrs: Record<string, string> = {};
  if (f.var !== undefined) attrs["var"] = f.var;
  if (f.type !== undefined) attrs["type"] = f.type;
  if (f.label !== undefined) attrs["label"] = f.label;
  const el = new Element("field", NS_DATA, attrs);
  if (withMeta && f.desc !== undefined) el.c("desc").t(f.desc);
  if (withMeta && f.required) el.c("required");
  // text-multi values are one line each (§3.3).
  const values = f.type === "text-multi" ? valueList(f.value).flatMap((v) => v.split("\n")) : valueList(f.value);
  for (const v of values) el.c("value").t(v);
  if (withMeta) {
    for (const o of f.options ?? []) el.c("option", o.label !== undefined ? { label: o.label } : {}).c("value").t(o.value);
  }
  return el;
}

/** Build a `<x xmlns='jabber:x:data'/>` element from a spec. */
export function buildForm(spec: FormSpec): Element {
  const x = new Element("x", NS_DATA, { type: spec.type });
  if (spec.title !== undefined) x.c("title").t(spec.title);
  const instructions = spec.instructions === undefined ? [] : Array.isArray(spec.instructions) ? spec.instructions : [spec.instructions];
  for (const line of instructions) x.c("instructions").t(line);
  if (spec.formType !== undefined) x.children.push(fieldElement({ var: "FORM_TYPE", type: "hidden", value: spec.formType }, true));
  for (const f of spec.fields ?? []) x.children.push(fieldElement(f, spec.type !== "submit"));
  if (spec.reported) {
    const reported = x.c("reported");
    for (const { value: _unused, ...f } of spec.reported) reported.children.push(fieldElement(f, true));
    for (const row of spec.items ?? []) {
      const item = x.c("item");
      for (const f of spec.reported) {
        if (f.var === undefined) continue;
        item.children.push(fieldElement({ var: f.var, ...(f.type ? { type: f.type } : {}), value: row[f.var] ?? [] }, false));
      }
    }
  }
  return x;
}

/** Read a data form element (any type) into its values; throws FormValueError for a malformed form. */
export function readForm(x: Element): SubmittedForm {
  if (x.name !== "x" || x.xmlns !== NS_DATA) throw new FormValueError("", "not a jabber:x:data form");
  const type = x.attrs["type"] ?? "";
  if (type !== "form" && type !== "submit" && type !== "cancel" && type !== "result") throw new FormValueError("", `unknown form type "${type}"`);
  const values = new Map<string, string[]>();
  for (const f of x.getChildren("field", NS_DATA)) {
    const name = f.attrs["var"];
    if (name === undefined) continue; // only fixed fields may omit var; they carry no submitted data
    if (values.has(name)) throw new FormValueError(name, `field ${name} appears twice`);
    values.set(name, f.getChildren("value", NS_DATA).map((v) => v.text()));
  }
  const formType = values.get("FORM_TYPE")?.[0];
  return { type, formType, values };
}

/** The first data form among a command's children, or undefined. */
export function findForm(parent: Element): Element | undefined {
  return parent.getChild("x", NS_DATA);
}

/** The single text value of a field (undefined when absent or empty). */
export function textValue(form: SubmittedForm, name: string): string | undefined {
  const v = form.values.get(name);
  if (!v || v.length === 0) return undefined;
  if (v.length > 1) throw new FormValueError(name, `field ${name} takes one value`);
  return v[0] === "" ? undefined : v[0];
}

/** Every value of a field (list-multi, jid-multi, text-multi). */
export function multiValue(form: SubmittedForm, name: string): string[] {
  return (form.values.get(name) ?? []).filter((v) => v !== "");
}

/** A boolean field (§3.3: "0"/"false" or "1"/"true"); `fallback` when absent. */
export function booleanValue(form: SubmittedForm, name: string, fallback: boolean): boolean {
  const v = textValue(form, name);
  if (v === undefined) return fallback;
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new FormValueError(name, `field ${name} is not a boolean: ${v}`);
}

/** A jid-single field as a prepared JID; throws FormValueError when it is not a valid JID. */
export function jidValue(form: SubmittedForm, name: string): Jid | undefined {
  const v = textValue(form, name);
  if (v === undefined) return undefined;
  const jid = tryParseJid(v.trim());
  if (!jid) throw new FormValueError(name, `field ${name} is not a valid JID: ${v}`);
  return jid;
}

/**
 * Check a submission against the form that asked for it: required fields present, booleans and JIDs well
 * formed, single-value fields not repeated. Returns the problems (empty: fine).
 */
export function checkSubmission(asked: Element, submitted: SubmittedForm): FormValueError[] {
  const problems: FormValueError[] = [];
  for (const f of asked.getChildren("field", NS_DATA)) {
    const name = f.attrs["var"];
    if (name === undefined || name === "FORM_TYPE") continue;
    const type = (f.attrs["type"] ?? "text-single") as FieldType;
    const values = (submitted.values.get(name) ?? []).filter((v) => v !== "");
    if (values.length === 0) {
      if (f.getChild("required", NS_DATA)) problems.push(new FormValueError(name, `field ${name} is required`));
      continue;
    }
    const multi = type === "jid-multi" || type === "list-multi" || type === "text-multi";
    if (!multi && values.length > 1) problems.push(new FormValueError(name, `field ${name} takes one value`));
    if (type === "boolean" && !values.every((v) => ["0", "1", "true", "false"].includes(v))) {
      problems.push(new FormValueError(name, `field ${name} is not a boolean`));
    }
    if ((type === "jid-single" || type === "jid-multi") && !values.every((v) => tryParseJid(v.trim()) !== undefined)) {
      problems.push(new FormValueError(name, `field ${name} is not a valid JID`));
    }
  }
  return problems;
}
