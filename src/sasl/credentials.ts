// Derivation of stored SCRAM credentials from a password (RFC 5802 §3, RFC 7677 for SHA-256).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import type { ScramCredential, StoredCredentials } from "../storage/types.ts";
import { prepareOpaqueString } from "./password.ts";

export { PasswordError } from "./password.ts";

export type ScramHash = "SHA-1" | "SHA-256";
const NODE_HASH: Record<ScramHash, string> = { "SHA-1": "sha1", "SHA-256": "sha256" };
const HASH_LEN: Record<ScramHash, number> = { "SHA-1": 20, "SHA-256": 32 };

/** Prepare a password with the PRECIS OpaqueString profile (RFC 8265 §4.2); throws PasswordError when it is empty or disallowed. */
export function preparePassword(password: string): string {
  return prepareOpaqueString(password);
}

/** SaltedPassword := Hi(Normalize(password), salt, i). */
export function saltedPassword(hash: ScramHash, password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(preparePassword(password), salt, iterations, HASH_LEN[hash], NODE_HASH[hash]);
}

/** HMAC with the SCRAM hash. */
export function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(NODE_HASH[hash], key).update(data).digest();
}

/** H() with the SCRAM hash. */
export function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(NODE_HASH[hash]).update(data).digest();
}

/** One SCRAM credential from a salted password. */
export function scramCredential(hash: ScramHash, salted: Buffer, salt: Buffer, iterations: number): ScramCredential {
  const clientKey = hmac(hash, salted, "Client Key");
  return {
    salt: salt.toString("base64"),
    iterations,
    storedKey: digest(hash, clientKey).toString("base64"),
    serverKey: hmac(hash, salted, "Server Key").toString("base64"),
  };
}

/** Credentials to store for `password`: SCRAM-SHA-1 and SCRAM-SHA-256 keys, plus the password when storage is plain. */
export function deriveCredentials(password: string, opts: { storage: "scram" | "plain"; iterations: number }): StoredCredentials {
  const scram: StoredCredentials["scram"] = {};
  for (const hash of ["SHA-1", "SHA-256"] as const) {
    const salt = randomBytes(16);
    scram[hash] = scramCredential(hash, saltedPassword(hash, password, salt, opts.iterations), salt, opts.iterations);
  }
  return opts.storage === "plain" ? { plain: preparePassword(password), scram } : { scram };
}
