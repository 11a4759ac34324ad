// XEP-0060 §16.4.4 node configuration (pubsub#node_config) and XEP-0223 §3 publish-options preconditions: the typed
// configuration of a node, its data form, and reading a submitted form or a publish-options form into it.
import { Element } from "../../xml/element.ts";
import { buildForm, FormValueError, readForm, type FieldSpec, type SubmittedForm } from "../../xmpp/data-forms.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_PUBSUB_ERRORS, NS_PUBSUB_NODE_CONFIG, NS_PUBSUB_PUBLISH_OPTIONS } from "./ns.ts";

/** §4.5 access models; "authorize" (subscriptions approved by the owner) is not implemented. */
export type AccessModel = "open" | "presence" | "roster" | "whitelist";
export const ACCESS_MODELS: readonly AccessModel[] = ["open", "presence", "roster", "whitelist"];

export type SendLast = "never" | "on_sub" | "on_sub_and_presence";
export type PublishModel = "publishers" | "open";

/** One node's configuration, as stored. */
export interface NodeConfig {
  access_model: AccessModel;
  publish_model: PublishModel;
  persist_items: boolean;
  /** Most items kept (1 up to the server's limit). */
  max_items: number;
  send_last_published_item: SendLast;
  deliver_payloads: boolean;
  deliver_notifications: boolean;
  notify_retract: boolean;
  notify_delete: boolean;
  notify_config: boolean;
  title: string;
  /** pubsub#type: the payload namespace, informational. */
  type: string;
  /** For the roster access model: the owner's roster groups allowed in. */
  roster_groups_allowed: string[];
}

/** The defaults of a new PEP node (XEP-0163 §4.1: presence access; one item like the common clients expect). */
export function defaultConfig(kind: "pep" | "service"): NodeConfig {
  return {
    access_model: kind === "pep" ? "presence" : "open",
    publish_model: "publishers",
    persist_items: true,
    max_items: 1,
    send_last_published_item: kind === "pep" ? "on_sub_and_presence" : "on_sub",
    deliver_payloads: true,
    deliver_notifications: true,
    notify_retract: true,
    notify_delete: true,
    notify_config: false,
    title: "",
    type: "",
    roster_groups_allowed: [],
  };
}

/** A pubsub error with its pubsub#errors application condition (§7, §8). */
export function pubsubError(condition: ConstructorParameters<typeof StanzaError>[0], app?: string, opts: { text?: string; feature?: string } = {}): StanzaError {
  const appEl = app === undefined ? undefined : new Element(app, NS_PUBSUB_ERRORS, opts.feature === undefined ? {} : { feature: opts.feature });
  return new StanzaError(condition, { ...(appEl ? { app: appEl } : {}), ...(opts.text === undefined ? {} : { text: opts.text }) });
}

/** The configuration form (§8.2.1), with `max` as the highest max_items allowed. */
export function configForm(config: NodeConfig, type: "form" | "result", maxItemsLimit: number): Element {
  const fields: FieldSpec[] = [
    { var: "pubsub#title", type: "text-single", label: "A friendly name for the node", value: config.title },
    { var: "pubsub#type", type: "text-single", label: "The type of node data, usually the payload namespace", value: config.type },
    {
      var: "pubsub#access_model",
      type: "list-single",
      label: "Who may subscribe and retrieve items",
      value: config.access_model,
      options: ACCESS_MODELS.map((value) => ({ value })),
    },
    { var: "pubsub#roster_groups_allowed", type: "list-multi", label: "Roster groups allowed (roster access model)", value: config.roster_groups_allowed },
    { var: "pubsub#publish_model", type: "list-single", label: "Who may publish", value: config.publish_model, options: [{ value: "publishers" }, { value: "open" }] },
    { var: "pubsub#persist_items", type: "boolean", label: "Persist items", value: config.persist_items },
    { var: "pubsub#max_items", type: "text-single", label: `Most items kept (up to ${maxItemsLimit}, or "max")`, value: String(config.max_items) },
    {
      var: "pubsub#send_last_published_item",
      type: "list-single",
      label: "When to send the last published item",
      value: config.send_last_published_item,
      options: [{ value: "never" }, { value: "on_sub" }, { value: "on_sub_and_presence" }],
    },
    { var: "pubsub#deliver_payloads", type: "boolean", label: "Deliver payloads with notifications", value: config.deliver_payloads },
    { var: "pubsub#deliver_notifications", type: "boolean", label: "Deliver event notifications", value: config.deliver_notifications },
    { var: "pubsub#notify_retract", type: "boolean", label: "Notify when items are removed", value: config.notify_retract },
    { var: "pubsub#notify_delete", type: "boolean", label: "Notify when the node is deleted", value: config.notify_delete },
    { var: "pubsub#notify_config", type: "boolean", label: "Notify when the configuration changes", value: config.notify_config },
  ];
  return buildForm({ type, formType: NS_PUBSUB_NODE_CONFIG, fields });
}

const BOOLEAN_FIELDS = ["persist_items", "deliver_payloads", "deliver_notifications", "notify_retract", "notify_delete", "notify_config"] as const;

function bool(field: string, v: string): boolean {
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new FormValueError(field, `${field} is not a boolean: ${v}`);
}

/** The max_items a form asks for: a positive integer, or "max" for the server's limit (XEP-0060 §16.4.4). */
function maxItems(v: string, limit: number): number {
  if (v === "max") return limit;
  if (!/^[0-9]{1,9}$/.test(v)) throw new FormValueError("pubsub#max_items", `max_items must be a number or "max", got ${v}`);
  const n = Number(v);
  if (n < 1) throw new FormValueError("pubsub#max_items", "max_items must be at least 1");
  if (n > limit) throw new FormValueError("pubsub#max_items", `max_items may be at most ${limit}`);
  return n;
}

/**
 * Apply the known fields of a submitted form to a copy of `base`. Unknown fields are ignored (§8.2.4 leaves it to the
 * service; clients send options newer than ours); values of known fields that do not fit throw FormValueError.
 */
export function applyForm(base: NodeConfig, form: SubmittedForm, maxItemsLimit: number): NodeConfig {
  const out: NodeConfig = { ...base, roster_groups_allowed: [...base.roster_groups_allowed] };
  for (const [name, values] of form.values) {
    if (!name.startsWith("pubsub#")) continue;
    const key = name.slice("pubsub#".length);
    const one = (): string => {
      if (values.length !== 1) throw new FormValueError(name, `${name} takes one value`);
      return values[0]!;
    };
    switch (key) {
      case "access_model": {
        const v = one();
        if (!(ACCESS_MODELS as readonly string[]).includes(v)) throw new FormValueError(name, `unsupported access model ${v}`);
        out.access_model = v as AccessModel;
        break;
      }
      case "publish_model": {
        const v = one();
        if (v !== "publishers" && v !== "open") throw new FormValueError(name, `unsupported publish model ${v}`);
        out.publish_model = v;
        break;
      }
      case "send_last_published_item": {
        const v = one();
        if (v !== "never" && v !== "on_sub" && v !== "on_sub_and_presence") throw new FormValueError(name, `unknown value ${v}`);
        out.send_last_published_item = v;
        break;
      }
      case "max_items":
        out.max_items = maxItems(one(), maxItemsLimit);
        break;
      case "title":
        out.title = (values[0] ?? "").slice(0, 256);
        break;
      case "type":
        out.type = (values[0] ?? "").slice(0, 256);
        break;
      case "roster_groups_allowed":
        out.roster_groups_allowed = values.filter((v) => v !== "").slice(0, 64);
        break;
      default:
        if ((BOOLEAN_FIELDS as readonly string[]).includes(key)) out[key as (typeof BOOLEAN_FIELDS)[number]] = bool(name, one());
    }
  }
  return out;
}

/** Read the form of a <configure/> or <publish-options/> element; undefined when it has none. */
export function submittedForm(parent: Element | undefined, formType: string): SubmittedForm | undefined {
  const x = parent?.getChild("x", "jabber:x:data");
  if (x === undefined) return undefined;
  let form: SubmittedForm;
  try {
    form = readForm(x);
  } catch (err) {
    throw new StanzaError("bad-request", { text: (err as Error).message });
  }
  if (form.type === "cancel") return undefined;
  if (form.formType !== undefined && form.formType !== formType) throw pubsubError("bad-request", "invalid-options", { text: `FORM_TYPE must be ${formType}` });
  return form;
}

/**
 * XEP-0223 §3 / XEP-0060 §7.1.5: every option a publish names must equal the node's configuration, or the publish fails
 * with conflict + precondition-not-met. Options are compared after reading them the same way as a configuration (so
 * "max" equals the limit and "true" equals "1").
 */
export function preconditionsMet(config: NodeConfig, form: SubmittedForm, maxItemsLimit: number): boolean {
  let wanted: NodeConfig;
  try {
    wanted = applyForm(config, form, maxItemsLimit);
  } catch {
    return false;
  }
  return JSON.stringify(wanted) === JSON.stringify(config);
}

export { NS_PUBSUB_PUBLISH_OPTIONS };
