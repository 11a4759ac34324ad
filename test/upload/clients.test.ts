// XEP-0363 with real client libraries nobody here wrote, each doing what its own project's upload test does:
// slixmpp's xep_0363 upload_file() (its itest test_httpupload: discover, upload with aiohttp, GET and compare) and
// aioxmpp's httpupload.request_slot() after finding the service by its feature (its e2e test), then a PUT and GET
// with aiohttp. Without the libraries (python3-slixmpp, python3-aioxmpp, python3-aiohttp) the tests are skipped,
// except under CI=true, where that is a failure (scripts/install-test-deps.sh installs them).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { killPythonScripts, PYTHON, runPython } from "../kit/python.ts";
import type { TestServer } from "../kit/server.ts";
import { UPLOAD, uploadServer } from "./kit.ts";

const SCRIPT = fileURLToPath(new URL("../interop/slixmpp_upload.py", import.meta.url));
const probe = spawnSync(PYTHON, ["-c", "import slixmpp.plugins.xep_0363, aioxmpp.httpupload, aiohttp"], { encoding: "utf8", timeout: 60_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "python3-slixmpp, python3-aioxmpp or python3-aiohttp is not installed (scripts/install-test-deps.sh)" : false;

let ts: TestServer;
before(async () => {
  ts = await uploadServer({ max_file_size: 5_000_000 });
});
after(async () => {
  killPythonScripts();
  await ts.stop();
});

/** The script with these arguments; it stops itself after `timeoutS`, and is killed 10 s later if it hangs. */
function run(args: string[], timeoutS = 90) {
  return runPython(SCRIPT, [...args, "--timeout", String(timeoutS)], { killAfterS: timeoutS + 10 });
}

test("slixmpp finds the service, uploads with upload_file() and the GET URL serves the same bytes", { skip, timeout: 150_000 }, async () => {
  assert.ok(!missing, `the client libraries are not importable by ${PYTHON}: ${probe.stderr}`);
  const r = await run(["slixmpp", "--port", String(ts.c2sPort), "--jid", "juliet@localhost", "--password", "balcony"]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const by = (name: string) => r.events.find((e) => e["event"] === name);
  assert.equal(by("uploaded")?.["service"], UPLOAD);
  assert.equal(by("uploaded")?.["max"], 5_000_000, "max-file-size read from the XEP-0128 form");
  assert.match(String(by("uploaded")?.["url"]), /\/toto\.txt$/);
  assert.equal(by("downloaded")?.["status"], 200);
  assert.equal(by("downloaded")?.["same"], true);
  assert.equal(by("downloaded")?.["type"], "text/plain");
  assert.equal(by("too-big")?.["refused"], true);
});

test("aioxmpp finds the service by its feature, gets a slot with request_slot(), and the file goes up and comes back", { skip, timeout: 150_000 }, async () => {
  assert.ok(!missing, `the client libraries are not importable by ${PYTHON}: ${probe.stderr}`);
  const r = await run(["aioxmpp", "--port", String(ts.c2sPort), "--jid", "romeo@localhost", "--password", "montague"]);
  assert.equal(r.code, 0, `${JSON.stringify(r.events)}\n${r.stderr}`);
  const by = (name: string) => r.events.find((e) => e["event"] === name);
  assert.equal(by("found")?.["service"], UPLOAD);
  assert.equal(by("slot")?.["ok"], true);
  assert.equal(by("put")?.["status"], 201);
  assert.equal(by("downloaded")?.["status"], 200);
  assert.equal(by("downloaded")?.["same"], true);
  assert.equal(by("downloaded")?.["type"], "image/jpg");
  assert.equal(by("too-big")?.["condition"], "not-acceptable");
});
