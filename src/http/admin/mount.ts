// Placeholder: the web admin console (/admin) and HTTP API (/api) are being built in this file's module.
import type { HttpService } from "../server.ts";
import type { AdminHttpDeps } from "../deps.ts";

/** Mount /admin and /api on the HTTP service. */
export function mountAdmin(_http: HttpService, _deps: AdminHttpDeps): void {}
