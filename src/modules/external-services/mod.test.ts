// Unit tests of the XEP-0215 module's pure parts: TURN REST credentials, the <service/> element, who may ask, and the
// <services/> / <credentials/> answers. The test against a real coturn is test/extdisco/coturn.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../xml/parser.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { StanzaError } from "../../xmpp/errors.ts";
import { credentialsResult, isLocalUser, serviceElement, servicesResult, turnCredentials, type ExternalService } from "./mod.ts";

const NS = "urn:xmpp:extdisco:2";
const SERVICES: ExternalService[] = [
  { type: "stun", host: "stun.example.org", port: 3478, ttl: 86400 },
  { type: "turn", host: "turn.example.org", port: 3478, transport: "udp", secret: "a-long-shared-secret", ttl: 600 },
  { type: "turns", host: "turn.example.org", port: 5349, secret: "a-long-shared-secret", ttl: 600, name: "TLS relay" },
];
const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const condition = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  return undefined;
};

test("TURN REST credentials: expiry:user, base64 HMAC-SHA1, as coturn accepted them", () => {
  // coturn 4.6.1 with static-auth-secret=s3cret allocated a relay for exactly this pair (checked by hand once; the
  // socket test checks it on every run with fresh values).
  const c = turnCredentials("s3cret", "alice@localhost", 600, 1796686404_000);
  assert.equal(c.username, "1796687004:alice@localhost");
  assert.equal(c.password, "Iycdwxkw3VJQYYsdF2+kwv62Rxw=");
  assert.equal(c.expires, 1796687004_000);
});

test("a service element: restricted with credentials for a user, transport tcp for turns, no credentials without a secret", () => {
  const turn = serviceElement(SERVICES[1]!, "alice@example.org", NOW);
  assert.equal(turn.attrs["restricted"], "true");
  assert.equal(turn.attrs["expires"], "2026-12-07T12:10:00Z");
  assert.match(turn.attrs["username"] ?? "", /^\d+:alice@example\.org$/);
  const anonymous = serviceElement(SERVICES[1]!, undefined, NOW);
  assert.equal(anonymous.attrs["username"], undefined);
  assert.equal(anonymous.attrs["restricted"], "true");
  assert.deepEqual(serviceElement(SERVICES[0]!, "alice@example.org", NOW).attrs, { type: "stun", host: "stun.example.org", port: "3478" });
  const turns = serviceElement(SERVICES[2]!, "alice@example.org", NOW);
  assert.equal(turns.attrs["transport"], "tcp");
  assert.equal(turns.attrs["name"], "TLS relay");
});

test("only this host's own users may ask", () => {
  const alice = parseJid("alice@example.org/phone");
  assert.equal(isLocalUser("example.org", alice, { kind: "c2s", jid: alice }), true);
  assert.equal(isLocalUser("example.org", parseJid("eve@evil.example/x"), { kind: "s2s", jid: parseJid("evil.example") }), false);
  const other = parseJid("bob@other.example/x");
  assert.equal(isLocalUser("example.org", other, { kind: "c2s", jid: other }), false, "a user of another host of this server");
  assert.equal(isLocalUser("example.org", parseJid("example.org"), { kind: "local", jid: parseJid("example.org") }), false);
});

test("<services/> lists all or one type", () => {
  const all = servicesResult(SERVICES, parseXml(`<services xmlns='${NS}'/>`), "a@example.org", NOW);
  assert.deepEqual(all.elements.map((e) => e.attrs["type"]), ["stun", "turn", "turns"]);
  const turn = servicesResult(SERVICES, parseXml(`<services xmlns='${NS}' type='turn'/>`), "a@example.org", NOW);
  assert.equal(turn.attrs["type"], "turn");
  assert.deepEqual(turn.elements.map((e) => e.attrs["port"]), ["3478"]);
  assert.equal(servicesResult(SERVICES, parseXml(`<services xmlns='${NS}' type='ftp'/>`), "a@example.org", NOW).elements.length, 0);
});

test("<credentials/> matches host and type, and port when given", () => {
  const q = (inner: string) => parseXml(`<credentials xmlns='${NS}'>${inner}</credentials>`);
  const both = credentialsResult(SERVICES, q(`<service host='turn.example.org' type='turn'/><service host='turn.example.org' type='turns' port='5349'/>`), "a@example.org", NOW);
  assert.deepEqual(both.elements.map((e) => e.attrs["type"]), ["turn", "turns"]);
  assert.ok(both.elements.every((e) => e.attrs["password"] !== undefined));
  assert.equal(condition(() => credentialsResult(SERVICES, q(`<service host='turn.example.org' type='turn' port='1'/>`), "a@example.org", NOW)), "item-not-found");
  assert.equal(condition(() => credentialsResult(SERVICES, q(`<service type='turn'/>`), "a@example.org", NOW)), "bad-request");
  assert.equal(condition(() => credentialsResult(SERVICES, q(""), "a@example.org", NOW)), "bad-request");
});
