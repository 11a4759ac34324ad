// The router's component branch: stanzas for a service domain reach its handler, replies the server generates for
// the component's own stanzas come back to it, and a component can never take an account host's domain.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "../xml/element.ts";
import { parseXml } from "../xml/parser.ts";
import { parseJid, type Jid } from "../xmpp/jid.ts";
import { normalizeConfig } from "./config/load.ts";
import { Events } from "./events.ts";
import { Host } from "./host.ts";
import { silentLogger } from "./log.ts";
import { Router } from "./router.ts";
import { SessionRegistry } from "./sessions.ts";
import { createMemoryStorage } from "../storage/memory.ts";
import { Components } from "./components.ts";

function router(): Router {
  const config = normalizeConfig({ hosts: [{ domain: "example.org" }], data_dir: "/nonexistent" }, { baseDir: "/" });
  const hosts = new Map(config.hosts.map((h) => [h.domain, new Host(h)]));
  return new Router({ hosts, sessions: new SessionRegistry(), storage: createMemoryStorage(), log: silentLogger(), events: new Events() });
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

test("a stanza addressed to a component's domain, or a JID on it, goes to the component and not to s2s", async () => {
  const r = router();
  const got: { stanza: Element; from: Jid; to: Jid }[] = [];
  const remote: Element[] = [];
  r.remote = (s) => void remote.push(s);
  r.components.add("conference.example.org", "example.org", (stanza, from, to) => void got.push({ stanza, from, to }));
  const from = parseJid("alice@example.org/phone");
  for (const to of ["conference.example.org", "room@conference.example.org", "room@conference.example.org/nick"]) {
    const el = parseXml(`<presence xmlns='jabber:client' from='${from}' to='${to}'/>`);
    await r.route(el, from, parseJid(to), { kind: "c2s", jid: from });
  }
  assert.deepEqual(got.map((g) => g.to.toString()), ["conference.example.org", "room@conference.example.org", "room@conference.example.org/nick"]);
  assert.equal(got[0]!.from.toString(), "alice@example.org/phone");
  assert.equal(remote.length, 0);
  assert.ok(r.isLocalDomain("conference.example.org") && r.isLocalDomain("example.org") && !r.isLocalDomain("elsewhere.net"));
  assert.equal(r.hostOf("conference.example.org"), "example.org");
  assert.equal(r.hostOf("example.org"), "example.org");
  assert.equal(r.hostOf("elsewhere.net"), undefined);
});

test("an error the router generates for a component's stanza is handed back to the component", async () => {
  const r = router();
  const got: Element[] = [];
  r.components.add("conference.example.org", "example.org", (stanza) => void got.push(stanza));
  // A groupchat message from a room to an account's resource that is not connected: service-unavailable (RFC 6121).
  r.send(parseXml("<message xmlns='jabber:client' type='groupchat' from='room@conference.example.org/nick' to='bob@example.org/gone'><body>x</body></message>"));
  await settle();
  assert.equal(got.length, 1);
  assert.equal(got[0]!.attrs["type"], "error");
  assert.equal(got[0]!.attrs["to"], "room@conference.example.org/nick");
  assert.ok(got[0]!.getChild("error")?.getChild("service-unavailable"));
});

test("a handler that throws a StanzaError gets the sender an error reply", async () => {
  const r = router();
  const { StanzaError } = await import("../xmpp/errors.ts");
  r.components.add("conference.example.org", "example.org", () => {
    throw new StanzaError("item-not-found");
  });
  const errors: Element[] = [];
  r.remote = (s) => void errors.push(s);
  const from = parseJid("carol@elsewhere.net/x");
  const el = parseXml(`<message xmlns='jabber:client' from='${from}' to='nope@conference.example.org' type='groupchat'><body>hi</body></message>`);
  await r.route(el, from, parseJid("nope@conference.example.org"), { kind: "s2s", jid: parseJid("elsewhere.net") });
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.attrs["from"], "nope@conference.example.org");
  assert.ok(errors[0]!.getChild("error")?.getChild("item-not-found"));
});

test("a component cannot take a host's domain or another component's", () => {
  const r = router();
  assert.throws(() => r.components.add("example.org", "example.org", () => {}), /account host/);
  r.components.add("chat.example.org", "example.org", () => {});
  assert.throws(() => r.components.add("chat.example.org", "example.org", () => {}), /already registered/);
  const bare = new Components();
  bare.add("x.test", "test", () => {});
  assert.deepEqual([...bare.domains()], ["x.test"]);
});
