// Unit tests of the XEP-0313 module's pure parts: what is archived, stanza-id stripping, date parsing, the query
// (form + RSM) reader and the preferences reader. The socket and slixmpp tests are in test/im/mam.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../xml/parser.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { archivable, parseDateTime, parseQuery, readPrefs, stripStanzaIds } from "./mod.ts";

const m = (s: string) => parseXml(s.replace("<message", "<message xmlns='jabber:client'"));
const q = (s: string) => parseXml(`<query xmlns='urn:xmpp:mam:2'>${s}</query>`);
const form = (fields: string) =>
  `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${fields}</x>`;
const condition = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  return undefined;
};

test("which messages are archived", () => {
  const cases: [string, boolean][] = [
    ["<message type='chat'><body>hi</body></message>", true],
    ["<message><body>normal with body</body></message>", true],
    ["<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", false],
    ["<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>", true],
    ["<message type='chat'><received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/></message>", true],
    ["<message type='groupchat'><body>room</body></message>", false],
    ["<message type='headline'><body>news</body></message>", false],
    ["<message type='error'><body>x</body></message>", false],
    ["<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>", false],
    ["<message type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>", false],
    ["<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", false],
    ["<message><sent xmlns='urn:xmpp:carbons:2'/></message>", false],
    ["<message><result xmlns='urn:xmpp:mam:2' id='1'/></message>", false],
  ];
  for (const [xml, expected] of cases) assert.equal(archivable(m(xml)), expected, xml);
});

test("stanza ids claiming the user's archive are stripped, others kept", () => {
  const msg = m(
    "<message><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' id='a' by='me@h'/><stanza-id xmlns='urn:xmpp:sid:0' id='b' by='room@muc.h'/></message>",
  );
  assert.equal(stripStanzaIds(msg, "me@h"), true);
  assert.deepEqual(msg.getChildren("stanza-id", "urn:xmpp:sid:0").map((e) => e.attrs["by"]), ["room@muc.h"]);
  assert.equal(stripStanzaIds(msg, "me@h"), false);
});

test("XEP-0082 date-times", () => {
  assert.equal(parseDateTime("2010-06-07T00:00:00Z"), Date.UTC(2010, 5, 7));
  assert.equal(parseDateTime("2010-06-07T02:00:00.5+02:00"), Date.UTC(2010, 5, 7, 0, 0, 0, 500));
  for (const bad of ["2010-06-07", "yesterday", "2010-06-07T00:00:00", "2010-13-45T99:00:00Z"]) assert.equal(parseDateTime(bad), undefined, bad);
});

test("an end without fractions covers its whole second; with fractions it is exact", () => {
  const end = (v: string) => parseQuery(q(form(`<field var='end'><value>${v}</value></field>`)), 250).end;
  assert.equal(end("2010-06-07T00:00:00Z"), Date.UTC(2010, 5, 7, 0, 0, 0, 999));
  assert.equal(end("2010-06-07T02:00:00+02:00"), Date.UTC(2010, 5, 7, 0, 0, 0, 999));
  assert.equal(end("2010-06-07T00:00:00.250Z"), Date.UTC(2010, 5, 7, 0, 0, 0, 250));
  const start = parseQuery(q(form("<field var='start'><value>2010-06-07T00:00:00Z</value></field>")), 250).start;
  assert.equal(start, Date.UTC(2010, 5, 7));
});

test("queries: form fields, RSM, caps and errors", () => {
  assert.deepEqual(parseQuery(q(""), 250), { max: 250 });
  assert.deepEqual(
    parseQuery(q(form("<field var='with'><value>Juliet@Capulet.lit/balcony</value></field><field var='start'><value>2010-06-07T00:00:00Z</value></field>")), 250),
    { max: 250, with: "juliet@capulet.lit", start: Date.UTC(2010, 5, 7) },
  );
  assert.deepEqual(parseQuery(q("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>7</after></set>"), 250), { max: 10, after: "7" });
  assert.deepEqual(parseQuery(q("<set xmlns='http://jabber.org/protocol/rsm'><max>9999</max><before/></set>"), 250), { max: 250, before: "" });
  assert.equal(condition(() => parseQuery(q(form("<field var='start'><value>soon</value></field>")), 250)), "bad-request");
  assert.equal(condition(() => parseQuery(q(form("<field var='fulltext'><value>x</value></field>")), 250)), "feature-not-implemented");
  assert.equal(condition(() => parseQuery(q("<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>"), 250)), "bad-request");
  assert.equal(condition(() => parseQuery(q("<set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set>"), 250)), "feature-not-implemented");
  assert.equal(condition(() => parseQuery(q("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>other</value></field></x>"), 250)), "bad-request");
});

test("preferences", () => {
  const p = readPrefs(parseXml("<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>a@b/c</jid></always><never><jid>x@y</jid><jid>x@y</jid></never></prefs>"));
  assert.deepEqual(p, { default: "roster", always: ["a@b"], never: ["x@y"] });
  assert.equal(condition(() => readPrefs(parseXml("<prefs xmlns='urn:xmpp:mam:2' default='maybe'/>"))), "bad-request");
});
