// Generates the options table of docs/configuration.md from the config schema (schema.ts); `--check` fails on drift.
// Run: node --import tsx src/core/config/docs.ts [--check]
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { TSchema } from "@sinclair/typebox";
import { ConfigSchema } from "./schema.ts";

/** The document the table lives in. */
export const CONFIGURATION_DOC = fileURLToPath(new URL("../../../docs/configuration.md", import.meta.url));
export const BEGIN_MARKER = "<!-- BEGIN GENERATED OPTIONS: edit src/core/config/schema.ts, then run node --import tsx src/core/config/docs.ts -->";
export const END_MARKER = "<!-- END GENERATED OPTIONS -->";

/** One row of the options table. */
export interface OptionRow {
  key: string;
  type: string;
  default: string;
  description: string;
}

type Schema = Record<string, unknown>;

function isObjectSchema(s: Schema): boolean {
  return s["type"] === "object" && typeof s["properties"] === "object";
}

function typeOf(s: Schema): string {
  const anyOf = s["anyOf"] as Schema[] | undefined;
  if (anyOf) return anyOf.map((o) => ("const" in o ? `\`${String(o["const"])}\`` : typeOf(o))).join(" | ");
  switch (s["type"]) {
    case "string":
      return typeof s["pattern"] === "string" && s["pattern"].endsWith(":[0-9]{1,5}$") ? "address" : "string";
    case "array": {
      const items = (s["items"] as Schema | undefined) ?? {};
      return isObjectSchema(items) ? "list of mappings" : `list of ${typeOf(items)}`;
    }
    case "object": {
      const values = Object.values((s["patternProperties"] as Record<string, Schema> | undefined) ?? {})[0];
      return values === undefined ? "mapping" : `mapping of name → ${typeOf(values)}`;
    }
    default:
      return String(s["type"] ?? "value");
  }
}

function constraints(s: Schema): string {
  const parts: string[] = [];
  if (typeof s["minimum"] === "number") parts.push(`at least ${s["minimum"]}`);
  if (typeof s["maximum"] === "number") parts.push(`at most ${s["maximum"]}`);
  if (typeof s["minItems"] === "number" && s["minItems"] > 0) parts.push(`at least ${s["minItems"]} item${s["minItems"] === 1 ? "" : "s"}`);
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`;
}

function formatDefault(s: Schema, required: boolean): string {
  if (!("default" in s)) return required ? "*required*" : "—";
  const d = s["default"];
  if (isObjectSchema(s)) return "—"; // a section: its keys have the defaults
  return `\`${typeof d === "string" ? d : JSON.stringify(d)}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function walk(s: Schema, prefix: string, rows: OptionRow[]): void {
  const props = s["properties"] as Record<string, Schema>;
  const required = new Set((s["required"] as string[] | undefined) ?? []);
  for (const [name, child] of Object.entries(props)) {
    const key = prefix === "" ? name : `${prefix}.${name}`;
    const description = typeof child["description"] === "string" ? child["description"] : "";
    const items = child["items"] as Schema | undefined;
    if (isObjectSchema(child)) {
      rows.push({ key, type: "mapping", default: formatDefault(child, required.has(name)), description: cell(description) });
      walk(child, key, rows);
    } else if (child["type"] === "array" && items !== undefined && isObjectSchema(items)) {
      rows.push({ key, type: typeOf(child), default: formatDefault(child, required.has(name)), description: cell(description + constraints(child)) });
      walk(items, `${key}[]`, rows);
    } else {
      rows.push({ key, type: cell(typeOf(child)), default: formatDefault(child, required.has(name)), description: cell(description + constraints(child)) });
    }
  }
}

/** Every option of `schema`, depth first, in declaration order (`hosts[].domain` for list entries). */
export function optionRows(schema: TSchema = ConfigSchema): OptionRow[] {
  const rows: OptionRow[] = [];
  walk(schema as Schema, "", rows);
  return rows;
}

/** The markdown options table. */
export function renderOptionsTable(schema: TSchema = ConfigSchema): string {
  const lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"];
  for (const r of optionRows(schema)) lines.push(`| \`${r.key}\` | ${r.type} | ${r.default} | ${r.description} |`);
  return `${lines.join("\n")}\n`;
}

/** `doc` with the text between the markers replaced by the current table; throws when a marker is missing. */
export function updateDocument(doc: string, table = renderOptionsTable()): string {
  const begin = doc.indexOf(BEGIN_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (begin === -1 || end === -1 || end < begin) throw new Error(`the options table markers are missing from the document`);
  return `${doc.slice(0, begin + BEGIN_MARKER.length)}\n\n${table}\n${doc.slice(end)}`;
}

/** Rewrite docs/configuration.md (or `path`) when its table is out of date; returns whether it changed. */
export function writeConfigurationDoc(path = CONFIGURATION_DOC): boolean {
  const before = readFileSync(path, "utf8");
  const after = updateDocument(before);
  if (after === before) return false;
  writeFileSync(path, after);
  return true;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes("--check")) {
    const current = readFileSync(CONFIGURATION_DOC, "utf8");
    if (updateDocument(current) !== current) {
      process.stderr.write(`${CONFIGURATION_DOC} is out of date: run node --import tsx src/core/config/docs.ts\n`);
      process.exitCode = 1;
    }
  } else {
    process.stdout.write(writeConfigurationDoc() ? `updated ${CONFIGURATION_DOC}\n` : `${CONFIGURATION_DOC} is up to date\n`);
  }
}
