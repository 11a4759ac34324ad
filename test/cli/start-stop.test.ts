// `comity start` as a real process: logs "ready" once listeners accept, and SIGTERM closes every client
// stream with <system-shutdown/>, flushes storage and exits 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RawClient } from "../kit/raw-client.ts";

test("start logs ready, SIGTERM sends system-shutdown to clients and exits cleanly", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "comity-start-"));
  const file = join(dir, "comity.yaml");
  // Port 0: the OS picks a free port and the ready line says which (a random fixed port could be taken).
  writeFileSync(file, `hosts: [{domain: localhost, admins: [admin@localhost]}]\ndata_dir: ${dir}/data\nc2s: {listen: ["127.0.0.1:0"], direct_tls: []}\ns2s: {listen: []}\nlog: {level: info}\n`);
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/run.ts", "start", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  try {
    const deadline = Date.now() + 30_000;
    while (!/ready/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ready line: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // First start: the admin account was created and its password printed once.
    const port = Number(/ready[\s\S]*?127\.0\.0\.1:(\d+)|127\.0\.0\.1:(\d+)[^\n]*ready/.exec(out)?.slice(1).find(Boolean));
    assert.ok(port > 0, `the ready line names the c2s port: ${out}`);
    const pw = /Password:\s+(\S+)/.exec(out)?.[1];
    assert.ok(pw, "the first start prints the admin password");
    const { client } = await RawClient.login(port, "admin", pw, "r");
    client.send("<presence/>");
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    await client.waitFor(/<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    await client.waitFor(/<\/stream:stream>/);
    assert.equal(await exited, 0);
    assert.match(out, /stopped/);
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a log reader that goes away does not crash the server: SIGTERM still exits 0", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "comity-start-"));
  const file = join(dir, "comity.yaml");
  writeFileSync(file, `hosts: [{domain: localhost}]\ndata_dir: ${dir}/data\nc2s: {listen: ["127.0.0.1:0"], direct_tls: []}\ns2s: {listen: []}\nlog: {level: info}\n`);
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/run.ts", "start", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no ready line")), 30_000);
      child.stdout.on("data", (d: Buffer) => {
        if (!d.toString().includes("ready")) return;
        clearTimeout(t);
        resolve();
      });
    });
    // The reader closes its end of the pipe (as `comity start | head` does); the shutdown lines then hit EPIPE.
    child.stdout.destroy();
    const exited = new Promise<number | string | null>((r) => child.once("exit", (code, signal) => r(code ?? signal)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0, err);
    assert.doesNotMatch(err, /EPIPE|Unhandled/);
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
