// XEP-0268: Incident Handling v0.6 <https://xmpp.org/extensions/xep-0268.html> §2 interactions (report, inquiry,
// request, response) carrying RFC 5070 IODEF documents, accepted only from peers our admins trust (XEP-0267 server
// roster); a report never changes configuration, admins are told. Wire format and rules: docs/trust-uses.md.
import { Element, serialize, x } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { NS_CLIENT } from "../../xmpp/ns.ts";
import { tryParseJid } from "../../xmpp/jid.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import type { IncidentKind, IncidentRecord, IncidentStatus } from "../../storage/types.ts";
import type { ServerRoster } from "../server-buddies/api.ts";

export const NS_INCIDENT = "urn:xmpp:incident:2";
/** RFC 5070 (IODEF 1) and RFC 7970 (IODEF 2) namespaces; either is accepted as the payload. */
export const NS_IODEF = "urn:ietf:params:xml:ns:iodef-1.0";
export const NS_IODEF2 = "urn:ietf:params:xml:ns:iodef-2.0";

/** The IQ type each interaction travels in (XEP-0268 §2). */
export const INCIDENT_IQ_TYPE: Record<IncidentKind, "get" | "set"> = { report: "set", inquiry: "get", request: "get", response: "set" };
export const INCIDENT_KINDS = Object.keys(INCIDENT_IQ_TYPE) as IncidentKind[];

/** Held interactions kept per untrusted peer before further ones are refused (a flood stays harmless). */
const MAX_HELD_PER_PEER = 50;
/** Admins are told about held interactions from one peer at most this often. */
const HELD_NOTICE_INTERVAL_MS = 60 * 60 * 1000;

const isIodef = (el: Element): boolean => el.xmlns === NS_IODEF || el.xmlns === NS_IODEF2;

/** The IODEF element (Incident or IODEF-Document) inside an interaction wrapper, or undefined. */
export function iodefOf(wrapper: Element): Element | undefined {
  return wrapper.elements.find(isIodef);
}

/** The IncidentID text of an IODEF Incident or of the first Incident of an IODEF-Document (RFC 5070 §3.3), or null. */
export function incidentIdOf(iodef: Element): string | null {
  const incident = iodef.name === "Incident" ? iodef : iodef.getChild("Incident", iodef.xmlns);
  const id = incident?.getChild("IncidentID", iodef.xmlns)?.text().trim();
  return id === undefined || id === "" ? null : id;
}

/** Parse an IODEF document given by an admin (a file's contents); throws an Error saying what is wrong. */
export function parseIodef(text: string): Element {
  let el: Element;
  try {
    el = parseXml(text.replace(/^\uFEFF/, "").replace(/^\s*<\?xml[^>]*\?>/, "").trim());
  } catch (err) {
    throw new Error(`the IODEF document is not well-formed XML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isIodef(el)) throw new Error(`the IODEF document's root must be in ${NS_IODEF} (RFC 5070) or ${NS_IODEF2}; got <${el.name} xmlns='${el.xmlns}'>`);
  if (el.name !== "Incident" && el.name !== "IODEF-Document") throw new Error(`the IODEF root must be <Incident/> or <IODEF-Document/>, got <${el.name}/>`);
  return el;
}

/** A stored record without its payload (what `incidents.list` returns). */
export type IncidentSummary = Omit<IncidentRecord, "payload">;

function summary(r: IncidentRecord): IncidentSummary {
  const { payload: _payload, ...rest } = r;
  return rest;
}

function setup(ctx: ModuleContext): void {
  const host = ctx.host;
  const store = ctx.storage.incidents;
  const roster = (): ServerRoster | undefined => ctx.use<ServerRoster>("server-roster");
  const lastHeldNotice = new Map<string, number>();

  ctx.addFeature(NS_INCIDENT);

  /** A message to every admin JID (stored offline when they are away). */
  function notifyAdmins(text: string): void {
    for (const admin of ctx.hostConfig.admins) ctx.send(x("message", NS_CLIENT, { from: host, to: admin, type: "normal" }, x("body", NS_CLIENT, {}, text)));
  }

  for (const kind of INCIDENT_KINDS) {
    ctx.handleIq(INCIDENT_IQ_TYPE[kind], "host", NS_INCIDENT, kind, async (_iq, { origin, payload }) => {
      const peer = origin.jid.domain;
      const fromPeer = origin.kind === "s2s";
      const trusted = fromPeer && (roster()?.trusts(peer) ?? false);
      const iodef = iodefOf(payload);
      if (!trusted) {
        // XEP-0268 §8 lets a server take reports from others "with caution": only when configured, and only held.
        if (fromPeer && ctx.config.incidents.untrusted === "hold" && iodef) {
          const held = (await store.list(host, { status: "held" })).filter((r) => r.peer === peer).length;
          if (held < MAX_HELD_PER_PEER) {
            const rec = await store.add({ host, peer, direction: "in", kind, incidentId: incidentIdOf(iodef), status: "held", payload: serialize(iodef), at: Date.now(), note: "peer not trusted" });
            ctx.log.warn({ peer, kind, id: rec.id }, "incidents: held an interaction from an untrusted peer for review");
            const last = lastHeldNotice.get(peer) ?? 0;
            if (Date.now() - last > HELD_NOTICE_INTERVAL_MS) {
              lastHeldNotice.set(peer, Date.now());
              notifyAdmins(`Incident ${kind} from ${peer}, which we do not trust, is held for review (#${rec.id}). See: comity incidents show ${rec.id}`);
            }
            return;
          }
        }
        ctx.log.info({ peer, kind, via: origin.kind }, "incidents: refused an interaction from a peer we do not trust");
        throw new StanzaError("forbidden");
      }
      if (!iodef) throw new StanzaError("bad-request", { text: `<${kind}/> must carry an IODEF document` });
      const rec = await store.add({ host, peer, direction: "in", kind, incidentId: incidentIdOf(iodef), status: "accepted", payload: serialize(iodef), at: Date.now(), note: null });
      ctx.log.warn({ peer, kind, id: rec.id, incidentId: rec.incidentId }, "incidents: interaction from a trusted peer stored");
      // XEP-0268: never acted on automatically; a person decides.
      notifyAdmins(`Incident ${kind} from ${peer}${rec.incidentId ? ` (IncidentID ${rec.incidentId})` : ""} stored as #${rec.id}. See: comity incidents show ${rec.id}`);
      return;
    });
  }

  /** Send an interaction to a peer and record how it went. */
  async function send(params: Record<string, unknown>): Promise<IncidentRecord> {
    const peerRaw = params["peer"];
    const kind = params["kind"];
    const text = params["payload"];
    if (typeof peerRaw !== "string") throw new Error("peer: a domain is required");
    const peerJid = tryParseJid(peerRaw);
    if (!peerJid || peerJid.local !== "" || peerJid.resource !== "") throw new Error(`peer must be a server domain, got ${peerRaw}`);
    const peer = peerJid.domain;
    if (peer === host) throw new Error(`${peer} is this host`);
    if (typeof kind !== "string" || !(INCIDENT_KINDS as string[]).includes(kind)) throw new Error(`kind must be one of ${INCIDENT_KINDS.join(", ")}`);
    if (typeof text !== "string") throw new Error("payload: the IODEF document is required");
    const iodef = parseIodef(text);
    // XEP-0268 §2: send only to peers we trust; an admin can insist (e.g. to answer a held inquiry).
    if (params["force"] !== true && !(roster()?.trusts(peer) ?? false)) {
      throw new Error(`${peer} is not a trusted peer (comity buddies list); pass --force to send anyway`);
    }
    const k = kind as IncidentKind;
    const iq = x("iq", NS_CLIENT, { type: INCIDENT_IQ_TYPE[k], from: host, to: peer }, x(k, NS_INCIDENT, {}, iodef));
    let status: IncidentStatus = "sent";
    let note: string | null = null;
    try {
      await ctx.request(iq, typeof params["timeout_ms"] === "number" ? params["timeout_ms"] : 30_000);
    } catch (err) {
      status = "failed";
      note = err instanceof StanzaError ? err.condition : err instanceof Error ? err.message : String(err);
    }
    const rec = await store.add({ host, peer, direction: "out", kind: k, incidentId: incidentIdOf(iodef), status, payload: serialize(iodef), at: Date.now(), note });
    ctx.log.info({ peer, kind, id: rec.id, status, note }, "incidents: interaction sent");
    return rec;
  }

  const idParam = (params: Record<string, unknown>): number => {
    const id = typeof params["id"] === "string" ? Number(params["id"]) : params["id"];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 1) throw new Error("id: a positive incident number is required");
    return id;
  };

  ctx.addControlMethod("incidents.send", send);
  ctx.addControlMethod("incidents.list", async (params) => {
    const status = typeof params["status"] === "string" ? (params["status"] as IncidentStatus) : undefined;
    const limit = typeof params["limit"] === "number" ? params["limit"] : undefined;
    return (await store.list(host, { ...(status ? { status } : {}), ...(limit !== undefined ? { limit } : {}) })).map(summary);
  });
  ctx.addControlMethod("incidents.show", async (params) => {
    const rec = await store.get(host, idParam(params));
    if (!rec) throw new Error(`no incident #${String(params["id"])} on ${host}`);
    return rec;
  });
  // A person reviewed a held interaction and accepts it as if the peer were trusted (it still changes nothing).
  ctx.addControlMethod("incidents.accept", async (params) => {
    const id = idParam(params);
    const rec = await store.get(host, id);
    if (!rec) throw new Error(`no incident #${id} on ${host}`);
    if (rec.status !== "held") throw new Error(`incident #${id} is ${rec.status}, not held`);
    await store.setStatus(host, id, "accepted", `accepted by ${typeof params["actor"] === "string" ? params["actor"] : "an admin"}`);
    return summary((await store.get(host, id))!);
  });
}

export default defineModule({
  name: "incidents",
  protocol: [{ xep: 268, version: "0.6" }],
  setup,
});
