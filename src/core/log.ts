// Logging: pino, as JSON lines or a compact human-readable form (`HH:MM:SS.mmm LEVEL msg key=value ...`).
import { pino, type Logger as PinoLogger } from "pino";

/** The logger handed to every part of the server (pino's; child loggers via `log.child({ host })`). */
export type Logger = PinoLogger;

export type LogFormat = "json" | "pretty";

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const OMIT = new Set(["level", "time", "msg", "pid", "hostname"]);

const guarded = new WeakSet<object>();

/** A logger at `level` writing `format` to `destination` (default stdout). */
export function createLogger(opts: { level: string; format: LogFormat; destination?: NodeJS.WritableStream }): Logger {
  const dest = opts.destination ?? process.stdout;
  // A reader that went away (a closed pipe, a stopped journal) must not take the server down with an unhandled
  // EPIPE: logging stops, serving goes on.
  if (typeof (dest as NodeJS.WriteStream).on === "function" && !guarded.has(dest)) {
    guarded.add(dest);
    (dest as NodeJS.WriteStream).on("error", () => {});
  }
  const stream = opts.format === "pretty" ? { write: (line: string) => void dest.write(formatPretty(line)) } : dest;
  return pino({ level: opts.level, base: null, timestamp: pino.stdTimeFunctions.epochTime }, stream);
}

/** A logger that discards everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/** Turn one pino JSON line into `HH:MM:SS.mmm LEVEL msg key=value ...` (plus an indented stack for errors). */
export function formatPretty(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith("\n") ? line : `${line}\n`;
  }
  const time = typeof rec["time"] === "number" ? new Date(rec["time"]) : new Date();
  const hh = String(time.getHours()).padStart(2, "0");
  const mm = String(time.getMinutes()).padStart(2, "0");
  const ss = String(time.getSeconds()).padStart(2, "0");
  const ms = String(time.getMilliseconds()).padStart(3, "0");
  const level = (LEVEL_NAMES[Number(rec["level"])] ?? String(rec["level"])).padEnd(5);
  let out = `${hh}:${mm}:${ss}.${ms} ${level} ${typeof rec["msg"] === "string" ? rec["msg"] : ""}`;
  let stack = "";
  for (const [key, value] of Object.entries(rec)) {
    if (OMIT.has(key)) continue;
    if (key === "err" && typeof value === "object" && value !== null) {
      const err = value as { message?: unknown; stack?: unknown };
      out += ` err=${formatValue(err.message)}`;
      const frames = typeof err.stack === "string" ? err.stack.split("\n").slice(1).map((l) => l.trim()).filter((l) => l !== "") : [];
      if (frames.length > 0) stack = `\n    ${frames.join("\n    ")}`;
      continue;
    }
    out += ` ${key}=${formatValue(value)}`;
  }
  return `${out}${stack}\n`;
}

function formatValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v === undefined) return "undefined";
  return JSON.stringify(v);
}
