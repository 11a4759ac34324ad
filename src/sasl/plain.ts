// PLAIN server mechanism (RFC 4616 §2, §4), verified against a plain or SCRAM-stored password (RFC 5802 §3).
import { randomBytes } from "node:crypto";
import type { StoredCredentials } from "../storage/types.ts";
import { authzidOk, constantTimeEqual, decodeUtf8, decoyCredential, DEFAULT_ITERATIONS, fail } from "./_internal.ts";
import { digest, hmac, preparePassword, saltedPassword, type ScramHash } from "./credentials.ts";
import type { SaslContext, SaslMechanism, SaslStep } from "./mechanism.ts";

// RFC 4616 caps each field at 255 octets; we allow more (some clients send long passphrases) but stay bounded.
const MAX_FIELD = 1024;

/**
 * Whether `password` (as sent by the client) matches the stored credentials; runs similar work for unknown users: the
 * work a real account of the configured storage would cost (a comparison for "plain", PBKDF2 for "scram").
 */
function verify(stored: StoredCredentials | undefined, username: string, password: string, iterations: number, storage: "scram" | "plain"): boolean {
  let prepared: string | undefined;
  try {
    prepared = preparePassword(password);
  } catch {
    prepared = undefined; // a password the profile refuses can never have been stored
  }
  if (stored?.plain !== undefined || (stored === undefined && storage === "plain")) {
    const expected = stored?.plain ?? decoyPlain(username);
    const ok = prepared !== undefined && constantTimeEqual(Buffer.from(prepared, "utf8"), Buffer.from(expected, "utf8"));
    return ok && stored !== undefined;
  }
  // Real accounts carry SHA-256, so a decoy for an unknown user uses it too.
  const hash: ScramHash = stored?.scram["SHA-256"] === undefined && stored?.scram["SHA-1"] !== undefined ? "SHA-1" : "SHA-256";
  const real = stored?.scram[hash];
  const cred = real ?? decoyCredential(hash, username, iterations);
  // When preparation failed, hash a stand-in so the time spent does not tell the cases apart.
  const salted = saltedPassword(hash, prepared ?? "x", Buffer.from(cred.salt, "base64"), cred.iterations);
  const storedKey = digest(hash, hmac(hash, salted, "Client Key"));
  return constantTimeEqual(storedKey, Buffer.from(cred.storedKey, "base64")) && real !== undefined && prepared !== undefined;
}

/**
 * Whether `password` matches an account's stored credentials (plain or SCRAM keys), in constant time, with similar
 * work for an unknown account (`stored` undefined). For surfaces that take a password outside SASL (the HTTP admin).
 */
export function checkPassword(stored: StoredCredentials | undefined, username: string, password: string, iterations = DEFAULT_ITERATIONS, storage: "scram" | "plain" = "scram"): boolean {
  return verify(stored, username, password, iterations, storage);
}

/** A stand-in stored password for an unknown account, of a typical length, never equal to what a client sends twice. */
function decoyPlain(username: string): string {
  return `${username.length}:${DECOY_SECRET}`;
}

const DECOY_SECRET = randomBytes(12).toString("base64");

/** A PLAIN server exchange for `ctx` (offer it over TLS only). */
export function createPlain(ctx: SaslContext): SaslMechanism {
  let state: "start" | "awaiting" | "done" = "start";

  async function onMessage(data: Buffer): Promise<SaslStep> {
    // message = [authzid] NUL authcid NUL passwd (RFC 4616 §2)
    const first = data.indexOf(0);
    const second = first < 0 ? -1 : data.indexOf(0, first + 1);
    if (first < 0 || second < 0 || data.indexOf(0, second + 1) >= 0) return fail("malformed-request", "expected authzid NUL authcid NUL password");
    const fields = [data.subarray(0, first), data.subarray(first + 1, second), data.subarray(second + 1)];
    if (fields.some((f) => f.length > MAX_FIELD)) return fail("malformed-request", "field too long");
    const [authzid, username, password] = fields.map(decodeUtf8);
    if (authzid === undefined || username === undefined || password === undefined) return fail("malformed-request", "not UTF-8");
    if (username === "" || password === "") return fail("malformed-request", "empty authcid or password");

    let stored: StoredCredentials | undefined;
    try {
      stored = await ctx.lookup(username);
    } catch {
      return fail("temporary-auth-failure");
    }
    if (!verify(stored, username, password, ctx.iterations ?? DEFAULT_ITERATIONS, ctx.passwordStorage ?? "scram")) return { kind: "failure", condition: "not-authorized", username };
    if (!authzidOk(ctx, authzid, username)) return fail("invalid-authzid");
    return { kind: "success", username };
  }

  return {
    name: "PLAIN",
    async step(data) {
      if (state === "done") return fail("malformed-request", "the exchange has already finished");
      if (data === undefined && state === "start") {
        // No initial response: an empty challenge asks for it (RFC 6120 §6.4.2).
        state = "awaiting";
        return { kind: "challenge", data: Buffer.alloc(0) };
      }
      const result = await onMessage(data ?? Buffer.alloc(0));
      state = "done";
      return result;
    },
  };
}
