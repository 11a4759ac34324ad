// XEP-0045 §18.1.2 ghosts over real sockets: an occupant whose real JID answers the room's traffic with an error that
// says it is gone (here service-unavailable, what its server answers for a groupchat message to a resource that is
// not online, RFC 6121 §8.5.3.2.1) is removed with status 333; the occupant whose message bounced stays, and errors
// that refuse one stanza or answer a forwarded IQ remove nobody.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestServer, type TestServer } from "../kit/server.ts";
import type { Element } from "../../src/xml/element.ts";
import { MUC, MUC_OWNER, Peer, codes, condition, isPresenceFrom } from "./kit.ts";

const SERVICE = "conference.localhost";
const PW = "secret";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
let ts: TestServer;

before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: SERVICE } }] },
    { users: { "alice@localhost": PW, "bob@localhost": PW, "carol@localhost": PW } },
  );
});
after(async () => {
  await ts.stop();
});

const login = (user: string, resource: string) => Peer.login(ts.c2sPort, user, PW, resource);

async function enter(p: Peer, room: string, nick: string): Promise<void> {
  p.send(`<presence to='${room}/${nick}'><x xmlns='${MUC}'/></presence>`);
  await p.next((e) => e.name === "presence" && codes(e).includes(110), `${nick}'s self-presence`);
  await p.next((e) => e.name === "message" && e.getChild("subject") !== undefined, "the subject");
}

/** Alice's room with Bob and Carol in it, everything received so far skipped. */
async function roomOfThree(room: string, resource: string): Promise<[Peer, Peer, Peer]> {
  const alice = await login("alice", resource);
  const bob = await login("bob", resource);
  const carol = await login("carol", resource);
  await enter(alice, room, "Alice");
  assert.equal((await alice.iq(`<query xmlns='${MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>`, "set", room)).attrs["type"], "result");
  await enter(bob, room, "Bob");
  await enter(carol, room, "Carol");
  for (const p of [alice, bob, carol]) {
    await p.sync();
    p.skip();
  }
  return [alice, bob, carol];
}

const unavailableFrom = (from: string) => (e: Element) => isPresenceFrom(from)(e) && e.attrs["type"] === "unavailable";

test("an occupant whose server bounces the room's messages (service-unavailable) is removed with 333; the sender stays", async () => {
  const room = `haunted@${SERVICE}`;
  const [alice, bob, carol] = await roomOfThree(room, "ghost");
  alice.send(`<message to='${room}' type='groupchat' id='g1'><body>anyone there?</body></message>`);
  await bob.next((e) => e.name === "message" && e.attrs["id"] === "g1", "Alice's message");
  // What Bob's server sends back for the groupchat message once his session has gone: the error from his full JID to
  // the occupant JID the message came from.
  bob.send(`<message type='error' to='${room}/Alice' id='g1'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></message>`);
  const seen = await carol.next(unavailableFrom(`${room}/Bob`), "Bob removed, seen by Carol");
  assert.deepEqual(codes(seen), [333]);
  assert.deepEqual(codes(await alice.next(unavailableFrom(`${room}/Bob`), "Bob removed, seen by Alice")), [333]);
  assert.deepEqual(codes(await bob.next(unavailableFrom(`${room}/Bob`), "Bob told, while he is reachable")), [110, 333]);

  // Alice, whose message bounced, is still in the room and still heard; Bob is out.
  alice.send(`<message to='${room}' type='groupchat' id='g2'><body>still here</body></message>`);
  assert.equal((await carol.next((e) => e.name === "message" && e.attrs["id"] === "g2", "Alice's next message")).attrs["from"], `${room}/Alice`);
  bob.send(`<message to='${room}' type='groupchat' id='b1'><body>hello?</body></message>`);
  assert.equal(condition(await bob.next((e) => e.attrs["id"] === "b1", "the refusal")), "not-acceptable");
  await alice.sync();
  assert.ok(!alice.pending().some((e) => unavailableFrom(`${room}/Alice`)(e)), "nobody else was removed");
  for (const p of [alice, bob, carol]) p.close();
});

test("a refused private message (not-acceptable) and an IQ error from a forwarded ping remove nobody", async () => {
  const room = `quiet@${SERVICE}`;
  const [alice, bob, carol] = await roomOfThree(room, "quiet");
  alice.send(`<message to='${room}/Bob' type='chat' id='pm1'><body>psst</body></message>`);
  await bob.next((e) => e.name === "message" && e.attrs["id"] === "pm1", "the private message");
  bob.send(`<message type='error' to='${room}/Alice' id='pm1'><error type='modify'><not-acceptable xmlns='${STANZAS}'/></error></message>`);
  // §17.4: an IQ to an occupant JID goes to the occupant's session; its error answer goes back to the one who asked.
  alice.send(`<iq type='get' id='ping1' to='${room}/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const fwd = await bob.next((e) => e.name === "iq" && e.getChild("ping", "urn:xmpp:ping") !== undefined, "the forwarded ping");
  bob.send(`<iq type='error' id='${fwd.attrs["id"]}' to='${fwd.attrs["from"]}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
  const answer = await alice.next((e) => e.name === "iq" && e.attrs["id"] === "ping1", "the ping's answer");
  assert.equal(answer.attrs["type"], "error");
  assert.equal(answer.attrs["from"], `${room}/Bob`);
  assert.equal(condition(answer), "service-unavailable");
  // Everyone is still in the room: Bob's message reaches Carol.
  bob.send(`<message to='${room}' type='groupchat' id='b2'><body>all good</body></message>`);
  await carol.next((e) => e.name === "message" && e.attrs["id"] === "b2", "Bob's message");
  await carol.sync();
  assert.ok(!carol.pending().some((e) => e.name === "presence" && e.attrs["type"] === "unavailable"), "nobody left");
  for (const p of [alice, bob, carol]) p.close();
});
