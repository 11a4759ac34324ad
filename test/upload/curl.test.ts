// The upload a client like profanity makes with libcurl (its /sendfile: a slot over XMPP, then an HTTP PUT of the
// file with its Content-Type, then the GET URL shared), here with the curl command over HTTPS on the listener's
// self-signed certificate: curl sends `Expect: 100-continue` for a body this size and streams it from disk. Then a
// download with curl, resumed half-way with a Range, as a client fetching a large file would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { closeRawClients } from "../kit/raw-client.ts";
import type { TestServer } from "../kit/server.ts";
import { login, requestSlot, uploadServer } from "./kit.ts";

const probe = spawnSync("curl", ["--version"], { encoding: "utf8", timeout: 30_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "curl is not installed" : false;

let ts: TestServer;
const dir = mkdtempSync(join(tmpdir(), "comity-curl-"));
before(async () => {
  ts = await uploadServer({}, { http: { listen: [], tls_listen: ["127.0.0.1:0"] } });
});
after(async () => {
  closeRawClients();
  await ts.stop();
  rmSync(dir, { recursive: true, force: true });
});

function curl(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn("curl", ["--silent", "--show-error", "--insecure", "--max-time", "60", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const killer = setTimeout(() => child.kill("SIGKILL"), 70_000);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, out, err });
    });
  });
}

test("a file PUT with curl over HTTPS is downloaded whole and in ranges with curl", { skip, timeout: 120_000 }, async () => {
  assert.ok(!missing, "curl is missing");
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const file = join(dir, "holiday photo.png");
  writeFileSync(file, data);
  const c = await login(ts, "juliet", "balcony");
  const r = await requestSlot(c, "holiday photo.png", data.length, "image/png");
  assert.ok(!("error" in r), JSON.stringify(r));
  assert.match(r.get, /^https:\/\/127\.0\.0\.1:\d+\/upload\//);
  const put = await curl(["--upload-file", file, "--header", "Content-Type: image/png", "--write-out", "%{http_code}", "--output", "/dev/null", r.put]);
  assert.equal(put.code, 0, put.err);
  assert.equal(put.out, "201");
  const whole = join(dir, "whole.png");
  const got = await curl(["--output", whole, "--dump-header", "-", r.get]);
  assert.equal(got.code, 0, got.err);
  assert.match(got.out, /^HTTP\/1\.1 200/);
  assert.match(got.out, /content-type: image\/png/i);
  assert.match(got.out, /x-content-type-options: nosniff/i);
  assert.deepEqual(readFileSync(whole), data);
  // A download interrupted half-way and resumed (curl --continue-at sends Range: bytes=N-).
  const partial = join(dir, "partial.png");
  const half = Math.floor(data.length / 2);
  writeFileSync(partial, data.subarray(0, half));
  const resumed = await curl(["--continue-at", "-", "--output", partial, "--write-out", "%{http_code}", r.get]);
  assert.equal(resumed.code, 0, resumed.err);
  assert.equal(resumed.out, "206");
  assert.deepEqual(readFileSync(partial), data);
  c.close();
});
