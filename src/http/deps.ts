// What the HTTP parts get from the server: the same objects the XMPP side uses, so that a decision taken on a web
// page or through the API goes through the same code path as one taken from the CLI or an XMPP client.
import type { Config } from "../core/config/schema.ts";
import type { Host } from "../core/host.ts";
import type { Logger } from "../core/log.ts";
import type { Storage } from "../storage/types.ts";
import type { ControlMethod } from "../admin/control.ts";
import type { C2sDeps, C2sSession } from "../core/c2s.ts";
import type { AuthThrottle } from "../core/auth-throttle.ts";

/** For /admin and /api. */
export interface AdminHttpDeps {
  config: Config;
  hosts: Map<string, Host>;
  storage: Storage;
  log: Logger;
  /** The control-socket methods (`buddies.*`, `status`, `s2s.list`, `incidents.*`...). */
  control: Map<string, ControlMethod>;
  /** Failed logins slowed per client address; pass the SASL one so that both surfaces share the count. */
  throttle?: AuthThrottle;
}

/** For /xmpp-websocket. */
export interface WebSocketDeps {
  c2s: C2sDeps;
  /** Register a client session so that shutdown reaches it; call `untrack` when it is gone. */
  track(session: C2sSession): void;
  untrack(session: C2sSession): void;
  /** True once the server is stopping: new WebSocket upgrades are refused. */
  stopping?: () => boolean;
}

/** For /http-bind: BOSH sessions are client sessions like WebSocket ones, tracked and refused at shutdown the same way. */
export type BoshDeps = WebSocketDeps;
