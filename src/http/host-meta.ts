// XEP-0156 (Discovering Alternative XMPP Connection Methods) §3: /.well-known/host-meta (XRD, RFC 6415) and
// /.well-known/host-meta.json (JRD, RFC 7033 format) name the WebSocket endpoint (RFC 7395 §4), so that a browser
// client given only a JID finds where to connect, and the BOSH endpoint (XEP-0206) for clients that use it.
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendText, type HttpService } from "./server.ts";
import { WEBSOCKET_PATH } from "./websocket.ts";
import { BOSH_PATH } from "./bosh.ts";

export const REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket";
/** XEP-0156 §3: the link relation of a BOSH (XEP-0206) endpoint. */
export const REL_BOSH = "urn:xmpp:alt-connections:xbosh";

export interface HostMetaOptions {
  /** The WebSocket URL to publish as configured (`http.websocket_url`); unset: derived from each request. */
  websocketUrl?: string | undefined;
  /** Whether a plaintext ws:// stream may log in at all (c2s.encryption: optional); if not, only wss:// is named. */
  plaintextAllowed: boolean;
  /** Publish the WebSocket endpoint (`http.websocket`); default true. */
  websocket?: boolean;
  /** Publish the BOSH endpoint (`http.bosh.enabled`); default false. */
  bosh?: boolean;
  /** The BOSH URL as configured (`http.bosh.url`); unset: derived from each request. */
  boshUrl?: string | undefined;
}

/** A Host header we are willing to echo into a URL: a DNS name, IPv4 or bracketed IPv6, optional port. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The WebSocket URL for this request, or undefined when none may be published to it. */
export function websocketUrlFor(http: HttpService, req: IncomingMessage, opts: HostMetaOptions): string | undefined {
  if (opts.websocketUrl) return opts.websocketUrl;
  const host = req.headers.host;
  if (typeof host !== "string" || !HOST_RE.test(host)) return undefined;
  const secure = http.isSecure(req);
  if (!secure && !opts.plaintextAllowed) return undefined;
  return `${secure ? "wss" : "ws"}://${host.toLowerCase()}${WEBSOCKET_PATH}`;
}

/** The BOSH URL for this request (https:// + Host + /http-bind), or undefined when none may be published to it. */
export function boshUrlFor(http: HttpService, req: IncomingMessage, opts: HostMetaOptions): string | undefined {
  if (opts.boshUrl) return opts.boshUrl;
  const host = req.headers.host;
  if (typeof host !== "string" || !HOST_RE.test(host)) return undefined;
  const secure = http.isSecure(req);
  if (!secure && !opts.plaintextAllowed) return undefined;
  return `${secure ? "https" : "http"}://${host.toLowerCase()}${BOSH_PATH}`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/'/g, "&apos;").replace(/"/g, "&quot;");
}

/** The XRD document (RFC 6415 §3) with the links given. */
export function hostMetaXrd(links: { rel: string; href: string }[]): string {
  const body = links.map((l) => `  <Link rel="${escapeXml(l.rel)}" href="${escapeXml(l.href)}"/>\n`).join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n${body}</XRD>\n`;
}

/** The JSON form of the same document (RFC 6415 Appendix A). */
export function hostMetaJrd(links: { rel: string; href: string }[]): string {
  return JSON.stringify({ links: links.map((l) => ({ rel: l.rel, href: l.href })) }) + "\n";
}

/** Mount both documents. Any origin may read them (XEP-0156 §3.2.2: browsers fetch them cross-origin). */
export function mountHostMeta(http: HttpService, opts: HostMetaOptions): void {
  const serve = (json: boolean) => (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const headers = { "access-control-allow-origin": "*", "cache-control": "max-age=3600" };
    if (url.pathname !== (json ? "/.well-known/host-meta.json" : "/.well-known/host-meta")) {
      sendText(res, 404, "not found\n");
      return;
    }
    if (req.method === "OPTIONS") {
      res.writeHead(204, { ...headers, "access-control-allow-methods": "GET, HEAD, OPTIONS", "access-control-max-age": "86400" });
      res.end();
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendText(res, 405, "method not allowed\n", undefined, { allow: "GET, HEAD, OPTIONS" });
      return;
    }
    const links: { rel: string; href: string }[] = [];
    const ws = opts.websocket === false ? undefined : websocketUrlFor(http, req, opts);
    if (ws) links.push({ rel: REL_WEBSOCKET, href: ws });
    const bosh = opts.bosh === true ? boshUrlFor(http, req, opts) : undefined;
    if (bosh) links.push({ rel: REL_BOSH, href: bosh });
    const body = json ? hostMetaJrd(links) : hostMetaXrd(links);
    const type = json ? "application/json; charset=utf-8" : "application/xrd+xml; charset=utf-8";
    if (req.method === "HEAD") {
      res.writeHead(200, { "content-type": type, "content-length": Buffer.byteLength(body), ...headers });
      res.end();
      return;
    }
    sendText(res, 200, body, type, headers);
  };
  http.mount("/.well-known/host-meta", serve(false));
  http.mount("/.well-known/host-meta.json", serve(true));
}
