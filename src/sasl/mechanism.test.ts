// Tests for the mechanism list and factory (RFC 6120 §6.3.3, §6.4.5).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMechanism, listMechanisms, type SaslContext } from "./mechanism.ts";

function context(tls: boolean, channelBindingTypes: string[]): SaslContext {
  return { tls, channelBindingTypes, channelBinding: () => undefined, lookup: () => Promise.resolve(undefined) };
}

describe("listMechanisms", () => {
  it("offers only SCRAM without TLS", () => {
    for (const passwordStorage of ["scram", "plain"] as const) {
      assert.deepEqual(listMechanisms({ tls: false, channelBindingTypes: [], passwordStorage }), ["SCRAM-SHA-256", "SCRAM-SHA-1"]);
    }
  });

  it("adds PLAIN over TLS", () => {
    assert.deepEqual(listMechanisms({ tls: true, channelBindingTypes: [], passwordStorage: "scram" }), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
  });

  it("adds the -PLUS variants first when TLS has a channel binding", () => {
    assert.deepEqual(listMechanisms({ tls: true, channelBindingTypes: ["tls-exporter"], passwordStorage: "plain" }), [
      "SCRAM-SHA-256-PLUS",
      "SCRAM-SHA-1-PLUS",
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
      "PLAIN",
    ]);
  });
});

describe("createMechanism", () => {
  it("creates every listed mechanism", () => {
    const ctx = context(true, ["tls-exporter"]);
    for (const name of listMechanisms({ tls: true, channelBindingTypes: ["tls-exporter"], passwordStorage: "scram" })) {
      assert.equal(createMechanism(name, ctx)?.name, name);
    }
  });

  it("returns undefined for unknown names and for -PLUS without channel binding", () => {
    assert.equal(createMechanism("DIGEST-MD5", context(true, [])), undefined);
    assert.equal(createMechanism("scram-sha-1", context(true, [])), undefined);
    assert.equal(createMechanism("SCRAM-SHA-256-PLUS", context(true, [])), undefined);
    assert.equal(createMechanism("SCRAM-SHA-1-PLUS", context(false, ["tls-exporter"])), undefined);
  });

  it("makes PLAIN without TLS fail with encryption-required", async () => {
    const mech = createMechanism("PLAIN", context(false, []));
    assert.ok(mech);
    const step = await mech.step(Buffer.from("\0juliet\0secret"));
    assert.equal(step.kind, "failure");
    if (step.kind === "failure") assert.equal(step.condition, "encryption-required");
  });
});
