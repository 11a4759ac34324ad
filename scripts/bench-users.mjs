#!/usr/bin/env node
// Creates the benchmark accounts u1..uN (password p1..pN) with `comity import-users`, skipping existing ones.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
const [config, n] = process.argv.slice(2);
const count = Number(n);
const lines = [];
const domain = process.env.BENCH_DOMAIN ?? "bench.test";
const up = process.env.BENCH_USER_PREFIX ?? "u";
const pp = process.env.BENCH_PASS_PREFIX ?? "p";
for (let i = 1; i <= count; i++) lines.push(`${up}${i}@${domain} ${pp}${i}`);
const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "comity.js");
const r = spawnSync(process.execPath, [bin, "import-users", "-", "--config", config], { input: lines.join("\n") + "\n", stdio: ["pipe", "inherit", "inherit"] });
process.exit(r.status ?? 1);
