// XEP-0363 §4 (and its Business Rules): the HTTP side of the upload service, mounted at /upload/<domain> on the HTTP
// listener. PUT <id>/<name>?token=… stores the body of one slot, streamed to a temporary file and renamed into
// place once complete and synced (never held in memory; a client that stalls or trickles is cut off). GET and HEAD
// serve a stored file to anyone who has the URL, with single byte ranges (RFC 9110 §14), validators (ETag,
// Last-Modified, RFC 9110 §13) and headers that stop a browser from running what someone uploaded.
import { createReadStream, createWriteStream } from "node:fs";
import { rename, stat, unlink } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { SLOT_ID, mediaEssence, type UploadService } from "./service.ts";

/** No bytes of a PUT body for this long: the upload is abandoned. */
const IDLE_MS = 60_000;
/** A PUT body may arrive no slower than this on average (after a minute's grace): trickling is cut off. */
const MIN_RATE = 4096;

/**
 * Types a browser shows without running anything: these are served inline. Everything else (HTML, SVG, XML,
 * JavaScript, PDF...) is served as an attachment, so that an uploaded page never runs on this origin.
 */
const INLINE_TYPES = new Set([
  "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/heic", "image/heif",
  "audio/mpeg", "audio/ogg", "audio/opus", "audio/aac", "audio/mp4", "audio/wav", "audio/webm", "audio/flac", "audio/x-m4a",
  "video/mp4", "video/webm", "video/ogg", "video/quicktime",
  "text/plain",
]);

/**
 * A document served from here may do nothing: no scripts, plugins, forms or framing of others (`sandbox` also puts
 * it in an opaque origin). Images and media may load from the same place so that a browser's own viewer works.
 */
const CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'";

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "content-length, content-range, content-type, etag, last-modified, accept-ranges",
};

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${text}\n`;
  res.writeHead(status, { ...CORS, "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), "x-content-type-options": "nosniff", "cache-control": "no-store", ...headers });
  res.end(body);
}

/** RFC 6266 §4: the file name for Content-Disposition, ASCII fallback plus the exact UTF-8 name (RFC 8187). */
function disposition(kind: "inline" | "attachment", name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

/** A single byte range (RFC 9110 §14.1.2) of a representation of `size` bytes; "unsatisfiable", or undefined to send it all. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined; // several ranges or another unit: the whole file (a server may ignore Range, §14.2)
  const [, a, b] = m as unknown as [string, string, string];
  if (a === "" && b === "") return undefined;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (start >= size) return "unsatisfiable";
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  if (end < start) return undefined; // invalid: ignored
  return { start, end };
}

/** The handler for /upload/<domain>: `prefix` is that path. */
export function uploadHttpHandler(service: UploadService, prefix: string) {
  return async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (req.method === "OPTIONS") {
      // CORS preflight (web clients PUT with a Content-Type header, which is not a "simple" request).
      res.writeHead(204, {
        ...CORS,
        "access-control-allow-methods": "GET, HEAD, PUT, OPTIONS",
        "access-control-allow-headers": "content-type, authorization",
        "access-control-max-age": "86400",
      });
      res.end();
      return;
    }
    const m = /^\/([^/]+)\/([^/]+)$/.exec(url.pathname.slice(prefix.length));
    let name: string | undefined;
    try {
      name = m ? decodeURIComponent(m[2]!) : undefined;
    } catch {
      name = undefined;
    }
    const id = m?.[1];
    if (id === undefined || name === undefined || !SLOT_ID.test(id)) return plain(res, 404, "not found");
    if (req.method === "PUT") return put(service, req, res, url, id, name);
    if (req.method === "GET" || req.method === "HEAD") return get(service, req, res, id, name);
    plain(res, 405, "method not allowed", { allow: "GET, HEAD, PUT, OPTIONS" });
  };
}

async function put(service: UploadService, req: IncomingMessage, res: ServerResponse, url: URL, id: string, name: string): Promise<void> {
  // A refused PUT's body is read and dropped when its declared length is within what this service accepts anyway:
  // closing at once would reset a reverse proxy still sending it (nginx answers 502 instead of our status). Without
  // a length, or with a larger one, the connection closes.
  const fail = (status: number, text: string, headers: Record<string, string> = {}) => {
    const length = Number(req.headers["content-length"] ?? Number.NaN);
    const drain = Number.isSafeInteger(length) && length <= service.opts.maxFileSize && !req.destroyed;
    if (drain) {
      req.setTimeout(IDLE_MS, () => req.destroy());
      req.resume();
    }
    plain(res, status, text, drain ? headers : { connection: "close", ...headers });
  };
  const slot = await service.store.getSlot(id);
  // An unknown slot and a wrong token look the same: nothing says which slot ids exist.
  if (!slot || slot.name !== name || !service.validToken(id, url.searchParams.get("token"))) return fail(403, "not a valid upload URL");
  if (slot.uploaded !== undefined || service.active.has(id)) return fail(409, "this slot was already used");
  if (service.now() > slot.created + service.opts.slotTimeoutMs) return fail(410, "this upload URL has expired; request a new slot");
  const lengthHeader = req.headers["content-length"];
  if (lengthHeader === undefined) return fail(411, `Content-Length is required (${slot.size})`);
  if (!/^\d+$/.test(lengthHeader) || Number(lengthHeader) !== slot.size) {
    return fail(Number(lengthHeader) > slot.size ? 413 : 400, `Content-Length must be the slot's size, ${slot.size}`);
  }
  const type = req.headers["content-type"];
  if (slot.type !== undefined && (type === undefined || mediaEssence(type) !== mediaEssence(slot.type))) {
    return fail(400, `Content-Type must be the slot's, ${slot.type}`);
  }
  if (type !== undefined && (type.length > 255 || /[\x00-\x1f\x7f]/.test(type))) return fail(400, "bad Content-Type");

  const final = service.filePath(id);
  const tmp = `${final}.part`;
  let aborted = false;
  const abort = () => {
    aborted = true;
    req.destroy();
  };
  service.active.set(id, { owner: slot.owner, abort });
  // Stalls and trickles are cut off here, since this path is spared the listener's whole-request deadline.
  req.setTimeout(IDLE_MS, abort);
  const deadline = setTimeout(abort, 60_000 + Math.ceil((slot.size / MIN_RATE) * 1000));
  let received = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      if (received > slot.size) done(new Error("body longer than the slot"));
      else done(null, chunk);
    },
  });
  try {
    // `flush`: the file is fsynced before it closes, so 201 means stored; "wx": never over an existing file.
    await pipeline(req, count, createWriteStream(tmp, { flags: "wx", mode: 0o640, flush: true }));
    if (aborted || received !== slot.size) throw new Error("incomplete body");
    await rename(tmp, final);
    if (!(await service.completed(slot, type))) {
      await unlink(final).catch(() => {});
      return fail(410, "this slot was withdrawn");
    }
  } catch (err) {
    await unlink(tmp).catch(() => {});
    if (!res.destroyed && !req.destroyed && (err as NodeJS.ErrnoException).code === "EEXIST") return fail(409, "this slot is being used");
    if (!req.destroyed && !res.headersSent) return fail(400, "the upload did not complete");
    res.destroy();
    return;
  } finally {
    clearTimeout(deadline);
    req.setTimeout(0);
    if (service.active.get(id)?.abort === abort) service.active.delete(id);
  }
  res.writeHead(201, { ...CORS, "content-length": "0", "cache-control": "no-store" });
  res.end();
}

async function get(service: UploadService, req: IncomingMessage, res: ServerResponse, id: string, name: string): Promise<void> {
  const slot = await service.slot(id);
  if (!slot || slot.uploaded === undefined || slot.name !== name || service.expired(slot)) return plain(res, 404, "not found");
  if (service.opts.ownerExists && !(await service.opts.ownerExists(slot.owner))) {
    // The owner's account is gone (deleted by the CLI, maybe while we ran): so are its files, from now on.
    void service.deleteOwner(slot.owner).catch(() => {});
    return plain(res, 404, "not found");
  }
  let size: number;
  try {
    size = (await stat(service.filePath(id))).size;
  } catch {
    return plain(res, 404, "not found");
  }
  // The content of a slot never changes: its id is a strong validator, and caches may keep it until it expires.
  const etag = `"${id}"`;
  const modified = new Date(Math.floor(slot.uploaded / 1000) * 1000);
  const lastModified = modified.toUTCString();
  const type = slot.type ?? "application/octet-stream";
  const left = service.opts.expireAfterMs > 0 ? Math.max(0, Math.floor((slot.uploaded + service.opts.expireAfterMs - service.now()) / 1000)) : 31_536_000;
  const headers: Record<string, string> = {
    ...CORS,
    "content-type": type,
    etag,
    "last-modified": lastModified,
    "cache-control": `public, max-age=${left}, immutable`,
    "accept-ranges": "bytes",
    "x-content-type-options": "nosniff",
    "content-security-policy": CSP,
    "cross-origin-resource-policy": "cross-origin",
    "referrer-policy": "no-referrer",
    "content-disposition": disposition(INLINE_TYPES.has(mediaEssence(type)) ? "inline" : "attachment", slot.name),
  };
  // RFC 9110 §13.1.2 and §13.1.3: If-None-Match wins over If-Modified-Since.
  const inm = req.headers["if-none-match"];
  const ims = req.headers["if-modified-since"];
  const notModified = inm !== undefined
    ? inm.trim() === "*" || inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag)
    : ims !== undefined && !Number.isNaN(Date.parse(ims)) && Date.parse(ims) >= modified.getTime();
  if (notModified) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  let range = parseRange(req.headers["range"], size);
  const ifRange = req.headers["if-range"];
  if (range !== undefined && typeof ifRange === "string" && ifRange.trim() !== etag && ifRange.trim() !== lastModified) range = undefined; // §13.1.5
  if (range === "unsatisfiable") return plain(res, 416, "range not satisfiable", { "content-range": `bytes */${size}` });
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  if (range) headers["content-range"] = `bytes ${start}-${end}/${size}`;
  headers["content-length"] = String(size === 0 ? 0 : end - start + 1);
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === "HEAD" || size === 0) {
    res.end();
    return;
  }
  service.downloads.add(res);
  try {
    await pipeline(createReadStream(service.filePath(id), { start, end }), res);
  } catch {
    res.destroy(); // the client went away, the file did (expired mid-download), or the server is stopping
  } finally {
    service.downloads.delete(res);
  }
}
