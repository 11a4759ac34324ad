// SCRAM server mechanism: SCRAM-SHA-1(-PLUS) and SCRAM-SHA-256(-PLUS) (RFC 5802 §3, §5, §6, §7; RFC 7677; RFC 6120 §6.4).
import { randomBytes } from "node:crypto";
import type { ScramCredential } from "../storage/types.ts";
import { authzidOk, constantTimeEqual, decodeBase64, decodeUtf8, decoyCredential, DEFAULT_ITERATIONS, fail } from "./_internal.ts";
import { digest, hmac, type ScramHash } from "./credentials.ts";
import type { SaslContext, SaslMechanism, SaslStep } from "./mechanism.ts";

/** Options for one SCRAM exchange. */
export interface ScramOptions {
  hash: ScramHash;
  /** The -PLUS variant: channel binding is required. */
  plus: boolean;
  /** Server nonce factory (printable ASCII without ','); tests inject RFC example nonces. Default: 18 random bytes, base64. */
  nonce?: () => string;
}

const HASH_LEN: Record<ScramHash, number> = { "SHA-1": 20, "SHA-256": 32 };
const CB_NAME = /^[A-Za-z0-9.-]+$/;
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const ATTR = /^[A-Za-z]=/;

/** A failure that ends the exchange while parsing. */
class ScramError extends Error {
  readonly step: SaslStep;
  constructor(step: SaslStep) {
    super(step.kind === "failure" ? step.condition : "scram");
    this.step = step;
  }
}

function malformed(text: string): never {
  throw new ScramError(fail("malformed-request", text));
}

/** Decode a saslname (RFC 5802 §7): "=2C" is ',', "=3D" is '='; any other '=' or a NUL is malformed. */
function decodeSaslname(value: string, what: string): string {
  if (value.includes("\0")) malformed(`${what} contains NUL`);
  let bad = false;
  const out = value.replace(/=2C|=3D|=/g, (m) => {
    if (m === "=2C") return ",";
    if (m === "=3D") return "=";
    bad = true;
    return m;
  });
  if (bad) malformed(`${what} has a bad '=' escape`);
  return out;
}

/** The value of attribute `name` in `part`, or malformed. */
function attr(part: string | undefined, name: string, what: string): string {
  if (part === undefined || !part.startsWith(`${name}=`)) malformed(`expected ${what} (${name}=)`);
  return part.slice(2);
}

function checkExtensions(parts: string[]): void {
  for (const p of parts) {
    if (!ATTR.test(p) || p.length < 3) malformed("bad attribute");
    if (p.startsWith("m=")) malformed("mandatory extension (m=) is not supported");
  }
}

interface ClientFirst {
  gs2Header: string;
  cbFlag: "n" | "y" | "p";
  cbType: string | undefined;
  authzid: string;
  username: string;
  clientNonce: string;
  bare: string;
}

/** Parse client-first-message (RFC 5802 §7). */
function parseClientFirst(text: string): ClientFirst {
  const parts = text.split(",");
  if (parts.length < 4) malformed("client-first-message is too short");
  const flag = parts[0]!;
  let cbFlag: ClientFirst["cbFlag"];
  let cbType: string | undefined;
  if (flag === "n" || flag === "y") cbFlag = flag;
  else if (flag.startsWith("p=") && CB_NAME.test(flag.slice(2))) {
    cbFlag = "p";
    cbType = flag.slice(2);
  } else malformed("bad gs2-cbind-flag");
  const az = parts[1]!;
  const authzid = az === "" ? "" : decodeSaslname(attr(az, "a", "authzid"), "authzid");
  if (az !== "" && authzid === "") malformed("empty authzid");
  const gs2Header = `${flag},${az},`;
  const bare = text.slice(gs2Header.length);
  if (parts[2]!.startsWith("m=")) malformed("mandatory extension (m=) is not supported");
  const username = decodeSaslname(attr(parts[2], "n", "username"), "username");
  if (username === "") malformed("empty username");
  const clientNonce = attr(parts[3], "r", "nonce");
  if (!PRINTABLE.test(clientNonce)) malformed("bad client nonce");
  checkExtensions(parts.slice(4));
  return { gs2Header, cbFlag, cbType, authzid, username, clientNonce, bare };
}

interface ClientFinal {
  channelBinding: Buffer;
  nonce: string;
  proof: Buffer;
  withoutProof: string;
}

/** Parse client-final-message (RFC 5802 §7). */
function parseClientFinal(text: string): ClientFinal {
  const parts = text.split(",");
  if (parts.length < 3) malformed("client-final-message is too short");
  const cb = decodeBase64(attr(parts[0], "c", "channel binding"));
  if (cb === undefined) malformed("channel binding is not base64");
  const nonce = attr(parts[1], "r", "nonce");
  const proofText = attr(parts[parts.length - 1], "p", "proof");
  checkExtensions(parts.slice(2, -1));
  const proof = decodeBase64(proofText);
  if (proof === undefined || proof.length === 0) malformed("proof is not base64");
  return { channelBinding: cb, nonce, proof, withoutProof: parts.slice(0, -1).join(",") };
}

/** A SCRAM server exchange for `ctx` (SCRAM-SHA-1, SCRAM-SHA-256, or their -PLUS forms). */
export function createScram(ctx: SaslContext, opts: ScramOptions): SaslMechanism {
  const { hash, plus } = opts;
  const name = `SCRAM-${hash}${plus ? "-PLUS" : ""}`;
  let state: "start" | "awaiting-first" | "awaiting-final" | "done" = "start";
  let first: ClientFirst | undefined;
  let cred: ScramCredential | undefined;
  let known = false;
  let serverFirst = "";
  let combinedNonce = "";
  let cbData: Buffer = Buffer.alloc(0);

  async function onClientFirst(data: Buffer): Promise<SaslStep> {
    const text = decodeUtf8(data);
    if (text === undefined) malformed("client-first-message is not UTF-8");
    const msg = parseClientFirst(text);

    // Channel binding negotiation (RFC 5802 §6, §7 gs2-cbind-flag).
    const serverSupportsCb = ctx.tls && ctx.channelBindingTypes.length > 0;
    if (plus) {
      if (msg.cbFlag !== "p") malformed(`${name} requires channel binding (p=)`);
      const type = msg.cbType!;
      const bound = ctx.channelBindingTypes.includes(type) ? ctx.channelBinding(type) : undefined;
      if (bound === undefined) throw new ScramError(fail("not-authorized", "channel-binding-not-supported"));
      cbData = bound;
    } else if (msg.cbFlag === "p") {
      malformed(`channel binding (p=) is not allowed with ${name}; use ${name}-PLUS`);
    } else if (msg.cbFlag === "y" && serverSupportsCb) {
      // The client thinks we cannot bind, but we advertised -PLUS: someone removed it (downgrade).
      throw new ScramError(fail("not-authorized", "server-does-support-channel-binding"));
    }

    let stored;
    try {
      stored = await ctx.lookup(msg.username);
    } catch {
      return fail("temporary-auth-failure");
    }
    const real = stored?.scram[hash];
    known = real !== undefined;
    // Unknown user: go on with a stable decoy salt so that user existence does not leak (RFC 5802 §9).
    cred = real ?? decoyCredential(hash, msg.username, ctx.iterations ?? DEFAULT_ITERATIONS);

    const serverNonce = opts.nonce?.() ?? randomBytes(18).toString("base64");
    if (!PRINTABLE.test(serverNonce)) throw new Error("SCRAM server nonce must be printable ASCII without ','");
    combinedNonce = msg.clientNonce + serverNonce;
    serverFirst = `r=${combinedNonce},s=${cred.salt},i=${cred.iterations}`;
    first = msg;
    state = "awaiting-final";
    return { kind: "challenge", data: Buffer.from(serverFirst, "utf8") };
  }

  function onClientFinal(data: Buffer): SaslStep {
    const text = decodeUtf8(data);
    if (text === undefined) malformed("client-final-message is not UTF-8");
    const msg = parseClientFinal(text);
    const f = first!;
    const c = cred!;
    const expectedCb = Buffer.concat([Buffer.from(f.gs2Header, "utf8"), cbData]);
    if (!constantTimeEqual(msg.channelBinding, expectedCb)) return fail("not-authorized", "channel-bindings-dont-match");
    if (msg.nonce !== combinedNonce) return fail("not-authorized", "nonce mismatch");
    if (msg.proof.length !== HASH_LEN[hash]) malformed("proof has the wrong length");

    const authMessage = `${f.bare},${serverFirst},${msg.withoutProof}`;
    const storedKey = Buffer.from(c.storedKey, "base64");
    const clientSignature = hmac(hash, storedKey, authMessage);
    const clientKey = Buffer.alloc(clientSignature.length);
    for (let i = 0; i < clientKey.length; i++) clientKey[i] = msg.proof[i]! ^ clientSignature[i]!;
    const proofOk = constantTimeEqual(digest(hash, clientKey), storedKey);
    if (!proofOk || !known) return { kind: "failure", condition: "not-authorized", username: f.username };
    if (!authzidOk(ctx, f.authzid, f.username)) return fail("invalid-authzid");
    const serverSignature = hmac(hash, Buffer.from(c.serverKey, "base64"), authMessage);
    return { kind: "success", username: f.username, data: Buffer.from(`v=${serverSignature.toString("base64")}`, "utf8") };
  }

  async function step(data: Buffer | undefined): Promise<SaslStep> {
    switch (state) {
      case "start":
        if (data === undefined) {
          // No initial response: ask for client-first-message with an empty challenge (RFC 6120 §6.4.2).
          state = "awaiting-first";
          return { kind: "challenge", data: Buffer.alloc(0) };
        }
        return onClientFirst(data);
      case "awaiting-first":
        return onClientFirst(data ?? Buffer.alloc(0));
      case "awaiting-final":
        return onClientFinal(data ?? Buffer.alloc(0));
      case "done":
        return fail("malformed-request", "the exchange has already finished");
    }
  }

  return {
    name,
    async step(data) {
      let result: SaslStep;
      try {
        result = await step(data);
      } catch (err) {
        if (!(err instanceof ScramError)) throw err;
        result = err.step;
      }
      if (result.kind !== "challenge") state = "done";
      return result;
    },
  };
}
