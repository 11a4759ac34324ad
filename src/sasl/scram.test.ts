// Tests for the SCRAM server (RFC 5802 §5 and RFC 7677 §3 example exchanges, -PLUS, failures).
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import type { StoredCredentials } from "../storage/types.ts";
import { saltedPassword, scramCredential, type ScramHash } from "./credentials.ts";
import type { SaslContext, SaslMechanism, SaslStep } from "./mechanism.ts";
import { createScram } from "./scram.ts";

const b = (s: string) => Buffer.from(s, "utf8");

function credentialsFor(password: string, salts: Partial<Record<ScramHash, Buffer>> = {}, iterations = 4096): StoredCredentials {
  const scram: StoredCredentials["scram"] = {};
  for (const hash of ["SHA-1", "SHA-256"] as const) {
    const salt = salts[hash] ?? randomBytes(16);
    scram[hash] = scramCredential(hash, saltedPassword(hash, password, salt, iterations), salt, iterations);
  }
  return { scram };
}

function context(users: Record<string, StoredCredentials>, extra: Partial<SaslContext> = {}): SaslContext & { looked: string[] } {
  const looked: string[] = [];
  return {
    tls: false,
    channelBindingTypes: [],
    channelBinding: () => undefined,
    lookup: (u) => {
      looked.push(u);
      return Promise.resolve(users[u]);
    },
    looked,
    ...extra,
  };
}

function text(step: SaslStep): string {
  assert.equal(step.kind, "challenge", JSON.stringify(step));
  return step.kind === "challenge" ? step.data.toString("utf8") : "";
}

function assertFailure(step: SaslStep, condition: string): void {
  assert.equal(step.kind, "failure");
  if (step.kind === "failure") assert.equal(step.condition, condition);
}

/** A SCRAM client written from RFC 5802 §3 for these tests. */
function scramClient(opts: { hash: ScramHash; username: string; password: string; gs2?: string; cbData?: Buffer; nonce?: string }) {
  const alg = opts.hash === "SHA-1" ? "sha1" : "sha256";
  const len = opts.hash === "SHA-1" ? 20 : 32;
  const gs2 = opts.gs2 ?? "n,,";
  const nonce = opts.nonce ?? randomBytes(12).toString("base64");
  const bare = `n=${opts.username.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${nonce}`;
  let serverSignature = "";
  return {
    first: () => b(gs2 + bare),
    final(serverFirst: string): Buffer {
      const attrs = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
      assert.ok(attrs.r!.startsWith(nonce));
      const salted = pbkdf2Sync(opts.password, Buffer.from(attrs.s!, "base64"), Number(attrs.i), len, alg);
      const clientKey = createHmac(alg, salted).update("Client Key").digest();
      const storedKey = createHash(alg).update(clientKey).digest();
      const cb = Buffer.concat([b(gs2), opts.cbData ?? Buffer.alloc(0)]).toString("base64");
      const withoutProof = `c=${cb},r=${attrs.r}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const signature = createHmac(alg, storedKey).update(authMessage).digest();
      const proof = Buffer.from(clientKey.map((x, i) => x ^ signature[i]!));
      const serverKey = createHmac(alg, salted).update("Server Key").digest();
      serverSignature = createHmac(alg, serverKey).update(authMessage).digest("base64");
      return b(`${withoutProof},p=${proof.toString("base64")}`);
    },
    expectedVerifier: () => `v=${serverSignature}`,
  };
}

async function exchange(mech: SaslMechanism, client: ReturnType<typeof scramClient>): Promise<SaslStep> {
  const serverFirst = text(await mech.step(client.first()));
  return mech.step(client.final(serverFirst));
}

describe("SCRAM server", () => {
  it("completes the RFC 5802 §5 SCRAM-SHA-1 example exchange", async () => {
    const creds = credentialsFor("pencil", { "SHA-1": Buffer.from("QSXCR+Q6sek8bf92", "base64") });
    const ctx = context({ user: creds });
    const mech = createScram(ctx, { hash: "SHA-1", plus: false, nonce: () => "3rfcNHYJY1ZVvWVs7j" });
    assert.equal(mech.name, "SCRAM-SHA-1");
    const serverFirst = await mech.step(b("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
    assert.equal(text(serverFirst), "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    const final = await mech.step(b("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="));
    assert.deepEqual(final, { kind: "success", username: "user", data: b("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=") });
    assert.deepEqual(ctx.looked, ["user"]);
  });

  it("completes the RFC 7677 §3 SCRAM-SHA-256 example exchange", async () => {
    const creds = credentialsFor("pencil", { "SHA-256": Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64") });
    const mech = createScram(context({ user: creds }), { hash: "SHA-256", plus: false, nonce: () => "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" });
    const serverFirst = await mech.step(b("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
    assert.equal(text(serverFirst), "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    const final = await mech.step(
      b("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
    );
    assert.deepEqual(final, { kind: "success", username: "user", data: b("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") });
  });

  it("asks for the client-first-message with an empty challenge when there is no initial response", async () => {
    const mech = createScram(context({ user: credentialsFor("pencil") }), { hash: "SHA-256", plus: false });
    const empty = await mech.step(undefined);
    assert.deepEqual(empty, { kind: "challenge", data: Buffer.alloc(0) });
    const client = scramClient({ hash: "SHA-256", username: "user", password: "pencil" });
    const result = await exchange(mech, client);
    assert.equal(result.kind, "success");
  });

  it("decodes =2C and =3D in the username and passes the raw name to lookup", async () => {
    const ctx = context({ "a,b=c": credentialsFor("pencil") });
    const mech = createScram(ctx, { hash: "SHA-256", plus: false });
    const result = await exchange(mech, scramClient({ hash: "SHA-256", username: "a,b=c", password: "pencil" }));
    assert.equal(result.kind, "success");
    if (result.kind === "success") assert.equal(result.username, "a,b=c");
    assert.deepEqual(ctx.looked, ["a,b=c"]);
  });

  for (const hash of ["SHA-1", "SHA-256"] as const) {
    it(`completes SCRAM-${hash}-PLUS with channel binding and returns the server signature`, async () => {
      const cbData = randomBytes(32);
      const ctx = context(
        { juliet: credentialsFor("r0m30myr0m30") },
        { tls: true, channelBindingTypes: ["tls-exporter"], channelBinding: (t) => (t === "tls-exporter" ? cbData : undefined) },
      );
      const mech = createScram(ctx, { hash, plus: true });
      assert.equal(mech.name, `SCRAM-${hash}-PLUS`);
      const client = scramClient({ hash, username: "juliet", password: "r0m30myr0m30", gs2: "p=tls-exporter,,", cbData });
      const result = await exchange(mech, client);
      assert.equal(result.kind, "success");
      if (result.kind === "success") assert.equal(result.data?.toString(), client.expectedVerifier());
    });
  }

  it("fails -PLUS when the client's channel binding data differs from ours", async () => {
    const ctx = context(
      { juliet: credentialsFor("secret") },
      { tls: true, channelBindingTypes: ["tls-exporter"], channelBinding: () => Buffer.alloc(32, 1) },
    );
    const mech = createScram(ctx, { hash: "SHA-256", plus: true });
    const client = scramClient({ hash: "SHA-256", username: "juliet", password: "secret", gs2: "p=tls-exporter,,", cbData: Buffer.alloc(32, 2) });
    assertFailure(await exchange(mech, client), "not-authorized");
  });

  it("fails -PLUS for a channel binding type the connection does not have", async () => {
    const ctx = context(
      { juliet: credentialsFor("secret") },
      { tls: true, channelBindingTypes: ["tls-server-end-point"], channelBinding: () => Buffer.alloc(32) },
    );
    const mech = createScram(ctx, { hash: "SHA-256", plus: true });
    assertFailure(await mech.step(b("p=tls-unique,,n=juliet,r=abc")), "not-authorized");
  });

  it("fails -PLUS when the client does not bind (n or y)", async () => {
    const ctx = context({}, { tls: true, channelBindingTypes: ["tls-exporter"], channelBinding: () => Buffer.alloc(32) });
    for (const gs2 of ["n,,", "y,,"]) {
      const mech = createScram(ctx, { hash: "SHA-256", plus: true });
      assertFailure(await mech.step(b(`${gs2}n=juliet,r=abc`)), "malformed-request");
    }
  });

  it("fails a non-PLUS mechanism when the client asks for channel binding (p=)", async () => {
    const ctx = context({}, { tls: true, channelBindingTypes: ["tls-exporter"], channelBinding: () => Buffer.alloc(32) });
    const mech = createScram(ctx, { hash: "SHA-256", plus: false });
    assertFailure(await mech.step(b("p=tls-exporter,,n=juliet,r=abc")), "malformed-request");
  });

  it("detects a downgrade: 'y' while the server supports channel binding", async () => {
    const ctx = context({ juliet: credentialsFor("secret") }, { tls: true, channelBindingTypes: ["tls-exporter"], channelBinding: () => Buffer.alloc(32) });
    const mech = createScram(ctx, { hash: "SHA-256", plus: false });
    const step = await mech.step(b("y,,n=juliet,r=abc"));
    assertFailure(step, "not-authorized");
    if (step.kind === "failure") assert.equal(step.text, "server-does-support-channel-binding");
  });

  it("accepts 'y' when the server cannot bind (no TLS)", async () => {
    const mech = createScram(context({ juliet: credentialsFor("secret") }), { hash: "SHA-256", plus: false });
    const client = scramClient({ hash: "SHA-256", username: "juliet", password: "secret", gs2: "y,," });
    assert.equal((await exchange(mech, client)).kind, "success");
  });

  it("answers not-authorized for a wrong password", async () => {
    const mech = createScram(context({ juliet: credentialsFor("secret") }), { hash: "SHA-1", plus: false });
    assertFailure(await exchange(mech, scramClient({ hash: "SHA-1", username: "juliet", password: "wrong" })), "not-authorized");
  });

  it("runs a full-looking exchange for an unknown user, then answers not-authorized", async () => {
    const ctx = context({}, { iterations: 10000 });
    const mech = createScram(ctx, { hash: "SHA-256", plus: false });
    const client = scramClient({ hash: "SHA-256", username: "nobody", password: "secret" });
    const serverFirst = text(await mech.step(client.first()));
    const attrs = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
    assert.equal(Buffer.from(attrs.s!, "base64").length, 16);
    assert.equal(attrs.i, "10000");
    assertFailure(await mech.step(client.final(serverFirst)), "not-authorized");

    // The decoy salt is stable for a name, so asking twice does not reveal the account is missing.
    const again = createScram(ctx, { hash: "SHA-256", plus: false });
    const serverFirst2 = text(await again.step(scramClient({ hash: "SHA-256", username: "nobody", password: "x" }).first()));
    assert.equal(serverFirst2.split(",")[1], `s=${attrs.s}`);
  });

  it("rejects a non-empty authzid unless the context allows it", async () => {
    const users = { juliet: credentialsFor("secret") };
    const denied = createScram(context(users), { hash: "SHA-256", plus: false });
    const client = () => scramClient({ hash: "SHA-256", username: "juliet", password: "secret", gs2: "n,a=juliet@capulet.lit," });
    assertFailure(await exchange(denied, client()), "invalid-authzid");

    const seen: string[][] = [];
    const allowed = createScram(
      context(users, { authzidAllowed: (authzid, username) => (seen.push([authzid, username]), authzid === `${username}@capulet.lit`) }),
      { hash: "SHA-256", plus: false },
    );
    assert.equal((await exchange(allowed, client())).kind, "success");
    assert.deepEqual(seen, [["juliet@capulet.lit", "juliet"]]);
  });

  it("answers temporary-auth-failure when the account store fails", async () => {
    const ctx = context({}, { lookup: () => Promise.reject(new Error("disk on fire")) });
    const mech = createScram(ctx, { hash: "SHA-256", plus: false });
    assertFailure(await mech.step(b("n,,n=juliet,r=abc")), "temporary-auth-failure");
  });

  describe("rejects malformed client-first-messages", () => {
    const cases: Record<string, Buffer> = {
      "empty message": b(""),
      "missing nonce": b("n,,n=user"),
      "unknown cbind flag": b("x,,n=user,r=abc"),
      "bad authzid attribute": b("n,z=foo,n=user,r=abc"),
      "mandatory extension": b("n,,m=ext,n=user,r=abc"),
      "mandatory extension after the nonce": b("n,,n=user,r=abc,m=x"),
      "empty username": b("n,,n=,r=abc"),
      "bad escape in username": b("n,,n=us=er,r=abc"),
      "username before nonce swapped": b("n,,r=abc,n=user"),
      "nonce with a non-printable character": b("n,,n=user,r=ab\u00e9c"),
      "invalid UTF-8": Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61]),
    };
    for (const [name, data] of Object.entries(cases)) {
      it(name, async () => {
        const mech = createScram(context({ user: credentialsFor("pencil") }), { hash: "SHA-256", plus: false });
        assertFailure(await mech.step(data), "malformed-request");
      });
    }
  });

  describe("rejects malformed client-final-messages", () => {
    const cases: Record<string, (withoutProof: string, proof: string) => string> = {
      "missing proof": (w) => w,
      "proof not base64": (w) => `${w},p=***`,
      "proof of the wrong length": (w) => `${w},p=${Buffer.alloc(5).toString("base64")}`,
      "channel binding not base64": (w, p) => `${w.replace(/^c=[^,]*/, "c=%%%")},p=${p}`,
      "attributes out of order": (w, p) => `${w.split(",").reverse().join(",")},p=${p}`,
    };
    for (const [name, build] of Object.entries(cases)) {
      it(name, async () => {
        const mech = createScram(context({ user: credentialsFor("pencil") }), { hash: "SHA-256", plus: false });
        const client = scramClient({ hash: "SHA-256", username: "user", password: "pencil" });
        const good = client.final(text(await mech.step(client.first()))).toString();
        const at = good.lastIndexOf(",p=");
        assertFailure(await mech.step(b(build(good.slice(0, at), good.slice(at + 3)))), "malformed-request");
      });
    }
  });

  it("fails when the final message carries a different nonce", async () => {
    const mech = createScram(context({ user: credentialsFor("pencil") }), { hash: "SHA-256", plus: false });
    const client = scramClient({ hash: "SHA-256", username: "user", password: "pencil" });
    const good = client.final(text(await mech.step(client.first()))).toString();
    assertFailure(await mech.step(b(good.replace(/,r=([^,]*)/, ",r=$1x"))), "not-authorized");
  });

  it("fails a step after the exchange has finished", async () => {
    const mech = createScram(context({ user: credentialsFor("pencil") }), { hash: "SHA-256", plus: false });
    assert.equal((await exchange(mech, scramClient({ hash: "SHA-256", username: "user", password: "pencil" }))).kind, "success");
    assertFailure(await mech.step(b("again")), "malformed-request");
  });
});
