// Benchmark and RFC 6120 §11.1 restriction probe for XML parser candidates (saxes, node-expat, ltx, Comity's StreamParser and
// FastStreamParser) of Comity's streaming XML layer.
// Run: node --import tsx bench/xml-parsers.ts [--stanzas 100000] [--runs 5] [--chunk 1500] [--verbose]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import os from "node:os";
import v8 from "node:v8";
import vm from "node:vm";
import { SaxesParser } from "saxes";
import { Element } from "../src/xml/element.ts";
import { StreamParser, type StreamParserHandlers } from "../src/xml/parser.ts";
import { FastStreamParser } from "../src/xml/fast-parser.ts";

// ---------------------------------------------------------------------------------------------
// Candidates without type declarations are loaded through require() and given minimal shapes.

type Listener = (...args: never[]) => void;

interface EventSource {
  on(event: string, fn: Listener): unknown;
  write(data: Buffer | string): unknown;
}

interface ExpatParser extends EventSource {
  end(): void;
}

const require = createRequire(import.meta.url);

function tryRequire<T>(id: string): { mod: T } | { error: string } {
  try {
    return { mod: require(id) as T };
  } catch (e) {
    return { error: e instanceof Error ? e.message.split("\n")[0]! : String(e) };
  }
}

const expat = tryRequire<{ Parser: new (encoding?: string) => ExpatParser }>("node-expat");
const ltx = tryRequire<new () => EventSource>("ltx/lib/parsers/ltx.js");

// ---------------------------------------------------------------------------------------------
// What every candidate reports to: resolved elements, text, "dangerous markup" events, errors.

/** Where an error came from: the parser itself, the UTF-8 decoder in front of it, or our JS namespace layer. */
type Layer = "parser" | "decoder" | "js";
type Markup = "doctype" | "entitydecl" | "comment" | "pi" | "xmldecl";

interface Observer {
  start(local: string, uri: string, attrs: Record<string, string>): void;
  end(): void;
  text(t: string): void;
  markup(kind: Markup, detail: string): void;
  error(err: Error, layer: Layer): void;
  /** A complete stanza from a parser that builds Element trees itself. */
  stanza(el: Element): void;
}

interface Feeder {
  write(chunk: Buffer): void;
  end(): void;
}

type Input = "buffer" | "fatal-decoder";

interface Candidate {
  name: string;
  available: string | true;
  open(obs: Observer, input: Input): Feeder;
}

const XML_NS = "http://www.w3.org/XML/1998/namespace";

interface Scope {
  prefix: string;
  uri: string;
  parent: Scope | undefined;
}

const ROOT_SCOPE: Scope = { prefix: "xml", uri: XML_NS, parent: undefined };

function lookup(scope: Scope | undefined, prefix: string): string | undefined {
  for (let s = scope; s; s = s.parent) if (s.prefix === prefix) return s.uri;
  return undefined;
}

/** Namespace resolution in JS for parsers that only report qualified names (what Comity would add on top of them). */
class NsResolver {
  #obs: Observer;
  #names: string[] = [];
  #scopes: Scope[] = [ROOT_SCOPE];

  constructor(obs: Observer) {
    this.#obs = obs;
  }

  start(qname: string, raw: Record<string, string>): void {
    let scope = this.#scopes[this.#scopes.length - 1]!;
    let attrs = raw;
    for (const k in raw) {
      if (k.charCodeAt(0) === 120 && k.startsWith("xmlns") && (k.length === 5 || k.charCodeAt(5) === 58)) {
        if (attrs === raw) attrs = { ...raw };
        delete attrs[k];
        scope = { prefix: k.length === 5 ? "" : k.slice(6), uri: raw[k]!, parent: scope };
      }
    }
    const colon = qname.indexOf(":");
    const prefix = colon < 0 ? "" : qname.slice(0, colon);
    const uri = lookup(scope, prefix);
    if (uri === undefined && prefix !== "") {
      this.#obs.error(new Error(`unbound prefix "${prefix}"`), "js");
      return;
    }
    for (const k in attrs) {
      const c = k.indexOf(":");
      if (c > 0 && lookup(scope, k.slice(0, c)) === undefined) {
        this.#obs.error(new Error(`unbound attribute prefix in "${k}"`), "js");
        return;
      }
    }
    this.#names.push(qname);
    this.#scopes.push(scope);
    this.#obs.start(colon < 0 ? qname : qname.slice(colon + 1), uri ?? "", attrs);
  }

  end(qname: string): void {
    const open = this.#names.pop();
    this.#scopes.pop();
    if (open !== qname) {
      this.#obs.error(new Error(`end tag </${qname}> does not match <${open ?? ""}>`), "js");
      return;
    }
    this.#obs.end();
  }
}

/** Wraps a string parser with the chosen UTF-8 handling: Buffer passed as is, or a fatal streaming TextDecoder. */
function stringInput(input: Input, obs: Observer, write: (s: string | Buffer) => void): (chunk: Buffer) => boolean {
  if (input === "buffer") {
    return (chunk) => {
      write(chunk);
      return true;
    };
  }
  const decoder = new TextDecoder("utf-8", { fatal: true });
  return (chunk) => {
    let s: string;
    try {
      s = decoder.decode(chunk, { stream: true });
    } catch (e) {
      obs.error(e as Error, "decoder");
      return false;
    }
    write(s);
    return true;
  };
}

function saxesCandidate(name: string, opts: { xmlns: boolean; position: boolean; force10: boolean }): Candidate {
  return {
    name,
    available: true,
    open(obs, input) {
      let failed = false;
      const fail = (e: Error): void => {
        if (!failed) obs.error(e, "parser");
        failed = true;
      };
      const common = (p: SaxesParser<{ xmlns: boolean }>): void => {
        p.on("text", (t) => obs.text(t));
        p.on("cdata", (t) => obs.text(t));
        p.on("doctype", (d) => obs.markup("doctype", d));
        p.on("comment", (c) => obs.markup("comment", c));
        p.on("processinginstruction", (pi) => obs.markup("pi", `${pi.target} ${pi.body}`));
        p.on("xmldecl", (d) => obs.markup("xmldecl", `version=${d.version ?? ""} encoding=${d.encoding ?? ""}`));
        p.on("error", fail);
      };
      const version = opts.force10 ? { forceXMLVersion: true as const, defaultXMLVersion: "1.0" as const } : {};
      let parser: SaxesParser<{ xmlns: boolean }>;
      if (opts.xmlns) {
        const p = new SaxesParser({ xmlns: true, position: opts.position, ...version });
        p.on("opentag", (tag) => {
          const attrs: Record<string, string> = {};
          for (const k in tag.attributes) {
            const a = tag.attributes[k]!;
            if (a.prefix !== "xmlns" && a.name !== "xmlns") attrs[k] = a.value;
          }
          obs.start(tag.local, tag.uri, attrs);
        });
        p.on("closetag", () => obs.end());
        parser = p as unknown as SaxesParser<{ xmlns: boolean }>;
      } else {
        const p = new SaxesParser({ xmlns: false, position: opts.position, ...version });
        const ns = new NsResolver(obs);
        p.on("opentag", (tag) => ns.start(tag.name, tag.attributes));
        p.on("closetag", (tag) => ns.end(tag.name));
        parser = p as unknown as SaxesParser<{ xmlns: boolean }>;
      }
      common(parser);
      const feed = stringInput(input, obs, (s) => parser.write(s));
      return {
        write(chunk) {
          if (!failed && !feed(chunk)) failed = true;
        },
        end() {
          if (!failed) parser.close();
        },
      };
    },
  };
}

function expatCandidate(): Candidate {
  return {
    name: "node-expat",
    available: "mod" in expat ? true : expat.error,
    open(obs, input) {
      if (!("mod" in expat)) throw new Error(expat.error);
      if (input !== "buffer") throw new Error("node-expat takes bytes");
      // "UTF-8" here overrides any encoding declared in the document (XML_ParserCreate semantics).
      const p = new expat.mod.Parser("UTF-8");
      const ns = new NsResolver(obs);
      let failed = false;
      p.on("startElement", (name: string, attrs: Record<string, string>) => ns.start(name, attrs));
      p.on("endElement", (name: string) => ns.end(name));
      p.on("text", (t: string) => obs.text(t));
      p.on("comment", (c: string) => obs.markup("comment", c));
      p.on("processingInstruction", (target: string, data: string) => obs.markup("pi", `${target} ${data}`));
      p.on("xmlDecl", (version: string | null, encoding: string | null) =>
        obs.markup("xmldecl", `version=${version ?? ""} encoding=${encoding ?? ""}`),
      );
      p.on("entityDecl", (name: string, _isParam: boolean, value: string | null, _base: unknown, systemId: string | null) =>
        obs.markup("entitydecl", `${name}=${value ?? `SYSTEM ${systemId ?? ""}`}`),
      );
      p.on("error", (e: unknown) => {
        if (!failed) obs.error(e instanceof Error ? e : new Error(String(e)), "parser");
        failed = true;
      });
      return {
        write(chunk) {
          if (!failed) p.write(chunk);
        },
        end() {
          if (!failed) p.end();
        },
      };
    },
  };
}

function ltxCandidate(): Candidate {
  return {
    name: "ltx",
    available: "mod" in ltx ? true : ltx.error,
    open(obs, input) {
      if (!("mod" in ltx)) throw new Error(ltx.error);
      const p = new ltx.mod();
      const ns = new NsResolver(obs);
      let failed = false;
      p.on("startElement", (name: string, attrs: Record<string, string>) => ns.start(name, attrs));
      p.on("endElement", (name: string) => ns.end(name));
      p.on("text", (t: string) => obs.text(t));
      // ltx throws from write() (e.g. unknown entity) instead of emitting "error".
      const feed = stringInput(input, obs, (s) => {
        try {
          p.write(s);
        } catch (e) {
          obs.error(e as Error, "parser");
          failed = true;
        }
      });
      return {
        write(chunk) {
          if (!failed && !feed(chunk)) failed = true;
        },
        end() {},
      };
    },
  };
}

/** Comity's own stream parsers: bytes in (decoder included), Element trees out, limits and restrictions enforced. */
function comityCandidate(
  name: string,
  Parser: new (handlers: StreamParserHandlers, limits: { maxStanzaSize: number }) => { write(chunk: Uint8Array): void },
): Candidate {
  return {
    name,
    available: true,
    open(obs, input) {
      if (input !== "buffer") throw new Error(`${name} takes bytes and decodes them itself`);
      const p = new Parser(
        { rootOpen() {}, element: (el) => obs.stanza(el), rootClose() {} },
        { maxStanzaSize: Number.MAX_SAFE_INTEGER },
      );
      let failed = false;
      return {
        write(chunk) {
          if (failed) return;
          try {
            p.write(chunk);
          } catch (e) {
            failed = true;
            obs.error(e as Error, "parser");
          }
        },
        end() {},
      };
    },
  };
}

/** Not a parser: the cost of the fatal streaming UTF-8 decoder alone, the floor for string-based parsers. */
function decoderOnlyCandidate(): Candidate {
  return {
    name: "(baseline) fatal TextDecoder only",
    available: true,
    open(obs, input) {
      const feed = stringInput(input, obs, () => {});
      return {
        write(chunk) {
          feed(chunk);
        },
        end() {},
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Tree building: one Element tree per depth-1 child of <stream:stream>, as a server does.

interface Tally {
  stanzas: number;
  elements: number;
  textChars: number;
  textHash: number;
}

function walkText(el: Element, t: Tally): void {
  for (const c of el.children) {
    if (typeof c === "string") {
      t.textChars += c.length;
      for (let i = 0; i < c.length; i++) t.textHash = (Math.imul(t.textHash, 31) + c.charCodeAt(i)) | 0;
    } else {
      walkText(c, t);
    }
  }
}

/** Builds stanzas; hands each finished one to `done`. Errors and markup go to `onIssue`. */
function treeObserver(
  done: (stanza: Element) => void,
  onIssue: { error(err: Error, layer: Layer): void; markup(kind: Markup, detail: string): void },
  tally: Tally,
): Observer {
  let depth = 0;
  const stack: Element[] = [];
  return {
    start(local, uri, attrs) {
      depth++;
      if (depth === 1) return; // the stream root
      const el = new Element(local, uri, attrs);
      tally.elements++;
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      stack.push(el);
    },
    end() {
      depth--;
      if (depth < 1) return;
      const el = stack.pop()!;
      if (depth === 1) {
        tally.stanzas++;
        done(el);
      }
    },
    text(t) {
      const cur = stack[stack.length - 1];
      if (!cur) return; // whitespace between stanzas
      const last = cur.children.length - 1;
      if (last >= 0 && typeof cur.children[last] === "string") cur.children[last] += t;
      else cur.children.push(t);
    },
    markup: (k, d) => onIssue.markup(k, d),
    error: (e, l) => onIssue.error(e, l),
    stanza(el) {
      const count = (e: Element): number => {
        let n = 1;
        for (const c of e.children) if (typeof c !== "string") n += count(c);
        return n;
      };
      tally.elements += count(el);
      tally.stanzas++;
      done(el);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Workload: a deterministic mix of stanzas from bench/fixtures/stanza-mix.xml.

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));

/** Stanza templates in fixture order with their share of the mix (percent). */
const MIX = [
  { kind: "chat message", weight: 40 },
  { kind: "presence with caps", weight: 25 },
  { kind: "iq get disco#info", weight: 10 },
  { kind: "iq result disco#info", weight: 5 },
  { kind: "message, 20 children, entities", weight: 10 },
  { kind: "message, non-ASCII text", weight: 10 },
];

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildStream(n: number): Buffer {
  const lines = readFileSync(FIXTURES + "stanza-mix.xml", "utf8").split("\n").filter((l) => l.length > 0);
  const header = lines[1]!;
  const footer = lines[lines.length - 1]!;
  const templates = lines.slice(2, -1);
  if (templates.length !== MIX.length) throw new Error(`fixture has ${templates.length} templates, expected ${MIX.length}`);
  const cumulative: number[] = [];
  let acc = 0;
  for (const m of MIX) cumulative.push((acc += m.weight));
  const rnd = mulberry32(6120);
  const parts: string[] = ["<?xml version='1.0'?>", header];
  for (let i = 0; i < n; i++) {
    const r = rnd() * acc;
    const idx = cumulative.findIndex((c) => r < c);
    parts.push(templates[idx]!.replaceAll("{n}", String(i)));
  }
  parts.push(footer);
  return Buffer.from(parts.join(""), "utf8");
}

function split(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Speed: stanzas/s, MB/s, peak heap growth; median of R runs after one verified warm-up.

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

interface RunResult {
  ms: number;
  peakHeap: number;
  gcMs: number;
  gcCount: number;
  tally: Tally;
}

const gcEntries: PerformanceEntry[] = [];
new PerformanceObserver((list) => gcEntries.push(...list.getEntries())).observe({ entryTypes: ["gc"] });

/** GC entries are delivered asynchronously; let them arrive, then sum those inside [t0, t1]. */
async function gcBetween(t0: number, t1: number): Promise<{ ms: number; count: number }> {
  await new Promise((r) => setTimeout(r, 20));
  let ms = 0;
  let count = 0;
  for (const e of gcEntries) {
    if (e.startTime >= t0 && e.startTime <= t1) {
      ms += e.duration;
      count++;
    }
  }
  gcEntries.length = 0;
  return { ms, count };
}

async function runOnce(c: Candidate, input: Input, chunks: Buffer[], verify: boolean): Promise<RunResult> {
  const tally: Tally = { stanzas: 0, elements: 0, textChars: 0, textHash: 0 };
  let error: Error | undefined;
  const obs = treeObserver(
    verify ? (el) => walkText(el, tally) : () => {},
    {
      error(e, layer) {
        error ??= new Error(`${layer}: ${e.message}`);
      },
      markup() {},
    },
    tally,
  );
  gc();
  await gcBetween(0, 0);
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  const t0 = performance.now();
  const f = c.open(obs, input);
  for (let i = 0; i < chunks.length; i++) {
    f.write(chunks[i]!);
    if ((i & 127) === 0) {
      const h = process.memoryUsage().heapUsed;
      if (h > peak) peak = h;
    }
  }
  f.end();
  const t1 = performance.now();
  if (error) throw error;
  const g = await gcBetween(t0, t1);
  return { ms: t1 - t0, peakHeap: peak - base, gcMs: g.ms, gcCount: g.count, tally };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------
// RFC 6120 §11.1 restrictions: can the application detect (event or error) and refuse?

const HDR = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
const EXT_URL = pathToFileURL(FIXTURES + "external-entity.txt").href;

/** Concatenates strings (UTF-8) and byte arrays into one Buffer. */
function bytes(...parts: (string | number[])[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
}

interface Case {
  name: string;
  chunks: Buffer[];
  /** Returns a flag when the delivered text shows the hazard went through (entity expanded, text corrupted). */
  inspect?: (text: string) => string | undefined;
  /** Report JS heap growth while the parser holds the input (native buffers, e.g. libexpat's, are not seen). */
  heap?: boolean;
}

const msg = (body: string): string => `${HDR}<message><body>${body}</body></message>`;
const tenTimes = (s: string): string => s.repeat(10);

const CASES: Case[] = [
  { name: "DOCTYPE declaration", chunks: [bytes(`<!DOCTYPE stream:stream>${msg("hi")}`)] },
  {
    name: "internal-subset entity declared and used",
    chunks: [bytes(`<!DOCTYPE stream:stream [<!ENTITY x 'EXPANDED'>]>${msg("&x;")}`)],
    inspect: (t) => (t.includes("EXPANDED") ? "EXPANDED" : undefined),
  },
  {
    name: "nested entities (billion-laughs shape, 3 levels x10)",
    chunks: [
      bytes(
        `<!DOCTYPE stream:stream [<!ENTITY a 'lol'><!ENTITY b '${tenTimes("&a;")}'><!ENTITY c '${tenTimes("&b;")}'>]>` +
          msg("&c;"),
      ),
    ],
    inspect: (t) => (t.length >= 300 ? `EXPANDED to ${t.length} chars` : undefined),
  },
  {
    name: "external entity (SYSTEM file:) used",
    chunks: [bytes(`<!DOCTYPE stream:stream [<!ENTITY ext SYSTEM '${EXT_URL}'>]>${msg("&ext;")}`)],
    inspect: (t) => (t.includes("EXTERNAL-ENTITY-LOADED") ? "FILE LOADED" : undefined),
  },
  { name: "external DTD subset, then &foo;", chunks: [bytes(`<!DOCTYPE stream:stream SYSTEM 'http://example.invalid/x.dtd'>${msg("&foo;")}`)] },
  { name: "comment", chunks: [bytes(`${HDR}<message><!-- c --><body>hi</body></message>`)] },
  { name: "processing instruction", chunks: [bytes(`${HDR}<message><?foo bar?><body>hi</body></message>`)] },
  { name: "undefined entity &foo;", chunks: [bytes(msg("&foo;"))] },
  { name: "character reference &#0;", chunks: [bytes(msg("a&#0;b"))] },
  { name: "character reference &#x1;", chunks: [bytes(msg("a&#x1;b"))] },
  { name: "raw control char U+0001", chunks: [bytes(msg("a\u0001b"))] },
  { name: "invalid UTF-8: byte FF", chunks: [bytes(`${HDR}<message><body>a`, [0xff], "b</body></message>")], inspect: corrupt },
  { name: "invalid UTF-8: overlong C0 AF", chunks: [bytes(`${HDR}<message><body>a`, [0xc0, 0xaf], "b</body></message>")], inspect: corrupt },
  { name: "invalid UTF-8: surrogate ED A0 80", chunks: [bytes(`${HDR}<message><body>a`, [0xed, 0xa0, 0x80], "b</body></message>")], inspect: corrupt },
  {
    name: "invalid UTF-8: E2 82, then 'x' in the next chunk",
    chunks: [bytes(`${HDR}<message><body>a`, [0xe2, 0x82]), bytes("x</body></message>")],
    inspect: corrupt,
  },
  {
    name: "valid UTF-8 split across chunks (é, 🎉)",
    chunks: [bytes(`${HDR}<message><body>`, [0xc3]), bytes([0xa9, 0xf0, 0x9f]), bytes([0x8e, 0x89], "</body></message>")],
    inspect: (t) => (t === "é🎉" ? undefined : `CORRUPTED to ${JSON.stringify(t)}`),
  },
  {
    name: "encoding='ISO-8859-1' declared (byte E9)",
    chunks: [bytes(`<?xml version='1.0' encoding='ISO-8859-1'?>${HDR}<message><body>caf`, [0xe9], "</body></message>")],
    inspect: (t) => (t === "café" ? "DECODED AS LATIN-1" : corrupt(t)),
  },
  { name: "XML 1.1 declaration", chunks: [bytes(`<?xml version='1.1'?>${msg("hi")}`)] },
  { name: "XML 1.1 declaration + &#x1;", chunks: [bytes(`<?xml version='1.1'?>${msg("a&#x1;b")}`)] },
  { name: "unbound namespace prefix", chunks: [bytes(`${HDR}<message><foo:bar/></message>`)] },
  { name: "duplicate attribute", chunks: [bytes(`${HDR}<message to='a@example.com' to='b@example.com'><body>hi</body></message>`)] },
  { name: "mismatched end tag", chunks: [bytes(`${HDR}<message><body>hi</message>`)] },
  {
    name: "unterminated DOCTYPE, 2 MB in 1500 B chunks",
    chunks: [bytes("<!DOCTYPE stream:stream ["), ...split(Buffer.from("<!ENTITY a 'b'>".repeat(140_000)), 1500)],
    heap: true,
  },
  {
    name: "unterminated comment in a stanza, 2 MB",
    chunks: [bytes(`${HDR}<message><!--`), ...split(Buffer.from("x".repeat(2_100_000)), 1500)],
    heap: true,
  },
];

function corrupt(t: string): string | undefined {
  return t.includes("\uFFFD") ? "U+FFFD substituted" : undefined;
}

interface Probe {
  cell: string;
  detail: string;
}

function probe(c: Candidate, input: Input, k: Case): Probe {
  const tally: Tally = { stanzas: 0, elements: 0, textChars: 0, textHash: 0 };
  let text = "";
  let err: { e: Error; layer: Layer } | undefined;
  const events = new Set<Markup>();
  const details: string[] = [];
  const collect = (el: Element): void => {
    for (const ch of el.children) text += typeof ch === "string" ? ch : "";
    for (const ch of el.children) if (typeof ch !== "string") collect(ch);
  };
  const obs = treeObserver(
    collect,
    {
      error(e, layer) {
        err ??= { e, layer };
      },
      markup(kind, detail) {
        events.add(kind);
        details.push(`${kind}(${detail.slice(0, 60)})`);
      },
    },
    tally,
  );
  let grown = 0;
  if (k.heap) gc();
  const before = process.memoryUsage().heapUsed;
  try {
    const f = c.open(obs, input);
    for (const ch of k.chunks) f.write(ch);
    if (k.heap) grown = process.memoryUsage().heapUsed - before;
  } catch (e) {
    err ??= { e: e as Error, layer: "parser" };
  }
  const parts: string[] = [];
  if (k.heap) parts.push(`JS heap +${(grown / 1e6).toFixed(0)} MB`);
  if (err) parts.push(err.layer === "parser" ? "error" : `error (${err.layer === "js" ? "JS layer" : "decoder"})`);
  const ev = [...events].filter((e) => e !== "xmldecl" || k.name.includes("declar"));
  if (ev.length > 0) parts.push("event:" + ev.join("+"));
  const flag = k.inspect?.(text);
  if (flag) parts.push(flag);
  if (!err && tally.stanzas === 0 && parts.length === 0) parts.push("silent (stanza swallowed)");
  if (parts.length === 0) parts.push("silent");
  if (err) details.unshift(`${err.layer}: ${err.e.message.split("\n")[0]!.slice(0, 100)}`);
  return { cell: parts.join(", "), detail: details.join("; ") };
}

// ---------------------------------------------------------------------------------------------

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** Entry point: prints the speed table, then the restriction table. */
async function main(): Promise<void> {
  const stanzas = arg("stanzas", 100_000);
  const runs = arg("runs", 5);
  const chunkSize = arg("chunk", 1500);
  const verbose = process.argv.includes("--verbose");
  const all = process.argv.includes("--all");
  // Keeps the whole run under 2 minutes on a loaded 2-core machine: later candidates get fewer runs.
  const deadline = performance.now() + 95_000;
  const started = performance.now();

  const saxesNs = saxesCandidate("saxes {xmlns:true}", { xmlns: true, position: true, force10: false });
  const saxesNsNoPos = saxesCandidate("saxes {xmlns:true, position:false}", { xmlns: true, position: false, force10: false });
  const saxesPlain = saxesCandidate("saxes {xmlns:false} + JS ns", { xmlns: false, position: true, force10: false });
  const expatC = expatCandidate();
  const ltxC = ltxCandidate();
  const comity = saxesCandidate("fatal TextDecoder -> saxes {xmlns, XML 1.0 forced}", { xmlns: true, position: false, force10: true });
  const streamParser = comityCandidate("Comity StreamParser (saxes)", StreamParser);
  const fastParser = comityCandidate("Comity FastStreamParser", FastStreamParser);

  const stream = buildStream(stanzas);
  const chunks = split(stream, chunkSize);
  const mb = stream.length / 1e6;
  console.log(
    `Node ${process.version}, ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? "?"}), ` +
      `${stanzas} stanzas, ${mb.toFixed(1)} MB in ${chunks.length} chunks of ${chunkSize} B, median of ${runs} runs after 1 warm-up, ` +
      `load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  console.log(`mix: ${MIX.map((m) => `${m.weight}% ${m.kind}`).join(", ")}\n`);

  const benchRows: [Candidate, Input, string][] = [
    [decoderOnlyCandidate(), "fatal-decoder", "string via fatal TextDecoder"],
    [saxesNs, "fatal-decoder", "string via fatal TextDecoder"],
    ...(all ? [[saxesNsNoPos, "fatal-decoder", "string via fatal TextDecoder"] as [Candidate, Input, string]] : []),
    [saxesPlain, "fatal-decoder", "string via fatal TextDecoder"],
    [expatC, "buffer", "Buffer"],
    [ltxC, "fatal-decoder", "string via fatal TextDecoder"],
    [streamParser, "buffer", "Buffer (decodes itself)"],
    [fastParser, "buffer", "Buffer (decodes itself)"],
  ];
  const rows: string[][] = [];
  const empty = ["", "", "", "", "", ""];
  let reference: Tally | undefined;
  for (const [c, input, how] of benchRows) {
    if (c.available !== true) {
      rows.push([c.name, how, `unavailable: ${c.available.slice(0, 60)}`, ...empty]);
      continue;
    }
    try {
      const warm = await runOnce(c, input, chunks, true);
      const baseline = warm.tally.stanzas === 0; // the decoder-only row builds nothing
      if (!baseline) reference ??= warm.tally;
      const same =
        baseline ||
        reference === undefined ||
        (warm.tally.stanzas === reference.stanzas &&
          warm.tally.elements === reference.elements &&
          warm.tally.textHash === reference.textHash);
      const results: RunResult[] = [];
      for (let r = 0; r < runs && (r === 0 || performance.now() < deadline); r++) {
        results.push(await runOnce(c, input, chunks, false));
      }
      const ms = median(results.map((r) => r.ms));
      rows.push([
        c.name,
        how,
        baseline ? "-" : Math.round((stanzas / ms) * 1000).toLocaleString("en-US"),
        ((mb / ms) * 1000).toFixed(1),
        ms.toFixed(0) + (results.length < runs ? ` (${results.length} runs)` : ""),
        (median(results.map((r) => r.peakHeap)) / 1e6).toFixed(1),
        `${median(results.map((r) => r.gcCount))} / ${median(results.map((r) => r.gcMs)).toFixed(0)}`,
        baseline ? "-" : `${warm.tally.stanzas}/${warm.tally.elements}${same ? "" : " MISMATCH"}`,
      ]);
    } catch (e) {
      rows.push([c.name, how, `failed: ${(e as Error).message.slice(0, 60)}`, ...empty]);
    }
  }
  console.log(
    table(["parser", "input", "stanzas/s", "MB/s", "ms", "peak heap Δ MB", "GCs / GC ms", "stanzas/elements"], rows),
  );
  console.log(`load average after speed runs: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);

  const probeCols: [Candidate, Input][] = [
    [saxesNs, "buffer"],
    [saxesPlain, "buffer"],
    [expatC, "buffer"],
    [ltxC, "buffer"],
    [comity, "fatal-decoder"],
    [fastParser, "buffer"],
  ];
  console.log(
    "\nRFC 6120 §11.1 restrictions (columns 1-4: raw Buffer chunks passed to write(); saxes and ltx call toString() per chunk)\n" +
      "error = the parser reports it; error (decoder | JS layer) = caught in front of / on top of the parser; " +
      "event:x = reported, the application can refuse; silent = accepted unnoticed; other flags describe the delivered text\n",
  );
  const pRows: string[][] = [];
  const notes: string[] = [];
  for (const k of CASES) {
    const row = [k.name];
    for (const [c, input] of probeCols) {
      if (c.available !== true) {
        row.push("unavailable");
        continue;
      }
      const p = probe(c, input, k);
      row.push(p.cell);
      if (p.detail) notes.push(`${k.name} / ${c.name}: ${p.detail}`);
    }
    pRows.push(row);
  }
  console.log(table(["case", ...probeCols.map(([c]) => c.name)], pRows));
  if (verbose) console.log("\n" + notes.join("\n"));
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

await main();
