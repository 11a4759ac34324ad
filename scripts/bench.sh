#!/usr/bin/env bash
# `npm run bench`: runs ../shared/bench (S1 logins, S2 message throughput, S3 idle memory) against Comity and
# the floor relay, and against Prosody and ejabberd when they are installed, in ONE run, then prints the
# table with ratios. Comity runs from dist/ (npm run build) with plaintext c2s and plain password storage,
# as the harness requires of every server. Extra arguments replace the server list, e.g.
#   npm run bench -- custom            # Comity only
#   BENCH_SCENARIOS=s2 npm run bench   # one scenario
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="${COMITY_BENCH_DIR:-$ROOT/../shared/bench}"
[ -d "$BENCH" ] || { echo "bench harness not found at $BENCH (set COMITY_BENCH_DIR)" >&2; exit 1; }
[ -f "$ROOT/dist/cli/main.js" ] || (cd "$ROOT" && npm run build >/dev/null)

WORK="${TMPDIR:-/tmp}/comity-bench/comity"
mkdir -p "$WORK"
export BENCH_DOMAIN="${BENCH_DOMAIN:-bench.test}" BENCH_HOST="${BENCH_HOST:-127.0.0.1}" BENCH_CUSTOM_PORT="${BENCH_CUSTOM_PORT:-35422}"
cat > "$WORK/comity.yaml" <<YAML
hosts: [{domain: $BENCH_DOMAIN}]
data_dir: $WORK/data
c2s: {listen: ["$BENCH_HOST:$BENCH_CUSTOM_PORT"], direct_tls: [], encryption: optional, max_sessions_per_user: 10}
s2s: {listen: []}
auth: {password_storage: plain, insecure_plain: true, failure_delay_ms: 0}
log: {level: warn}
mam: {enabled: false}
YAML
export BENCH_CUSTOM_START_CMD="node $ROOT/bin/comity.js start --config $WORK/comity.yaml"
# Users u1..uN / p1..pN, created offline in one transaction per batch (idempotent: existing ones are kept).
export BENCH_CUSTOM_CREATE_USERS_CMD="node $ROOT/scripts/bench-users.mjs $WORK/comity.yaml"

servers=("$@")
if [ ${#servers[@]} -eq 0 ]; then
  servers=()
  command -v prosody >/dev/null 2>&1 && servers+=(prosody)
  [ -x /usr/sbin/ejabberdctl ] && servers+=(ejabberd)
  servers+=(floor custom)
fi
exec "$BENCH/compare.sh" "${servers[@]}"
