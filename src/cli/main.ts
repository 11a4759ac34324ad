// The `comity` command line: registers every command and turns user errors into `comity: message` and an exit code.
import { Command, CommanderError } from "commander";
import { CertError } from "../core/certs.ts";
import { ConfigError } from "../core/config/load.ts";
import { StorageError } from "../storage/errors.ts";
import { VERSION } from "../version.ts";
import { JidError } from "../xmpp/jid.ts";
import { registerCert } from "./cert.ts";
import { registerCheck } from "./check.ts";
import { CliError } from "./common.ts";
import { registerStart } from "./start.ts";
import { registerUserCommands } from "./users.ts";
import { registerS2s } from "./s2s.ts";
import { registerBuddies } from "./buddies.ts";
import { registerIncidents } from "./incidents.ts";
import { registerStatus } from "./status.ts";
import { registerStorage } from "./storage.ts";
import { registerPubsub } from "./pubsub.ts";
import { ControlError } from "../admin/control.ts";

/** Build the command tree (exposed for tests and help generation). */
export function buildProgram(): Command {
  const program = new Command("comity")
    .description("Comity XMPP server")
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)");
  // --- Server: `start` (src/cli/start.ts, owned by the lead). ---
  registerStart(program);
  // --- Server-roster commands (`buddies list|request|approve|deny|remove`, `s2s ...`) talk to the running
  //     server over the control socket; they are registered here by their owners, e.g.
  //     `import { registerBuddies } from "./buddies.ts"; registerBuddies(program);`. ---
  registerBuddies(program);
  registerS2s(program);
  registerIncidents(program);
  registerStatus(program);
  // --- Offline commands. ---
  registerCheck(program);
  registerCert(program);
  registerUserCommands(program);
  registerStorage(program);
  registerPubsub(program);
  return program;
}

/** Run the CLI with `argv` as in process.argv (node, script, args...). */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = exitCodeFor(err);
  }
}

/** Print a failure the way a user should see it and return the exit code. */
function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode; // commander has already printed it
  if (err instanceof ConfigError) {
    process.stderr.write(`comity: ${err.message}\n`);
    return 2;
  }
  if (err instanceof CliError) {
    process.stderr.write(`comity: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof CertError || err instanceof JidError || err instanceof StorageError || err instanceof ControlError) {
    process.stderr.write(`comity: ${err.message}\n`);
    return 1;
  }
  // Not a user error: a bug or an environment failure, where the stack helps.
  process.stderr.write(`comity: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 70;
}
