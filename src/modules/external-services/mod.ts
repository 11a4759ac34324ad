// XEP-0215: External Service Discovery <https://xmpp.org/extensions/xep-0215.html> (v1.0.0): §2 the <service/>
// attributes, §3.1 requesting all services, §3.2 requesting services of one type, §3.3 requesting credentials, §5
// the disco#info feature. TURN credentials follow the TURN REST scheme (draft-uberti-behave-turn-rest-00 §2.2), which
// coturn's `use-auth-secret` checks: username `<expiry unix time>:<bare JID>`, password base64(HMAC-SHA1(secret,
// username)). The TURN server needs no call back to us: it recomputes the password and refuses an expired username.
import { createHmac } from "node:crypto";
import { Element } from "../../xml/element.ts";
import { defineModule, type Origin } from "../../core/module-api.ts";
import type { HostConfig } from "../../core/config/schema.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import type { Jid } from "../../xmpp/jid.ts";

export const NS_EXTDISCO = "urn:xmpp:extdisco:2";

export type ExternalService = HostConfig["external_services"][number];

/** Credentials in the TURN REST scheme: valid until `expires` (ms since the epoch). */
export interface TurnCredentials {
  username: string;
  password: string;
  expires: number;
}

/**
 * Time-limited credentials for `user` (a bare JID; RFC 7622 §3.3.1 keeps ':' out of localparts, so the expiry is
 * the only text before the first ':'). The expiry is a whole second, as the TURN server compares it with its clock.
 */
export function turnCredentials(secret: string, user: string, ttlSeconds: number, now = Date.now()): TurnCredentials {
  const expiry = Math.floor(now / 1000) + ttlSeconds;
  const username = `${expiry}:${user}`;
  const password = createHmac("sha1", secret).update(username).digest("base64");
  return { username, password, expires: expiry * 1000 };
}

/** XEP-0082 DateTime in UTC, whole seconds (XEP-0215 §2: `expires` MUST be in UTC). */
function dateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The <service/> element for one configured service; with credentials when `user` is given and it has a secret. */
export function serviceElement(s: ExternalService, user: string | undefined, now = Date.now()): Element {
  const attrs: Record<string, string> = { type: s.type, host: s.host, port: String(s.port) };
  const transport = s.transport ?? (s.type === "turns" ? "tcp" : undefined);
  if (transport !== undefined) attrs["transport"] = transport;
  if (s.name !== undefined) attrs["name"] = s.name;
  if (s.secret !== undefined) {
    // §2 `restricted`: credentials are needed and, when absent, can be asked for with <credentials/> (§3.3).
    attrs["restricted"] = "true";
    if (user !== undefined) {
      const c = turnCredentials(s.secret, user, s.ttl, now);
      attrs["username"] = c.username;
      attrs["password"] = c.password;
      attrs["expires"] = dateTime(c.expires);
    }
  }
  return new Element("service", NS_EXTDISCO, attrs);
}

/**
 * Whether `from` may learn the services and get credentials: a client session of one of this host's own accounts.
 * Credentials let anyone relay traffic through the operator's TURN server, so remote users and other hosts' users
 * get `forbidden` (§3: "if the requesting entity does not have permission").
 */
export function isLocalUser(host: string, from: Jid, origin: Origin): boolean {
  return origin.kind === "c2s" && from.domain === host && from.local !== "";
}

/** §3.1/§3.2: the answer to <services/> (optionally of one `type`). */
export function servicesResult(services: readonly ExternalService[], request: Element, user: string, now = Date.now()): Element {
  const type = request.attrs["type"];
  const out = new Element("services", NS_EXTDISCO, type === undefined ? {} : { type });
  for (const s of services) if (type === undefined || s.type === type) out.children.push(serviceElement(s, user, now));
  return out;
}

/**
 * §3.3: the answer to <credentials/>. Each requested <service/> MUST name `host` and `type` (else bad-request) and
 * MAY name `port`; every configured service that matches is returned, with fresh credentials when it has a secret.
 * Nothing matching: item-not-found (§3.3 lists it among the errors).
 */
export function credentialsResult(services: readonly ExternalService[], request: Element, user: string, now = Date.now()): Element {
  const wanted = request.elements.filter((e) => e.name === "service" && e.xmlns === NS_EXTDISCO);
  if (wanted.length === 0) throw new StanzaError("bad-request", { text: "name a <service/> with host and type" });
  const out = new Element("credentials", NS_EXTDISCO);
  const seen = new Set<ExternalService>();
  for (const w of wanted) {
    const host = w.attrs["host"];
    const type = w.attrs["type"];
    if (host === undefined || type === undefined) throw new StanzaError("bad-request", { text: "a <service/> needs host and type" });
    const port = w.attrs["port"];
    for (const s of services) {
      if (seen.has(s) || s.host !== host || s.type !== type || (port !== undefined && String(s.port) !== port)) continue;
      seen.add(s);
      out.children.push(serviceElement(s, user, now));
    }
  }
  if (out.children.length === 0) throw new StanzaError("item-not-found", { text: "no such service here" });
  return out;
}

export default defineModule({
  name: "external-services",
  protocol: [{ xep: 215, version: "1.0.0" }],
  setup(ctx) {
    const services = ctx.hostConfig.external_services;
    if (services.length === 0) return; // nothing to offer: no feature, and the IQs get service-unavailable
    ctx.addFeature(NS_EXTDISCO); // §5
    const check = (from: Jid, origin: Origin): string => {
      if (!isLocalUser(ctx.host, from, origin)) throw new StanzaError("forbidden", { text: "external services are for this server's users" });
      return from.bareString();
    };
    const handlers = {
      services: servicesResult,
      credentials: credentialsResult,
    };
    for (const [name, answer] of Object.entries(handlers)) {
      // §3 "typically to its own server": to the host; a request without `to` (RFC 6120 §10.3.3, handled for the
      // sender's account) is answered the same way, but only for the account's own sessions.
      ctx.handleIq("get", "host", NS_EXTDISCO, name, (_iq, { from, origin, payload }) => answer(services, payload, check(from, origin)));
      ctx.handleIq("get", "account", NS_EXTDISCO, name, (_iq, { from, to, origin, payload }) => {
        if (!from.bare.equals(to.bare)) throw new StanzaError("service-unavailable");
        return answer(services, payload, check(from, origin));
      });
    }
  },
});
