// @xmpp/client as the tests start it: a generous timeout for a loaded CI machine, and every client stoppable at
// the end of a file, so a failed test cannot leave a reconnecting client that keeps the test process alive.
import { client, type XmppClient } from "@xmpp/client";

/** xmpp.js waits 2 s by default for each stream open; a busy two-core machine can take longer on the first login. */
const TIMEOUT_MS = 15_000;

const live = new Set<XmppClient>();

/** A new @xmpp/client (not started) with errors swallowed and the test timeout; stopped by stopXmppClients(). */
export function xmppClient(opts: Record<string, unknown>): XmppClient {
  const c = client({ timeout: TIMEOUT_MS, ...opts });
  c.on("error", () => {});
  live.add(c);
  return c;
}

/** Stop every client this file made (also those a failed test left behind, which would otherwise reconnect). */
export async function stopXmppClients(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.all(all.map((c) => c.stop().catch(() => {})));
}
