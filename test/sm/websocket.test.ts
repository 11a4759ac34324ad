// XEP-0198 over XMPP-over-WebSocket (RFC 7395): the same c2s session, so enabling, acks and resumption work there
// too, and a session begun on a WebSocket can be resumed on another WebSocket after the first one died.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";

const FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const SM = "urn:xmpp:sm:3";
let ts: TestServer;
let url: string;

before(async () => {
  ts = await createTestServer(
    { http: { listen: ["127.0.0.1:0"] }, c2s: { encryption: "optional" }, auth: { insecure_plain: true } },
    { users: { "alice@localhost": "wonderland", "bob@localhost": "builder" } },
  );
  url = `ws://127.0.0.1:${ts.server.addresses.http[0]!.port}/xmpp-websocket`;
});
after(async () => {
  await ts.stop();
});

/** A WebSocket XMPP client keeping every message, able to wait for one that matches. */
class Ws {
  readonly ws: WebSocket;
  readonly messages: string[] = [];
  closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (d) => this.messages.push(d.toString()));
    ws.on("close", () => (this.closed = true));
    ws.on("error", () => {});
  }

  static async open(): Promise<Ws> {
    const ws = new WebSocket(url, ["xmpp"]);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new Ws(ws);
  }

  send(s: string): void {
    this.ws.send(s);
  }

  async expect(re: RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => re.test(m));
      if (i >= 0) return this.messages.splice(0, i + 1)[i]!;
      if (this.closed || Date.now() > deadline) throw new Error(`no ${re}; got: ${this.messages.join(" | ")}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Open, PLAIN, restart: at the post-authentication features. */
  async auth(user: string, password: string): Promise<string> {
    this.send(`<open xmlns='${FRAMING}' to='localhost' version='1.0'/>`);
    await this.expect(/<\/stream:features>/);
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    await this.expect(/<success/);
    this.send(`<open xmlns='${FRAMING}' to='localhost' version='1.0'/>`);
    return this.expect(/<\/stream:features>/);
  }
}

test("over WebSocket: the feature, enable, acks, and resumption after the WebSocket died", async () => {
  const a = await Ws.open();
  const features = await a.auth("alice", "wonderland");
  assert.match(features, /<sm xmlns='urn:xmpp:sm:3'\/>/);
  a.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>`);
  await a.expect(/<jid>alice@localhost\/web<\/jid>/);
  a.send(`<enable xmlns='${SM}' resume='true'/>`);
  const enabled = await a.expect(/^<enabled /);
  const id = /id='([^']+)'/.exec(enabled)![1]!;
  a.send(`<r xmlns='${SM}'/>`);
  assert.equal(await a.expect(/^<a /), `<a xmlns='${SM}' h='0'/>`);

  const { client: bob } = await RawClient.login(ts.c2sPort, "bob", "builder", "ws");
  bob.send(`<message type='chat' to='alice@localhost/web' id='w1'><body>one</body></message>`);
  await a.expect(/<body>one<\/body>/);
  const s = ts.server.sessions.get(parseJid("alice@localhost/web")) as C2sSession;
  // The browser tab loses its network: no <close/>, no close frame.
  a.ws.terminate();
  for (let i = 0; i < 500 && !s.hibernating; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(s.hibernating, "the session hibernates");
  bob.send(`<message type='chat' to='alice@localhost/web' id='w2'><body>two</body></message>`);

  const b = await Ws.open();
  await b.auth("alice", "wonderland");
  b.send(`<resume xmlns='${SM}' previd='${id}' h='1'/>`);
  assert.equal(await b.expect(/^<resumed /), `<resumed xmlns='${SM}' previd='${id}' h='0'/>`);
  await b.expect(/<body>two<\/body>/);
  assert.ok(!b.messages.some((m) => m.includes("<body>one</body>")), "the acknowledged message is not sent again");
  assert.equal(ts.server.sessions.get(parseJid("alice@localhost/web")), s);
  b.send(`<close xmlns='${FRAMING}'/>`);
  await b.expect(/^<close /);
  bob.close();
});
