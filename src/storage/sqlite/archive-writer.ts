// The SQLite archive's writer thread: commits the XEP-0313 rows the server queued, one transaction per batch, on its
// own connection, so that a commit (several ms, growing with the table's indexes) never blocks message routing on the
// main thread. The main thread hands out the ids and keeps reading with its own connection (WAL: readers are not
// blocked by this writer); it waits for this thread's acknowledgement before a read, trim, delete or close that must
// see the rows. Messages: in {seq, rows} (a batch) or {close: true}; out {done: seq} | {failed: seq, message}.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/**
 * The thread's code. It is evaluated as a script (not loaded from a file) so that it runs the same from the compiled
 * dist/ and from sources under tsx, whose loader a worker thread of Node 20 does not inherit; better-sqlite3 is
 * loaded by the absolute path the main thread resolved.
 */
const SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma("busy_timeout = " + workerData.busyTimeoutMs);
db.pragma("synchronous = FULL"); // the main connection's durability: committed means on disk
const insert = db.prepare("INSERT INTO archive_messages (id, host, username, with_jid, direction, stanza, stamp) VALUES (?, ?, ?, ?, ?, ?, ?)");
const insertBatch = db.transaction((rows) => { for (const row of rows) insert.run(...row); });
parentPort.on("message", (msg) => {
  if (msg.close) { db.close(); parentPort.close(); return; }
  try {
    insertBatch(msg.rows);
    parentPort.postMessage({ done: msg.seq });
  } catch (err) {
    parentPort.postMessage({ failed: msg.seq, message: err && err.message ? err.message : String(err) });
  }
});
`;

const DRIVER = createRequire(import.meta.url).resolve("better-sqlite3");

/** Start a writer thread for the database file at `path` (WAL mode, already migrated). */
export function startArchiveWriter(path: string, busyTimeoutMs: number): Worker {
  return new Worker(SOURCE, { eval: true, workerData: { path, busyTimeoutMs, driver: DRIVER } });
}
