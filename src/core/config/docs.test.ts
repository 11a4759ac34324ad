// Drift check: docs/configuration.md must carry the options table generated from the schema (docs.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CONFIGURATION_DOC, optionRows, updateDocument } from "./docs.ts";
import { parseConfig } from "./load.ts";

test("docs/configuration.md is up to date with the schema (run: node --import tsx src/core/config/docs.ts)", () => {
  const doc = readFileSync(CONFIGURATION_DOC, "utf8");
  assert.equal(updateDocument(doc), doc);
});

test("every option has a description", () => {
  const missing = optionRows().filter((r) => r.description.trim() === "").map((r) => r.key);
  assert.deepEqual(missing, []);
});

test("the YAML example in docs/configuration.md is a valid configuration", () => {
  const doc = readFileSync(CONFIGURATION_DOC, "utf8");
  const block = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(block !== undefined);
  assert.equal(parseConfig(block).hosts[0]?.domain, "comity.test");
});
