// Tests for the logger: JSON lines and the compact pretty format (log.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { createLogger, formatPretty } from "./log.ts";

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

test("json format writes one object per line with level, time and fields", async () => {
  const out = capture();
  const log = createLogger({ level: "info", format: "json", destination: out.stream });
  log.debug("hidden");
  log.info({ host: "comity.test" }, "ready");
  await new Promise((r) => setImmediate(r));
  const lines = out.text().trim().split("\n");
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
  assert.equal(rec["msg"], "ready");
  assert.equal(rec["host"], "comity.test");
  assert.equal(rec["level"], 30);
  assert.equal(typeof rec["time"], "number");
});

test("pretty format is `HH:MM:SS.mmm LEVEL msg key=value`", async () => {
  const out = capture();
  const log = createLogger({ level: "debug", format: "pretty", destination: out.stream });
  log.child({ host: "comity.test" }).warn({ peer: "capulet.lit", note: "two words", n: 3 }, "buddy request");
  await new Promise((r) => setImmediate(r));
  assert.match(out.text(), /^\d\d:\d\d:\d\d\.\d{3} WARN  buddy request host=comity\.test peer=capulet\.lit note="two words" n=3\n$/);
});

test("pretty format shows an error's message and its stack indented", () => {
  const line = JSON.stringify({ level: 50, time: 0, msg: "failed", err: { type: "Error", message: "boom", stack: "Error: boom\n    at f (x.ts:1:1)" } });
  assert.match(formatPretty(line), /ERROR failed err=boom\n    at f \(x\.ts:1:1\)\n$/);
});
