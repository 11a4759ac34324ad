// Placeholder: XMPP over WebSocket (RFC 7395) is being built in this module.
import type { HttpService } from "./server.ts";
import type { WebSocketDeps } from "./deps.ts";

/** Mount /xmpp-websocket on the HTTP service. */
export function mountWebSocket(_http: HttpService, _deps: WebSocketDeps): void {}
