// Unit tests of the MUC building blocks: role and affiliation rules (XEP-0045 §5, §8-§10), discussion history
// selection (§7.2.12-7.2.13), the room configuration form (§10.1-10.2), per-recipient ordering and config checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "../../xml/element.ts";
import { parseXml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { parseConfig } from "../../core/config/load.ts";
import { affiliationChangeRefusal, defaultRole, roleChangeRefusal } from "./roles.ts";
import { History, delayed, parseHistoryRequest } from "./history.ts";
import { applyConfigForm, configForm, defaultConfig } from "./config.ts";
import { orderedSend } from "./ordered-send.ts";

test("default roles follow affiliations and moderation (§5.1.2)", () => {
  assert.equal(defaultRole("owner", false), "moderator");
  assert.equal(defaultRole("admin", true), "moderator");
  assert.equal(defaultRole("member", true), "participant");
  assert.equal(defaultRole("none", false), "participant");
  assert.equal(defaultRole("none", true), "visitor");
  assert.equal(defaultRole("outcast", false), "none");
});

test("role changes: moderators only, never against a higher affiliation, voice stays with admins (§8)", () => {
  const mod = { role: "moderator", affiliation: "none" } as const;
  const admin = { role: "moderator", affiliation: "admin" } as const;
  const participant = { role: "participant", affiliation: "none" } as const;
  assert.equal(roleChangeRefusal(participant, participant, "none"), "forbidden");
  assert.equal(roleChangeRefusal(mod, participant, "none"), undefined, "a moderator kicks a participant");
  assert.equal(roleChangeRefusal(mod, { role: "participant", affiliation: "member" }, "none"), "not-allowed", "not a member: lower affiliation");
  assert.equal(roleChangeRefusal(mod, participant, "moderator"), "forbidden", "granting moderator is for admins");
  assert.equal(roleChangeRefusal(admin, participant, "moderator"), undefined);
  assert.equal(roleChangeRefusal(admin, { role: "moderator", affiliation: "owner" }, "none"), "not-allowed");
  assert.equal(roleChangeRefusal({ role: "moderator", affiliation: "owner" }, admin, "visitor"), "not-allowed", "no revoking voice from an admin");
  assert.equal(roleChangeRefusal({ role: "moderator", affiliation: "owner" }, admin, "none"), undefined, "an owner kicks an admin");
});

test("affiliation changes: admins manage members and outcasts, owners the rest; no self-ban, keep one owner", () => {
  const one = { self: false, owners: 1 };
  assert.equal(affiliationChangeRefusal("member", "none", "outcast", one), "forbidden");
  assert.equal(affiliationChangeRefusal("admin", "none", "outcast", one), undefined);
  assert.equal(affiliationChangeRefusal("admin", "none", "member", one), undefined);
  assert.equal(affiliationChangeRefusal("admin", "owner", "outcast", one), "not-allowed", "§9.1: an admin cannot ban an owner");
  assert.equal(affiliationChangeRefusal("admin", "admin", "none", one), "not-allowed");
  assert.equal(affiliationChangeRefusal("admin", "none", "admin", one), "forbidden");
  assert.equal(affiliationChangeRefusal("owner", "none", "admin", one), undefined);
  assert.equal(affiliationChangeRefusal("owner", "none", "outcast", { self: true, owners: 1 }), "conflict");
  assert.equal(affiliationChangeRefusal("owner", "owner", "admin", { self: true, owners: 1 }), "conflict", "§10.7: the last owner stays");
  assert.equal(affiliationChangeRefusal("owner", "owner", "admin", { self: true, owners: 2 }), undefined);
});

const msg = (body: string) => parseXml(`<message xmlns='jabber:client' type='groupchat' from='r@muc.test/n'><body>${body}</body></message>`);

test("history keeps the last messages and sends the smallest set meeting every limit (§7.2.13)", () => {
  const h = new History(4);
  for (let i = 1; i <= 6; i++) h.push(msg(`m${i}`), i * 1000);
  assert.equal(h.size, 4);
  const render = (e: { stanza: Element; stamp: number }) => delayed(e, "r@muc.test", "u@x.test/r");
  const bodies = (els: Element[]) => els.map((e) => e.getChildText("body"));
  assert.deepEqual(bodies(h.select({}, 10_000, render)), ["m3", "m4", "m5", "m6"]);
  assert.deepEqual(bodies(h.select({ maxstanzas: 2 }, 10_000, render)), ["m5", "m6"]);
  assert.deepEqual(bodies(h.select({ seconds: 2 }, 6_500, render)), ["m5", "m6"], "received in the last 2 s (at 4.5 s and later)");
  assert.deepEqual(bodies(h.select({ since: 5000 }, 10_000, render)), ["m5", "m6"]);
  assert.deepEqual(h.select({ maxchars: 0 }, 10_000, render), []);
  const one = render({ stanza: msg("m6"), stamp: 6000 }).toString().length;
  assert.deepEqual(bodies(h.select({ maxchars: one + 5 }, 10_000, render)), ["m6"], "whole stanzas only");
  const d = render({ stanza: msg("m1"), stamp: Date.UTC(2026, 0, 2, 3, 4, 5, 678) }).getChild("delay", "urn:xmpp:delay")!;
  assert.deepEqual(d.attrs, { from: "r@muc.test", stamp: "2026-01-02T03:04:05Z" });
  h.limit = 1;
  assert.deepEqual(bodies(h.select({}, 10_000, render)), ["m6"]);
  assert.deepEqual(parseHistoryRequest(parseXml("<history xmlns='http://jabber.org/protocol/muc' maxstanzas='3' maxchars='x' since='1970-01-01T00:00:10Z'/>")), { maxstanzas: 3, since: 10_000 });
});

const limits = { maxOccupants: 50, maxHistory: 20 };
const submit = (fields: Record<string, string | string[]>) =>
  parseXml(
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>${Object.entries(fields)
      .map(([k, v]) => `<field var='${k}'>${(Array.isArray(v) ? v : [v]).map((x) => `<value>${x}</value>`).join("")}</field>`)
      .join("")}</x>`,
  );

test("the configuration form shows the settings; a submission changes only what it names", () => {
  const c = defaultConfig(limits);
  const form = configForm("r@muc.test", c, limits);
  const vars = form.getChildren("field").map((f) => f.attrs["var"]);
  for (const v of ["FORM_TYPE", "muc#roomconfig_membersonly", "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_whois"]) assert.ok(vars.includes(v), v);
  assert.deepEqual(applyConfigForm(c, parseXml("<x xmlns='jabber:x:data' type='submit'/>"), limits), c, "an empty submission accepts the current settings");
  const next = applyConfigForm(c, submit({ "muc#roomconfig_roomname": "Coven", "muc#roomconfig_membersonly": "true", "muc#roomconfig_whois": "moderators", "muc#roomconfig_maxusers": "20" }), limits);
  assert.equal(next.name, "Coven");
  assert.equal(next.membersOnly, true);
  assert.equal(next.whois, "moderators");
  assert.equal(next.maxUsers, 20);
  assert.equal(next.public, c.public);
  // Passwords: a secret protects; protection without a secret is refused; turning protection off clears it.
  const locked = applyConfigForm(c, submit({ "muc#roomconfig_roomsecret": "s3" }), limits);
  assert.equal(locked.password, "s3");
  assert.equal(applyConfigForm(locked, submit({ "muc#roomconfig_passwordprotectedroom": "0" }), limits).password, "");
  const refuse = (fields: Record<string, string>) =>
    assert.throws(() => applyConfigForm(c, submit(fields), limits), (e: unknown) => e instanceof StanzaError && e.condition === "not-acceptable");
  refuse({ "muc#roomconfig_passwordprotectedroom": "1" });
  refuse({ "muc#roomconfig_maxusers": "51" });
  refuse({ "muc#roomconfig_whois": "everybody" });
  refuse({ "muc#roomconfig_membersonly": "maybe" });
  refuse({ "muc#maxhistoryfetch": "21" });
  assert.equal(applyConfigForm(c, submit({ "muc#roomconfig_maxusers": "none" }), limits).maxUsers, 50);
});

test("stanzas to one recipient are routed in order even when routing one of them waits", async () => {
  const routed: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const send = orderedSend((el) => {
    const id = el.attrs["id"]!;
    if (id === "slow") return gate.then(() => void routed.push(id));
    routed.push(id);
  });
  const el = (to: string, id: string) => new Element("message", "jabber:client", { to, id });
  void send(el("a@x", "slow"));
  void send(el("a@x", "after-slow"));
  void send(el("b@x", "other"));
  assert.deepEqual(routed, ["other"], "another recipient is not held up");
  release();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(routed, ["other", "slow", "after-slow"]);
  assert.equal(send(el("a@x", "sync")), undefined, "once the queue is empty, routing is synchronous again");
});

test("hosts[].muc.domain must be a domain of its own", () => {
  const problems = (yaml: string) => {
    try {
      parseConfig(yaml);
      return [];
    } catch (err) {
      return (err as { problems?: string[] }).problems ?? [String(err)];
    }
  };
  assert.deepEqual(problems("hosts:\n  - domain: a.test\n    muc: {domain: conference.a.test}\n"), []);
  const c = parseConfig("hosts:\n  - domain: a.test\n    muc: {domain: conference.a.test}\n");
  assert.deepEqual(c.hosts[0]?.muc, { domain: "conference.a.test", name: "Chatrooms", create: "users", max_history: 20, max_rooms: 1000, max_occupants: 200, default_whois: "moderators", archive: true, archive_max_per_room: 1000 });
  assert.match(problems("hosts:\n  - domain: a.test\n  - domain: b.test\n    muc: {domain: a.test}\n").join("\n"), /hosts\[1\]\.muc\.domain: "a\.test" is a host/);
  assert.match(
    problems("hosts:\n  - domain: a.test\n    muc: {domain: chat.test}\n  - domain: b.test\n    muc: {domain: chat.test}\n").join("\n"),
    /hosts\[1\]\.muc\.domain: "chat\.test" is already used by hosts\[0\]\.muc\.domain/,
  );
  assert.match(problems("hosts:\n  - domain: a.test\n    muc: {domain: Chat.a.test}\n").join("\n"), /must be lowercase/);
  assert.match(problems("hosts:\n  - domain: a.test\n    muc: {domain: chat.a.test, create: everyone}\n").join("\n"), /hosts\[0\]\.muc\.create: must be one of/);
});
