// Test fixture for store.test.ts: a worker thread that races offline pushes against others on one SQLite file.
import { parentPort, workerData } from "node:worker_threads";
import { openSqliteStorage } from "./store.ts";

const { path, pushes, quota } = workerData as { path: string; pushes: number; quota: number };
const storage = openSqliteStorage({ path });
let accepted = 0;
for (let i = 0; i < pushes; i++) {
  if (await storage.offline.push("montague.lit", "romeo", `<message n='${i}'/>`, { stamp: i, quota })) accepted++;
}
await storage.close();
parentPort?.postMessage(accepted);
