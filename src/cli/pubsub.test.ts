// `comity pubsub list|show|delete` on a data directory (the server stopped): operators see node names, sizes and access
// models, never payloads, and can delete a node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openStorage } from "../storage/open.ts";
import { PubsubStore } from "../modules/pubsub/store.ts";
import { defaultConfig } from "../modules/pubsub/config.ts";

const RUN = fileURLToPath(new URL("./run.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");

function comity(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", TSX, RUN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000); // a bound for a hung child only
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

test("pubsub list, show and delete report PEP nodes without payloads and delete one", async () => {
  const dir = await mkdtemp(join(tmpdir(), "comity-cli-pubsub-"));
  try {
    await writeFile(join(dir, "comity.yaml"), "hosts:\n  - domain: comity.test\ndata_dir: ./data\n");
    const storage = await openStorage({ dataDir: join(dir, "data") });
    const store = new PubsubStore(storage);
    const svc = { host: "comity.test", owner: "alice", kind: "pep" as const };
    await store.putNode(svc, "urn:xmpp:avatar:data", { config: defaultConfig("pep"), affiliations: {}, created: 1_700_000_000_000 });
    await store.putNode(svc, "eu.siacs.conversations.axolotl.devicelist", { config: { ...defaultConfig("pep"), access_model: "open" }, affiliations: {}, created: 1_700_000_000_000 });
    await store.publish(svc, "urn:xmpp:avatar:data", { id: "h", publisher: "alice@comity.test", payload: "<data xmlns='urn:xmpp:avatar:data'>SECRETPAYLOAD</data>" }, 1);
    await storage.close();

    let r = await comity(dir, ["pubsub", "list", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{ account: "alice@comity.test", nodes: 2 }]);
    r = await comity(dir, ["pubsub", "show", "alice@comity.test"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /urn:xmpp:avatar:data\s+presence\s+1\s+1\s+\d+/);
    assert.match(r.stdout, /devicelist\s+open/);
    assert.doesNotMatch(r.stdout, /SECRETPAYLOAD/);
    r = await comity(dir, ["pubsub", "show", "alice@comity.test", "--json"]);
    assert.doesNotMatch(r.stdout, /SECRETPAYLOAD/);
    assert.equal((JSON.parse(r.stdout) as { nodes: unknown[] }).nodes.length, 2);
    r = await comity(dir, ["pubsub", "delete", "alice@comity.test", "urn:xmpp:avatar:data"]);
    assert.equal(r.code, 0, r.stderr);
    r = await comity(dir, ["pubsub", "delete", "alice@comity.test", "urn:xmpp:avatar:data"]);
    assert.notEqual(r.code, 0, "a missing node is an error");
    r = await comity(dir, ["pubsub", "show", "alice@comity.test", "--json"]);
    assert.deepEqual((JSON.parse(r.stdout) as { nodes: { node: string }[] }).nodes.map((n) => n.node), ["eu.siacs.conversations.axolotl.devicelist"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
