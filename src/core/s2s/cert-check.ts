// Peer certificate checks for s2s (RFC 6125 §6 as profiled by RFC 6120 §13.7.2): the chain must verify against
// our trust anchors and a DNS-ID (SAN dNSName, wildcard in the left-most label) must match the peer domain.
// SRV-ID and XmppAddr are not read (Node does not decode otherName SANs); DNS-ID is what public CAs issue.
import { X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";

/** Whether the socket's peer certificate is valid for `domain`. */
export function certificateValidFor(socket: TLSSocket, domain: string): boolean {
  if (!socket.authorized) return false;
  const raw = socket.getPeerCertificate(false)?.raw;
  if (!raw || raw.length === 0) return false;
  try {
    return new X509Certificate(raw).checkHost(domain, { subject: "default", wildcards: true, partialWildcards: false }) !== undefined;
  } catch {
    return false;
  }
}
