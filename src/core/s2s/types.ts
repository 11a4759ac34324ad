// Shared pieces of the server-to-server layer (RFC 6120 with `jabber:server`, XEP-0220, XEP-0178).
import type { Config } from "../config/schema.ts";
import type { Host } from "../host.ts";
import type { Logger } from "../log.ts";
import type { Router } from "../router.ts";
import type { TlsContexts } from "../tls-contexts.ts";
import type { HostCertificate } from "../certs.ts";
import type { DialbackKeys } from "./dialback-key.ts";
import type { PeerResolver } from "./resolve.ts";
import type { Events } from "../events.ts";

/** How a link proved the peer's domain. */
export type S2sAuth = "none" | "dialback" | "sasl-external";

/** What `comity s2s list` shows for one link. */
export interface LinkInfo {
  direction: "in" | "out";
  local: string;
  /** The peer domain(s) authenticated on the link (several with dialback piggybacking). */
  peers: string[];
  tls: boolean;
  tlsVersion: string | undefined;
  certificateValid: boolean;
  auth: S2sAuth;
  since: number;
  remoteAddress: string;
  state: string;
}

/** What every s2s link shares. */
export interface S2sDeps {
  config: Config;
  hosts: Map<string, Host>;
  router: Router;
  log: Logger;
  /** Server-side TLS contexts that request client certificates and trust `ca`. */
  tls: TlsContexts;
  certs: Map<string, HostCertificate>;
  /** Trust anchors for peer certificates: Node's bundled roots plus s2s.ca_file. */
  ca: string[];
  keys: DialbackKeys;
  resolver: PeerResolver;
  events: Events;
}

/** Parser limits of an s2s stream (s2s.max_stanza_size and the shared element limits). */
export function s2sLimits(config: Config): { maxStanzaSize: number; maxDepth: number; maxChildren: number; maxAttributes: number } {
  return { maxStanzaSize: config.s2s.max_stanza_size, maxDepth: config.limits.max_depth, maxChildren: config.limits.max_children, maxAttributes: config.limits.max_attributes };
}
