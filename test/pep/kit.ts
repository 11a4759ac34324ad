// Helpers of the PEP socket tests: logged-in raw clients, IQ round trips, and a client side of XEP-0115 (presence with a
// caps hash, and the disco#info answer the server asks for) so the server learns which nodes a client wants.
import { RawClient } from "../kit/raw-client.ts";
import { parseXml } from "../../src/xml/parser.ts";
import type { Element } from "../../src/xml/element.ts";
import { capsVer } from "../../src/modules/pubsub/caps.ts";
import type { TestServer } from "../kit/server.ts";

export const PASSWORD = "secret";
export const PUBSUB = "http://jabber.org/protocol/pubsub";
export const OWNER = "http://jabber.org/protocol/pubsub#owner";
export const EVENT = "http://jabber.org/protocol/pubsub#event";
export const ERRORS = "http://jabber.org/protocol/pubsub#errors";
export const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

let seq = 0;

/** Every top-level stanza received so far ([] while the last one is still arriving: callers poll). */
export function received(c: RawClient): Element[] {
  try {
    return parseXml(`<r xmlns='jabber:client'>${c.buffer}</r>`).elements;
  } catch {
    return [];
  }
}

/** Send an IQ and wait for its answer (result or error). */
export async function iq(c: RawClient, inner: string, type = "set", to?: string): Promise<Element> {
  const id = `p${++seq}`;
  c.send(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ""}>${inner}</iq>`);
  return parseXml((await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*(?:/>|>[\\s\\S]*?</iq>)`)))[0]);
}

/** The stanza error condition and pubsub#errors condition of an error reply. */
export function errorOf(r: Element): { type: string | undefined; condition: string | undefined; app: string | undefined } {
  const e = r.getChild("error");
  return {
    type: r.attrs["type"],
    condition: e?.elements.find((c) => c.xmlns === STANZAS && c.name !== "text")?.name,
    app: e?.elements.find((c) => c.xmlns === ERRORS)?.name,
  };
}

/** The disco#info a test client claims, and its XEP-0115 ver. */
export function capsQuery(features: string[], node = "https://comity.test/client"): { xml: string; ver: string } {
  const body = `<identity category='client' type='pc' name='raw'/>${["http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/caps", ...features]
    .map((f) => `<feature var='${f}'/>`)
    .join("")}`;
  const ver = capsVer(parseXml(`<query xmlns='http://jabber.org/protocol/disco#info'>${body}</query>`))!;
  return { xml: body, ver };
}

/**
 * Log in, send available presence with caps for `notify` nodes (+notify), answer the server's disco#info for that ver
 * (unless `answer` is false: a ver the server already knows is not asked again), and wait until the server is done.
 */
export async function online(ts: TestServer, user: string, resource: string, opts: { notify?: string[]; answer?: boolean; domain?: string } = {}): Promise<RawClient> {
  const { client } = await RawClient.login(ts.c2sPort, user, PASSWORD, resource, opts.domain === undefined ? {} : { domain: opts.domain });
  const notify = opts.notify ?? [];
  if (notify.length === 0) {
    client.send("<presence/>");
  } else {
    const { xml, ver } = capsQuery(notify.map((n) => `${n}+notify`));
    client.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://comity.test/client' ver='${ver}'/></presence>`);
    // The server asks at once when it does not know the ver yet (before it answers the ping below).
    await iq(client, "<ping xmlns='urn:xmpp:ping'/>", "get", opts.domain ?? "localhost");
    const m = client.buffer.match(/<iq[^>]*type='get'[^>]*>\s*<query xmlns='http:\/\/jabber.org\/protocol\/disco#info'[^>]*\/>\s*<\/iq>/);
    if (m && opts.answer !== false) {
      const q = parseXml(`<r xmlns='jabber:client'>${m[0]}</r>`).elements[0]!;
      const node = q.elements[0]!.attrs["node"] ?? "";
      client.send(`<iq type='result' id='${q.attrs["id"]}' to='${q.attrs["from"]}'><query xmlns='http://jabber.org/protocol/disco#info' node='${node}'>${xml}</query></iq>`);
    }
  }
  await iq(client, "<ping xmlns='urn:xmpp:ping'/>", "get", opts.domain ?? "localhost");
  return client;
}

/** Make two local users mutual contacts (subscription both), as the roster module would after approvals. */
export async function befriend(ts: TestServer, a: string, b: string): Promise<void> {
  const s = ts.server.storage;
  await s.rosters.setItem("localhost", a, { jid: `${b}@localhost`, subscription: "both", ask: false, approved: false, groups: ["Friends"] });
  await s.rosters.setItem("localhost", b, { jid: `${a}@localhost`, subscription: "both", ask: false, approved: false, groups: ["Friends"] });
}

/** Wait until `c` received a pubsub event message about `node` matching `re` (on the serialised message). */
export async function event(c: RawClient, node: string, re: RegExp = /./): Promise<Element> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = received(c).find((e) => {
      const ev = e.name === "message" ? e.getChild("event", EVENT) : undefined;
      return ev !== undefined && ev.elements.some((c2) => c2.attrs["node"] === node) && re.test(e.toString());
    });
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no event for ${node} matching ${re}; got: ${c.buffer}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Events about `node` received so far. */
export function events(c: RawClient, node: string): Element[] {
  return received(c).filter((e) => e.name === "message" && e.getChild("event", EVENT)?.elements.some((x) => x.attrs["node"] === node));
}

/** Wait for a caps disco#info query from `from` (e.g. a remote server's PEP) and answer it for `notify` nodes. */
export async function answerCapsQuery(client: RawClient, from: string, notify: string[]): Promise<void> {
  const { xml } = capsQuery(notify.map((n) => `${n}+notify`));
  const esc = from.replace(/[.]/g, "\\.");
  const m = await client.waitFor(new RegExp(`<iq[^>]*from='${esc}'[^>]*>\\s*<query xmlns='http://jabber.org/protocol/disco#info'[^>]*/>\\s*</iq>`));
  const q = parseXml(`<r xmlns='jabber:client'>${m[0]}</r>`).elements[0]!;
  const node = q.elements[0]!.attrs["node"] ?? "";
  client.send(`<iq type='result' id='${q.attrs["id"]}' to='${from}'><query xmlns='http://jabber.org/protocol/disco#info' node='${node}'>${xml}</query></iq>`);
}
