#!/usr/bin/env bash
# HTTP benchmark of `flags serve` on loopback (results: docs/benchmarks.md,
# "## HTTP server").
#
# Measures, with wrk at 64 connections and a fresh targetingKey on every
# request (Lua scripts below): GET /healthz, OFREP single-flag evaluation,
# and OFREP bulk evaluation of a generated 100-flag config. Each round runs
# them back to back, /healthz first, and reports the single/healthz ratio of
# that round, because these machines are shared and absolute numbers drift;
# the summary is the median over rounds. Also reports the server's peak RSS
# under load and its idle RSS with a generated 1 000-flag config.
#
# Needs wrk (Debian: apt-get install -y wrk). Usage:
#   benches/http.sh                  # 10 rounds of 3 s per run (about 2.5 minutes)
#   ROUNDS=5 DURATION=10s benches/http.sh
# Environment: ROUNDS, DURATION, CONNECTIONS (64), THREADS (2), PORT (18080),
# FLAGS_BIN (default: target/release/flags, built if missing).
set -euo pipefail

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3s}
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

# wrk scripts POSTing a context with a new targetingKey on every request.
# The main one builds 10 000 requests per thread in init() and cycles
# through them, so the load generator, which shares the two cores with the
# server, spends little per request (wrk's own advice for throughput runs);
# the server keeps no per-context state, so a key seen again 10 000 requests
# later is as fresh as a new one. The "live" one builds each request in Lua
# as it is sent: reported beside it, to show what the client's cost does to
# the figures.
cat > "$WORK/eval.lua" <<'LUA'
local requests = {}
local sent = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end
function init(args)
  for k = 1, 10000 do
    local body = string.format(
      '{"context":{"targetingKey":"user-%d-%d","country":"US","plan":"pro"}}', id, k)
    requests[k] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
  end
end
function request()
  sent = sent % #requests + 1
  return requests[sent]
end
LUA
cat > "$WORK/eval-live.lua" <<'LUA'
local counter = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"context":{"targetingKey":"user-%d-%d","country":"US","plan":"pro"}}', id, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
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
printf '%-6s %-26s %-26s %-26s %-9s %s\n' round "healthz rps/p50/p99" "single rps/p50/p99" "bulk-100 rps/p50/p99" "single/hz" "live single (ratio)"
for round in $(seq "$ROUNDS"); do
  # Single right after /healthz: the ratio compares two runs seconds apart.
  read -r h_rps h_p50 h_p99 < <(measure /healthz)
  read -r s_rps s_p50 s_p99 < <(measure /ofrep/v1/evaluate/flags/flag-0042 "$WORK/eval.lua")
  read -r l_rps _ _ < <(measure /ofrep/v1/evaluate/flags/flag-0042 "$WORK/eval-live.lua")
  read -r b_rps b_p50 b_p99 < <(measure /ofrep/v1/evaluate/flags "$WORK/eval.lua")
  ratio=$(awk -v s="$s_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", s / h }')
  live_ratio=$(awk -v s="$l_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", s / h }')
  printf '%-6s %-26s %-26s %-26s %-9s %s\n' "$round" "$h_rps/${h_p50}ms/${h_p99}ms" \
    "$s_rps/${s_p50}ms/${s_p99}ms" "$b_rps/${b_p50}ms/${b_p99}ms" "$ratio" "$l_rps ($live_ratio)"
  echo "$h_rps $h_p50 $h_p99 $s_rps $s_p50 $s_p99 $b_rps $b_p50 $b_p99 $ratio $live_ratio $l_rps" >> "$WORK/rounds"
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
echo "single/healthz with each request built in Lua as it is sent: $(col 11) (live single median $(col 12) req/s)"
echo "peak RSS under load (100 flags): $((peak / 1024)) MiB ($peak KiB)"
echo "idle RSS with 1000 flags: $((idle / 1024)) MiB ($idle KiB)"
