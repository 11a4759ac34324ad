// Configuration loading: YAML file → schema validation (schema.ts) → defaults → semantic checks → resolved paths.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import type { TSchema } from "@sinclair/typebox";
import { parseDocument } from "yaml";
import { ConfigSchema, type Config } from "./schema.ts";
import { cipherListProblem } from "../tls-contexts.ts";

export type { Config, HostConfig } from "./schema.ts";

/** An invalid or unreadable configuration; `problems` holds one `path: what is wrong` line each. */
export class ConfigError extends Error {
  readonly code = "COMITY_ERR_CONFIG";
  readonly problems: string[];
  readonly source: string | undefined;

  constructor(problems: string[], source?: string) {
    const where = source === undefined ? "configuration" : `configuration ${source}`;
    const head = problems.length === 1 ? `invalid ${where}:` : `invalid ${where} (${problems.length} problems):`;
    super(`${head}\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
    this.source = source;
  }
}

/** Read, validate and complete the configuration file at `path`; relative paths inside resolve against its directory. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String((err as Error).message);
    throw new ConfigError([`cannot read ${path}: ${why}`], path);
  }
  return parseConfig(text, path);
}

/** Parse YAML text into a validated Config; `source` is the file it came from (for messages and relative paths). */
export function parseConfig(text: string, source?: string): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      const msg = (e.message.split("\n")[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, "");
      return pos ? `line ${pos.line}, column ${pos.col}: ${msg}` : msg;
    }), source);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([`YAML: ${(err as Error).message}`], source);
  }
  const baseDir = source === undefined ? process.cwd() : dirname(resolve(source));
  return normalizeConfig(raw ?? {}, { baseDir, source });
}

/** The embedded configuration used when no config file is given or found: one `localhost` host, no federation. */
export function defaultConfig(): Config {
  return normalizeConfig(
    {
      hosts: [{ domain: "localhost", admins: ["admin@localhost"] }],
      data_dir: "./data",
      c2s: { listen: ["0.0.0.0:5222"], direct_tls: ["0.0.0.0:5223"] },
      s2s: { listen: [] },
      http: { listen: [] },
    },
    { baseDir: process.cwd() },
  );
}

/** Validate an already-parsed config value (from YAML or JSON), fill defaults and resolve paths against `baseDir`. */
export function normalizeConfig(raw: unknown, opts: { baseDir: string; source?: string | undefined }): Config {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError([`(top level): expected a mapping of keys (got ${describe(raw)})`], opts.source);
  }
  const given = structuredClone(raw) as Record<string, unknown>;
  const has = (section: string, key: string): boolean => {
    const s = given[section];
    return typeof s === "object" && s !== null && key in s;
  };
  const c2sListenGiven = has("c2s", "listen");
  const s2sListenGiven = has("s2s", "listen");
  const defaulted = deriveDirectTls(given);
  const value = Value.Default(ConfigSchema, given) as unknown;
  const problems = schemaProblems(ConfigSchema, value);
  if (problems.length === 0) problems.push(...semanticProblems(value as Config));
  if (problems.length > 0) throw new ConfigError(problems, opts.source);
  const config = resolvePaths(value as Config, opts.baseDir);
  for (const svc of config.components.services) svc.host ??= componentOwner(config, svc.domain);
  const listeners: DefaultListener[] = [];
  if (!c2sListenGiven) listeners.push({ key: "c2s.listen", addresses: config.c2s.listen, from: "the built-in default" });
  if (defaulted) listeners.push({ key: "c2s.direct_tls", addresses: config.c2s.direct_tls, from: "c2s.listen's addresses with port 5223" });
  if (!s2sListenGiven) listeners.push({ key: "s2s.listen", addresses: config.s2s.listen, from: "the built-in default" });
  defaultListeners.set(config, listeners);
  return config;
}

/**
 * The host that owns a component domain when the configuration names none: the host it is a subdomain of
 * (`irc.example.org` → `example.org`, the longest match), else the first host.
 */
export function componentOwner(config: Config, domain: string): string {
  let best: string | undefined;
  for (const h of config.hosts) if (domain.endsWith(`.${h.domain}`) && (best === undefined || h.domain.length > best.length)) best = h.domain;
  return best ?? config.hosts[0]!.domain;
}

/** A listener key the configuration left out, and what it was filled with. */
export interface DefaultListener {
  key: string;
  addresses: string[];
  from: string;
}

const defaultListeners = new WeakMap<Config, DefaultListener[]>();

/** The listener keys this configuration did not set (for `comity check`); empty for a config made elsewhere. */
export function listenersByDefault(config: Config): DefaultListener[] {
  return defaultListeners.get(config) ?? [];
}

/**
 * Without `c2s.direct_tls`, direct TLS listens on the addresses of `c2s.listen` with port 5223 (XEP-0368's usual
 * port): an operator who bound clients to specific addresses did not ask for 0.0.0.0:5223, and a second server on
 * the machine (or anything else on 5223) would make start fail on a port nobody configured. Returns whether it
 * filled the key in (on a mapping the caller owns).
 */
function deriveDirectTls(raw: Record<string, unknown>): boolean {
  const c2s = raw["c2s"];
  if (c2s === undefined) raw["c2s"] = {};
  const section = raw["c2s"];
  if (typeof section !== "object" || section === null || Array.isArray(section)) return false;
  const c = section as Record<string, unknown>;
  if ("direct_tls" in c) return false;
  const listen = c["listen"] ?? ["0.0.0.0:5222"];
  if (!Array.isArray(listen) || !listen.every((a) => typeof a === "string" && /^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$/.test(a))) return false;
  c["direct_tls"] = [...new Set(listen.map((a: string) => `${a.slice(0, a.lastIndexOf(":"))}:5223`))];
  return true;
}

/** Every schema violation, one line per offending key (the first reason only). */
function schemaProblems(schema: TSchema, value: unknown): string[] {
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    // An error under a path already reported (e.g. "expected a mapping" and then its missing keys) adds nothing.
    if ([...seen].some((p) => e.path === p || e.path.startsWith(`${p}/`))) continue;
    seen.add(e.path);
    problems.push(`${displayPath(e.path, value)}: ${explain(e)}`);
  }
  return problems;
}

/** JSON pointer (/hosts/0/domain) → config path (hosts[0].domain). */
export function displayPath(pointer: string, root: unknown): string {
  if (pointer === "") return "(top level)";
  let out = "";
  let node: unknown = root;
  for (const raw of pointer.slice(1).split("/")) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(node) && /^\d+$/.test(seg)) out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
    node = typeof node === "object" && node !== null ? (node as Record<string, unknown>)[seg] : undefined;
  }
  return out;
}

function explain(e: ValueError): string {
  const s = e.schema as Record<string, unknown>;
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return "required";
    case ValueErrorType.ObjectAdditionalProperties: {
      const key = e.path.split("/").pop() ?? "";
      const known = Object.keys((s["properties"] as Record<string, unknown> | undefined) ?? {});
      const near = known.find((k) => editDistance(k, key) <= 2);
      return near === undefined ? "unknown key" : `unknown key (did you mean "${near}"?)`;
    }
    case ValueErrorType.Union: {
      const options = (s["anyOf"] as Record<string, unknown>[] | undefined) ?? [];
      if (options.length > 0 && options.every((o) => "const" in o)) {
        return `must be one of ${options.map((o) => JSON.stringify(o["const"])).join(", ")} (got ${describe(e.value)})`;
      }
      return `expected ${typeName(s)} (got ${describe(e.value)})`;
    }
    case ValueErrorType.StringPattern: {
      const what = typeof s["description"] === "string" ? lowerFirst(s["description"].replace(/`/g, "")) : `a string matching /${String(s["pattern"])}/`;
      return `expected ${what} (got ${describe(e.value)})`;
    }
    case ValueErrorType.StringMinLength:
      return s["minLength"] === 1 ? "must not be empty" : `must be at least ${String(s["minLength"])} characters long`;
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `must be at least ${String(s["minimum"])} (got ${describe(e.value)})`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `must be at most ${String(s["maximum"])} (got ${describe(e.value)})`;
    case ValueErrorType.ArrayMinItems:
      return `must have at least ${String(s["minItems"])} item${s["minItems"] === 1 ? "" : "s"} (got ${describe(e.value)})`;
    default:
      return `expected ${typeName(s)} (got ${describe(e.value)})`;
  }
}

/** A schema's type in the words the docs use. */
export function typeName(schema: Record<string, unknown>): string {
  const anyOf = schema["anyOf"] as Record<string, unknown>[] | undefined;
  if (anyOf) return anyOf.every((o) => "const" in o) ? anyOf.map((o) => JSON.stringify(o["const"])).join(" | ") : anyOf.map(typeName).join(" | ");
  switch (schema["type"]) {
    case "string":
      return "string";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return `list of ${typeName((schema["items"] as Record<string, unknown> | undefined) ?? {})}`;
    case "object":
      return "mapping";
    default:
      return "value";
  }
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] ?? 0;
}

const LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

/** Whether `domain` looks like a usable XMPP domain: lowercase labels of letters, digits and inner hyphens. */
export function isValidDomain(domain: string): boolean {
  if (domain.length === 0 || domain.length > 253 || domain !== domain.toLowerCase()) return false;
  return domain.split(".").every((label) => LABEL.test(label));
}

/** Checks the schema cannot express: unique hosts, bare-JID admins, domain syntax, port ranges, listener clashes. */
function semanticProblems(config: Config): string[] {
  const problems: string[] = [];
  // A cipher list OpenSSL cannot use would only fail when the first listener starts: say so with the key instead.
  const lists: [string, string | undefined][] = [
    ["tls_policy.ciphers", config.tls_policy.ciphers],
    ["c2s.tls_policy.ciphers", config.c2s.tls_policy?.ciphers],
    ["s2s.tls_policy.ciphers", config.s2s.tls_policy?.ciphers],
    ["http.tls_policy.ciphers", config.http.tls_policy?.ciphers],
  ];
  for (const [key, list] of lists) {
    const why = list === undefined ? undefined : cipherListProblem(list);
    if (why !== undefined) problems.push(`${key}: OpenSSL accepts none of these suites (${why})`);
  }
  const firstIndex = new Map<string, number>();
  config.hosts.forEach((host, i) => {
    const d = host.domain;
    if (d !== d.toLowerCase()) problems.push(`hosts[${i}].domain: must be lowercase (got ${JSON.stringify(d)}, use ${JSON.stringify(d.toLowerCase())})`);
    else if (!isValidDomain(d)) problems.push(`hosts[${i}].domain: not a valid domain name (got ${JSON.stringify(d)})`);
    const prev = firstIndex.get(d.toLowerCase());
    if (prev !== undefined) problems.push(`hosts[${i}].domain: duplicate of hosts[${prev}] (${JSON.stringify(d)})`);
    else firstIndex.set(d.toLowerCase(), i);
    host.admins.forEach((jid, j) => {
      const at = jid.indexOf("@");
      if (at <= 0 || at === jid.length - 1 || jid.includes("/")) {
        problems.push(`hosts[${i}].admins[${j}]: must be a bare JID like user@${d} (got ${JSON.stringify(jid)})`);
      }
    });
  });
  // Service domains (hosts[].muc.domain) are checked once every host is known: none may be a host or repeat.
  const services = new Map<string, string>();
  const serviceDomains = config.hosts.flatMap((host, i) => [
    ...(host.muc ? [{ m: host.muc.domain, where: `hosts[${i}].muc.domain` }] : []),
    ...(host.upload ? [{ m: host.upload.domain, where: `hosts[${i}].upload.domain` }] : []),
  ]);
  serviceDomains.forEach(({ m, where }) => {
    if (m !== m.toLowerCase()) problems.push(`${where}: must be lowercase (got ${JSON.stringify(m)}, use ${JSON.stringify(m.toLowerCase())})`);
    else if (!isValidDomain(m)) problems.push(`${where}: not a valid domain name (got ${JSON.stringify(m)})`);
    else if (firstIndex.has(m)) problems.push(`${where}: ${JSON.stringify(m)} is a host (hosts[${firstIndex.get(m)}]); a service needs a domain of its own`);
    else if (services.has(m)) problems.push(`${where}: ${JSON.stringify(m)} is already used by ${services.get(m)}`);
    else services.set(m, where);
  });
  // External components (XEP-0114) take service domains too: not a host, not a chat service, not twice; and their
  // owner, when given, must be a host (its federation policy and disco#items apply to the component).
  config.components.services.forEach((svc, i) => {
    const d = svc.domain;
    const where = `components.services[${i}].domain`;
    if (d !== d.toLowerCase()) problems.push(`${where}: must be lowercase (got ${JSON.stringify(d)}, use ${JSON.stringify(d.toLowerCase())})`);
    else if (!isValidDomain(d)) problems.push(`${where}: not a valid domain name (got ${JSON.stringify(d)})`);
    else if (firstIndex.has(d)) problems.push(`${where}: ${JSON.stringify(d)} is a host (hosts[${firstIndex.get(d)}]); a component needs a domain of its own`);
    else if (services.has(d)) problems.push(`${where}: ${JSON.stringify(d)} is already used by ${services.get(d)}`);
    else services.set(d, where);
    if (svc.host !== undefined && !firstIndex.has(svc.host)) {
      problems.push(`components.services[${i}].host: ${JSON.stringify(svc.host)} is not one of the hosts (${config.hosts.map((h) => h.domain).join(", ")})`);
    }
  });
  config.hosts.forEach((host, i) => {
    // XEP-0363 slots are URLs on the HTTP listener: without one, every upload would fail.
    if (host.upload && config.http.listen.length === 0 && config.http.tls_listen.length === 0) {
      problems.push(`hosts[${i}].upload: needs an HTTP listener (http.listen or http.tls_listen) to receive and serve files`);
    }
  });
  if (config.storage.backend === "postgres") {
    const url = config.storage.postgres_url;
    if (url === undefined) {
      problems.push("storage.postgres_url: required when storage.backend is postgres (e.g. postgres://comity@127.0.0.1:5432/comity)");
    } else if (!/^postgres(ql)?:\/\//.test(url)) {
      problems.push("storage.postgres_url: expected a postgres:// or postgresql:// URL, e.g. postgres://comity@127.0.0.1:5432/comity");
    }
  }
  const listeners: [string, string[]][] = [
    ["c2s.listen", config.c2s.listen],
    ["c2s.direct_tls", config.c2s.direct_tls],
    ["s2s.listen", config.s2s.listen],
    ["s2s.direct_tls", config.s2s.direct_tls],
    ["http.listen", config.http.listen],
    ["components.listen", config.components.listen],
  ];
  const used = new Map<string, string>();
  for (const [key, addrs] of listeners) {
    addrs.forEach((addr, i) => {
      const where = `${key}[${i}]`;
      const parsed = parseListenAddress(addr);
      // Port 0 asks the system for a free port (tests); it never clashes with another listener.
      if (parsed.port > 65535) problems.push(`${where}: port must be 0..65535 (got ${parsed.port})`);
      if (parsed.port === 0) return;
      const norm = `${parsed.host.toLowerCase()}:${parsed.port}`;
      const other = used.get(norm);
      if (other !== undefined) problems.push(`${where}: ${addr} is already used by ${other}`);
      else used.set(norm, where);
    });
  }
  for (const [domain, addr] of Object.entries(config.s2s.routes)) {
    const port = parseListenAddress(addr).port;
    if (port < 1 || port > 65535) problems.push(`s2s.routes[${JSON.stringify(domain)}]: port must be 1..65535 (got ${port})`);
  }
  return problems;
}

/** Split `host:port` / `[v6]:port` into its parts (host without brackets). */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host, port: Number(addr.slice(i + 1)) };
}

function resolvePaths(config: Config, baseDir: string): Config {
  const abs = (p: string): string => resolve(baseDir, p);
  config.data_dir = abs(config.data_dir);
  if (config.tls) config.tls = { cert: abs(config.tls.cert), key: abs(config.tls.key) };
  for (const host of config.hosts) {
    if (host.tls) host.tls = { cert: abs(host.tls.cert), key: abs(host.tls.key) };
  }
  if (config.s2s.ca_file !== undefined) config.s2s.ca_file = abs(config.s2s.ca_file);
  config.control_socket = config.control_socket === undefined ? resolve(config.data_dir, "comity.sock") : abs(config.control_socket);
  return config;
}
