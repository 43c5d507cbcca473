#!/usr/bin/env bash
# The issue 17 campaign: every target until 10^7 executions or its share of the time, two
# targets at a time. Each worker splits what is left of BUDGET seconds evenly over the targets
# it has left, so time a fast target does not need goes to the slower ones after it.
# Logs and corpora go to OUT (default /tmp/oauthgate-campaign); fuzz/CAMPAIGN.md has the results.
#
#   fuzz/campaign.sh BUDGET_SECONDS [OUT]
set -uo pipefail
budget="${1:?usage: fuzz/campaign.sh BUDGET_SECONDS [OUT]}"
out="${2:-/tmp/oauthgate-campaign}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
cargo +nightly fuzz build || exit 1
bin="$here/target/x86_64-unknown-linux-gnu/release"
end=$(( $(date +%s) + budget ))

worker() {
  local left=$#
  for t in "$@"; do
    local now share
    now=$(date +%s)
    share=$(( (end - now) / left ))
    left=$(( left - 1 ))
    [ "$share" -lt 10 ] && share=10
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    cp -R "corpus/$t/." "$out/corpus/$t/"
    local flags=(-runs=10000000 -max_total_time="$share" -print_final_stats=1
      -artifact_prefix="$out/artifacts/$t/")
    echo "cargo +nightly fuzz run $t $out/corpus/$t -- ${flags[*]}" >"$out/$t.cmd"
    # The binary `cargo fuzz run` would start, started directly: editing the sources while the
    # campaign runs must not rebuild it half-way.
    ASAN_OPTIONS=detect_odr_violation=0 "$bin/$t" "${flags[@]}" "$out/corpus/$t" >"$out/$t.log" 2>&1
    echo "$?" >"$out/$t.rc"
  done
}

mkdir -p "$out"
# Slow targets last in each list: they inherit the time the fast ones leave.
worker path headers query host next assertion &
worker check_uri websocket cookie config &
wait
for t in $(cargo +nightly fuzz list); do
  printf '%-10s rc=%s %s\n' "$t" "$(cat "$out/$t.rc" 2>/dev/null)" \
    "$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out/$t.log" | tail -n 1)"
done
