// docs/upload.md "Running behind nginx", for real: Debian's nginx on loopback forwards /files/ to the upload path
// of Comity's plain-HTTP listener with the settings that section gives (no request buffering, no body limit), and
// hosts[].upload.url names nginx. A slot's URLs then point at nginx; a 3 MiB PUT through it (past nginx's 1 MiB
// default body limit) and the GET with a Range come back intact with Comity's headers. Without nginx the test is
// skipped, except under CI=true, where that is a failure (scripts/install-test-deps.sh installs nginx-light).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { closeRawClients } from "../kit/raw-client.ts";
import type { TestServer } from "../kit/server.ts";
import { UPLOAD, login, requestSlot, uploadServer } from "./kit.ts";

const probe = spawnSync("nginx", ["-v"], { encoding: "utf8", timeout: 30_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "nginx is not installed (scripts/install-test-deps.sh)" : false;

let ts: TestServer | undefined;
let nginx: ChildProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), "comity-nginx-"));
after(async () => {
  closeRawClients();
  if (nginx && nginx.exitCode === null) {
    // SIGTERM: nginx's master stops its worker first (a SIGKILLed master leaves the worker running, orphaned).
    const exited = new Promise((r) => nginx!.once("exit", r));
    nginx.kill("SIGTERM");
    const timer = setTimeout(() => nginx?.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await ts?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A port free right now (nginx's must be known before Comity's config names it). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch (err) {
      if (Date.now() > deadline || nginx?.exitCode !== null) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

before(async () => {
  if (missing) return;
  const nginxPort = await freePort();
  ts = await uploadServer({ url: `http://127.0.0.1:${nginxPort}/files` }, { http: { trusted_proxies: ["127.0.0.1"] } });
  const comityPort = ts.server.addresses.http[0]!.port;
  // nginx started as root runs its worker as another user: it must reach its temporary directory.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, "tmp"), { mode: 0o777 });
  chmodSync(join(dir, "tmp"), 0o777);
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${nginxPort};
    location /files/ {
      proxy_pass http://127.0.0.1:${comityPort}/upload/${UPLOAD}/;
      client_max_body_size 0;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
`);
  nginx = spawn("nginx", ["-c", conf, "-p", dir], { stdio: ["ignore", "ignore", "pipe"] });
  await answers(`http://127.0.0.1:${nginxPort}/files/`);
});

test("behind nginx as docs/upload.md configures it, slots name nginx and files go up and come back through it", { skip, timeout: 120_000 }, async () => {
  assert.ok(!missing, "nginx is missing");
  const c = await login(ts!, "juliet", "balcony");
  const data = randomBytes(3 * 1024 * 1024);
  const r = await requestSlot(c, "clip.mp4", data.length, "video/mp4");
  assert.ok(!("error" in r), JSON.stringify(r));
  assert.match(r.get, /^http:\/\/127\.0\.0\.1:\d+\/files\/[A-Za-z0-9_-]{22}\/clip\.mp4$/);
  const put = await fetch(r.put, { method: "PUT", body: data, headers: { "content-type": "video/mp4" } });
  assert.equal(put.status, 201, await put.text());
  const got = await fetch(r.get);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("content-type"), "video/mp4");
  assert.equal(got.headers.get("x-content-type-options"), "nosniff");
  assert.match(got.headers.get("content-security-policy") ?? "", /sandbox/);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), data);
  const part = await fetch(r.get, { headers: { range: "bytes=1000-1999" } });
  assert.equal(part.status, 206);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), data.subarray(1000, 2000));
  // A forged token is refused by Comity, through the proxy.
  const forged = await fetch(r.put.replace(/token=[^&]+/, `token=${"A".repeat(43)}`), { method: "PUT", body: data, headers: { "content-type": "video/mp4" } });
  assert.equal(forged.status, 403);
  c.close();
});
