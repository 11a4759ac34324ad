// Server-side SASL mechanism contract and registry (RFC 4422 §3, §5; RFC 6120 §6.3.3, §6.4.5).
import type { StoredCredentials } from "../storage/types.ts";
import { createPlain } from "./plain.ts";
import { createScram } from "./scram.ts";

/** SASL failure conditions (RFC 6120 §6.5). */
export type SaslFailure =
  | "aborted"
  | "account-disabled"
  | "credentials-expired"
  | "encryption-required"
  | "incorrect-encoding"
  | "invalid-authzid"
  | "invalid-mechanism"
  | "malformed-request"
  | "mechanism-too-weak"
  | "not-authorized"
  | "temporary-auth-failure";

/** What the server answers after one client message. */
export type SaslStep =
  | { kind: "challenge"; data: Buffer }
  /** `username` is the authcid exactly as the client sent it (SCRAM escapes decoded); the caller prepares it as a localpart. */
  | { kind: "success"; username: string; data?: Buffer }
  /** `username`: the authcid the failed attempt was for, when the exchange got that far (for per-account throttling). */
  | { kind: "failure"; condition: SaslFailure; text?: string; username?: string };

/** What a mechanism needs from the connection and the account store. */
export interface SaslContext {
  tls: boolean;
  /** Channel-binding data for a type ("tls-exporter", "tls-server-end-point"), or undefined when not available. */
  channelBinding(type: string): Buffer | undefined;
  /** The channel-binding types this connection supports (empty without TLS). */
  channelBindingTypes: string[];
  /** Look up stored credentials for a username; the raw authcid is passed and the caller prepares it. */
  lookup(username: string): Promise<StoredCredentials | undefined>;
  /** Whether `username` may act as the non-empty `authzid`. Without it every non-empty authzid fails with invalid-authzid. */
  authzidAllowed?(authzid: string, username: string): boolean;
  /** Allow PLAIN without TLS (auth.insecure_plain: benchmarks and development only). */
  insecurePlain?: boolean;
  /** Iteration count shown for unknown users so they look like real ones (auth.scram_iterations); default 4096. */
  iterations?: number;
  /**
   * How new accounts store passwords (auth.password_storage). With "plain", PLAIN checks a real account with one
   * comparison, so an unknown account gets one too instead of a PBKDF2 decoy that would take measurably longer.
   */
  passwordStorage?: "scram" | "plain";
}

/** One authentication exchange. `data` is undefined when the client sent no (initial) response. */
export interface SaslMechanism {
  readonly name: string;
  step(data: Buffer | undefined): Promise<SaslStep>;
}

const SCRAM_PLUS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"] as const;
const SCRAM = ["SCRAM-SHA-256", "SCRAM-SHA-1"] as const;

/**
 * Mechanisms to advertise, strongest first. `passwordStorage` does not change the list today: both SCRAM hashes are
 * stored in either mode (see credentials.ts), and PLAIN is offered only over TLS.
 */
export function listMechanisms(opts: { tls: boolean; channelBindingTypes: string[]; passwordStorage: "scram" | "plain"; insecurePlain?: boolean }): string[] {
  const names: string[] = [];
  if (opts.tls && opts.channelBindingTypes.length > 0) names.push(...SCRAM_PLUS);
  names.push(...SCRAM);
  if (opts.tls || opts.insecurePlain === true) names.push("PLAIN");
  return names;
}

/** A mechanism that refuses at its first step, used for PLAIN requested without TLS. */
function refusing(name: string, condition: SaslFailure, text: string): SaslMechanism {
  return {
    name,
    step: () => Promise.resolve({ kind: "failure", condition, text }),
  };
}

/**
 * A new exchange for mechanism `name`, or undefined when the name is unknown or cannot be offered here
 * (answer invalid-mechanism). PLAIN without TLS yields a mechanism that fails with encryption-required.
 */
export function createMechanism(name: string, ctx: SaslContext): SaslMechanism | undefined {
  const plusAvailable = ctx.tls && ctx.channelBindingTypes.length > 0;
  switch (name) {
    case "SCRAM-SHA-256-PLUS":
      return plusAvailable ? createScram(ctx, { hash: "SHA-256", plus: true }) : undefined;
    case "SCRAM-SHA-1-PLUS":
      return plusAvailable ? createScram(ctx, { hash: "SHA-1", plus: true }) : undefined;
    case "SCRAM-SHA-256":
      return createScram(ctx, { hash: "SHA-256", plus: false });
    case "SCRAM-SHA-1":
      return createScram(ctx, { hash: "SHA-1", plus: false });
    case "PLAIN":
      return ctx.tls || ctx.insecurePlain === true ? createPlain(ctx) : refusing(name, "encryption-required", "PLAIN is only available over TLS");
    default:
      return undefined;
  }
}
