// Helpers shared by the SASL mechanisms: decoy credentials for unknown users (RFC 5802 §9), constant-time compare, authzid policy.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ScramCredential } from "../storage/types.ts";
import type { ScramHash } from "./credentials.ts";
import type { SaslContext, SaslStep } from "./mechanism.ts";

// Per process: decoy salts stay stable for one username while the process runs, and differ between processes.
const DECOY_SECRET = randomBytes(32);
const HMAC_KEY = randomBytes(32);

export const DEFAULT_ITERATIONS = 4096;

/** A credential that looks real for a user that does not exist; nothing can match it. */
export function decoyCredential(hash: ScramHash, username: string, iterations: number): ScramCredential {
  const salt = createHmac("sha256", DECOY_SECRET).update(`${hash}\0${username}`).digest().subarray(0, 16);
  const junk = randomBytes(hash === "SHA-1" ? 20 : 32).toString("base64");
  return { salt: salt.toString("base64"), iterations, storedKey: junk, serverKey: junk };
}

/** Compare two byte strings in time independent of where they differ (and of their lengths' contents). */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length === b.length) return timingSafeEqual(a, b);
  // Different lengths: compare keyed digests so the work does not depend on the contents.
  const ha = createHmac("sha256", HMAC_KEY).update(a).digest();
  const hb = createHmac("sha256", HMAC_KEY).update(b).digest();
  return timingSafeEqual(ha, hb) && false;
}

/** Whether the client may use `authzid` (empty means "derive from authcid" and is always fine). */
export function authzidOk(ctx: SaslContext, authzid: string, username: string): boolean {
  if (authzid === "") return true;
  return ctx.authzidAllowed?.(authzid, username) ?? false;
}

/** Build a failure step. */
export function fail(condition: Extract<SaslStep, { kind: "failure" }>["condition"], text?: string): SaslStep {
  return text === undefined ? { kind: "failure", condition } : { kind: "failure", condition, text };
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decode strict UTF-8, or undefined when the bytes are not UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decode canonical padded base64, or undefined when it is not. */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, "base64") : undefined;
}
