// XEP-0045 §10.1-10.2 (room configuration with a muc#roomconfig data form, XEP-0004) and §15.5.3 (the registered
// fields): a room's settings, the form that shows them to an owner and the reading of a submitted form.
import type { Element } from "../../xml/element.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { booleanValue, buildForm, FormValueError, readForm, textValue, type FieldSpec } from "../../xmpp/data-forms.ts";
import { NS_MUC_ROOMCONFIG } from "./ns.ts";

/** Who may send private messages (muc#roomconfig_allowpm). */
export type AllowPm = "anyone" | "participants" | "moderators" | "none";

/** A room's settings. */
export interface RoomConfig {
  name: string;
  description: string;
  /** Kept when the last occupant leaves, and stored: it comes back after a restart. */
  persistent: boolean;
  /** Listed in the service's disco#items (muc_public) or not (muc_hidden). */
  public: boolean;
  membersOnly: boolean;
  moderated: boolean;
  /** Non-empty when the room is password-protected. */
  password: string;
  /** `anyone`: non-anonymous (every occupant sees real JIDs); `moderators`: semi-anonymous. */
  whois: "anyone" | "moderators";
  /** Participants (not only moderators) may change the subject. */
  changeSubject: boolean;
  /** Members may invite others to a members-only room (admins and owners always may). */
  allowInvites: boolean;
  allowPm: AllowPm;
  /** Most occupants; at most the service's max_occupants. */
  maxUsers: number;
  /** Messages of history kept and sent to joiners; at most the service's max_history. */
  maxHistory: number;
  /** Groupchat messages and subject changes go to the room's archive (XEP-0313); never when the service keeps none. */
  archive: boolean;
}

/** Who may see occupants' real JIDs (muc#roomconfig_whois). */
export type Whois = RoomConfig["whois"];

/** Service-wide bounds on what an owner may choose. */
export interface ConfigLimits {
  maxOccupants: number;
  maxHistory: number;
  /** The service keeps room archives (hosts[].muc.archive): new rooms archive, and owners may switch it off. */
  archive?: boolean;
}

/**
 * The configuration of a new room: open, public, semi-anonymous, unmoderated, temporary. Semi-anonymous (§7.2.3:
 * real JIDs for moderators only) as Prosody and ejabberd do, so that entering a room does not hand one's address to
 * every stranger in it; `whois` is the service's hosts[].muc.default_whois.
 */
export function defaultConfig(limits: ConfigLimits, whois: Whois = "moderators"): RoomConfig {
  return {
    name: "",
    description: "",
    persistent: false,
    public: true,
    membersOnly: false,
    moderated: false,
    password: "",
    whois,
    changeSubject: false,
    allowInvites: false,
    allowPm: "anyone",
    maxUsers: limits.maxOccupants,
    maxHistory: limits.maxHistory,
    archive: limits.archive === true,
  };
}

const F = (name: string) => `muc#roomconfig_${name}`;

/** The muc#roomconfig form showing the current settings (§10.1.3, §10.2). */
export function configForm(room: string, c: RoomConfig, limits: ConfigLimits): Element {
  const sizes = [...new Set([5, 10, 20, 30, 50, 100, 200, 500, 1000, c.maxUsers, limits.maxOccupants])]
    .filter((n) => n <= limits.maxOccupants)
    .sort((a, b) => a - b);
  const fields: FieldSpec[] = [
    { var: F("roomname"), type: "text-single", label: "Natural-language room name", value: c.name },
    { var: F("roomdesc"), type: "text-single", label: "Short description of the room", value: c.description },
    { var: F("persistentroom"), type: "boolean", label: "Keep the room when the last occupant leaves and across restarts", value: c.persistent },
    { var: F("publicroom"), type: "boolean", label: "List the room publicly", value: c.public },
    { var: F("membersonly"), type: "boolean", label: "Only members may enter", value: c.membersOnly },
    { var: F("moderatedroom"), type: "boolean", label: "Only participants with voice may speak", value: c.moderated },
    { var: F("passwordprotectedroom"), type: "boolean", label: "A password is needed to enter", value: c.password !== "" },
    { var: F("roomsecret"), type: "text-private", label: "Password", value: c.password },
    {
      var: F("whois"),
      type: "list-single",
      label: "Who may see occupants' real addresses",
      value: c.whois,
      options: [
        { value: "moderators", label: "Moderators only (semi-anonymous)" },
        { value: "anyone", label: "Anyone (non-anonymous)" },
      ],
    },
    { var: F("changesubject"), type: "boolean", label: "Participants may change the subject", value: c.changeSubject },
    { var: F("allowinvites"), type: "boolean", label: "Members may invite others", value: c.allowInvites },
    {
      var: F("allowpm"),
      type: "list-single",
      label: "Who may send private messages",
      value: c.allowPm,
      options: [
        { value: "anyone", label: "Anyone" },
        { value: "participants", label: "Participants and moderators" },
        { value: "moderators", label: "Moderators only" },
        { value: "none", label: "Nobody" },
      ],
    },
    {
      var: F("maxusers"),
      type: "list-single",
      label: "Maximum number of occupants",
      value: String(c.maxUsers),
      options: sizes.map((n) => ({ value: String(n) })),
    },
    { var: "muc#maxhistoryfetch", type: "text-single", label: `Messages of history sent to joiners (at most ${limits.maxHistory})`, value: String(c.maxHistory) },
  ];
  // Prosody's field name for a room's XEP-0313 archive, so clients that know it find it; offered only when the
  // service keeps archives at all.
  if (limits.archive) fields.push({ var: F("enablearchiving"), type: "boolean", label: "Archive messages on the server", value: c.archive });
  return buildForm({
    type: "form",
    formType: NS_MUC_ROOMCONFIG,
    title: `Configuration of ${room}`,
    instructions: "Submit the form unchanged to accept the current settings.",
    fields,
  });
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], field: string, fallback: T): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new FormValueError(field, `${field} must be one of ${allowed.join(", ")}`);
}

function bounded(value: string | undefined, field: string, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === "none") return max; // §15.5.3 lists "none" (no limit): the service's bound then
  if (!/^\d+$/.test(value.trim())) throw new FormValueError(field, `${field} must be a number`);
  const n = Number.parseInt(value, 10);
  if (n > max) throw new FormValueError(field, `${field} is at most ${max}`);
  return n;
}

/**
 * The settings after a submitted form (type submit): fields left out keep their current value, so an empty form
 * accepts the current (or default) configuration (§10.1.2). A value the service cannot accept is `not-acceptable`.
 */
export function applyConfigForm(current: RoomConfig, x: Element, limits: ConfigLimits): RoomConfig {
  try {
    const form = readForm(x);
    if (form.formType !== undefined && form.formType !== NS_MUC_ROOMCONFIG) throw new FormValueError("FORM_TYPE", "not a muc#roomconfig form");
    const has = (name: string) => form.values.has(name);
    const text = (name: string, fallback: string) => (has(name) ? (form.values.get(name) ?? []).join("\n") : fallback);
    const next: RoomConfig = {
      name: text(F("roomname"), current.name),
      description: text(F("roomdesc"), current.description),
      persistent: booleanValue(form, F("persistentroom"), current.persistent),
      public: booleanValue(form, F("publicroom"), current.public),
      membersOnly: booleanValue(form, F("membersonly"), current.membersOnly),
      moderated: booleanValue(form, F("moderatedroom"), current.moderated),
      password: current.password,
      whois: oneOf(textValue(form, F("whois")), ["anyone", "moderators"] as const, F("whois"), current.whois),
      changeSubject: booleanValue(form, F("changesubject"), current.changeSubject),
      allowInvites: booleanValue(form, F("allowinvites"), current.allowInvites),
      allowPm: oneOf(textValue(form, F("allowpm")), ["anyone", "participants", "moderators", "none"] as const, F("allowpm"), current.allowPm),
      maxUsers: bounded(textValue(form, F("maxusers")), F("maxusers"), limits.maxOccupants, current.maxUsers),
      maxHistory: bounded(textValue(form, "muc#maxhistoryfetch"), "muc#maxhistoryfetch", limits.maxHistory, current.maxHistory),
      archive: limits.archive === true && booleanValue(form, F("enablearchiving"), current.archive),
    };
    if (next.maxUsers < 1) throw new FormValueError(F("maxusers"), `${F("maxusers")} must be at least 1`);
    // The password: a submitted secret replaces it; "protected" off clears it; "protected" on needs one.
    const secret = has(F("roomsecret")) ? (textValue(form, F("roomsecret")) ?? "") : current.password;
    const protectedRoom = booleanValue(form, F("passwordprotectedroom"), has(F("roomsecret")) ? secret !== "" : current.password !== "");
    if (protectedRoom && secret === "") throw new FormValueError(F("roomsecret"), "a password-protected room needs a password");
    next.password = protectedRoom ? secret : "";
    return next;
  } catch (err) {
    if (err instanceof FormValueError) throw new StanzaError("not-acceptable", { text: err.message });
    throw err;
  }
}
