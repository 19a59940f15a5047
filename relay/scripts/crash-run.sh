#!/usr/bin/env bash
# Crash-cycle run: the relay killed with SIGKILL under mixed load, CYCLES times (default 1000),
# in release mode; the output goes to a log and the totals are printed at the end.
#
#   relay/scripts/crash-run.sh [CYCLES]
#
# The log is written to $STELGANO_CRASH_LOG, or else crash-run-<UTC time>.log in the target dir.
set -euo pipefail

cycles="${1:-1000}"
case "$cycles" in
    '' | *[!0-9]*) echo "usage: $0 [CYCLES]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
log="${STELGANO_CRASH_LOG:-$target/crash-run-$(date -u +%Y%m%dT%H%M%SZ).log}"

echo "crash-run: $cycles cycles, log $log"
set +e
STELGANO_CRASH_CYCLES="$cycles" cargo test --release -p stelgano-relay --test crash_cycles \
    -- --nocapture 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e

echo
echo "crash-run: totals ($cycles cycles, exit status $status)"
grep '^crash cycles:' "$log" || echo "crash-run: no totals in the log (the test failed before the end)"
exit "$status"
