#!/usr/bin/env node
// Entry point of the `comity` command: runs the compiled CLI (built by `npm run build`, also on `npm ci`).
import("../dist/cli/main.js").then((m) => m.main(process.argv)).catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
