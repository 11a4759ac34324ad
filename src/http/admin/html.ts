// HTML for the admin console: a tagged template that escapes every interpolated value unless it is already
// markup, and the page frame. No framework, no scripts, no external assets (the CSP allows only 'self').
import { formatDuration } from "../../admin/format.ts";

/** Markup that is already safe (built by `html` or `raw`); anything else interpolated is escaped. */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };

/** Escape text for element content and double- or single-quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => ENTITIES[c]!);
}

/** Trusted markup, as is (only for constants written in this code). */
export function raw(text: string): Html {
  return new Html(text);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.text;
  if (v === undefined || v === null || v === false) return "";
  if (Array.isArray(v)) return v.map(render).join("");
  return escapeHtml(String(v));
}

/** html`<p>${text}</p>`: values are escaped; Html values and arrays of them are inserted as markup. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}


/** A timestamp as UTC text with its age, e.g. "2026-11-26 20:48 UTC (3m ago)". */
export function when(at: number | null, now = Date.now()): Html {
  if (at === null) return html`-`;
  const iso = new Date(at).toISOString();
  return html`<time datetime="${iso}" title="${iso}">${iso.slice(0, 16).replace("T", " ")} UTC</time> <span class="age">(${formatDuration(now - at)} ago)</span>`;
}

export interface Flash {
  kind: "ok" | "error";
  text: string;
}

/** The whole page: head, navigation (when signed in), flash messages, then the body. */
export function page(opts: { title: string; body: Html; user?: { jid: string; csrf: string }; flash?: Flash[]; current?: string }): string {
  const links: [string, string][] = [
    ["/admin/", "Server roster"],
    ["/admin/audit", "Audit log"],
    ["/admin/status", "Status"],
  ];
  const nav = opts.user
    ? html`<nav><ul>${links.map(([href, label]) => html`<li><a href="${href}"${opts.current === href ? raw(' aria-current="page"') : ""}>${label}</a></li>`)}</ul>
<form method="post" action="/admin/logout" class="logout"><input type="hidden" name="csrf" value="${opts.user.csrf}"><span>${opts.user.jid}</span> <button type="submit">Log out</button></form></nav>`
    : "";
  const flash = (opts.flash ?? []).map((f) => html`<p class="flash ${f.kind}" role="${f.kind === "error" ? "alert" : "status"}">${f.text}</p>`);
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${opts.title} · Comity admin</title>
<link rel="stylesheet" href="/admin/style.css">
</head>
<body>
<header><p class="brand">Comity admin</p>${nav}</header>
<main>
<h1>${opts.title}</h1>
${flash}
${opts.body}
</main>
</body>
</html>
`.text;
}

/** The console's only stylesheet (served at /admin/style.css). */
export const STYLESHEET = `
:root { color-scheme: light dark; --line: #8884; --muted: #777; --ok: #1a7f37; --err: #c62828; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .5rem 1rem; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; margin: 0; }
nav { display: flex; flex: 1; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 1rem; }
nav ul { list-style: none; display: flex; gap: 1rem; margin: 0; padding: 0; }
nav a[aria-current] { font-weight: 700; }
main { padding: 0 1rem 2rem; max-width: 80rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
td form { display: flex; flex-wrap: wrap; gap: .4rem; margin: 0; }
.flash { padding: .5rem .75rem; border-left: 4px solid; }
.flash.ok { border-color: var(--ok); }
.flash.error { border-color: var(--err); }
.warning { padding: .75rem 1rem; border: 2px solid var(--err); }
.age, .muted { color: var(--muted); }
form.stacked { display: grid; gap: .5rem; max-width: 28rem; }
form.stacked label { display: grid; gap: .2rem; }
form.inline { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
form.inline label { display: grid; gap: .2rem; }
form label.check { display: flex; align-items: center; gap: .3rem; }
dl.figures { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.figures dt { font-weight: 600; }
dl.figures dd { margin: 0; }
`;
