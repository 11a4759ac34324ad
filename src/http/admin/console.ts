// The web admin console (/admin): server-rendered pages that work without JavaScript, for host admins who log in
// with their XMPP password. Every change is a POST carrying the session's CSRF token, answered with a redirect
// (303) and a flash message; decisions go through the same control methods as the CLI, recorded with via "web".
import type { IncomingMessage, ServerResponse } from "node:http";
import { domainToASCII } from "node:url";
import type { Logger } from "../../core/log.ts";
import type { LinkInfo } from "../../core/s2s/types.ts";
import type { AuditRecord, BuddyEntry } from "../../modules/server-buddies/api.ts";
import { sendText, type HttpHandler } from "../server.ts";
import { hostOf, hostsFor } from "./api.ts";
import type { AdminAuth, AdminIdentity } from "./auth.ts";
import { formatDuration } from "../../admin/format.ts";
import { html, page, raw, STYLESHEET, when, type Flash, type Html } from "./html.ts";
import { AdminOps, HttpError, isBuddyAction, mediaType, readBody, type BuddyAction } from "./ops.ts";
import { clearCookie, csrfOk, SessionStore, sessionCookie, sessionIdOf, type AdminSession } from "./sessions.ts";

const HTML_HEADERS = {
  "content-security-policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

const AUDIT_DEFAULT_LIMIT = 200;

/** A signed-in request: the session and the admin it belongs to (re-checked against storage on every request). */
interface SignedIn {
  session: AdminSession;
  admin: AdminIdentity;
}

function sendPage(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  sendText(res, status, body, "text/html; charset=utf-8", { ...HTML_HEADERS, ...headers });
}

function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  sendText(res, 303, `see ${location}\n`, "text/plain; charset=utf-8", { ...HTML_HEADERS, location, ...headers });
}

/** Form fields of a POST (application/x-www-form-urlencoded, as the console's forms send them). */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const body = await readBody(req);
  const type = mediaType(req);
  if (type !== "application/x-www-form-urlencoded" && !(type === "" && body.length === 0)) {
    throw new HttpError(415, "COMITY_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE", "the console's forms send application/x-www-form-urlencoded");
  }
  return new URLSearchParams(body.toString("utf8"));
}

/**
 * A peer's domain as shown to people: followed by its ASCII form (A-labels) when it has other letters, so that a
 * look-alike ("\u0430pple.example" with a Cyrillic a) cannot pass for a name the admin knows.
 */
function peerName(peer: string): string {
  if (/^[\x00-\x7f]*$/.test(peer)) return peer;
  const ascii = domainToASCII(peer);
  return ascii === "" || ascii === peer ? peer : `${peer} (${ascii})`;
}

function subscriptionText(e: BuddyEntry): string {
  return e.subscription + (e.preApproved ? " (their request back is pre-approved)" : "");
}

function supportText(e: BuddyEntry): string {
  const v = e.peerImplementsServerRosters;
  if (v === null) return "unknown";
  if (v) return "yes";
  return e.subscription === "to" || e.subscription === "both" ? "no (their approval may have been automatic)" : "no";
}

function presenceText(e: BuddyEntry, now: number): Html {
  if (e.peerAvailable === null) return html`-`;
  return html`${e.peerAvailable ? "available" : "unavailable"}${e.peerStatus ? html` (${e.peerStatus})` : ""}${e.peerPresenceAt === null ? "" : html` <span class="age">${formatDuration(now - e.peerPresenceAt)} ago</span>`}`;
}

/** What a successful action did, for the flash message. */
function describe(action: BuddyAction, host: string, peer: string, entry: BuddyEntry | null, mutual: boolean): string {
  const state = entry === null ? "" : ` Subscription: ${entry.subscription}${entry.pendingOut ? "; our request is pending" : ""}${entry.pendingIn ? "; their request is pending" : ""}.`;
  switch (action) {
    case "request":
      return `${host} asked ${peer} for trust${mutual ? " (mutual: their request back will be accepted)" : " (one way)"}.${state}`;
    case "approve":
      return `Approved the request of ${peer}: ${host} now trusts it.${state}`;
    case "deny":
      return `Denied the request of ${peer} to ${host}.${state}`;
    case "cancel":
      return `Withdrew the request of ${host} to ${peer}.${state}`;
    case "remove":
      return `Removed ${peer} from the server roster of ${host}.`;
  }
}

/** The /admin handler. */
export function consoleHandler(auth: AdminAuth, ops: AdminOps, opts: { log: Logger; sessions?: SessionStore }): HttpHandler {
  const sessions = opts.sessions ?? new SessionStore();
  const log = opts.log;

  /** Hidden fields every form carries. */
  const hidden = (s: AdminSession, fields: Record<string, string> = {}): Html =>
    html`<input type="hidden" name="csrf" value="${s.csrf}">${Object.entries(fields).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}`;

  function render(res: ServerResponse, who: SignedIn, title: string, current: string, body: Html, status = 200): void {
    const flash = who.session.flash;
    who.session.flash = [];
    sendPage(res, status, page({ title, body, user: { jid: who.admin.jid, csrf: who.session.csrf }, flash, current }));
  }

  async function signedIn(req: IncomingMessage): Promise<SignedIn | undefined> {
    const session = sessions.get(sessionIdOf(req));
    if (session === undefined) return undefined;
    const admin = await auth.revalidate(session.jid, session.fingerprint);
    if (admin === undefined) {
      sessions.delete(session.id);
      return undefined;
    }
    return { session, admin };
  }

  function insecurePage(req: IncomingMessage): string {
    return page({
      title: "HTTPS required",
      body: html`<p class="warning" role="alert"><strong>This connection is not encrypted, so the console will not take a password on it.</strong></p>
<p>You reached this page over plain HTTP from ${auth.address(req)}. Admin passwords are accepted only over HTTPS, or over plain HTTP from this machine itself (loopback).</p>
${auth.viaUnknownProxy(req) ? html`<p>This request came through a proxy that is not listed in <code>http.trusted_proxies</code> (it carries X-Forwarded-For or Forwarded), so the address above is the proxy's, and the connection from your browser to the proxy may not be encrypted.</p>` : ""}
<p>Open the console at the server's HTTPS address (<code>http.tls_listen</code>), or put it behind a reverse proxy that terminates TLS and list that proxy in <code>http.trusted_proxies</code>.</p>`,
    });
  }

  function loginPage(req: IncomingMessage, url: URL): string {
    const messages: Record<string, string> = {
      credentials: "Wrong JID or password.",
      forbidden: "That account is not an admin of any host served here (hosts[].admins).",
      throttled: "Too many failed attempts from your address. Wait a little and try again.",
      expired: "Your session has ended. Please log in again.",
    };
    const code = url.searchParams.get("error") ?? "";
    const error = Object.hasOwn(messages, code) ? messages[code]! : undefined;
    const plain = !auth.secure(req);
    return page({
      title: "Log in",
      flash: error === undefined ? [] : [{ kind: "error", text: error }],
      body: html`${plain ? html`<p class="warning">This connection is not encrypted. The password is accepted only because you connect from this machine (${auth.address(req)}).</p>` : ""}
<p>Log in with the XMPP account listed as an admin of a host (<code>hosts[].admins</code>) and its password.</p>
<form method="post" action="/admin/login" class="stacked">
<label>JID <input name="jid" type="text" autocomplete="username" placeholder="admin@example.org" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
</form>`,
    });
  }

  async function loginPost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A login form posted from another site would at most log the victim into the attacker's account; refuse it.
    const site = req.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && site !== "none") throw new HttpError(403, "COMITY_ERR_HTTP_CROSS_SITE", "cross-site login refused");
    const form = await readForm(req);
    const result = await auth.login(req, form.get("jid") ?? "", form.get("password") ?? "");
    if (!result.ok) {
      redirect(res, `/admin/login?error=${result.reason}`);
      return;
    }
    const old = sessions.get(sessionIdOf(req));
    if (old !== undefined) sessions.delete(old.id);
    const session = sessions.create(result.admin.jid, result.fingerprint);
    log.info({ jid: result.admin.jid, remote: auth.address(req) }, "admin console: logged in");
    redirect(res, "/admin/", { "set-cookie": sessionCookie(session.id, auth.secure(req)) });
  }

  async function dashboard(res: ServerResponse, who: SignedIn): Promise<void> {
    const { session, admin } = who;
    const entries = await ops.buddies(admin.hosts);
    const now = Date.now();
    const sections = admin.hosts.map((host) => {
      const mine = entries.filter((e) => e.host === host);
      const pendingIn = mine.filter((e) => e.pendingIn);
      const pendingOut = mine.filter((e) => e.pendingOut);
      return html`<section id="host-${host}" aria-labelledby="h-${host}">
<h2 id="h-${host}">${host}</h2>
<h3>Requests waiting for you (${pendingIn.length})</h3>
${pendingIn.length === 0 ? html`<p class="muted">No server is waiting for a decision.</p>` : html`<table>
<thead><tr><th>Peer</th><th>Asked</th><th>Implements XEP-0267</th><th>Decision</th></tr></thead>
<tbody>${pendingIn.map((e) => html`<tr>
<td>${peerName(e.peer)}</td><td>${when(e.pendingInSince, now)}</td><td>${supportText(e)}</td>
<td><form method="post" action="/admin/buddies">${hidden(session, { host, peer: e.peer })}
<label>Note <input name="note" type="text" maxlength="1000"></label>
<button type="submit" name="action" value="approve" aria-label="Approve ${peerName(e.peer)}">Approve</button>
<button type="submit" name="action" value="deny" aria-label="Deny ${peerName(e.peer)}">Deny</button>
</form></td></tr>`)}</tbody></table>`}
<h3>Our requests waiting for them (${pendingOut.length})</h3>
${pendingOut.length === 0 ? html`<p class="muted">None.</p>` : html`<table>
<thead><tr><th>Peer</th><th>Asked</th><th>Implements XEP-0267</th><th></th></tr></thead>
<tbody>${pendingOut.map((e) => html`<tr>
<td>${peerName(e.peer)}</td><td>${when(e.pendingOutSince, now)}</td><td>${supportText(e)}</td>
<td><form method="post" action="/admin/buddies">${hidden(session, { host, peer: e.peer, action: "cancel" })}
<button type="submit" aria-label="Cancel the request to ${peerName(e.peer)}">Cancel request</button></form></td></tr>`)}</tbody></table>`}
<h3>Server roster (${mine.length})</h3>
${mine.length === 0 ? html`<p class="muted">The server roster is empty.</p>` : html`<table>
<thead><tr><th>Peer</th><th>Subscription</th><th>Pending</th><th>Implements XEP-0267</th><th>Peer presence</th><th>Decided by</th><th>Note</th><th>Since</th><th></th></tr></thead>
<tbody>${mine.map((e) => html`<tr>
<td>${peerName(e.peer)}</td><td>${subscriptionText(e)}</td>
<td>${[e.pendingIn ? "in (waiting for us)" : "", e.pendingOut ? "out (waiting for them)" : ""].filter(Boolean).join(", ") || "-"}</td>
<td>${supportText(e)}</td><td>${presenceText(e, now)}</td>
<td>${e.decidedBy === null ? "-" : `${e.decidedBy} (${e.decidedVia ?? "?"})`}</td><td>${e.note ?? ""}</td><td>${when(e.since, now)}</td>
<td><form method="post" action="/admin/buddies">${hidden(session, { host, peer: e.peer, action: "remove" })}
<label class="check"><input type="checkbox" name="confirm" value="yes" required> sure</label>
<button type="submit" aria-label="Remove ${peerName(e.peer)}">Remove</button></form></td></tr>`)}</tbody></table>`}
<h3>Request trust</h3>
<form method="post" action="/admin/buddies" class="inline">${hidden(session, { host, action: "request" })}
<label>Server domain <input name="peer" type="text" required placeholder="example.org" aria-label="Server domain to ask for trust (${host})"></label>
<label>Note <input name="note" type="text" maxlength="1000"></label>
<label class="check"><input type="checkbox" name="one_way" value="yes"> one way (do not accept their request back)</label>
<button type="submit">Request trust</button>
</form>
</section>`;
    });
    render(res, who, "Server roster", "/admin/", html`<p>Trust between servers (XEP-0267 server rosters) of the hosts you administer. See <a href="/admin/audit">the audit log</a> for every change.</p>${sections}`);
  }

  async function auditPage(res: ServerResponse, url: URL, who: SignedIn): Promise<void> {
    const { admin } = who;
    const hostParam = url.searchParams.get("host") || undefined;
    const peer = url.searchParams.get("peer") || undefined;
    const limitRaw = url.searchParams.get("limit") || String(AUDIT_DEFAULT_LIMIT);
    let records: AuditRecord[] = [];
    let problem: string | undefined;
    try {
      const limit = Number(limitRaw);
      if (!/^[0-9]+$/.test(limitRaw) || limit < 1 || limit > 10_000) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", "the limit must be a number from 1 to 10000");
      records = await ops.audit(hostsFor(admin, hostParam), { ...(peer === undefined ? {} : { peer }), limit });
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      problem = err.message;
    }
    const filter = html`<form method="get" action="/admin/audit" class="inline">
<label>Host <select name="host"><option value="">all of yours</option>${admin.hosts.map((h) => html`<option${h === hostParam ? raw(" selected") : ""}>${h}</option>`)}</select></label>
<label>Peer <input name="peer" type="text" value="${peer ?? ""}"></label>
<label>At most <input name="limit" type="number" min="1" max="10000" value="${limitRaw}"></label>
<button type="submit">Show</button></form>`;
    const table = records.length === 0
      ? html`<p class="muted">No audit records.</p>`
      : html`<table><thead><tr><th>At</th><th>Host</th><th>Peer</th><th>Action</th><th>Actor</th><th>Via</th><th>Detail</th></tr></thead>
<tbody>${records.map((r) => html`<tr><td>${when(r.at)}</td><td>${r.host}</td><td>${peerName(r.peer)}</td><td>${r.action}</td><td>${r.actor}</td><td>${r.via}</td><td>${r.detail ?? ""}</td></tr>`)}</tbody></table>`;
    render(res, who, "Audit log", "/admin/audit", html`${filter}${problem === undefined ? "" : html`<p class="flash error" role="alert">${problem}</p>`}${table}`);
  }

  async function statusPage(res: ServerResponse, who: SignedIn): Promise<void> {
    const { admin } = who;
    const [status, links, metrics] = await Promise.all([ops.status(), ops.links(admin.hosts), ops.metrics(admin.hosts)]);
    const incidents = ops.has("incidents.list") ? await ops.incidents(admin.hosts, { limit: 20 }) : [];
    const now = Date.now();
    const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
    const linkRow = (l: LinkInfo): Html => html`<tr><td>${l.direction === "in" ? "incoming" : "outgoing"}</td><td>${l.local}</td><td>${l.peers.map(peerName).join(", ")}</td>
<td>${l.tls ? l.tlsVersion ?? "yes" : "no"}</td><td>${l.certificateValid ? "valid" : "not valid"}</td><td>${l.auth}</td><td>${l.state}</td><td>${when(l.since, now)}</td><td>${l.remoteAddress}</td></tr>`;
    const body = html`<h2>Server</h2>
<dl class="figures">
<dt>Version</dt><dd>Comity ${status.version} on Node.js ${status.node} (pid ${status.pid})</dd>
<dt>Up for</dt><dd>${formatDuration(status.uptimeSeconds * 1000)}</dd>
<dt>Hosts</dt><dd>${status.hosts.join(", ")}</dd>
<dt>Client connections</dt><dd>${status.c2sConnections} (${status.c2sSessions} bound sessions)</dd>
<dt>Server links</dt><dd>${status.s2sIncoming} incoming, ${status.s2sOutgoing} outgoing</dd>
<dt>Memory</dt><dd>${mib(status.memory.rss)} resident, ${mib(status.memory.heapUsed)} heap used</dd>
</dl>
<h2>Server links of your hosts (${links.length})</h2>
${links.length === 0 ? html`<p class="muted">No server-to-server links.</p>` : html`<table><thead><tr><th>Direction</th><th>Local</th><th>Peers</th><th>TLS</th><th>Certificate</th><th>Authentication</th><th>State</th><th>Since</th><th>Remote address</th></tr></thead>
<tbody>${links.map(linkRow)}</tbody></table>`}
<h2>Server trust requests</h2>
<table><thead><tr><th>Host</th><th>Waiting now</th><th>Cap</th><th>Received</th><th>Repeated</th><th>Dropped (cap)</th><th>Pre-approved</th><th>Ignored</th><th>Admin messages</th></tr></thead>
<tbody>${metrics.map((m) => html`<tr><td>${m.host}</td><td>${m.pending}</td><td>${m.maxPending}</td><td>${m.requestsReceived}</td><td>${m.requestsRepeated}</td><td>${m.requestsDropped}</td><td>${m.preApproved}</td><td>${m.ignored}</td><td>${m.notificationsSent}</td></tr>`)}</tbody></table>
${ops.has("incidents.list") ? html`<h2>Latest incident reports (XEP-0268)</h2>
${incidents.length === 0 ? html`<p class="muted">None.</p>` : html`<table><thead><tr><th>#</th><th>At</th><th>Host</th><th>Peer</th><th>Direction</th><th>Kind</th><th>Status</th><th>Note</th></tr></thead>
<tbody>${incidents.map((i) => html`<tr><td>${i.id}</td><td>${when(i.at, now)}</td><td>${i.host}</td><td>${peerName(i.peer)}</td><td>${i.direction}</td><td>${i.kind}</td><td>${i.status}</td><td>${i.note ?? ""}</td></tr>`)}</tbody></table>`}` : ""}`;
    render(res, who, "Status", "/admin/status", body);
  }

  async function buddiesPost(req: IncomingMessage, res: ServerResponse, who: SignedIn): Promise<void> {
    const form = await readForm(req);
    if (!csrfOk(who.session, form.get("csrf"))) {
      log.warn({ jid: who.admin.jid, remote: auth.address(req) }, "admin console: POST without a valid CSRF token refused");
      throw new HttpError(403, "COMITY_ERR_HTTP_CSRF", "This form did not come from your console session (the CSRF check failed). Nothing was changed. Go back, reload the page and try again.");
    }
    const action = form.get("action") ?? "";
    const peer = (form.get("peer") ?? "").trim();
    const flash = (f: Flash): void => void who.session.flash.push(f);
    try {
      if (!isBuddyAction(action)) throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `unknown action ${action}`);
      if (peer === "") throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", "give the server's domain");
      if (action === "remove" && form.get("confirm") !== "yes") throw new HttpError(400, "COMITY_ERR_HTTP_BAD_REQUEST", `tick "sure" to remove ${peer}`);
      const host = hostOf(who.admin, form.get("host") || undefined);
      const mutual = form.get("one_way") !== "yes";
      const note = form.get("note") ?? "";
      const entry = await ops.decide(who.admin, "web", host, action, peer, { ...(note.trim() === "" ? {} : { note: note.trim() }), mutual });
      flash({ kind: "ok", text: describe(action, host, peerName(entry?.peer ?? peer), entry, mutual) });
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      flash({ kind: "error", text: `${action === "" ? "Nothing done" : `Could not ${action} ${peer}`}: ${err.message}` });
    }
    redirect(res, "/admin/");
  }

  function errorPage(res: ServerResponse, err: HttpError, who: SignedIn | undefined): void {
    const title = err.status === 404 ? "Not found" : err.status === 403 ? "Refused" : "Error";
    const body = html`<p class="flash error" role="alert">${err.message}</p><p><a href="/admin/">Back to the console</a></p>`;
    const headers = err.headers;
    if (who === undefined) sendPage(res, err.status, page({ title, body }), headers);
    else sendPage(res, err.status, page({ title, body, user: { jid: who.admin.jid, csrf: who.session.csrf } }), headers);
  }

  function notAllowed(allow: string): HttpError {
    return new HttpError(405, "COMITY_ERR_HTTP_METHOD_NOT_ALLOWED", "method not allowed", { allow });
  }

  return async (req, res, url) => {
    const path = url.pathname;
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    let who: SignedIn | undefined;
    try {
      if (path === "/admin/style.css") {
        if (method !== "GET") throw notAllowed("GET, HEAD");
        sendText(res, 200, STYLESHEET, "text/css; charset=utf-8", { ...HTML_HEADERS, "cache-control": "public, max-age=3600" });
        return;
      }
      // A session cookie is a credential too: nothing but the warning travels on a plaintext non-loopback request.
      if (!auth.transportOk(req)) {
        sendPage(res, 403, insecurePage(req));
        return;
      }
      if (path === "/admin/login") {
        if (method === "POST") return await loginPost(req, res);
        if (method !== "GET") throw notAllowed("GET, HEAD, POST");
        if ((await signedIn(req)) !== undefined) return redirect(res, "/admin/");
        sendPage(res, 200, loginPage(req, url));
        return;
      }
      who = await signedIn(req);
      if (who === undefined) {
        const hadCookie = sessionIdOf(req) !== undefined;
        redirect(res, hadCookie ? "/admin/login?error=expired" : "/admin/login", hadCookie ? { "set-cookie": clearCookie(auth.secure(req)) } : {});
        return;
      }
      const pages: Record<string, () => Promise<void>> = {
        "/admin": () => dashboard(res, who!),
        "/admin/": () => dashboard(res, who!),
        "/admin/audit": () => auditPage(res, url, who!),
        "/admin/status": () => statusPage(res, who!),
      };
      const getPage = pages[path];
      if (getPage !== undefined) {
        if (method !== "GET") throw notAllowed("GET, HEAD");
        return await getPage();
      }
      if (path === "/admin/buddies") {
        if (method !== "POST") throw notAllowed("POST");
        return await buddiesPost(req, res, who);
      }
      if (path === "/admin/logout") {
        if (method !== "POST") throw notAllowed("POST");
        const form = await readForm(req);
        if (!csrfOk(who.session, form.get("csrf"))) throw new HttpError(403, "COMITY_ERR_HTTP_CSRF", "This form did not come from your console session (the CSRF check failed). You are still logged in.");
        sessions.delete(who.session.id);
        log.info({ jid: who.admin.jid }, "admin console: logged out");
        redirect(res, "/admin/login", { "set-cookie": clearCookie(auth.secure(req)) });
        return;
      }
      throw new HttpError(404, "COMITY_ERR_HTTP_NOT_FOUND", `There is no page ${path}.`);
    } catch (err) {
      if (err instanceof HttpError) errorPage(res, err, who);
      else throw err;
    }
  };
}
