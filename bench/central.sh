#!/usr/bin/env bash
# Login throughput and CPU per login of the central server alone, against a local fast fake
# provider (bench/login_bench.rs, which see for what one login is).
#
#   bench/central.sh                                   # ROUNDS=5 DURATION=10 CONCURRENCY=16
#   ROUNDS=3 DURATION=5 CONCURRENCY=32 bench/central.sh
#
# Builds the release binary and the example, runs the example ROUNDS times (each round starts
# a fresh oauthgate with a fresh data dir on a port picked at runtime, 127.0.0.1 only), and
# prints every round's result line and the median (min..max) of each metric. Raw outputs go to
# bench/out/central-<timestamp>/ (git-ignored).
#
# The load generator and the fake provider run on the same machine as oauthgate and compete
# with it for CPU: on a small machine logins/s is a property of the whole machine, while
# cpu_ms_per_login (oauthgate's own utime+stime per login) is the number that carries over.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}   # measured seconds per round
WARMUP=${WARMUP:-2}        # seconds per round before measuring
CONCURRENCY=${CONCURRENCY:-16}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
OUT="$HERE/out/central-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
cd "$REPO"

log() { printf '[central] %s\n' "$*"; }
# Prints a command exactly as run, then runs it.
run() {
    printf '+ %s\n' "$*"
    "$@"
}

# --- machine ---------------------------------------------------------------------------------
log "nproc:     $(nproc)"
log "cpu:       $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
log "kernel:    $(uname -srm)"
log "rustc:     $(rustc --version)"
log "commit:    $(git describe --always --dirty 2>/dev/null || echo unknown)"
log "loadavg:   $(cat /proc/loadavg) (before)"

# --- build -----------------------------------------------------------------------------------
run cargo build --release --locked --bin oauthgate --example login_bench

# --- rounds ----------------------------------------------------------------------------------
RESULTS="$OUT/results.txt"
: >"$RESULTS"
failed=0
for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS"
    cmd=("$TARGET/release/examples/login_bench" --binary "$TARGET/release/oauthgate"
        --concurrency "$CONCURRENCY" --seconds "$DURATION" --warmup "$WARMUP")
    # stdout is the result line; stderr (diagnostics, oauthgate's own stderr) is kept and shown.
    printf '+ %s\n' "${cmd[*]}"
    if result=$("${cmd[@]}" 2>"$OUT/round-$round.err"); then
        :
    else
        log "round $round failed (exit $?)"
        failed=$((failed + 1))
    fi
    cat "$OUT/round-$round.err"
    result=$(printf '%s\n' "$result" | grep '^logins/s=' || true)
    [ -n "$result" ] || continue
    printf 'round %s: %s\n' "$round" "$result"
    printf '%s\n' "$result" >>"$RESULTS"
done

# --- medians ---------------------------------------------------------------------------------
n=$(wc -l <"$RESULTS")
[ "$n" -gt 0 ] || { log "no round produced a result"; exit 1; }
log "medians over $n round(s) (min..max):"
# One value per round for KEY, from the key=value result lines.
values() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$RESULTS"; }
for key in $(head -n1 "$RESULTS" | tr ' ' '\n' | cut -d= -f1); do
    values "$key" | sort -g | awk -v k="$key" '
        { v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "  %-24s %-10s (%s..%s)\n", k, med, v[1], v[NR]
        }'
done
log "loadavg:   $(cat /proc/loadavg) (after)"
log "raw output: $OUT"
[ "$failed" -eq 0 ] || { log "$failed round(s) failed"; exit 1; }
