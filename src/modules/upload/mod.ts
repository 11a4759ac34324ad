// XEP-0363: HTTP File Upload <https://xmpp.org/extensions/xep-0363.html> (v1.1.0) on a domain of its own
// (hosts[].upload), registered as a component of its host and listed in the host's disco#items (§3), with its PUT
// and GET URLs served by Comity's own HTTP listener under /upload/<domain>. Slot documents live in the generic
// key/value store (store.ts); files under data_dir/upload/<domain>. See README.md for what is and is not supported.
import { join } from "node:path";
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { uploadHttpHandler } from "./http.ts";
import { UploadService } from "./service.ts";
import { UPLOAD_STORE, UploadStore } from "./store.ts";

/** How often expired files and unused slots are looked for. */
const SWEEP_INTERVAL_MS = 15 * 60_000;

/** The base of slot URLs: the configured one, or the first HTTPS (else HTTP) listener as bound. */
export function defaultBaseUrl(ctx: Pick<ModuleContext, "httpListeners">, domain: string, path: string): string | undefined {
  const l = ctx.httpListeners()[0];
  if (!l) return undefined;
  const host = l.host === undefined ? domain : l.host.includes(":") ? `[${l.host}]` : l.host;
  const port = (l.secure && l.port === 443) || (!l.secure && l.port === 80) ? "" : `:${l.port}`;
  return `${l.secure ? "https" : "http"}://${host}${port}${path}`;
}

async function setup(ctx: ModuleContext): Promise<void> {
  const cfg = ctx.hostConfig.upload;
  if (!cfg) return;
  const path = `/upload/${cfg.domain}`;
  const log = ctx.log.child({ domain: cfg.domain });
  const service = new UploadService({
    domain: cfg.domain,
    host: ctx.host,
    name: cfg.name,
    maxFileSize: cfg.max_file_size,
    quotaDaily: cfg.quota_daily,
    expireAfterMs: cfg.expire_after * 1000,
    slotTimeoutMs: cfg.slot_timeout * 1000,
    allowFrom: cfg.allow_from.map((a) => a.toLowerCase()),
    dir: join(ctx.config.data_dir, "upload", cfg.domain),
    store: new UploadStore(ctx.storage.keyval(UPLOAD_STORE), cfg.domain, log),
    baseUrl: () => cfg.url ?? defaultBaseUrl(ctx, cfg.domain, path),
    send: (stanza) => ctx.send(stanza),
    ownerExists: async (owner) => {
      const at = owner.lastIndexOf("@");
      if (owner.slice(at + 1) !== ctx.host) return true;
      return (await ctx.storage.accounts.get(ctx.host, owner.slice(0, at))) !== undefined;
    },
    log,
  });
  await service.start(); // before the component is reachable: the signing key exists, leftovers are gone
  ctx.addComponent(cfg.domain, (stanza, from, to) => service.handle(stanza, from, to));
  ctx.addDiscoItem({ jid: cfg.domain, name: cfg.name }); // §3: clients find the service through the host's items
  ctx.addHttpRoute(path, uploadHttpHandler(service, path), { ownRequestTimeout: true });
  ctx.provide("upload", service);
  ctx.hook("account/deleted", async ({ host, username }) => {
    await service.deleteOwner(`${username}@${host}`);
  });
  ctx.hook("server/started", () => {
    void service.sweep().catch((err: unknown) => log.warn({ err }, "upload sweep failed"));
    service.startSweeper(SWEEP_INTERVAL_MS);
  });
  ctx.hook("server/stopping", async () => {
    service.stopSweeper();
    for (const up of service.active.values()) up.abort();
    for (const down of service.downloads) down.destroy();
    await service.idle(); // the storage closes after this event
  });
  log.info({ path, url: cfg.url, maxFileSize: cfg.max_file_size }, "HTTP file upload service ready");
}

export default defineModule({
  name: "upload",
  protocol: [{ xep: 363, version: "1.1.0" }],
  setup,
});
