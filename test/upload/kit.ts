// Test kit for XEP-0363: a server for `localhost` with the upload service on upload.localhost and an HTTP listener on
// an ephemeral loopback port (the slot URLs name it), and a logged-in raw client that asks for slots.
import { RawClient } from "../kit/raw-client.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";

export const UPLOAD = "upload.localhost";

/** Start a server whose host `localhost` has an upload service with these settings (hosts[0].upload). */
export function uploadServer(upload: Record<string, unknown> = {}, opts: { dataDir?: string; users?: Record<string, string>; http?: Record<string, unknown> } = {}): Promise<TestServer> {
  return createTestServer(
    {
      hosts: [{ domain: "localhost", admins: ["admin@localhost"], upload: { domain: UPLOAD, ...upload } }],
      http: { listen: ["127.0.0.1:0"], ...opts.http },
    },
    { users: opts.users ?? { "juliet@localhost": "balcony", "romeo@localhost": "montague" }, ...(opts.dataDir ? { dataDir: opts.dataDir } : {}) },
  );
}

let ids = 0;

/** Send an IQ and wait for its answer (result or error); returns the answer's XML. */
export async function iq(c: RawClient, xml: string): Promise<string> {
  const id = `up${++ids}`;
  c.send(xml.replace(/^<iq/, `<iq id='${id}'`));
  const m = await c.waitFor(new RegExp(`<iq[^>]*id='${id}'[^>]*?(?:/>|>[\\s\\S]*?</iq>)`));
  c.buffer = c.buffer.replace(m[0], "");
  return m[0];
}

const unescape = (s: string) => s.replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&apos;/g, "'").replace(/&quot;/g, '"');

/** Ask for a slot; returns the PUT and GET URLs, or the error XML. */
export async function requestSlot(c: RawClient, filename: string, size: number, type?: string): Promise<{ put: string; get: string } | { error: string }> {
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/'/g, "&apos;").replace(/</g, "&lt;");
  const ct = type === undefined ? "" : ` content-type='${esc(type)}'`;
  const r = await iq(c, `<iq type='get' to='${UPLOAD}'><request xmlns='urn:xmpp:http:upload:0' filename='${esc(filename)}' size='${size}'${ct}/></iq>`);
  const put = /<put url=['"]([^'"]+)['"]/.exec(r)?.[1];
  const get = /<get url=['"]([^'"]+)['"]/.exec(r)?.[1];
  if (put === undefined || get === undefined) return { error: r };
  return { put: unescape(put), get: unescape(get) };
}

export async function login(ts: TestServer, user: string, password: string): Promise<RawClient> {
  return (await RawClient.login(ts.c2sPort, user, password, `r${++ids}`)).client;
}
