// Test kit: a real Comity server on loopback with ephemeral ports, a temporary data dir and test accounts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { normalizeConfig } from "../../src/core/config/load.ts";
import type { Config } from "../../src/core/config/schema.ts";
import { silentLogger, createLogger } from "../../src/core/log.ts";
import { ComityServer } from "../../src/server.ts";
import { deriveCredentials } from "../../src/sasl/credentials.ts";

export interface TestServer {
  server: ComityServer;
  config: Config;
  c2sPort: number;
  directTlsPort: number;
  s2sPort: number;
  dataDir: string;
  addUser(jid: string, password: string): Promise<void>;
  stop(): Promise<void>;
}

/** Deep-merge plain objects (arrays replaced). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) && cur && typeof cur === "object" && !Array.isArray(cur)
      ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** Start a server for `localhost` (plus overrides) listening on 127.0.0.1 with ephemeral ports. */
export async function createTestServer(overrides: Record<string, unknown> = {}, opts: { users?: Record<string, string>; dataDir?: string } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "comity-test-"));
  const raw = merge({
    hosts: [{ domain: "localhost", admins: ["admin@localhost"] }],
    data_dir: dataDir,
    c2s: { listen: ["127.0.0.1:0"], direct_tls: ["127.0.0.1:0"] },
    s2s: { listen: [] },
    auth: { failure_delay_ms: 0 },
  }, overrides);
  const config = normalizeConfig(raw, { baseDir: dataDir });
  const log = process.env["COMITY_TEST_LOG"] ? createLogger({ level: process.env["COMITY_TEST_LOG"], format: "pretty" }) : silentLogger();
  const server = await ComityServer.create(config, log);
  const addrs = await server.listen();
  const addUser = async (jid: string, password: string) => {
    const [local, domain] = jid.split("@") as [string, string];
    await server.storage.accounts.create(domain, local, deriveCredentials(password, { storage: config.auth.password_storage, iterations: 4096 }));
  };
  for (const [jid, pw] of Object.entries(opts.users ?? {})) await addUser(jid, pw);
  return {
    server,
    config,
    c2sPort: addrs.c2s[0]?.port ?? 0,
    directTlsPort: addrs.c2sDirectTls[0]?.port ?? 0,
    s2sPort: addrs.s2s[0]?.port ?? 0,
    dataDir,
    addUser,
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
