// XEP-0045: Multi-User Chat <https://xmpp.org/extensions/xep-0045.html> on a domain of its own (hosts[].muc),
// registered as a component of its host so that local and remote users reach it alike; with XEP-0410 self-ping
// answered by the room, and XEP-0313 room archives with XEP-0359 stanza ids (archive.ts). See README.md for what is implemented and what is not.
import { defineModule, type ModuleContext } from "../../core/module-api.ts";
import { RoomArchive } from "./archive.ts";
import { MUC_STORE, RoomStore } from "./persistence.ts";
import { MucService } from "./service.ts";

async function setup(ctx: ModuleContext): Promise<void> {
  const cfg = ctx.hostConfig.muc;
  if (!cfg) return;
  const service = new MucService({
    domain: cfg.domain,
    host: ctx.host,
    name: cfg.name,
    create: cfg.create,
    maxRooms: cfg.max_rooms,
    limits: { maxOccupants: cfg.max_occupants, maxHistory: cfg.max_history, archive: cfg.archive },
    defaultWhois: cfg.default_whois,
    send: (stanza) => ctx.send(stanza),
    isHostAdmin: (jid) => ctx.isAdmin(jid),
    store: new RoomStore(ctx.storage.keyval(MUC_STORE), cfg.domain, ctx.log),
    ...(cfg.archive ? { archive: new RoomArchive(ctx.storage.archive, cfg.domain, cfg.archive_max_per_room, ctx.log) } : {}),
    maxPage: ctx.config.mam.max_page,
  });
  const loaded = await service.load(); // before the component is reachable, so disco#items lists them at once
  ctx.addComponent(cfg.domain, (stanza, from, to) => service.handle(stanza, from, to));
  ctx.addDiscoItem({ jid: cfg.domain, name: cfg.name }); // XEP-0045 §6.1: found through the host's disco#items
  // The presence module sends unavailable presence to every room a session entered when it ends; this also covers
  // a session that ends in the middle of that (idempotent: a second leave finds nobody).
  ctx.hook("session/ended", ({ session }) => {
    service.sessionEnded(session.jid);
  });
  ctx.hook("server/stopping", async () => {
    service.shutdown();
    await service.flush(); // the storage closes after this event
  });
  ctx.log.info({ domain: cfg.domain, storedRooms: loaded }, "multi-user chat service ready");
}

export default defineModule({
  name: "muc",
  protocol: [{ xep: 45, version: "1.35" }, { xep: 410, version: "1.1" }, { xep: 313, version: "1.1.1" }, { xep: 359, version: "0.7.0" }, { xep: 421, version: "0.1.0" }, { xep: 425, version: "0.3.0" }],
  setup,
});
