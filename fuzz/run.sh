#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) on a copy of its checked-in seeds, so
# that nothing is written into the repository; fails on the first crash or broken invariant.
# Without the nightly toolchain or cargo-fuzz it says so and exits 0 (CI machines without them
# still run the property tests in `cargo test`).
#
#   fuzz/run.sh [SECONDS]        e.g. fuzz/run.sh 20
set -euo pipefail

seconds="${1:-20}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 64 ;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: no nightly toolchain (rustup toolchain install nightly); fuzzing skipped"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked); fuzzing skipped"
  exit 0
fi

cd "$here"
targets=$(cargo +nightly fuzz list)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo +nightly fuzz build

failed=()
for t in $targets; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  if [ -d "corpus/$t" ]; then
    cp -R "corpus/$t/." "$work/corpus/$t/"
  fi
  echo "== $t: ${seconds}s"
  if ! cargo +nightly fuzz run "$t" "$work/corpus/$t" -- \
      -max_total_time="$seconds" -artifact_prefix="$work/artifacts/$t/" \
      -print_final_stats=1 >"$work/$t.log" 2>&1; then
    tail -n 40 "$work/$t.log"
    for a in "$work/artifacts/$t"/*; do
      [ -e "$a" ] || continue
      echo "  input: $a (reproduce: cd fuzz && cargo +nightly fuzz run $t $a)"
      echo "  bytes (base64): $(base64 -w0 "$a")"
    done
    failed+=("$t")
  else
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|Done [0-9]+ runs)' "$work/$t.log" | tail -n 2 || true
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  trap - EXIT
  echo "fuzz/run.sh: logs and inputs kept in $work" >&2
  echo "fuzz/run.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz/run.sh: every target ran ${seconds}s without a finding"
