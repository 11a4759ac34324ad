// XEP-0425 message moderation (0.2/0.3 wire format) over raw sockets and with slixmpp 1.8's xep_0425 plugin: a
// moderator retracts a message by its stanza id; everyone gets the retraction from the room, the archive holds a
// tombstone, the message leaves the discussion history; non-moderators get forbidden, unknown ids item-not-found.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { Element } from "../../src/xml/element.ts";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { MUC, MUC_OWNER, Peer, codes, condition } from "./kit.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
const SID = "urn:xmpp:sid:0";
const MAM = "urn:xmpp:mam:2";
const FASTEN = "urn:xmpp:fasten:0";
const MODERATE = "urn:xmpp:message-moderate:0";
const RETRACT = "urn:xmpp:message-retract:0";
const OID = "urn:xmpp:occupant-id:0";

let ts: TestServer;
const peers: Peer[] = [];
before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: SERVICE } }] },
    { users: { "alice@localhost": PW, "bob@localhost": PW, "carol@localhost": PW, "sam@localhost": PW } },
  );
});
after(async () => {
  for (const p of peers) p.close();
  await ts?.stop();
});

async function login(user: string): Promise<Peer> {
  const p = await Peer.login(ts.c2sPort, user, PW, "r");
  peers.push(p);
  return p;
}

async function enter(p: Peer, room: string, nick: string): Promise<Element[]> {
  p.send(`<presence to='${room}@${SERVICE}/${nick}'><x xmlns='${MUC}'/></presence>`);
  await p.next((e) => e.name === "presence" && codes(e).includes(110), `entering ${room}`);
  const out: Element[] = [];
  for (;;) {
    const m = await p.next((e) => e.name === "message" && e.attrs["from"]?.startsWith(`${room}@${SERVICE}`) === true, "history and subject");
    if (m.getChild("subject") && !m.getChild("body")) return out;
    out.push(m);
  }
}

const moderateIq = (id: string, reason: string) =>
  `<apply-to xmlns='${FASTEN}' id='${id}'><moderate xmlns='${MODERATE}'><retract xmlns='${RETRACT}'/><reason>${reason}</reason></moderate></apply-to>`;

test("a moderator retracts a message: broadcast, tombstone in the archive, gone from history; others may not", { timeout: 90_000 }, async () => {
  const alice = await login("alice");
  alice.send(`<presence to='mod@${SERVICE}/Alice'><x xmlns='${MUC}'/></presence>`);
  await alice.next((e) => e.name === "presence" && codes(e).includes(201), "the creation");
  await alice.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
  const cfg = await alice.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", `mod@${SERVICE}`);
  assert.equal(cfg.attrs["type"], "result");
  const bob = await login("bob");
  await enter(bob, "mod", "Bob");

  bob.send(`<message type='groupchat' to='mod@${SERVICE}'><body>spam spam</body></message>`);
  const spam = await alice.next((e) => e.getChildText("body") === "spam spam", "the spam");
  const id = spam.getChild("stanza-id", SID)!.attrs["id"]!;
  const bobOid = spam.getChild("occupant-id", OID)!.attrs["id"]!;
  bob.send(`<message type='groupchat' to='mod@${SERVICE}'><body>fine</body></message>`);
  await alice.next((e) => e.getChildText("body") === "fine", "the next message");

  // Bob is a participant, not a moderator.
  assert.equal(condition(await bob.iq(moderateIq(id, "mine"), "set", `mod@${SERVICE}`)), "forbidden");
  assert.equal(condition(await alice.iq(moderateIq("424242", "?"), "set", `mod@${SERVICE}`)), "item-not-found");
  assert.equal(condition(await alice.iq(`<apply-to xmlns='${FASTEN}' id='${id}'><moderate xmlns='${MODERATE}'/></apply-to>`, "set", `mod@${SERVICE}`)), "bad-request");

  const r = await alice.iq(moderateIq(id, "Spam"), "set", `mod@${SERVICE}`);
  assert.equal(r.attrs["type"], "result", r.toString());
  const retraction = await bob.next((e) => e.name === "message" && e.getChild("apply-to", FASTEN) !== undefined, "the retraction");
  assert.equal(retraction.attrs["from"], `mod@${SERVICE}`);
  assert.equal(retraction.attrs["type"], "groupchat");
  const applyTo = retraction.getChild("apply-to", FASTEN)!;
  assert.equal(applyTo.attrs["id"], id);
  const moderated = applyTo.getChild("moderated", MODERATE)!;
  assert.equal(moderated.attrs["by"], `mod@${SERVICE}/Alice`);
  assert.ok(moderated.getChild("retract", RETRACT));
  assert.equal(moderated.getChildText("reason"), "Spam");

  // Twice: the message is a tombstone now.
  assert.equal(condition(await alice.iq(moderateIq(id, "again"), "set", `mod@${SERVICE}`)), "item-not-found");

  // The archive holds a tombstone in its place.
  const q = await bob.iq(`<query xmlns='${MAM}' queryid='t'/>`, "set", `mod@${SERVICE}`);
  assert.equal(q.attrs["type"], "result");
  const results = bob.drain().filter((e) => e.getChild("result", MAM)?.attrs["queryid"] === "t");
  const inner = results.map((e) => e.getChild("result", MAM)!.getChild("forwarded", "urn:xmpp:forward:0")!.getChild("message")!);
  assert.equal(inner.length, 2);
  assert.equal(results[0]!.getChild("result", MAM)!.attrs["id"], id);
  assert.equal(inner[0]!.getChild("body"), undefined, "no content left");
  assert.equal(inner[0]!.attrs["from"], `mod@${SERVICE}/Bob`);
  const tomb = inner[0]!.getChild("moderated", MODERATE)!;
  assert.equal(tomb.attrs["by"], `mod@${SERVICE}/Alice`);
  assert.ok(tomb.getChild("retracted", RETRACT)?.attrs["stamp"]);
  assert.equal(tomb.getChildText("reason"), "Spam");
  assert.equal(inner[0]!.getChild("occupant-id", OID)?.attrs["id"], bobOid);
  assert.equal(inner[1]!.getChildText("body"), "fine");

  // A joiner's history no longer has it.
  const carol = await login("carol");
  const history = await enter(carol, "mod", "Carol");
  assert.deepEqual(history.map((e) => e.getChildText("body")), ["fine"]);
});

test("slixmpp's xep_0425 plugin moderates a message and slixmpp occupants see it moderated", { timeout: 120_000 }, async () => {
  const alice = await login("alice");
  alice.send(`<presence to='slix@${SERVICE}/Alice'><x xmlns='${MUC}'/></presence>`);
  await alice.next((e) => e.name === "presence" && codes(e).includes(201), "the creation");
  const cfg = await alice.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", `slix@${SERVICE}`);
  assert.equal(cfg.attrs["type"], "result");
  // sam becomes a moderator (an admin) before joining with slixmpp.
  const adm = await alice.iq(`<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='admin' jid='sam@localhost'/></query>`, "set", `slix@${SERVICE}`);
  assert.equal(adm.attrs["type"], "result");
  const bob = await login("bob");
  await enter(bob, "slix", "Bob");
  bob.send(`<message type='groupchat' to='slix@${SERVICE}'><body>bad words</body></message>`);
  const bad = await alice.next((e) => e.getChildText("body") === "bad words", "the message");
  const id = bad.getChild("stanza-id", SID)!.attrs["id"]!;

  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn("/usr/bin/python3", ["test/muc/slixmpp_moderate.py", String(ts.c2sPort), "sam@localhost/s", PW, `slix@${SERVICE}`, id]);
    let stdout = "";
    let stderr = "";
    const kill = setTimeout(() => p.kill("SIGKILL"), 90_000);
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("exit", (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
  assert.equal(out.code, 0, `${out.stdout}\n${out.stderr.slice(-2000)}`);
  const result = JSON.parse(out.stdout.trim().split("\n").at(-1)!) as { moderated_id: string; by: string; reason: string };
  assert.deepEqual(result, { moderated_id: id, by: `slix@${SERVICE}/Sam`, reason: "Not here" });
  const seen = await bob.next((e) => e.getChild("apply-to", FASTEN)?.attrs["id"] === id, "the retraction at bob's");
  assert.equal(seen.getChild("apply-to", FASTEN)!.getChild("moderated", MODERATE)!.attrs["by"], `slix@${SERVICE}/Sam`);
});
