// Rosters, subscriptions and presence over real sockets with @xmpp/client (RFC 6121 §2, §3, §4): two users with
// several resources add each other, see each other's presence, get versioned pushes; restarts, pre-approval, errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml, type XmlElement, type XmppClient } from "@xmpp/client";
import { stopXmppClients, xmppClient } from "../kit/xmppjs.ts";
import { silentLogger } from "../../src/core/log.ts";
import { ComityServer } from "../../src/server.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";

// The test server's certificate is self-signed and generated at start.
process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";

const PASSWORD = "secret";
const R = "jabber:iq:roster";
const USERS = ["alice", "bob", "carl", "dora", "erin", "fred", "gina", "hank", "ivan", "judy", "kim", "leo", "mia", "nora", "otto", "pia", "quin"];

let ts: TestServer;
before(async () => {
  ts = await createTestServer({}, { users: Object.fromEntries(USERS.map((u) => [`${u}@localhost`, PASSWORD])) });
});
after(async () => {
  await stopXmppClients();
  await ts.stop();
});

/** A logged-in @xmpp/client with a queue of everything it received. */
class Client {
  readonly xmpp: XmppClient;
  readonly jid: string;
  #queue: XmlElement[] = [];
  #waiters: (() => void)[] = [];

  private constructor(xmpp: XmppClient, jid: string) {
    this.xmpp = xmpp;
    this.jid = jid;
    xmpp.on("stanza", (s: XmlElement) => {
      this.#queue.push(s);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Log in as user/resource; optionally fetch the roster and send initial presence. */
  static async login(user: string, resource: string, opts: { port?: number; roster?: boolean; presence?: boolean } = {}): Promise<Client> {
    // PLAIN over TLS: xmpp.js computes SCRAM's PBKDF2 with 4,096 awaited WebCrypto HMACs (~0.5 s per login);
    // SCRAM itself is covered by test/c2s/xmppjs.test.ts.
    const credentials = (auth: (c: object, mech: string) => Promise<void>) => auth({ username: user, password: PASSWORD }, "PLAIN");
    const xmpp = xmppClient({ service: `xmpp://127.0.0.1:${opts.port ?? ts.c2sPort}`, domain: "localhost", resource, credentials });
    const c = new Client(xmpp, "");
    (c as { jid: string }).jid = (await xmpp.start()).toString();
    if (opts.roster ?? true) await c.roster();
    if (opts.presence ?? true) await c.send(xml("presence"));
    return c;
  }

  async send(el: XmlElement): Promise<void> {
    await this.xmpp.send(el);
  }

  /** Roster get (optionally with a cached version); the query element of the result, undefined for an empty result. */
  async roster(ver?: string): Promise<XmlElement | undefined> {
    const res = await this.xmpp.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: R, ver })));
    return res.getChild("query", R);
  }

  /** A roster set; resolves with the result or rejects with the stanza error (err.condition). */
  async rosterSet(...items: XmlElement[]): Promise<XmlElement> {
    return this.xmpp.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: R }, ...items)));
  }

  /** Take the first received stanza matching `pred`, waiting for it if needed. */
  async waitFor(pred: (s: XmlElement) => boolean, what = "stanza", timeoutMs = 4000): Promise<XmlElement> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#queue.findIndex(pred);
      if (i >= 0) return this.#queue.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.jid}: timed out waiting for ${what}; got:\n${this.#queue.map(String).join("\n")}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Wait for presence of this type (undefined: available) from this JID. */
  presence(from: string, type?: string): Promise<XmlElement> {
    return this.waitFor((s) => s.name === "presence" && s.attrs["from"] === from && s.attrs["type"] === type, `presence ${type ?? "available"} from ${from}`);
  }

  /** Wait for a roster push about `jid` (with this subscription value, if given); returns its query (with ver). */
  async push(jid: string, subscription?: string): Promise<XmlElement> {
    const iq = await this.waitFor((s) => {
      const it = s.name === "iq" && s.attrs["type"] === "set" ? s.getChild("query", R)?.getChild("item") : undefined;
      return it?.attrs["jid"] === jid && (subscription === undefined || it.attrs["subscription"] === subscription);
    }, `push for ${jid} ${subscription ?? ""}`);
    return iq.getChild("query", R)!;
  }

  /** Received stanzas not yet taken that match. */
  pending(pred: (s: XmlElement) => boolean): XmlElement[] {
    return this.#queue.filter(pred);
  }

  /** Round trip a ping: everything sent to this client before is in the queue. */
  async sync(): Promise<void> {
    await this.xmpp.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  }

  async stop(): Promise<void> {
    await this.xmpp.stop().catch(() => {});
  }
}

const item = (jid: string, attrs: Record<string, string> = {}, ...groups: string[]) => xml("item", { jid, ...attrs }, ...groups.map((g) => xml("group", {}, g)));

async function conditionOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { condition?: string }).condition;
  }
  return undefined;
}

/** user1 and user2 become mutual subscribers through their first clients. */
async function befriend(a: Client, b: Client): Promise<void> {
  const aBare = a.jid.split("/")[0]!;
  const bBare = b.jid.split("/")[0]!;
  await a.send(xml("presence", { to: bBare, type: "subscribe" }));
  await b.waitFor((s) => s.attrs["type"] === "subscribe" && s.attrs["from"] === aBare, "subscribe");
  await b.send(xml("presence", { to: aBare, type: "subscribed" }));
  await b.send(xml("presence", { to: aBare, type: "subscribe" }));
  await a.waitFor((s) => s.attrs["type"] === "subscribe" && s.attrs["from"] === bBare, "subscribe");
  await a.send(xml("presence", { to: bBare, type: "subscribed" }));
  await b.waitFor((s) => s.attrs["type"] === "subscribed" && s.attrs["from"] === aBare, "subscribed");
}

test("alice and bob add each other and see each other's presence on every resource, with versioned pushes", async () => {
  const a1 = await Client.login("alice", "one");
  const a2 = await Client.login("alice", "two");
  const b1 = await Client.login("bob", "one");
  const b2 = await Client.login("bob", "two");
  try {
    // Adding bob pushes the item to both of alice's resources with the new version.
    await a1.rosterSet(item("bob@localhost", { name: "Bob" }, "Friends"));
    for (const c of [a1, a2]) {
      const q = await c.push("bob@localhost");
      assert.equal(q.attrs["ver"], "1");
      assert.equal(q.getChild("item")!.attrs["name"], "Bob");
      assert.equal(q.getChild("item")!.getChildText("group"), "Friends");
    }
    // The request reaches every resource of bob, from alice's bare JID.
    await a2.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    assert.equal((await a1.push("bob@localhost")).getChild("item")!.attrs["ask"], "subscribe");
    for (const c of [b1, b2]) await c.waitFor((s) => s.attrs["type"] === "subscribe" && s.attrs["from"] === "alice@localhost", "subscribe");
    // Bob approves: alice's resources get the push, `subscribed` and bob's presence from both resources.
    await b1.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await b2.push("alice@localhost", "from");
    for (const c of [a1, a2]) {
      await c.push("bob@localhost", "to");
      await c.presence("bob@localhost", "subscribed");
      await c.presence("bob@localhost/one");
      await c.presence("bob@localhost/two");
    }
    // And the other way round.
    await b2.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
    await a1.waitFor((s) => s.attrs["type"] === "subscribe" && s.attrs["from"] === "bob@localhost", "subscribe");
    await a1.send(xml("presence", { to: "bob@localhost", type: "subscribed" }));
    for (const c of [b1, b2]) {
      await c.presence("alice@localhost", "subscribed");
      await c.presence("alice@localhost/one");
      await c.presence("alice@localhost/two");
    }
    const roster = (await a2.roster())!;
    const bob = roster.getChildren("item").find((i) => i.attrs["jid"] === "bob@localhost")!;
    assert.equal(bob.attrs["subscription"], "both");
    assert.equal(bob.attrs["ask"], undefined);
    // A presence change reaches every resource of the contact.
    await b1.send(xml("presence", {}, xml("show", {}, "away"), xml("status", {}, "lunch")));
    for (const c of [a1, a2]) {
      const p = await c.waitFor((s) => s.name === "presence" && s.attrs["from"] === "bob@localhost/one" && s.getChildText("status") === "lunch", "update");
      assert.equal(p.getChildText("show"), "away");
    }
    // A new resource learns the current presence of its contacts through probes.
    const a3 = await Client.login("alice", "three");
    const p1 = await a3.waitFor((s) => s.name === "presence" && s.attrs["from"] === "bob@localhost/one", "probe answer");
    assert.equal(p1.getChildText("status"), "lunch");
    await a3.presence("bob@localhost/two");
    await a3.presence("alice@localhost/one");
    // Roster versioning: the current version gets an empty result.
    const ver = roster.attrs["ver"]!;
    assert.equal(await a3.roster(ver), undefined);
    // Going offline: contacts and the user's other resources are told.
    await a3.stop();
    for (const c of [a1, a2, b1, b2]) await c.presence("alice@localhost/three", "unavailable");
  } finally {
    for (const c of [a1, a2, b1, b2]) await c.stop();
  }
});

test("the roster and subscriptions survive a server restart on the same data directory", async () => {
  const first = await createTestServer({}, { users: { "romeo@localhost": PASSWORD, "juliet@localhost": PASSWORD } });
  let second: ComityServer | undefined;
  try {
    const r = await Client.login("romeo", "orchard", { port: first.c2sPort });
    const j = await Client.login("juliet", "balcony", { port: first.c2sPort });
    await r.rosterSet(item("juliet@localhost", { name: "Juliet" }, "Capulets"));
    await befriend(r, j);
    const ver = (await r.roster())!.attrs["ver"]!;
    await r.stop();
    await j.stop();
    await first.server.stop();
    second = await ComityServer.create(first.config, silentLogger());
    const port = (await second.listen()).c2s[0]!.port;
    const j2 = await Client.login("juliet", "balcony", { port });
    const r2 = await Client.login("romeo", "orchard", { port, roster: false, presence: false });
    assert.equal(await r2.roster(ver), undefined, "the version is kept");
    const q = (await r2.roster())!;
    const it = q.getChild("item")!;
    assert.equal(it.attrs["jid"], "juliet@localhost");
    assert.equal(it.attrs["name"], "Juliet");
    assert.equal(it.attrs["subscription"], "both");
    assert.equal(it.getChildText("group"), "Capulets");
    await r2.send(xml("presence"));
    await r2.presence("juliet@localhost/balcony");
    await j2.presence("romeo@localhost/orchard");
    await r2.stop();
    await j2.stop();
  } finally {
    await second?.stop();
    await first.stop();
  }
});

test("unsubscribe and unsubscribed end each direction; the contact sees the user go offline", async () => {
  const c = await Client.login("carl", "r");
  const d = await Client.login("dora", "r");
  try {
    await befriend(c, d);
    await c.presence("dora@localhost/r");
    await d.presence("carl@localhost/r");
    // Carl stops watching Dora: he is told she is offline, she gets the request and a push.
    await c.send(xml("presence", { to: "dora@localhost", type: "unsubscribe" }));
    await c.push("dora@localhost", "from");
    await c.presence("dora@localhost/r", "unavailable");
    await d.presence("carl@localhost", "unsubscribe");
    await d.push("carl@localhost", "to");
    // Carl cancels Dora's subscription to him: she is told he is offline.
    await c.send(xml("presence", { to: "dora@localhost", type: "unsubscribed" }));
    await d.presence("carl@localhost", "unsubscribed");
    await d.presence("carl@localhost/r", "unavailable");
    await d.push("carl@localhost", "none");
    // Later presence changes reach neither.
    await c.send(xml("presence", {}, xml("status", {}, "alone")));
    await d.sync();
    assert.deepEqual(d.pending((s) => s.name === "presence" && s.attrs["from"] === "carl@localhost/r"), []);
  } finally {
    await c.stop();
    await d.stop();
  }
});

test("removing a contact pushes the removal and cancels the subscription both ways", async () => {
  const e = await Client.login("erin", "r");
  const f = await Client.login("fred", "r");
  try {
    await befriend(e, f);
    await f.presence("erin@localhost/r");
    await e.rosterSet(item("fred@localhost", { subscription: "remove" }));
    await e.push("fred@localhost", "remove");
    await f.presence("erin@localhost", "unsubscribe");
    await f.presence("erin@localhost", "unsubscribed");
    await f.presence("erin@localhost/r", "unavailable");
    assert.equal((await f.roster())!.getChild("item")!.attrs["subscription"], "none");
    assert.equal((await e.roster())!.getChildren("item").length, 0);
  } finally {
    await e.stop();
    await f.stop();
  }
});

test("a pre-approved request is approved at once and never shown to the contact", async () => {
  const g = await Client.login("gina", "r");
  const h = await Client.login("hank", "r");
  try {
    await h.send(xml("presence", { to: "gina@localhost", type: "subscribed" }));
    const pre = (await h.push("gina@localhost")).getChild("item")!;
    assert.equal(pre.attrs["approved"], "true");
    await g.send(xml("presence", { to: "hank@localhost", type: "subscribe" }));
    await g.presence("hank@localhost", "subscribed");
    await g.presence("hank@localhost/r");
    await h.push("gina@localhost", "from");
    await h.sync();
    assert.deepEqual(h.pending((s) => s.name === "presence" && s.attrs["type"] === "subscribe"), []);
  } finally {
    await g.stop();
    await h.stop();
  }
});

test("an approval reaches the requester as roster push, then subscribed, then the contact's presence", async () => {
  // RFC 6121 §3.1.5-3.1.6. profanity never showed "bob is online" when the presence overtook the approval: a local
  // requester's server side stores the new state before delivering `subscribed`, while the presence went straight on.
  for (const [requester, contact, preApproved] of [["nora", "otto", false], ["pia", "quin", true]] as const) {
    const a = await Client.login(requester, "r");
    const b = await Client.login(contact, "r", { presence: false });
    try {
      await b.send(xml("presence", {}, xml("status", {}, `${contact} here`)));
      await b.sync();
      if (preApproved) {
        await b.send(xml("presence", { to: `${requester}@localhost`, type: "subscribed" }));
        await b.push(`${requester}@localhost`);
      }
      await a.sync();
      const seen: string[] = [];
      a.xmpp.on("stanza", (st: XmlElement) => {
        const itemEl = st.name === "iq" && st.attrs["type"] === "set" ? st.getChild("query", R)?.getChild("item") : undefined;
        if (itemEl?.attrs["jid"] === `${contact}@localhost`) seen.push(`push:${itemEl.attrs["subscription"]}${itemEl.attrs["ask"] ? "+ask" : ""}`);
        if (st.name === "presence" && st.attrs["from"]?.startsWith(`${contact}@localhost`)) seen.push(`presence:${st.attrs["type"] ?? "available"}`);
      });
      await a.send(xml("presence", { to: `${contact}@localhost`, type: "subscribe" }));
      if (!preApproved) {
        await b.waitFor((s) => s.attrs["type"] === "subscribe" && s.attrs["from"] === `${requester}@localhost`, "subscribe");
        await b.send(xml("presence", { to: `${requester}@localhost`, type: "subscribed" }));
      }
      await a.presence(`${contact}@localhost/r`);
      await a.sync();
      assert.deepEqual(seen, ["push:none+ask", "push:to", "presence:subscribed", "presence:available"], `${requester}: ${seen.join(", ")}`);
    } finally {
      await a.stop();
      await b.stop();
    }
  }
});

test("a request to an offline user is delivered at each login until it is answered", async () => {
  const i = await Client.login("ivan", "r");
  try {
    await i.send(xml("presence", { to: "judy@localhost", type: "subscribe" }, xml("status", {}, "hello judy")));
    await i.push("judy@localhost");
    for (let n = 0; n < 2; n++) {
      const j = await Client.login("judy", `r${n}`);
      const req = await j.waitFor((s) => s.attrs["type"] === "subscribe" && s.attrs["from"] === "ivan@localhost", "stored request");
      assert.equal(req.getChildText("status"), "hello judy");
      if (n === 1) {
        await j.send(xml("presence", { to: "ivan@localhost", type: "subscribed" }));
        await i.presence("judy@localhost", "subscribed");
        await i.presence(`judy@localhost/r${n}`);
      }
      await j.stop();
    }
    const j = await Client.login("judy", "r2");
    await j.sync();
    assert.deepEqual(j.pending((s) => s.attrs["type"] === "subscribe"), []);
    await j.stop();
  } finally {
    await i.stop();
  }
});

test("roster errors: a missing item, two items, another user's roster", async () => {
  const k = await Client.login("kim", "r");
  try {
    assert.equal(await conditionOf(k.rosterSet(item("nobody@localhost", { subscription: "remove" }))), "item-not-found");
    assert.equal(await conditionOf(k.rosterSet(item("a@localhost"), item("b@localhost"))), "bad-request");
    assert.equal(await conditionOf(k.rosterSet(item("a@localhost", {}, ""))), "not-acceptable");
    const other = xml("iq", { type: "set", to: "leo@localhost" }, xml("query", { xmlns: R }, item("kim@localhost")));
    assert.equal(await conditionOf(k.xmpp.iqCaller.request(other)), "forbidden");
    assert.equal((await k.roster())!.getChildren("item").length, 0);
  } finally {
    await k.stop();
  }
});

test("directed presence is answered by the recipient's client and withdrawn when the session ends", async () => {
  const m = await Client.login("mia", "r");
  const l = await Client.login("leo", "r");
  try {
    await m.send(xml("presence", { to: "leo@localhost/r" }, xml("status", {}, "just you")));
    const p = await l.presence("mia@localhost/r");
    assert.equal(p.getChildText("status"), "just you");
    await m.stop();
    await l.presence("mia@localhost/r", "unavailable");
  } finally {
    await l.stop();
  }
});
