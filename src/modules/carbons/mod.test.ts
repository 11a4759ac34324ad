// XEP-0280 §6.1 eligibility, rule by rule (the socket tests are in test/im/carbons.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../xml/parser.ts";
import { eligible } from "./mod.ts";

const m = (s: string) => parseXml(s.replace("<message", "<message xmlns='jabber:client'"));

test("which messages are copied, in each direction", () => {
  const cases: [string, boolean, boolean][] = [
    // message, copied when received, copied when sent
    ["<message type='chat'><body>hi</body></message>", true, true],
    ["<message><body>normal with body</body></message>", true, true],
    ["<message/>", false, false],
    ["<message><active xmlns='http://jabber.org/protocol/chatstates'/></message>", true, true],
    ["<message><received xmlns='urn:xmpp:receipts' id='x'/></message>", true, true],
    ["<message type='groupchat'><body>room</body></message>", false, false],
    ["<message type='headline'><body>news</body></message>", false, false],
    ["<message type='error'><body>x</body></message>", false, false],
    ["<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", false, false],
    ["<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>", false, false],
    ["<message type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>", false, false],
    // A private message through a room: not copied when it comes from an occupant, copied when the user sends it.
    ["<message type='chat'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>", false, true],
    // Invitations, mediated and direct, are copied both ways.
    ["<message><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>", true, true],
    ["<message><x xmlns='jabber:x:conference' jid='room@conference.example'/></message>", true, true],
  ];
  for (const [xml, received, sent] of cases) {
    assert.equal(eligible(m(xml), "received"), received, `received: ${xml}`);
    assert.equal(eligible(m(xml), "sent"), sent, `sent: ${xml}`);
  }
});
