#!/usr/bin/env bash
# HTTP benchmark of `flags serve` on loopback (results: docs/benchmarks.md,
# "## HTTP server").
#
# Measures, with wrk at 64 connections and a fresh targetingKey on every
# request (Lua script): GET /healthz, OFREP single-flag evaluation, and OFREP
# bulk evaluation of a generated 100-flag config. Each round runs the three
# back to back (plus /healthz driven by a Lua script of the same cost, as a
# control) and reports the single/healthz ratio of that round, because
# these machines are shared and absolute numbers drift; the summary is the
# median over rounds. Also reports the server's peak RSS under load and its
# idle RSS with a generated 1 000-flag config.
#
# Needs wrk (Debian: apt-get install -y wrk). Usage:
#   benches/http.sh                  # 5 rounds of 10 s per endpoint
#   ROUNDS=3 DURATION=5s benches/http.sh
# Environment: ROUNDS, DURATION, CONNECTIONS (64), THREADS (2), PORT (18080),
# FLAGS_BIN (default: target/release/flags, built if missing).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FLAGS_BIN:-$ROOT/target/release/flags}
WORK=$(mktemp -d)
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p flags-server)

# A config of $1 flags: boolean flags with a segment rule and a country
# rollout, and every fifth one a three-arm string split.
generate() {
  awk -v n="$1" 'BEGIN {
    print "version = 1\n[segments.beta]\nkeys = [\"user-1\", \"user-2\"]\n"
    for (i = 0; i < n; i++) {
      k = sprintf("flag-%04d", i)
      if (i % 5 == 4) {
        printf "[flags.%s]\nvariants = { a = \"A\", b = \"B\", c = \"C\" }\ndefault = \"a\"\n", k
        printf "[[flags.%s.rules]]\nsplit = { a = 34, b = 33, c = 33 }\n\n", k
      } else {
        printf "[flags.%s]\ndescription = \"generated\"\n", k
        printf "[[flags.%s.rules]]\nname = \"beta\"\nsegments = [\"beta\"]\nserve = \"on\"\n", k
        printf "[[flags.%s.rules]]\nname = \"rollout\"\nwhen = [{ attr = \"country\", op = \"in\", values = [\"US\", \"CA\", \"GB\"] }]\nserve = \"on\"\nrollout = 50\n\n", k
      }
    }
  }'
}

# A wrk script POSTing a context with a new targetingKey each request.
cat > "$WORK/eval.lua" <<'LUA'
local counter = 0
local thread_id = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end
function init(args)
  thread_id = id
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"context":{"targetingKey":"user-%d-%d","country":"US","plan":"pro"}}', thread_id, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
LUA

# The same Lua cost on the client for /healthz: a control that shows how much
# of the single/healthz gap is the load generator's own work (wrk shares the
# two cores with the server).
cat > "$WORK/healthz.lua" <<'LUA'
local counter = 0
function request()
  counter = counter + 1
  return wrk.format("GET", nil, { ["X-Request-Id"] = string.format("user-%d", counter) })
end
LUA

start_server() { # config file
  "$BIN" serve --config "$1" --addr "127.0.0.1:$PORT" > "$WORK/stdout" 2> "$WORK/stderr" &
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q listening "$WORK/stdout" 2>/dev/null && return; sleep 0.05; done
  echo "server did not start:" >&2; cat "$WORK/stderr" >&2; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
rss_kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }

# wrk's summary as "rps p50_ms p99_ms".
measure() { # path [lua]
  local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
  [ $# -gt 1 ] && args+=(-s "$2")
  wrk "${args[@]}" "http://127.0.0.1:$PORT$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { if (bad) print "warning: " bad " non-2xx answers" > "/dev/stderr"; printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

generate 100 > "$WORK/flags-100.toml"
generate 1000 > "$WORK/flags-1000.toml"

echo "# flags HTTP benchmark: $(date -u +%FT%TZ), $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds"
start_server "$WORK/flags-100.toml"
measure /healthz > /dev/null # warm-up
printf '%-6s %-26s %-26s %-26s %-9s %s\n' round "healthz rps/p50/p99" "single rps/p50/p99" "bulk-100 rps/p50/p99" "single/hz" "single/hz(lua)"
for round in $(seq "$ROUNDS"); do
  read -r h_rps h_p50 h_p99 < <(measure /healthz)
  read -r l_rps _ _ < <(measure /healthz "$WORK/healthz.lua")
  read -r s_rps s_p50 s_p99 < <(measure /ofrep/v1/evaluate/flags/flag-0042 "$WORK/eval.lua")
  read -r b_rps b_p50 b_p99 < <(measure /ofrep/v1/evaluate/flags "$WORK/eval.lua")
  ratio=$(awk -v s="$s_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", s / h }')
  lua_ratio=$(awk -v s="$s_rps" -v h="$l_rps" 'BEGIN { printf "%.2f", s / h }')
  printf '%-6s %-26s %-26s %-26s %-9s %s\n' "$round" "$h_rps/${h_p50}ms/${h_p99}ms" \
    "$s_rps/${s_p50}ms/${s_p99}ms" "$b_rps/${b_p50}ms/${b_p99}ms" "$ratio" "$lua_ratio ($l_rps)"
  echo "$h_rps $h_p50 $h_p99 $s_rps $s_p50 $s_p99 $b_rps $b_p50 $b_p99 $ratio $lua_ratio $l_rps" >> "$WORK/rounds"
done
peak=$(rss_kib "$SERVER_PID" VmHWM)
stop_server

start_server "$WORK/flags-1000.toml"
sleep 1
idle=$(rss_kib "$SERVER_PID" VmRSS)
stop_server

col() { awk -v c="$1" '{ print $c }' "$WORK/rounds" | median; }
echo
echo "| endpoint (median of $ROUNDS rounds) | req/s | p50 ms | p99 ms |"
echo "| --- | ---: | ---: | ---: |"
echo "| GET /healthz | $(col 1) | $(col 2) | $(col 3) |"
echo "| OFREP single flag | $(col 4) | $(col 5) | $(col 6) |"
echo "| OFREP bulk, 100 flags | $(col 7) | $(col 8) | $(col 9) |"
echo
echo "single/healthz throughput ratio (median of per-round ratios): $(col 10)"
echo "single/healthz ratio with the same Lua request() cost on /healthz: $(col 11) (healthz-lua median $(col 12) req/s)"
echo "peak RSS under load (100 flags): $((peak / 1024)) MiB ($peak KiB)"
echo "idle RSS with 1000 flags: $((idle / 1024)) MiB ($idle KiB)"
