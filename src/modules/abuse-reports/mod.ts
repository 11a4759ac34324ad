// XEP-0377: Blocking Command Reports <https://xmpp.org/extensions/xep-0377.html> §3 disco, §4 payload, §5
// report-origin opt-in: a local user's report about a remote account is forwarded to that server when our admins
// trust it (XEP-0267 server roster), to its XEP-0157 abuse address; forwarded reports about our accounts are
// counted when they come from a trusted peer. Wire format and rules: docs/trust-uses.md.
import { Element, serialize, x } from "../../xml/element.ts";
import { NS_CLIENT, NS_DATA, NS_DISCO_INFO, NS_SERVERINFO } from "../../xmpp/ns.ts";
import { tryParseJid, type Jid } from "../../xmpp/jid.ts";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { HANDLED, type HookResult, type StanzaEvent } from "../../core/events.ts";
import type { ServerRoster } from "../server-buddies/api.ts";

export const NS_REPORTING = "urn:xmpp:reporting:1";
/** XEP-0377 reasons. */
export const REASON_SPAM = "urn:xmpp:reporting:spam";
export const REASON_ABUSE = "urn:xmpp:reporting:abuse";
/** The element carrying the reported address in a forwarded report (urn:xmpp:jid:0). */
export const NS_JID = "urn:xmpp:jid:0";
const NS_SID = "urn:xmpp:sid:0";

/** How long a peer's published abuse address is remembered. */
const ABUSE_ADDRESS_TTL_MS = 60 * 60 * 1000;
const DISCO_TIMEOUT_MS = 10_000;

/**
 * The first xmpp: abuse address in a disco#info result (XEP-0157 form in the XEP-0128 extension), as a JID, or
 * undefined. Query parts of the URI (`?message`) are ignored.
 */
export function abuseAddressFrom(query: Element | undefined): Jid | undefined {
  if (!query) return undefined;
  for (const form of query.getChildren("x", NS_DATA)) {
    const fields = form.getChildren("field", NS_DATA);
    const formType = fields.find((f) => f.attrs["var"] === "FORM_TYPE")?.getChildText("value", NS_DATA)?.trim();
    if (formType !== NS_SERVERINFO) continue;
    const abuse = fields.find((f) => f.attrs["var"] === "abuse-addresses");
    for (const v of abuse?.getChildren("value", NS_DATA) ?? []) {
      const uri = v.text().trim();
      if (!uri.toLowerCase().startsWith("xmpp:")) continue;
      let addr = uri.slice(5).split("?")[0] ?? "";
      if (addr.startsWith("//")) continue; // xmpp://authority/... names an account to act as, not a target
      try {
        addr = decodeURIComponent(addr);
      } catch {
        continue;
      }
      const jid = tryParseJid(addr);
      if (jid) return jid.bare;
    }
  }
  return undefined;
}

/**
 * The report as we forward it: reason, texts and stanza-ids only; the opt-in elements and anything else the
 * reporter's client added stay home (the reporter's identity is never sent).
 */
export function forwardedReport(report: Element): Element {
  const out = new Element("report", NS_REPORTING, { reason: report.attrs["reason"] ?? REASON_ABUSE });
  for (const c of report.elements) {
    if ((c.name === "text" && c.xmlns === NS_REPORTING) || (c.name === "stanza-id" && c.xmlns === NS_SID)) out.children.push(c.clone());
  }
  return out;
}

/** The `<message/>` sent to a peer's abuse address (docs/trust-uses.md "Abuse reports"). */
export function reportMessage(opts: { from: string; to: string; reported: Jid; report: Element; id: string }): Element {
  const fwd = forwardedReport(opts.report);
  const reason = fwd.attrs["reason"] === REASON_SPAM ? "spam" : fwd.attrs["reason"] === REASON_ABUSE ? "abuse" : fwd.attrs["reason"]!;
  const text = fwd.getChildText("text", NS_REPORTING)?.trim();
  const body = `A user of ${opts.from} reported ${opts.reported.toString()} for ${reason}${text ? `: ${text}` : "."}`;
  return x(
    "message",
    NS_CLIENT,
    { from: opts.from, to: opts.to, type: "normal", id: opts.id },
    x("body", NS_CLIENT, {}, body),
    fwd,
    x("jid", NS_JID, {}, opts.reported.toString()),
  );
}

let idCounter = 0;

function setup(ctx: ModuleContext): void {
  const host = ctx.host;
  const store = ctx.storage.abuseReports;
  const roster = (): ServerRoster | undefined => ctx.use<ServerRoster>("server-roster");
  const trusts = (peer: string): boolean => roster()?.trusts(peer) ?? false;
  const addresses = new Map<string, { jid: Jid | undefined; at: number }>();

  ctx.addFeature(NS_REPORTING);
  ctx.addFeature(NS_REPORTING, "account");

  /** The peer's published abuse address (XEP-0157), asked once an hour; undefined when none or no answer. */
  async function abuseAddress(peer: string): Promise<Jid | undefined> {
    const cached = addresses.get(peer);
    if (cached && Date.now() - cached.at < ABUSE_ADDRESS_TTL_MS) return cached.jid;
    let jid: Jid | undefined;
    try {
      const result = await ctx.request(x("iq", NS_CLIENT, { type: "get", from: host, to: peer }, x("query", NS_DISCO_INFO)), DISCO_TIMEOUT_MS);
      jid = abuseAddressFrom(result.getChild("query", NS_DISCO_INFO));
    } catch (err) {
      ctx.log.info({ peer, err: err instanceof Error ? err.message : String(err) }, "abuse-reports: disco#info of peer failed; using its domain");
    }
    addresses.set(peer, { jid, at: Date.now() });
    return jid;
  }

  /** Forward a report to the reported account's server (only with report-origin, only to trusted peers). */
  async function forward(user: Jid, reported: Jid, report: Element): Promise<void> {
    const peer = reported.domain;
    const target = (await abuseAddress(peer)) ?? tryParseJid(peer)!;
    const id = `abuse-${Date.now().toString(36)}-${(++idCounter).toString(36)}`;
    ctx.send(reportMessage({ from: host, to: target.toString(), reported: reported.bare, report, id }));
    ctx.log.info({ user: user.toString(), reported: reported.toString(), to: target.toString() }, "abuse-reports: report forwarded to the peer");
  }

  const sink = {
    submit(user: Jid, reported: Jid, report: Element): void {
      const log = { user: user.toString(), reported: reported.toString(), reason: report.attrs["reason"] ?? null };
      if (!report.getChild("report-origin", NS_REPORTING)) {
        ctx.log.info(log, "abuse-reports: report kept local (no report-origin opt-in)");
        return;
      }
      if (reported.local === "") {
        ctx.log.info(log, "abuse-reports: report-origin needs a remote account; not forwarded");
        return;
      }
      if (reported.domain === host) {
        ctx.log.info(log, "abuse-reports: reported account is local; not forwarded");
        return;
      }
      if (!trusts(reported.domain)) {
        ctx.log.info({ ...log, peer: reported.domain }, "abuse-reports: peer not trusted; report not forwarded");
        return;
      }
      void forward(user, reported, report).catch((err: unknown) => ctx.log.warn({ ...log, err }, "abuse-reports: forwarding failed"));
    },
  };
  ctx.provide("abuse-reports", sink);

  /** Admins hear of each counted report (a message to every admin JID, kept offline when they are away). */
  function notifyAdmins(text: string): void {
    for (const admin of ctx.hostConfig.admins) ctx.send(x("message", NS_CLIENT, { from: host, to: admin, type: "normal" }, x("body", NS_CLIENT, {}, text)));
  }

  // A peer forwards a report about one of our accounts: to the host JID or to an abuse address that is a local account.
  const inbound = async ({ stanza, to, origin }: StanzaEvent): Promise<HookResult> => {
    const report = stanza.getChild("report", NS_REPORTING);
    const jidEl = stanza.getChild("jid", NS_JID);
    if (!report || !jidEl || stanza.attrs["type"] === "error") return;
    const atHost = to?.local === "";
    if (origin.kind !== "s2s") return; // local users report through XEP-0191 blocking instead
    const peer = origin.jid.domain;
    const reported = tryParseJid(jidEl.text().trim());
    const reason = report.attrs["reason"] ?? "";
    const log = { peer, reported: reported?.toString() ?? jidEl.text().trim(), reason };
    if (!reported || reported.domain !== host || reported.local === "") {
      ctx.log.info(log, "abuse-reports: forwarded report is not about an account here; ignored");
      return atHost ? HANDLED : undefined;
    }
    if (!trusts(peer)) {
      ctx.log.warn(log, "abuse-reports: report from an untrusted peer; logged, not counted");
      return atHost ? HANDLED : undefined;
    }
    const account = reported.bare.toString();
    const text = report.getChildText("text", NS_REPORTING)?.trim() ?? null;
    await store.add({ host, account, peer, reason, text: text === "" ? null : text, payload: serialize(report), at: Date.now() });
    const count = (await store.counts(host)).find((c) => c.account === account)?.count ?? 1;
    ctx.log.warn({ ...log, count }, "abuse-reports: report about a local account from a trusted peer");
    notifyAdmins(`Abuse report from ${peer} about ${account} (${reason || "no reason"}${text ? `: ${text}` : ""}); ${count} report(s) so far. See: comity abuse list`);
    // At the host JID it is consumed; at an abuse mailbox it is also delivered to whoever reads it.
    return atHost ? HANDLED : undefined;
  };
  ctx.hook("message/host", inbound, 50);
  ctx.hook("message/bare", inbound, 50);

  ctx.addControlMethod("abuse.list", async (params) => {
    const account = typeof params["account"] === "string" ? params["account"] : undefined;
    const limit = typeof params["limit"] === "number" ? params["limit"] : 100;
    return {
      host,
      counts: await store.counts(host),
      reports: await store.list(host, { ...(account !== undefined ? { account } : {}), limit }),
    };
  });
}

export default defineModule({
  name: "abuse-reports",
  protocol: [{ xep: 377, version: "0.4.1" }, { xep: 157, version: "1.1.1" }],
  setup,
});
