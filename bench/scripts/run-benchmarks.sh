#!/usr/bin/env bash
# Reproduces the figures in docs/BENCHMARKS.md: builds in release, then for each scenario starts a
# fresh relay on 127.0.0.1 with the benchmark flags, runs stelgano-bench against it, and stops it.
#
#   bench/scripts/run-benchmarks.sh [OUT_DIR]        (default: bench-results/)
#
# Every run is bounded (rooms, seconds) and loopback-only. Results: OUT_DIR/results.jsonl (one JSON
# line per invocation), OUT_DIR/*.txt (the tables), OUT_DIR/plots/*.svg|png.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=${1:-bench-results}
mkdir -p "$OUT/plots"
OUT=$(cd "$OUT" && pwd)

cargo build --release -p stelgano-bench -p stelgano-relay
BIN=$(pwd)/target/release
DATA=$(mktemp -d)
PORT=${PORT:-18080}
URL=ws://127.0.0.1:$PORT
RELAY_PID=

# Room creation and upgrades are rate-limited, and open sockets capped, per IP by default (10 and
# 30 per minute, 64 sockets): all bench sockets come from 127.0.0.x, so the limits are lifted. The
# join floor is off for set-up speed except in the joins scenario, which measures it.
RELAY_FLAGS=(--listen 127.0.0.1:$PORT --upgrades-per-min 0 --room-create-per-min 0
             --max-sockets-per-ip 0 --max-connections 19500 --log warn)

start_relay() {
    rm -rf "$DATA/store"
    "$BIN/stelgano-relay" "${RELAY_FLAGS[@]}" --data-dir "$DATA/store" "$@" >"$OUT/relay.log" 2>&1 &
    RELAY_PID=$!
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "relay did not come up" >&2
    return 1
}

stop_relay() {
    if [ -n "$RELAY_PID" ]; then
        kill "$RELAY_PID" 2>/dev/null || true
        # Graceful shutdown flushes the store; give it a moment, then insist.
        for _ in $(seq 50); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" 2>/dev/null || true
        RELAY_PID=
    fi
}
trap 'stop_relay; rm -rf "$DATA"' EXIT

bench() { # NAME ARGS...
    local name=$1; shift
    timeout 900 "$BIN/stelgano-bench" "$@" --url "$URL" --server-pid "$RELAY_PID" \
        --json "$OUT/results.jsonl" --plot "$OUT/plots" --quiet | tee "$OUT/$name.txt"
}

git rev-parse HEAD >"$OUT/commit.txt"
git status --short -- relay store proto >>"$OUT/commit.txt"

start_relay --join-floor-ms 0 --join-jitter-ms 0
bench pingpong pingpong --rooms 10,100,1000,5000 --runs 3 --payload 200 --duration 10 --warmup 2 \
    --spawn-echo
stop_relay

start_relay --join-floor-ms 0 --join-jitter-ms 0
bench idle idle --rooms 1000,9000 --settle 3 --hold 5
stop_relay

start_relay --join-floor-ms 0 --join-jitter-ms 0
bench deaddrop deaddrop --rooms 100000 --payload 200 --settle 5 --verify 20
stop_relay

# The joins scenario keeps the relay's default time floor (500 ms + up to 125 ms).
start_relay
# 2,048 rooms in flight = 4,096 sockets; throughput is bounded by concurrency / floor.
bench joins joins --rooms 10000 --concurrency 2048
stop_relay
