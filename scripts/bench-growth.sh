#!/usr/bin/env bash
# `npm run bench:growth`: what an idle client connection costs Comity as the count grows.
# For each N (default 1000 2500 5000 10000 15000 19000) a fresh Comity (dist/, pinned to CPU 1) takes N
# authenticated sessions with presence from the shared generator's `idle` mode (pinned to CPU 0), holds them
# 10 s, and we record RSS before/after (the generator's figure) and the V8 heap and external memory as
# `comity status --json` reports them at the peak. Prints one table. Bounded: every generator run has a
# 170 s timeout. N is capped by the file-descriptor limit (each side needs one fd per connection).
#   npm run bench:growth                 # default steps
#   npm run bench:growth -- 1000 10000   # chosen steps
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="${COMITY_BENCH_DIR:-$ROOT/../shared/bench}"
GEN="$BENCH/gen/xmppbench.js"
[ -f "$GEN" ] || { echo "shared generator not found at $GEN (set COMITY_BENCH_DIR)" >&2; exit 1; }
[ -f "$ROOT/dist/cli/main.js" ] || (cd "$ROOT" && npm run build >/dev/null)

steps=("$@"); [ ${#steps[@]} -gt 0 ] || steps=(1000 2500 5000 10000 15000 19000)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(( $(ulimit -n) - 500 ))

WORK="${TMPDIR:-/tmp}/comity-bench/growth"
OUT="$WORK/results-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$WORK" "$OUT"
DOMAIN=bench.test HOST=127.0.0.1 PORT=35423
CONF="$WORK/comity.yaml"
cat > "$CONF" <<YAML
hosts: [{domain: $DOMAIN}]
data_dir: $WORK/data
c2s: {listen: ["$HOST:$PORT"], direct_tls: [], encryption: optional, max_sessions_per_user: 10}
s2s: {listen: []}
auth: {password_storage: plain, insecure_plain: true, failure_delay_ms: 0}
log: {level: warn}
mam: {enabled: false}
YAML
max=0; for n in "${steps[@]}"; do (( n > max )) && max=$n; done
BENCH_DOMAIN=$DOMAIN node "$ROOT/scripts/bench-users.mjs" "$CONF" "$max" >/dev/null

PIN_S=(); PIN_G=()
if command -v taskset >/dev/null && [ "${BENCH_PIN:-1}" = 1 ]; then PIN_S=(taskset -c 1); PIN_G=(taskset -c 0); fi
comity() { node "$ROOT/bin/comity.js" "$@" --config "$CONF"; }
SERVER_PID=
stop_server() { if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; fi; SERVER_PID=; }
trap stop_server EXIT

printf '%s\n' "| sessions | RSS MiB before → at N | KiB RSS per connection | V8 heap MiB at N | KiB heap per connection | external + array buffers MiB |" "|---|---|---|---|---|---|" > "$OUT/table.md"
for n in "${steps[@]}"; do
  if (( n > limit )); then echo "skip N=$n: the fd limit $(ulimit -n) allows about $limit" >&2; continue; fi
  "${PIN_S[@]}" node "$ROOT/bin/comity.js" start --config "$CONF" >"$OUT/server-$n.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null && break; sleep 0.1; done
  sleep 2
  base=$(comity status --json)
  # Sample the server while the generator holds the sessions; keep the sample with the most sessions.
  ( best=0; while kill -0 "$SERVER_PID" 2>/dev/null; do
      s=$(comity status --json 2>/dev/null) || break
      c=$(node -e 'process.stdout.write(String(JSON.parse(process.argv[1]).c2sSessions))' "$s")
      if (( c >= best )); then best=$c; printf '%s' "$s" > "$OUT/status-$n.json"; fi
      sleep 1
    done ) &
  sampler=$!
  "${PIN_G[@]}" node "$GEN" idle --host "$HOST" --port "$PORT" --domain "$DOMAIN" --users "$n" --concurrency 200 \
    --settle 5 --hold 10 --timeout 170 --pid "$SERVER_PID" --label comity --out "$OUT/idle-$n.json" 2>"$OUT/gen-$n.log" >/dev/null || true
  stop_server; kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  node - "$OUT/idle-$n.json" "$OUT/status-$n.json" "$base" "$n" >> "$OUT/table.md" <<'JS'
const fs = require("node:fs");
const [idleFile, statusFile, baseJson, n] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(idleFile, "utf8"));
const s = JSON.parse(fs.readFileSync(statusFile, "utf8")).memory;
const b = JSON.parse(baseJson).memory;
const alive = r.alive_at_end;
const mib = (x) => (x / 1048576).toFixed(0);
const kib = (x) => (x / 1024 / alive).toFixed(1);
const rss0 = r.server_rss_kib_0, rss1 = r.server_rss_kib_n;
console.log(`| ${alive.toLocaleString("en")} | ${(rss0 / 1024).toFixed(0)} → ${(rss1 / 1024).toFixed(0)} | ${r.rss_kib_per_conn.toFixed(1)} | ${mib(s.heapUsed)} | ${kib(s.heapUsed - b.heapUsed)} | ${mib(s.external + s.arrayBuffers)} |`);
JS
  echo "N=$n done" >&2
done
echo "# comity connection growth, $(date -u +%F\ %H:%M) UTC, node $(node -v), results in $OUT"
cat "$OUT/table.md"
