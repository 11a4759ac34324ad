// XEP-0185: Dialback Key Generation and Validation <https://xmpp.org/extensions/xep-0185.html> §3:
// key = HEX(HMAC-SHA256(SHA256(secret), receiving + " " + originating + " " + stream id)).
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** A per-process dialback secret holder. */
export class DialbackKeys {
  readonly #key: Buffer;

  constructor(secret: Buffer = randomBytes(32)) {
    this.#key = createHash("sha256").update(secret).digest();
  }

  /** The key the originating server sends in <db:result/> and the authoritative server checks in <db:verify/>. */
  generate(receiving: string, originating: string, streamId: string): string {
    return createHmac("sha256", this.#key).update(`${receiving} ${originating} ${streamId}`).digest("hex");
  }

  /** Constant-time check of a presented key. */
  verify(receiving: string, originating: string, streamId: string, key: string): boolean {
    const expected = Buffer.from(this.generate(receiving, originating, streamId));
    const given = Buffer.from(key.trim());
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
