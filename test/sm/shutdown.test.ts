// XEP-0198 at server shutdown: what a connected or hibernating session never acknowledged is stored offline before
// the storage closes, so it is delivered after the restart (RFC 6121 §8.5: nothing accepted is silently dropped).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ComityServer } from "../../src/server.ts";
import { silentLogger } from "../../src/core/log.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import { createTestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";

const SM = "urn:xmpp:sm:3";
const PW = "secret";

async function until(f: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function smLogin(port: number, user: string, resource: string): Promise<{ c: RawClient; jid: string }> {
  const { client: c, jid } = await RawClient.login(port, user, PW, resource);
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  await c.waitFor(/<enabled [^>]*\/>/);
  c.buffer = "";
  return { c, jid };
}

test("unacknowledged messages of connected and hibernating sessions survive a server restart in offline storage", async () => {
  const first = await createTestServer({}, { users: { "grace@localhost": PW, "frank@localhost": PW, "heidi@localhost": PW } });
  let second: ComityServer | undefined;
  const clients: RawClient[] = [];
  try {
    const live = await smLogin(first.c2sPort, "grace", "live");
    const sleeper = await smLogin(first.c2sPort, "frank", "sleeper");
    const { client: heidi } = await RawClient.login(first.c2sPort, "heidi", PW, "sender");
    clients.push(live.c, sleeper.c, heidi);

    // The sleeper's socket dies without a closing stream: its session hibernates, waiting for a resumption.
    sleeper.c.close();
    const frankSession = () => first.server.sessions.get(parseJid(sleeper.jid)) as C2sSession | undefined;
    await until(() => frankSession()?.hibernating === true, "frank's session to hibernate");

    heidi.send(`<message type='chat' to='${live.jid}' id='g1'><body>to grace 1</body></message>`);
    heidi.send(`<message type='chat' to='${live.jid}' id='g2'><body>to grace 2</body></message>`);
    heidi.send(`<message type='chat' to='${sleeper.jid}' id='f1'><body>to frank 1</body></message>`);
    await live.c.waitFor(/to grace 2<\/body>/); // received, never acknowledged
    await heidi.sync();

    await first.server.stop();
    second = await ComityServer.create(first.config, silentLogger());
    const port = (await second.listen()).c2s[0]!.port;

    for (const [user, bodies] of [["grace", ["to grace 1", "to grace 2"]], ["frank", ["to frank 1"]]] as const) {
      const { client } = await RawClient.login(port, user, PW, "after");
      clients.push(client);
      client.send("<presence/>");
      for (const body of bodies) await client.waitFor(new RegExp(`${body}</body>`));
      assert.match(client.buffer, /<delay xmlns='urn:xmpp:delay'/, `${user}'s messages come from offline storage`);
    }
  } finally {
    for (const c of clients) c.close();
    await second?.stop();
    await first.stop();
  }
});
