#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time and prints what each did.
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 60)
# Needs the nightly toolchain and cargo-fuzz (see docs/FUZZING.md). Targets run one after the
# other on one core each. Exits 1 if any target crashed (the input is under
# fuzz/artifacts/<target>/), 2 if a target could not be built or run.
set -euo pipefail

secs="${1:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo +nightly install cargo-fuzz --locked" >&2
  exit 2
fi

# Every [[bin]] in fuzz/Cargo.toml is a target; a new file there is picked up with no change here.
mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build || exit 2

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
crashed=0
summary=()
for t in "${targets[@]}"; do
  corpus="$fuzz_dir/corpus/$t"
  mkdir -p "$corpus"
  args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10)
  if [ -f "$fuzz_dir/dict/$t.dict" ]; then
    args+=(-dict="$fuzz_dir/dict/$t.dict")
  fi
  echo "== $t: ${secs}s"
  status=0
  cargo +nightly fuzz run "$t" "$corpus" -- "${args[@]}" >"$logs/$t" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$logs/$t" | tail -1 || true)"
  if [ "$status" -eq 0 ]; then
    found="none"
  else
    crashed=1
    artifact="$(grep -o 'Test unit written to [^ ]*' "$logs/$t" | tail -1 | sed 's/Test unit written to //' || true)"
    found="CRASH (exit $status) ${artifact:-see log below}"
    tail -n 40 "$logs/$t"
  fi
  summary+=("$(printf '%-14s %12s execs %8s exec/s  %-9s %s' "$t" "${runs:-?}" "${rate:-?}" "${cov:-}" "$found")")
done

echo
echo "== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
