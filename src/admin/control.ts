// The control socket: a Unix socket (mode 0600, under data_dir by default) over which the CLI talks to the
// running server. One JSON object per line: {"id", "method", "params"} → {"id", "result"} | {"id", "error"}.
import { createServer, connect, type Server, type Socket } from "node:net";
import { chmodSync, existsSync, unlinkSync } from "node:fs";

export type ControlMethod = (params: Record<string, unknown>) => unknown;

/** A failure the CLI shows as is. */
export class ControlError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "ControlError";
    this.code = code;
  }
}

const MAX_LINE = 1 << 20;

/** Serve control requests on `path`; a stale socket file from a crashed server is replaced. */
export async function startControlServer(path: string, methods: Map<string, ControlMethod>, log: { warn(o: object, m: string): void }): Promise<Server> {
  if (existsSync(path)) {
    if (await isListening(path)) throw new ControlError("COMITY_ERR_RUNNING", `another server is already using the control socket ${path}`);
    unlinkSync(path);
  }
  const server = createServer((socket) => serve(socket, methods, log));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
}

function serve(socket: Socket, methods: Map<string, ControlMethod>, log: { warn(o: object, m: string): void }): void {
  let buf = "";
  socket.setEncoding("utf8");
  socket.on("error", () => {});
  socket.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      socket.destroy();
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      void handle(line).then((reply) => socket.write(JSON.stringify(reply) + "\n"));
    }
  });

  async function handle(line: string): Promise<object> {
    let req: { id?: unknown; method?: unknown; params?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return { id: null, error: { code: "COMITY_ERR_CONTROL_BAD_REQUEST", message: "invalid JSON" } };
    }
    const id = req.id ?? null;
    const fn = typeof req.method === "string" ? methods.get(req.method) : undefined;
    if (!fn) return { id, error: { code: "COMITY_ERR_CONTROL_UNKNOWN_METHOD", message: `unknown method ${String(req.method)}` } };
    try {
      const params = req.params && typeof req.params === "object" ? (req.params as Record<string, unknown>) : {};
      return { id, result: (await fn(params)) ?? null };
    } catch (err) {
      // Any error carrying a stable COMITY_ERR_* code reaches the CLI with it (module errors, e.g. BuddyError).
      const code = (err as { code?: unknown } | null)?.code;
      if (err instanceof Error && typeof code === "string" && code.startsWith("COMITY_ERR_")) return { id, error: { code, message: err.message } };
      log.warn({ err, method: req.method }, "control method failed");
      return { id, error: { code: "COMITY_ERR_INTERNAL", message: err instanceof Error ? err.message : String(err) } };
    }
  }
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

/** Call a method of the running server (CLI side). */
export function callControl(path: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new ControlError("COMITY_ERR_CONTROL_TIMEOUT", "the server did not answer in time"));
    }, timeoutMs);
    s.setEncoding("utf8");
    s.on("connect", () => s.write(JSON.stringify({ id: 1, method, params }) + "\n"));
    s.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      s.destroy();
      const reply = JSON.parse(buf.slice(0, nl)) as { result?: unknown; error?: { code: string; message: string } };
      if (reply.error) reject(new ControlError(reply.error.code, reply.error.message));
      else resolve(reply.result);
    });
    s.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === "ENOENT" || err.code === "ECONNREFUSED"
          ? new ControlError("COMITY_ERR_NOT_RUNNING", `the server is not running (no control socket at ${path})`)
          : err,
      );
    });
  });
}
