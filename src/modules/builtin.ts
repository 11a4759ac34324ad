// The modules every host loads, in load order. Feature modules add one line here.
import type { Host } from "../core/host.ts";
import type { ModuleDefinition } from "../core/module-api.ts";
import { discoModule } from "./disco/mod.ts";
import adhoc from "./adhoc/mod.ts";
import buddiesAdhoc from "./buddies-adhoc/mod.ts";
import serverBuddies from "./server-buddies/mod.ts";
import ping from "./ping/mod.ts";
import version from "./version/mod.ts";
import contactInfo from "./contact-info/mod.ts";
import externalServices from "./external-services/mod.ts";
import roster from "./roster/mod.ts";
import presence from "./presence/mod.ts";
import offline from "./offline/mod.ts";
import vcard from "./vcard/mod.ts";
import privateStorage from "./private/mod.ts";
import blocking from "./blocking/mod.ts";
import carbons from "./carbons/mod.ts";
import mam from "./mam/mod.ts";
import abuseReports from "./abuse-reports/mod.ts";
import incidents from "./incidents/mod.ts";
import federationPolicy from "./federation-policy/mod.ts";
import muc from "./muc/mod.ts";
import streamManagement from "./stream-management/mod.ts";
import csi from "./csi/mod.ts";
import pubsub from "./pubsub/mod.ts";
import upload from "./upload/mod.ts";
import push from "./push/mod.ts";

/** Modules for one host (disco needs the host to read what the others registered). */
export function builtinModules(host: Host): ModuleDefinition[] {
  return [
    discoModule(host),
    serverBuddies, // provides "server-roster" (XEP-0267); its presence/host hook must see server presence first
    adhoc, // before the modules that register commands
    buddiesAdhoc,
    ping,
    version,
    contactInfo,
    externalServices, // XEP-0215: only when hosts[].external_services lists something
    roster,
    presence,
    offline,
    vcard,
    privateStorage,
    blocking,
    carbons, // after blocking: its hooks run at lower priority and copy only what blocking let through
    mam, // XEP-0313: archives at priority 20, between blocking (100) and carbons (10)
    abuseReports,
    incidents,
    federationPolicy,
    streamManagement, // XEP-0198: c2s finds it by the name it provides ("stream-management")
    csi, // XEP-0352: c2s finds it as the stream extension for urn:xmpp:csi:0
    push, // XEP-0357: after offline, whose "offline" API tells it what was stored
    pubsub, // XEP-0060/0163: PEP on every account; after disco (it extends the accounts' disco answers)
    muc, // only when hosts[].muc is set: a chat service on its own domain (XEP-0045)
    upload, // only when hosts[].upload is set: XEP-0363 on its own domain, files served by the HTTP listener
  ];
}
