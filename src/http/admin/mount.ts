// The web admin console (/admin) and the HTTP API (/api), for host admins: what `comity buddies ...`, `comity
// status` and `comity s2s list` show and do, from a browser or a script, through the same control methods.
// Guide and API reference: docs/admin-console.md.
import type { HttpService } from "../server.ts";
import type { AdminHttpDeps } from "../deps.ts";
import { apiHandler } from "./api.ts";
import { AdminAuth } from "./auth.ts";
import { consoleHandler } from "./console.ts";
import { AdminOps } from "./ops.ts";

/** Mount /admin (when `http.admin_console`) and /api (when `http.api`) on the HTTP service. */
export function mountAdmin(http: HttpService, deps: AdminHttpDeps): void {
  const auth = new AdminAuth(http, deps);
  const ops = new AdminOps(deps.control, deps.log);
  if (deps.config.http.api) http.mount("/api", apiHandler(auth, ops));
  if (deps.config.http.admin_console) http.mount("/admin", consoleHandler(auth, ops, { log: deps.log }));
}
