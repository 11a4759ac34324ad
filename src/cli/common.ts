// Helpers shared by the CLI commands: config discovery, user-facing failures, password prompts, output.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { defaultConfig, loadConfig } from "../core/config/load.ts";
import type { Config } from "../core/config/schema.ts";

/** The file looked for in the working directory when --config is not given. */
export const DEFAULT_CONFIG_FILE = "comity.yaml";

/** A user-facing failure: main() prints `comity: message` (no stack trace) and exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** The config from --config, else ./comity.yaml when it exists, else the embedded default; throws ConfigError. */
export function resolveConfig(opts: { config?: string | undefined }): { config: Config; path: string | undefined } {
  if (opts.config !== undefined) {
    const path = resolve(opts.config);
    return { config: loadConfig(path), path };
  }
  const local = resolve(DEFAULT_CONFIG_FILE);
  if (existsSync(local)) return { config: loadConfig(local), path: local };
  return { config: defaultConfig(), path: undefined };
}

/** Print `comity: msg` to stderr and exit the process with `code` (default 1). */
export function fail(msg: string, code = 1): never {
  process.stderr.write(`comity: ${msg}\n`);
  process.exit(code);
}

/** Add the options every command shares: --config FILE (and --json when the command prints data). */
export function withConfig(cmd: Command, opts: { json?: boolean } = {}): Command {
  cmd.option("-c, --config <file>", `configuration file (default: ./${DEFAULT_CONFIG_FILE} if it exists, else the built-in default)`);
  if (opts.json === true) cmd.option("--json", "print machine-readable JSON");
  return cmd;
}

/** Print `value` as one line of JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Read a password: hidden from a terminal (asked twice when `confirm`), else the first line of stdin. */
export async function readPassword(prompt: string, opts: { confirm?: boolean } = {}): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const line = await readLine(stdin);
    if (line === undefined || line === "") throw new CliError("no password given (expected one line on stdin)");
    return line;
  }
  const password = await readHidden(prompt);
  if (password === "") throw new CliError("empty password");
  if (opts.confirm === true && (await readHidden("Repeat password: ")) !== password) throw new CliError("passwords do not match");
  return password;
}

/** The first line of a stream (without the line ending), or undefined when it ends empty. */
export function readLine(stream: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolveLine, reject) => {
    let buf = "";
    const finish = (value: string | undefined): void => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
      stream.pause();
      resolveLine(value);
    };
    const onData = (chunk: Buffer | string): void => {
      buf += chunk.toString();
      const nl = buf.indexOf("\n");
      if (nl !== -1) finish(buf.slice(0, nl).replace(/\r$/, ""));
    };
    const onEnd = (): void => finish(buf === "" ? undefined : buf.replace(/\r$/, ""));
    const onError = (err: Error): void => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      reject(err);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.resume();
  });
}

function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolvePassword, reject) => {
    let chars: string[] = [];
    const done = (): void => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          done();
          resolvePassword(chars.join(""));
          return;
        }
        if (ch === "\u0003") {
          done();
          reject(new CliError("cancelled", 130));
          return;
        }
        if (ch === "\u007f" || ch === "\b") chars = chars.slice(0, -1);
        else if (ch === "\u0015") chars = []; // Ctrl-U: erase the line
        else if (ch >= " ") chars.push(ch);
      }
    };
    stdin.setRawMode(true);
    stdin.on("data", onData);
    stdin.resume();
  });
}

/** Seconds with one decimal, for "done in 2.3 s" messages. */
export function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
}
