// XMPP over BOSH (XEP-0206, on XEP-0124) at /http-bind of the HTTP listener, for web clients that cannot keep a
// WebSocket (or prefer not to). This file is the HTTP side: CORS, body size, parsing the <body/> wrapper, session
// creation (§7) and finding a request's session by 'sid'. Each BOSH session is an ordinary c2s session
// (src/core/c2s.ts) on a BoshConnection (./bosh-connection.ts), which keeps the rid window, the held requests and
// the timers. Guide: docs/bosh.md.
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { C2sSession } from "../core/c2s.ts";
import { FastStreamParser } from "../xml/fast-parser.ts";
import { XmlError, type ParserLimits } from "../xml/parser.ts";
import type { Element } from "../xml/element.ts";
import { StreamError } from "../xmpp/errors.ts";
import { prepareDomain } from "../xmpp/jid.ts";
import { sendText, type HttpService } from "./server.ts";
import type { BoshDeps } from "./deps.ts";
import {
  BOSH_VERSION,
  BoshConnection,
  NS_HTTPBIND,
  NS_XBOSH,
  answer,
  terminateBody,
  type BoshRequest,
  type BoshSessionParams,
  type TerminalCondition,
} from "./bosh-connection.ts";

export const BOSH_PATH = "/http-bind";
/** Room for the <body/> wrapper and several stanzas around the largest single stanza a request may carry. */
const BODY_MARGIN = 65536;
/** XEP-0124 §14.1: rids stay below 2^53. */
const RID = /^[0-9]{1,16}$/;
const UINT = /^[0-9]{1,9}$/;

/** The request is not a BOSH <body/> at all (HTTP 400, §17.1: there is nothing to answer it within). */
class NotBosh extends Error {}

interface Parsed {
  attrs: Record<string, string>;
  /** A urn:xmpp:xbosh attribute (xmpp:version, xmpp:restart) under whatever prefix the client bound. */
  xbosh(local: string): string | undefined;
  elements: Element[];
}

/**
 * Parse one request body with the restricted stream parser (no DOCTYPE, comments, PIs; UTF-8; the stanza limits of
 * the session it names, or the pre-authentication ones when it names none).
 */
function parseBody(data: Buffer, limitsFor: (sid: string | undefined) => Partial<ParserLimits>): Parsed {
  let attrs: Record<string, string> | undefined;
  let ns: Record<string, string> = {};
  let closed = false;
  const elements: Element[] = [];
  const parser: FastStreamParser = new FastStreamParser({
    rootOpen: (name, uri, a, declared) => {
      if (name !== "body" || uri !== NS_HTTPBIND) throw new NotBosh(`expected <body xmlns='${NS_HTTPBIND}'/>`);
      attrs = a;
      ns = declared;
      Object.assign(parser.limits, limitsFor(a["sid"]));
    },
    element: (el) => elements.push(el),
    rootClose: () => {
      closed = true;
    },
  });
  parser.write(data);
  if (!attrs || !closed) throw new NotBosh("the request must be one complete <body/> element");
  const a: Record<string, string> = attrs;
  const prefix = Object.keys(ns).find((p) => p !== "" && ns[p] === NS_XBOSH) ?? Object.keys(a).find((k) => k.startsWith("xmlns:") && a[k] === NS_XBOSH)?.slice(6);
  return { attrs: a, elements, xbosh: (local) => (prefix === undefined ? undefined : a[`${prefix}:${local}`]) };
}

/** The highest protocol version both sides speak (§7.2 'ver'). */
function negotiateVersion(client: string | undefined): string {
  if (client === undefined || !/^1\.\d{1,3}$/.test(client)) return BOSH_VERSION;
  const minor = Number(client.slice(2));
  return minor < Number(BOSH_VERSION.slice(2)) ? client : BOSH_VERSION;
}

/** Mount /http-bind on the HTTP service. */
export function mountBosh(http: HttpService, deps: BoshDeps): void {
  const config = deps.c2s.config;
  const cfg = config.http.bosh;
  const log = deps.c2s.log;
  const origins = new Set(cfg.origins);
  const maxBody = config.c2s.max_stanza_size + BODY_MARGIN;
  const preauth: Partial<ParserLimits> = {
    maxStanzaSize: config.c2s.max_stanza_size_preauth,
    maxDepth: config.limits.max_depth,
    maxChildren: config.limits.max_children,
    maxAttributes: config.limits.max_attributes,
  };
  const sessions = new Map<string, BoshConnection>();

  /** CORS (Fetch standard): which origin may read our answers; undefined when this origin is not allowed. */
  const corsHeaders = (req: IncomingMessage): Record<string, string> | undefined => {
    const origin = req.headers.origin;
    if (origins.size === 0) return { "access-control-allow-origin": "*" };
    if (origin === undefined) return {}; // not a browser: CORS does not apply
    if (!origins.has(origin)) return undefined;
    return { "access-control-allow-origin": origin, vary: "Origin" };
  };

  const create = (parsed: Parsed, req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, rid: number): void => {
    const a = parsed.attrs;
    const refuse = (condition: TerminalCondition, why: string) => {
      log.debug({ condition, why, remote: http.clientAddress(req) }, "bosh session refused");
      answer(res, headers, terminateBody(condition));
    };
    // §7.1: 'to', 'wait' and 'hold' are required; XEP-0206 §4 names the XMPP domain in 'to'.
    const toAttr = a["to"];
    if (toAttr === undefined || toAttr === "") return refuse("improper-addressing", "no 'to'");
    let to: string;
    try {
      to = prepareDomain(toAttr);
    } catch {
      return refuse("host-unknown", "invalid 'to'");
    }
    if (!deps.c2s.hosts.has(to)) return refuse("host-unknown", `${to} is not served here`);
    const wait = a["wait"];
    const hold = a["hold"];
    if (wait === undefined || hold === undefined || !UINT.test(wait) || !UINT.test(hold)) return refuse("bad-request", "'wait' and 'hold' must be non-negative integers");
    const holdUsed = Math.min(Number(hold), cfg.max_hold);
    const params: BoshSessionParams = {
      sid: randomBytes(18).toString("base64url"),
      wait: Math.min(Number(wait), cfg.max_wait),
      hold: holdUsed,
      // §11 recommends hold + 1, so that the client can always send while we hold.
      requests: holdUsed + 1,
      // §12: a polling session (hold 0) gets an inactivity period longer than its polling interval.
      inactivity: Math.max(cfg.inactivity, cfg.polling + 1),
      polling: cfg.polling,
      ver: negotiateVersion(a["ver"]),
      maxQueuedStanzas: cfg.max_queued_stanzas,
      maxQueuedBytes: cfg.max_queued_bytes,
      secure: http.isSecure(req),
    };
    const remoteAddress = http.clientAddress(req);
    let conn: BoshConnection | undefined;
    const session: C2sSession = new C2sSession((handlers, opts) => {
      conn = new BoshConnection(handlers, {
        ...opts,
        remoteAddress,
        params,
        onGone: () => {
          sessions.delete(params.sid);
          deps.untrack(session);
        },
      });
      return conn;
    }, deps.c2s);
    sessions.set(params.sid, conn!);
    deps.track(session);
    log.debug({ remote: remoteAddress, secure: params.secure, wait: params.wait, hold: params.hold }, "bosh session created");
    conn!.start(
      { rid, elements: parsed.elements, terminate: false, restart: false, to: undefined, lang: undefined, ack: undefined, res, headers },
      { to, lang: a["xml:lang"], version: parsed.xbosh("version"), from: a["from"] },
    );
  };

  const post = async (req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): Promise<void> => {
    const declared = Number(req.headers["content-length"] ?? "0");
    const tooLarge = () => {
      res.once("finish", () => req.destroy());
      sendText(res, 413, `a BOSH request body may hold at most ${maxBody} bytes\n`, undefined, { ...headers, connection: "close" });
    };
    if (declared > maxBody) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBody) return tooLarge();
        chunks.push(chunk);
      }
    } catch (err) {
      // The client went away mid-request (or sent broken chunking): nobody is left to answer.
      log.debug({ err, remote: http.clientAddress(req) }, "bosh request not read");
      return;
    }
    let parsed: Parsed;
    let sid: string | undefined;
    try {
      parsed = parseBody(Buffer.concat(chunks), (s) => {
        sid = s;
        const conn = s === undefined ? undefined : sessions.get(s);
        return conn ? conn.limits : preauth;
      });
    } catch (err) {
      const conn = sid === undefined ? undefined : sessions.get(sid);
      if (conn && err instanceof XmlError) {
        // Inside a session, bad XML or a stanza over the limits ends the stream as it would on TCP (RFC 6120 §4.9).
        conn.fail(res, headers, new StreamError(err.condition, { text: err.message }));
        return;
      }
      const why = err instanceof NotBosh || err instanceof XmlError ? err.message : "unreadable request";
      log.debug({ remote: http.clientAddress(req), why }, "bosh request refused");
      // Nothing to answer within: HTTP 400 with the terminal condition too, for clients that read only the body.
      answer(res, headers, terminateBody("bad-request"), 400);
      return;
    }
    const a = parsed.attrs;
    const ridAttr = a["rid"];
    const rid = ridAttr !== undefined && RID.test(ridAttr) ? Number(ridAttr) : undefined;
    if (sid === undefined) {
      if (rid === undefined || rid > Number.MAX_SAFE_INTEGER) {
        answer(res, headers, terminateBody("bad-request"));
        return;
      }
      if (deps.stopping?.()) {
        answer(res, headers, terminateBody("system-shutdown"));
        return;
      }
      create(parsed, req, res, headers, rid);
      return;
    }
    const conn = sessions.get(sid);
    if (!conn) {
      // §17.2 item-not-found: no such session (never was, or ended).
      answer(res, headers, terminateBody("item-not-found"));
      return;
    }
    if (rid === undefined || rid > Number.MAX_SAFE_INTEGER) {
      conn.terminate("bad-request", res, headers, "missing or invalid rid");
      return;
    }
    const ackAttr = a["ack"];
    const type = a["type"];
    const request: BoshRequest = {
      rid,
      elements: parsed.elements,
      terminate: type === "terminate",
      restart: parsed.xbosh("restart") === "true",
      to: a["to"],
      lang: a["xml:lang"],
      ack: ackAttr !== undefined && RID.test(ackAttr) ? Number(ackAttr) : undefined,
      res,
      headers,
    };
    conn.handle(request);
  };

  http.mount(BOSH_PATH, async (req, res, url) => {
    if (url.pathname !== BOSH_PATH) {
      sendText(res, 404, "not found\n");
      return;
    }
    const headers = corsHeaders(req);
    if (!headers) {
      // Only browsers send Origin; other clients are not restricted by it.
      sendText(res, 403, "this origin may not use BOSH here\n");
      return;
    }
    if (req.method === "OPTIONS") {
      // CORS preflight: a browser asks before POSTing text/xml from another origin.
      res.writeHead(204, {
        ...headers,
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "Content-Type",
        "access-control-max-age": "86400",
      });
      res.end();
      return;
    }
    if (req.method !== "POST") {
      sendText(res, 405, "XMPP over BOSH (XEP-0206): POST <body xmlns='http://jabber.org/protocol/httpbind'/> requests here\n", undefined, {
        ...headers,
        allow: "POST, OPTIONS",
      });
      return;
    }
    await post(req, res, headers);
  });
}
