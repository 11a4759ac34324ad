#!/usr/bin/env bash
# `npm run bench:tls`: the benchmark table with STARTTLS on (issue #6, second table). Every server requires
# STARTTLS, negotiates TLS 1.3 with the same cipher suite and group against the same self-signed ECDSA P-256
# certificate for bench.test, then takes SASL PLAIN against plain password storage. Load: bench/tls-load.ts
# (login, msg and idle scenarios, as in ../shared/bench). Each server runs alone, fresh per scenario, pinned
# to CPU 1; the generator is pinned to CPU 0. Prints one table with ratios; raw JSON in the results dir.
#   npm run bench:tls                         # prosody ejabberd floor comity (those installed)
#   npm run bench:tls -- floor comity         # a subset, in that order
#   BENCH_TLS_SCENARIOS="msg" npm run bench:tls -- comity
# Configs, certificate, data and logs: /tmp/comity-bench/tls/<server>/ (COMITY_TLS_BENCH_DIR to move it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${COMITY_TLS_BENCH_DIR:-${TMPDIR:-/tmp}/comity-bench/tls}"
DOMAIN=bench.test
HOST=127.0.0.1
declare -A PORT=([prosody]=35522 [ejabberd]=35622 [comity]=35722 [floor]=35822)
SCENARIOS="${BENCH_TLS_SCENARIOS:-login msg idle}"
LOGIN_USERS="${BENCH_TLS_LOGIN_USERS:-5000}"
LOGIN_CONCURRENCY="${BENCH_TLS_LOGIN_CONCURRENCY:-100}"
MSG_USERS="${BENCH_TLS_MSG_USERS:-1000}"
RATES="${BENCH_TLS_RATES:-1000,2000,4000,8000,16000,24000,32000,40000,48000}"
STEP_SECS="${BENCH_TLS_STEP_SECS:-10}"
IDLE_USERS="${BENCH_TLS_IDLE_USERS:-10000}"
IDLE_CONCURRENCY="${BENCH_TLS_IDLE_CONCURRENCY:-200}"
SERVER_CPU="${BENCH_SERVER_CPUS:-1}"
GEN_CPU="${BENCH_GEN_CPUS:-0}"
QUIET_PCT="${BENCH_TLS_QUIET_PCT:-15}"   # before each scenario, wait for CPU pressure (avg10) below this...
QUIET_WAIT="${BENCH_TLS_QUIET_WAIT:-30}" # ...for at most this many seconds (the machine is shared)
EJABBERD_ERL_FLAGS="+sbwt none +sbwtdcpu none +sbwtdio none" # no busy-waiting schedulers: CPU% means work

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ------------------------------------------------------------------ which servers
servers=("$@")
if [ ${#servers[@]} -eq 0 ]; then
  servers=()
  if command -v prosody >/dev/null 2>&1; then servers+=(prosody); else log "Prosody is not installed: skipped"; fi
  if [ -d /usr/lib/x86_64-linux-gnu/ejabberd-23.01-1 ] || ls -d /usr/lib/x86_64-linux-gnu/ejabberd-* >/dev/null 2>&1; then servers+=(ejabberd)
  else log "ejabberd is not installed: skipped"; fi
  servers+=(floor comity)
fi
for s in "${servers[@]}"; do [ -n "${PORT[$s]:-}" ] || { echo "unknown server $s (prosody, ejabberd, floor, comity)" >&2; exit 2; }; done

# file descriptors: the generator and the server each need one per connection, plus slack
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < IDLE_USERS + 1000 )); then
  IDLE_USERS=$(( $(ulimit -n) - 1000 ))
  log "ulimit -n is $(ulimit -n): the idle scenario holds $IDLE_USERS sessions"
fi
MAX_USERS=$(( LOGIN_USERS > IDLE_USERS ? LOGIN_USERS : IDLE_USERS ))
(( MSG_USERS > MAX_USERS )) && MAX_USERS=$MSG_USERS

# ------------------------------------------------------------------ build, generator, certificate
mkdir -p "$WORK"
if [ ! -f "$ROOT/dist/cli/main.js" ] || [ -n "$(find "$ROOT/src" -name '*.ts' -newer "$ROOT/dist/cli/main.js" -print -quit)" ]; then
  log "building Comity (dist/ missing or older than src/)"
  if ! (cd "$ROOT" && npm run build >"$WORK/build.log" 2>&1); then
    [ -f "$ROOT/dist/cli/main.js" ] || { cat "$WORK/build.log" >&2; exit 1; }
    log "the build failed (see $WORK/build.log): using the dist/ that is there"
  fi
fi
# The generator and the floor run as plain JavaScript: no loader in the measured processes.
JS="$WORK/js"
mkdir -p "$JS"
"$ROOT/node_modules/.bin/tsc" --outDir "$JS" --rootDir "$ROOT/bench" --module nodenext --target es2022 --types node \
  --skipLibCheck --strict "$ROOT/bench/tls-load.ts" "$ROOT/bench/tls-floor.ts"
echo '{"type":"module"}' > "$JS/package.json"
GEN=(taskset -c "$GEN_CPU" node "$JS/tls-load.js")
PIN=(taskset -c "$SERVER_CPU")

CERT_DIR="$WORK/cert"
CERT="$CERT_DIR/$DOMAIN.crt"
KEY="$CERT_DIR/$DOMAIN.key"
if [ ! -f "$CERT" ] || [ ! -f "$KEY" ]; then
  mkdir -p "$CERT_DIR"
  # ECDSA P-256, what certbot issues by default; one certificate for every server.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN" -keyout "$KEY" -out "$CERT" 2>/dev/null
  cat "$CERT" "$KEY" > "$CERT_DIR/$DOMAIN.pem" # ejabberd takes certificate and key in one file
  chmod 600 "$KEY" "$CERT_DIR/$DOMAIN.pem"
fi

# ------------------------------------------------------------------ servers
SERVER_PID=0
CURRENT=""

wait_port() { # PORT SECONDS
  local i
  for (( i = 0; i < $2 * 10; i++ )); do
    if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

stop_server() { # TERM, up to 40 s, then KILL: only the pid this script started
  local i
  if [ "$SERVER_PID" != 0 ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for (( i = 0; i < 400; i++ )); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then log "$CURRENT (pid $SERVER_PID) did not stop in 40 s: KILL"; kill -KILL "$SERVER_PID" 2>/dev/null || true; sleep 0.5; fi
  fi
  SERVER_PID=0
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

write_prosody() {
  local d="$WORK/prosody"
  mkdir -p "$d/data"
  cat > "$d/prosody.cfg.lua" <<CFG
-- generated by scripts/bench-tls.sh: the plaintext bench settings, with STARTTLS required
run_as_root = true
daemonize = false
pidfile = "$d/prosody.pid"
data_path = "$d/data"
log = { warn = "$d/prosody.log" }
network_backend = "epoll"
network_settings = { tcp_backlog = 1024; nagle = false }
interfaces = { "$HOST" }
local_interfaces = { "$HOST" }
c2s_ports = { ${PORT[prosody]} }
c2s_interfaces = { "$HOST" }
s2s_ports = { }
s2s_interfaces = { }
http_ports = { }
https_ports = { }
c2s_direct_tls_ports = { }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
allow_registration = true
certificates = "$CERT_DIR"
ssl = { certificate = "$CERT"; key = "$KEY" }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "register", "posix" }
modules_disabled = { "s2s", "offline", "s2s_auth_certs" }
VirtualHost "$DOMAIN"
CFG
}

write_ejabberd() {
  local d="$WORK/ejabberd"
  mkdir -p "$d/db" "$d/log"
  cat > "$d/ejabberd.yml" <<CFG
# generated by scripts/bench-tls.sh: the plaintext bench settings, with STARTTLS required
hosts: ["$DOMAIN"]
loglevel: warning
log_rotate_count: 0
hide_sensitive_log_data: true
certfiles: ["$CERT_DIR/$DOMAIN.pem"]
listen:
  -
    port: ${PORT[ejabberd]}
    ip: "$HOST"
    module: ejabberd_c2s
    shaper: none
    max_stanza_size: 262144
    backlog: 1024
    starttls: true
    starttls_required: true
auth_method: internal
auth_password_format: plain
registration_timeout: infinity
shaper: {}
shaper_rules: {}
acl: {}
access_rules:
  register: {allow: all}
  c2s: {allow: all}
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_register:
    access: register
    ip_access: all
CFG
}

write_comity() {
  local d="$WORK/comity"
  mkdir -p "$d"
  cat > "$d/comity.yaml" <<YAML
# generated by scripts/bench-tls.sh (c2s.encryption is required by default)
hosts: [{domain: $DOMAIN}]
data_dir: $d/data
tls: {cert: $CERT, key: $KEY}
c2s: {listen: ["$HOST:${PORT[comity]}"], direct_tls: [], max_sessions_per_user: 10}
s2s: {listen: []}
auth: {password_storage: plain, failure_delay_ms: 0}
log: {level: warn}
mam: {enabled: false}   # nothing stored per message, as for Prosody and ejabberd here
YAML
}

start_server() { # NAME: a fresh process pinned to the server CPU; sets SERVER_PID
  stop_server
  CURRENT=$1
  case $1 in
    prosody)
      write_prosody
      # /usr/bin/prosody execs lua, taskset execs it: $! is the server process
      "${PIN[@]}" prosody --config "$WORK/prosody/prosody.cfg.lua" -F >>"$WORK/prosody/stdout.log" 2>&1 </dev/null &
      ;;
    ejabberd)
      write_ejabberd
      local d="$WORK/ejabberd"
      # erl, erlexec and beam.smp exec one another: $! is the beam.smp process. No distribution, no epmd.
      ( cd "$d"
        export ERL_LIBS=/usr/lib/x86_64-linux-gnu EJABBERD_CONFIG_PATH="$d/ejabberd.yml" EJABBERD_LOG_PATH="$d/log/ejabberd.log" \
          ERL_CRASH_DUMP="$d/log/erl_crash.dump" ERL_CRASH_DUMP_BYTES=0 ERL_MAX_PORTS=32000 HOME="$d"
        # shellcheck disable=SC2086
        exec "${PIN[@]}" erl +K true -P 250000 $EJABBERD_ERL_FLAGS -noshell -noinput \
          -kernel inet_default_listen_options "[{nodelay,true}]" -mnesia dir "\"$d/db\"" -ejabberd log_rotate_count 0 -s ejabberd \
          >>"$d/log/stdout.log" 2>&1 </dev/null ) &
      ;;
    comity)
      write_comity
      "${PIN[@]}" node "$ROOT/bin/comity.js" start --config "$WORK/comity/comity.yaml" >>"$WORK/comity/server.log" 2>&1 </dev/null &
      ;;
    floor)
      mkdir -p "$WORK/floor"
      "${PIN[@]}" node "$JS/tls-floor.js" --host "$HOST" --port "${PORT[floor]}" --domain "$DOMAIN" --cert "$CERT" --key "$KEY" \
        >>"$WORK/floor/server.log" 2>&1 </dev/null &
      ;;
  esac
  SERVER_PID=$!
  if ! wait_port "${PORT[$1]}" 60; then
    log "$1 did not start listening on ${PORT[$1]}; see $WORK/$1/"
    stop_server
    return 1
  fi
  sleep 2 # let it settle
}

ensure_users() { # NAME: accounts u1..uN with password p1..pN
  local n=$MAX_USERS marker="$WORK/$1/users"
  if [ -f "$marker" ] && (( $(cat "$marker") >= n )); then return 0; fi
  case $1 in
    prosody)
      write_prosody
      # internal_plain reads one Lua file per account: write them directly (10,000 in well under a second)
      node -e '
        const fs = require("fs"), [dir, n, up, pp] = process.argv.slice(1);
        fs.mkdirSync(dir, { recursive: true });
        for (let i = 1; i <= Number(n); i++) fs.writeFileSync(`${dir}/${up}${i}.dat`, `return {\n\t["password"] = "${pp}${i}";\n};\n`);
      ' "$WORK/prosody/data/$(echo "$DOMAIN" | sed 's/\./%2e/g')/accounts" "$n" "${BENCH_USER_PREFIX:-u}" "${BENCH_PASS_PREFIX:-p}"
      ;;
    ejabberd)
      start_server ejabberd || return 1
      log "ejabberd: registering $n accounts in-band over STARTTLS"
      if ! "${GEN[@]}" register --host "$HOST" --port "${PORT[ejabberd]}" --domain "$DOMAIN" --users "$n" --concurrency 100 --timeout 300 \
        --out "$WORK/ejabberd/register.json" >/dev/null 2>"$WORK/ejabberd/register.log"; then
        log "ejabberd: registration failed: $(tail -c 300 "$WORK/ejabberd/register.log")"
        stop_server
        return 1
      fi
      tail -1 "$WORK/ejabberd/register.log" >&2
      stop_server
      ;;
    comity)
      write_comity
      BENCH_DOMAIN=$DOMAIN node "$ROOT/scripts/bench-users.mjs" "$WORK/comity/comity.yaml" "$n" >&2
      ;;
    floor) ;; # accepts anyone
  esac
  echo "$n" > "$marker"
}

wait_quiet() { # other people's builds and tests share these two cores: start a scenario in a quiet moment
  local i p=0
  for (( i = 0; i < QUIET_WAIT; i++ )); do
    p=$(awk '/^some/ { sub("avg10=", "", $2); print int($2) }' /proc/pressure/cpu 2>/dev/null || echo 0)
    (( p < QUIET_PCT )) && return 0
    sleep 1
  done
  log "CPU pressure still at $p % after $QUIET_WAIT s: measuring anyway"
}

label() {
  case $1 in
    prosody) echo "Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null | cut -d- -f1)" ;;
    ejabberd) echo "ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null | cut -d- -f1)" ;;
    floor) echo "TLS floor (Node relay, no XML)" ;;
    comity) echo "Comity $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)" ;;
  esac
}

# ------------------------------------------------------------------ run
# System-wide CPU pressure: the share of the run during which some task waited for a CPU (this box is shared).
pressure_us() { awk '/^some/ { sub("total=", "", $5); print $5 }' /proc/pressure/cpu 2>/dev/null || echo 0; }
pressure0=$(pressure_us)
t_start=$(date +%s)
stamp=$(date +%Y%m%d-%H%M%S)
OUT="$WORK/results/$stamp"
mkdir -p "$OUT"
log "results in $OUT; servers: ${servers[*]}; scenarios: $SCENARIOS"
dirs=()
for s in "${servers[@]}"; do
  d="$OUT/$s"
  mkdir -p "$d" "$WORK/$s"
  lbl=$(label "$s")
  if ! ensure_users "$s"; then log "$s: could not create the accounts: skipped"; continue; fi
  first=1
  for sc in $SCENARIOS; do
    stop_server
    wait_quiet
    if ! start_server "$s"; then break; fi
    if (( first )); then
      first=0
      # One login that reports what TLS and SASL the server negotiated; a server that fails it is skipped.
      if ! "${GEN[@]}" probe --host "$HOST" --port "${PORT[$s]}" --domain "$DOMAIN" --label "$lbl" --timeout 30 --out "$d/probe.json" >/dev/null 2>"$d/probe.log"; then
        log "$s: TLS probe failed ($(tail -c 300 "$d/probe.log")): skipped"
        break
      fi
      log "$s: negotiated $(node -e 'const r=require(process.argv[1]);console.log(r.tls+"; SASL "+r.mechanisms.join(" "))' "$d/probe.json")"
    fi
    common=(--host "$HOST" --port "${PORT[$s]}" --domain "$DOMAIN" --pid "$SERVER_PID" --label "$lbl" --out "$d/$sc.json")
    log "$s: $sc"
    case $sc in
      login) "${GEN[@]}" login "${common[@]}" --users "$LOGIN_USERS" --concurrency "$LOGIN_CONCURRENCY" --timeout 170 ;;
      msg) "${GEN[@]}" msg "${common[@]}" --users "$MSG_USERS" --concurrency 100 --rates "$RATES" --step "$STEP_SECS" \
             --slo-p99 100 --drain 5 --timeout 200 ;;
      idle) "${GEN[@]}" idle "${common[@]}" --users "$IDLE_USERS" --concurrency "$IDLE_CONCURRENCY" --settle 5 --hold 10 --timeout 200 ;;
      *) log "unknown scenario $sc" ;;
    esac 2>&1 | grep --line-buffered -v '^RESULT ' >&2 || true
  done
  stop_server
  [ -f "$d/probe.json" ] && dirs+=("$d")
done

{
  echo "STARTTLS run $stamp on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), Node $(node --version), OpenSSL $(openssl version | cut -d' ' -f2)"
  secs=$(( $(date +%s) - t_start ))
  echo "took ${secs} s; CPU pressure (some task waiting for a CPU): $(( ( $(pressure_us) - pressure0 ) / 10000 / (secs > 0 ? secs : 1) )) % of the run"
  echo "server on CPU $SERVER_CPU, generator on CPU $GEN_CPU; login $LOGIN_USERS users ($LOGIN_CONCURRENCY in flight), msg $MSG_USERS users at $RATES msg/s ($STEP_SECS s steps), idle $IDLE_USERS sessions"
  echo
  node "$JS/tls-load.js" report "${dirs[@]}"
} | tee "$OUT/summary.md"
echo "$OUT"
