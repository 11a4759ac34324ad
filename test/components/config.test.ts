// The `components` configuration (XEP-0114): defaults, the owning host, domains that clash, and `comity check`'s
// warning for a component listener that is not on loopback and its DNS check of component domains.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../src/core/config/load.ts";
import { checkConfigSettings, checkDns, isLoopbackAddress, type DnsResolver } from "../../src/cli/check.ts";

function problemsOf(text: string): string[] {
  try {
    parseConfig(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

const HOSTS = "hosts:\n  - domain: example.org\n  - domain: other.net\n    muc:\n      domain: rooms.other.net\n";

test("without a components section nothing listens and no component is configured", () => {
  const c = parseConfig(HOSTS);
  assert.deepEqual(c.components.listen, []);
  assert.deepEqual(c.components.services, []);
  assert.equal(c.components.max_stanza_size, 524288);
});

test("a component's owner is the given host, else the host it is a subdomain of, else the first host", () => {
  const c = parseConfig(`${HOSTS}components:
  listen: ["127.0.0.1:5347"]
  services:
    - { domain: irc.other.net, secret: a }
    - { domain: bridge.elsewhere.org, secret: b }
    - { domain: slidge.example.org, secret: c, host: other.net }
`);
  assert.deepEqual(c.components.services.map((s) => [s.domain, s.host]), [
    ["irc.other.net", "other.net"],
    ["bridge.elsewhere.org", "example.org"],
    ["slidge.example.org", "other.net"],
  ]);
});

test("a component domain may not be a host, a chat service or another component, and its host must exist", () => {
  const problems = problemsOf(`${HOSTS}components:
  services:
    - { domain: example.org, secret: a }
    - { domain: rooms.other.net, secret: a }
    - { domain: irc.example.org, secret: a }
    - { domain: irc.example.org, secret: b }
    - { domain: IRC.example.org, secret: b }
    - { domain: ok.example.org, secret: b, host: nowhere.test }
    - { domain: empty.example.org, secret: "" }
`);
  assert.ok(problems.some((p) => p.startsWith("components.services[6].secret")), problems.join("\n"));
  const semantic = problemsOf(`${HOSTS}components:
  services:
    - { domain: example.org, secret: a }
    - { domain: rooms.other.net, secret: a }
    - { domain: irc.example.org, secret: a }
    - { domain: irc.example.org, secret: b }
    - { domain: IRC.example.org, secret: b }
    - { domain: ok.example.org, secret: b, host: nowhere.test }
`);
  assert.match(semantic.find((p) => p.startsWith("components.services[0].domain")) ?? "", /is a host/);
  assert.match(semantic.find((p) => p.startsWith("components.services[1].domain")) ?? "", /already used by hosts\[1\]\.muc\.domain/);
  assert.match(semantic.find((p) => p.startsWith("components.services[3].domain")) ?? "", /already used by components\.services\[2\]/);
  assert.match(semantic.find((p) => p.startsWith("components.services[4].domain")) ?? "", /lowercase/);
  assert.match(semantic.find((p) => p.startsWith("components.services[5].host")) ?? "", /not one of the hosts/);
});

test("a component listener may not share an address with another listener", () => {
  const problems = problemsOf(`${HOSTS}c2s:\n  listen: ["127.0.0.1:5347"]\ncomponents:\n  listen: ["127.0.0.1:5347"]\n`);
  assert.ok(problems.some((p) => p.startsWith("components.listen[0]") && p.includes("already used by c2s.listen[0]")), problems.join("\n"));
});

test("comity check warns about a component listener that is not loopback, and about components nobody can reach", () => {
  const open = parseConfig(`${HOSTS}components:\n  listen: ["0.0.0.0:5347", "127.0.0.1:5348", "[::1]:5349"]\n  services: [{ domain: irc.example.org, secret: s }]\n`);
  const warnings = checkConfigSettings(open, "comity.yaml").filter((f) => f.severity === "warning").map((f) => f.message);
  assert.equal(warnings.filter((w) => w.includes("components.listen")).length, 1);
  assert.ok(warnings.some((w) => w.startsWith("components.listen[0] (0.0.0.0:5347) is not a loopback address")));
  const none = parseConfig(`${HOSTS}components:\n  services: [{ domain: irc.example.org, secret: s }]\n`);
  assert.ok(checkConfigSettings(none, "comity.yaml").some((f) => f.severity === "warning" && f.message.includes("components.listen is empty")));
  assert.ok(isLoopbackAddress("127.0.0.1") && isLoopbackAddress("::1") && isLoopbackAddress("localhost") && !isLoopbackAddress("0.0.0.0") && !isLoopbackAddress("::"));
});

test("comity check looks up a component domain's server records, which remote users' servers need to reach the bridge", async () => {
  const config = parseConfig("hosts: [{domain: good.org}]\nc2s: {direct_tls: []}\ncomponents: {listen: ['127.0.0.1:5347'], services: [{domain: irc.good.org, secret: s}, {domain: slidge.good.org, secret: t}]}\n");
  const notFound = () => Object.assign(new Error("not found"), { code: "ENOTFOUND" });
  const srv: Record<string, { name: string; port: number; priority: number; weight: number }[]> = {
    "_xmpp-server._tcp.irc.good.org": [{ name: "xmpp.good.org", port: 5269, priority: 0, weight: 5 }],
  };
  const resolver: DnsResolver = {
    resolveSrv: async (name) => srv[name] ?? Promise.reject(notFound()),
    resolve4: async (name) => (name === "xmpp.good.org" ? ["192.0.2.1"] : Promise.reject(notFound())),
    resolve6: async () => Promise.reject(notFound()),
  };
  const findings = await checkDns(config, resolver);
  const of = (host: string) => findings.filter((f) => f.host === host);
  assert.deepEqual(of("irc.good.org").map((f) => [f.severity, f.message]), [["ok", "_xmpp-server._tcp.irc.good.org SRV → xmpp.good.org:5269 (192.0.2.1)"]]);
  assert.deepEqual(of("slidge.good.org").map((f) => f.severity), ["error"]);
  assert.match(of("slidge.good.org")[0]!.message, /_xmpp-server\._tcp\.slidge\.good\.org/);
});
