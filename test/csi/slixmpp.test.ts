// XEP-0352 with a real client library: slixmpp 1.8.3's xep_0352 plugin (Debian's python3-slixmpp) finds the csi
// stream feature and sends <inactive/> and <active/>; while it is inactive a contact's presence changes wait (only the
// latest arrives), a message with a body arrives at once after what was held. Without slixmpp the test fails under
// CI=true and is skipped otherwise (scripts/install-test-deps.sh installs it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import type { C2sSession } from "../../src/core/c2s.ts";
import type { CsiApi } from "../../src/modules/csi/mod.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./slixmpp_csi.py", import.meta.url));
const probe = spawnSync(PYTHON, ["-c", "import slixmpp.plugins.xep_0352"], { encoding: "utf8", timeout: 60_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "python3-slixmpp is not installed (scripts/install-test-deps.sh)" : false;

interface Ev {
  event: string;
  [key: string]: unknown;
}

let ts: TestServer;
let child: ChildProcessWithoutNullStreams | undefined;
const clients: RawClient[] = [];

before(async () => {
  ts = await createTestServer({}, { users: { "juliet@localhost": "balcony", "romeo@localhost": "orchard" } });
  const item = (jid: string) => ({ jid, subscription: "both" as const, ask: false, approved: false, groups: [] });
  await ts.server.storage.rosters.setItem("localhost", "juliet", item("romeo@localhost"));
  await ts.server.storage.rosters.setItem("localhost", "romeo", item("juliet@localhost"));
});
after(async () => {
  child?.kill("SIGKILL");
  for (const c of clients) c.close();
  await ts.stop();
});

async function until(f: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("slixmpp's xep_0352 goes inactive and active; presence waits and is squashed, a message does not wait", { skip, timeout: 120_000 }, async () => {
  assert.ok(!missing, `slixmpp's xep_0352 is not importable by ${PYTHON}: ${probe.stderr}`);
  const csi = ts.server.hosts.get("localhost")!.provided.get("csi") as CsiApi;
  const { client: romeo } = await RawClient.login(ts.c2sPort, "romeo", "orchard", "r");
  clients.push(romeo);
  romeo.send("<presence/>");
  await romeo.sync();

  const c = spawn(PYTHON, [SCRIPT, "--port", String(ts.c2sPort), "--jid", "juliet@localhost/slix", "--password", "balcony", "--timeout", "90"], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  child = c;
  let stderr = "";
  c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const events: Ev[] = [];
  createInterface({ input: c.stdout }).on("line", (line) => {
    try {
      events.push(JSON.parse(line) as Ev);
    } catch {
      events.push({ event: "unparsed", line });
    }
  });
  const seen = (f: (e: Ev) => boolean) => events.findIndex(f);
  const waitEvent = async (f: (e: Ev) => boolean, what: string) => {
    await until(() => seen(f) >= 0 || c.exitCode !== null, what, 60_000);
    assert.ok(seen(f) >= 0, `${what}: ${JSON.stringify(events)}\n${stderr}`);
    return seen(f);
  };
  const fromRomeo = (show: string) => (e: Ev) => e.event === "presence" && String(e["from"]).startsWith("romeo@localhost/r") && e["show"] === show;

  const ready = events[await waitEvent((e) => e.event === "ready", "slixmpp logged in")]!;
  assert.equal(ready["csi"], true, "the plugin found the csi stream feature");
  const js = () => ts.server.sessions.get(parseJid("juliet@localhost/slix")) as C2sSession;
  c.stdin.write("inactive\n");
  await until(() => js() !== undefined && csi.isInactive(js()), "juliet inactive");

  romeo.send("<presence><show>away</show></presence>");
  romeo.send("<presence><show>xa</show></presence>");
  await until(() => csi.held(js()) === 1, "romeo's presence held and squashed");
  assert.equal(seen(fromRomeo("away")), -1);
  assert.equal(seen(fromRomeo("xa")), -1);

  romeo.send("<message type='chat' to='juliet@localhost'><body>wherefore</body></message>");
  const iMsg = await waitEvent((e) => e.event === "message" && e["body"] === "wherefore", "the message at once");
  const iXa = seen(fromRomeo("xa"));
  assert.ok(iXa >= 0 && iXa < iMsg, `the held presence first: ${JSON.stringify(events)}`);
  assert.equal(seen(fromRomeo("away")), -1, "the superseded presence never arrived");

  romeo.send("<presence><show>dnd</show></presence>");
  await until(() => csi.held(js()) === 1, "the next presence held");
  assert.equal(seen(fromRomeo("dnd")), -1);
  c.stdin.write("active\n");
  await waitEvent(fromRomeo("dnd"), "the held presence on <active/>");
  assert.equal(csi.isInactive(js()), false);
  c.stdin.write("quit\n");
  await waitEvent((e) => e.event === "done", "slixmpp done");
});
