// XMPP over WebSocket (RFC 7395) at /xmpp-websocket of the HTTP listener. The upgrade is taken here (the client
// must offer the `xmpp` subprotocol, §3.1); each accepted WebSocket becomes an ordinary c2s session (src/core/c2s.ts)
// whose connection frames the stream as RFC 7395 says (./websocket-connection.ts). Guide: docs/websocket.md.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { WebSocketServer, type WebSocket } from "ws";
import { C2sSession } from "../core/c2s.ts";
import { sendText, type HttpService } from "./server.ts";
import type { WebSocketDeps } from "./deps.ts";
import { WsConnection } from "./websocket-connection.ts";

export const WEBSOCKET_PATH = "/xmpp-websocket";
/** RFC 7395 §3.1: the registered subprotocol name. */
const SUBPROTOCOL = "xmpp";
/** A ping this often keeps idle connections alive through proxies; no pong by the next ping ends the connection. */
const PING_INTERVAL_MS = 30_000;
/** Room for the framing around the largest stanza in one message (the parser enforces the stanza limits). */
const PAYLOAD_MARGIN = 4096;

function normalise(address: string | undefined): string {
  if (!address) return "unknown";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/** Answer an upgrade request with a plain HTTP error and close the socket. */
function refuse(socket: Duplex, status: number, reason: string, body: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/** Mount /xmpp-websocket on the HTTP service. */
export function mountWebSocket(http: HttpService, deps: WebSocketDeps): void {
  const config = deps.c2s.config;
  const log = deps.c2s.log;
  const proxies = new Set(config.http.trusted_proxies.map(normalise));
  const origins = new Set(config.http.websocket_origins);
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    // No permessage-deflate: compressing secrets next to attacker-chosen text is what CRIME/BREACH exploit, and
    // RFC 6120 forbids TLS compression for the same reason.
    perMessageDeflate: false,
    maxPayload: config.c2s.max_stanza_size + PAYLOAD_MARGIN,
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });

  // Keepalive: one timer for all WebSocket clients, running only while there are some.
  const answered = new Map<WebSocket, boolean>();
  let timer: NodeJS.Timeout | undefined;
  const ping = (): void => {
    for (const [ws, ok] of answered) {
      if (!ok) {
        log.debug({}, "websocket client did not answer a ping");
        ws.terminate();
        continue;
      }
      answered.set(ws, false);
      ws.ping();
    }
  };
  const keepalive = (ws: WebSocket): void => {
    answered.set(ws, true);
    ws.on("pong", () => {
      if (answered.has(ws)) answered.set(ws, true);
    });
    ws.once("close", () => {
      answered.delete(ws);
      if (answered.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
    });
    if (!timer) {
      timer = setInterval(ping, PING_INTERVAL_MS);
      timer.unref();
    }
  };

  const accept = (ws: WebSocket, req: IncomingMessage): void => {
    const raw = req.socket;
    const secure = http.isSecure(req);
    // Channel binding (SCRAM -PLUS) only over the client's own TLS: behind a proxy, the TLS we see is the proxy's.
    const tls = raw instanceof TLSSocket && !proxies.has(normalise(raw.remoteAddress)) ? raw : undefined;
    const remoteAddress = http.clientAddress(req);
    const session = new C2sSession(
      (handlers, opts) => new WsConnection(ws, raw, handlers, { ...opts, secure, tls, remoteAddress }),
      deps.c2s,
    );
    deps.track(session);
    if (raw.destroyed) deps.untrack(session);
    else raw.once("close", () => deps.untrack(session));
    keepalive(ws);
    log.debug({ remote: remoteAddress, secure }, "websocket client connected");
  };

  http.onUpgrade(WEBSOCKET_PATH, (req, socket, head) => {
    if (deps.stopping?.()) {
      refuse(socket, 503, "Service Unavailable", "the server is shutting down\n");
      return;
    }
    const header = req.headers["sec-websocket-protocol"];
    const offered = typeof header === "string" ? header.split(",").map((p) => p.trim()) : [];
    if (!offered.includes(SUBPROTOCOL)) {
      refuse(socket, 400, "Bad Request", "XMPP over WebSocket needs the 'xmpp' subprotocol (Sec-WebSocket-Protocol: xmpp, RFC 7395)\n");
      return;
    }
    const origin = req.headers.origin;
    if (origins.size > 0 && origin !== undefined && !origins.has(origin)) {
      // Only browsers send Origin; other clients are not restricted by it.
      refuse(socket, 403, "Forbidden", "this origin may not open XMPP WebSocket connections here\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, req));
  });

  // A plain GET (a browser tab, a health check) gets a hint instead of a 404.
  http.mount(WEBSOCKET_PATH, (_req, res) => {
    sendText(res, 426, "XMPP over WebSocket (RFC 7395): connect with a WebSocket client and the 'xmpp' subprotocol\n", undefined, { upgrade: "websocket" });
  });
}
