// Tests for the PLAIN server (RFC 4616 §2) against plain and SCRAM-only stored credentials.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { StoredCredentials } from "../storage/types.ts";
import { deriveCredentials } from "./credentials.ts";
import type { SaslContext, SaslStep } from "./mechanism.ts";
import { createPlain } from "./plain.ts";

const msg = (authzid: string, authcid: string, password: string) => Buffer.from(`${authzid}\0${authcid}\0${password}`, "utf8");

function context(users: Record<string, StoredCredentials>, extra: Partial<SaslContext> = {}): SaslContext {
  return {
    tls: true,
    channelBindingTypes: [],
    channelBinding: () => undefined,
    lookup: (u) => Promise.resolve(users[u]),
    ...extra,
  };
}

function assertFailure(step: SaslStep, condition: string): void {
  assert.equal(step.kind, "failure", JSON.stringify(step));
  if (step.kind === "failure") assert.equal(step.condition, condition);
}

for (const storage of ["plain", "scram"] as const) {
  describe(`PLAIN with ${storage} password storage`, () => {
    const users = { juliet: deriveCredentials("r0m30 myr0m30", { storage, iterations: 4096 }) };

    it("accepts the right password and returns the authcid", async () => {
      assert.deepEqual(await createPlain(context(users)).step(msg("", "juliet", "r0m30 myr0m30")), { kind: "success", username: "juliet" });
    });

    it("maps non-ASCII spaces in the password like the stored one (OpaqueString)", async () => {
      assert.equal((await createPlain(context(users)).step(msg("", "juliet", "r0m30\u3000myr0m30"))).kind, "success");
    });

    it("answers not-authorized for a wrong password", async () => {
      assertFailure(await createPlain(context(users)).step(msg("", "juliet", "r0m30 myr0m31")), "not-authorized");
    });

    it("answers not-authorized for a password the profile disallows", async () => {
      assertFailure(await createPlain(context(users)).step(msg("", "juliet", "r0m30\u0007")), "not-authorized");
    });
  });
}

describe("PLAIN", () => {
  const users = { juliet: deriveCredentials("secret", { storage: "scram", iterations: 4096 }) };

  it("answers not-authorized for an unknown user", async () => {
    assertFailure(await createPlain(context(users)).step(msg("", "romeo", "secret")), "not-authorized");
  });

  it("verifies with SCRAM-SHA-1 when only that is stored", async () => {
    const sha1Only: StoredCredentials = { scram: { "SHA-1": users.juliet.scram["SHA-1"]! } };
    assert.equal((await createPlain(context({ juliet: sha1Only })).step(msg("", "juliet", "secret"))).kind, "success");
  });

  it("asks for the message with an empty challenge when there is no initial response", async () => {
    const mech = createPlain(context(users));
    assert.deepEqual(await mech.step(undefined), { kind: "challenge", data: Buffer.alloc(0) });
    assert.equal((await mech.step(msg("", "juliet", "secret"))).kind, "success");
    assertFailure(await mech.step(msg("", "juliet", "secret")), "malformed-request");
  });

  it("rejects a non-empty authzid unless the context allows it", async () => {
    assertFailure(await createPlain(context(users)).step(msg("juliet@capulet.lit", "juliet", "secret")), "invalid-authzid");
    const ctx = context(users, { authzidAllowed: (authzid, username) => authzid === `${username}@capulet.lit` });
    assert.equal((await createPlain(ctx).step(msg("juliet@capulet.lit", "juliet", "secret"))).kind, "success");
  });

  it("checks the password before the authzid", async () => {
    assertFailure(await createPlain(context(users)).step(msg("romeo@montague.lit", "juliet", "wrong")), "not-authorized");
  });

  describe("rejects malformed messages", () => {
    const cases: Record<string, Buffer> = {
      "empty message": Buffer.alloc(0),
      "one NUL only": Buffer.from("juliet\0secret"),
      "three NULs": Buffer.from("\0juliet\0secret\0"),
      "empty authcid": msg("", "", "secret"),
      "empty password": msg("", "juliet", ""),
      "invalid UTF-8": Buffer.from([0, 0x6a, 0, 0xc3, 0x28]),
      "field too long": msg("", "juliet", "x".repeat(2000)),
    };
    for (const [name, data] of Object.entries(cases)) {
      it(name, async () => {
        assertFailure(await createPlain(context(users)).step(data), "malformed-request");
      });
    }
  });

  it("answers temporary-auth-failure when the account store fails", async () => {
    const ctx = context({}, { lookup: () => Promise.reject(new Error("down")) });
    assertFailure(await createPlain(ctx).step(msg("", "juliet", "secret")), "temporary-auth-failure");
  });
});

describe("PLAIN for an unknown account does the work a real one of the configured storage would", () => {
  // A huge iteration count makes a PBKDF2 decoy take seconds, so its absence (or presence) is plain to see.
  const HUGE = 20_000_000;

  it("with plain storage: one comparison, no PBKDF2, still not-authorized", async () => {
    const started = performance.now();
    const step = await createPlain(context({}, { passwordStorage: "plain", iterations: HUGE })).step(msg("", "nobody", "whatever"));
    assertFailure(step, "not-authorized");
    assert.ok(performance.now() - started < 1000, "no PBKDF2 decoy for an unknown account under plain storage");
  });

  it("with scram storage: the PBKDF2 decoy runs, as it would for a real account", async () => {
    const started = performance.now();
    assertFailure(await createPlain(context({}, { passwordStorage: "scram", iterations: HUGE / 10 })).step(msg("", "nobody", "whatever")), "not-authorized");
    assert.ok(performance.now() - started > 50, "the decoy hashes");
  });
});
