#!/usr/bin/env bash
# Throughput/latency/memory benchmark: backend direct vs nginx TLS proxy vs oauthgate.
#
#   bench/proxy.sh                      # ROUNDS=5 DURATION=10s, builds the working tree
#   ROUNDS=3 DURATION=5s bench/proxy.sh
#   OAUTHGATE_REF=<commit> bench/proxy.sh   # build a clean snapshot of a commit instead
#   OAUTHGATE_BIN=/path/oauthgate bench/proxy.sh   # no build
#   LOGS=both bench/proxy.sh              # "both log": nginx access_log on, oauthgate's default
#                                         # logging (RUST_LOG=info), each to a file
#
# Environment: LOGS (off | both), QUIET_MAX (120: seconds to wait for a quiet machine),
# ROUNDS (5), DURATION (10s), CONNS (64), MEM_CONNS (1000), WARMUP (3s),
# OTHER_MAX (0.05: a run in which other processes used more than this fraction of all cores
# is repeated), RETRIES (3), BUILD_DIR (/tmp/oauthgate-bench-build, for OAUTHGATE_REF).
# The report is rendered by bench/report.py (rerunnable on a saved bench/out/<run>/).
#
# Everything runs on 127.0.0.1 on ports picked at runtime, from a temp dir that is removed
# on exit. Raw wrk outputs go to bench/out/<timestamp>/ (git-ignored).
#
# Targets (wrk -t1 -cCONNS, HTTP/1.1 keep-alive; wrk sends no ALPN so both TLS proxies speak
# HTTP/1.1 to it):
#   A backend    nginx, plain http, `return 200 "hello\n"`, worker_processes 1
#   B nginx      nginx TLS termination + proxy_pass to A (upstream keepalive 64)
#   C oauthgate  target/release/oauthgate, route / -> A, RUST_LOG=warn
# With LOGS=both, B writes nginx's default access log (combined format, one write(2) per
# request) to a file and C runs with RUST_LOG=info (its default: an access line per request,
# stderr to a file); A never logs.
# Then: one oauthgate run with the default RUST_LOG=info (access log line per request, to a
# file); memory of a fresh oauthgate (and of nginx) holding MEM_CONNS quiet keep-alive
# connections (bench/hold.py: one request each, then silence); and peak RSS of a fresh
# oauthgate (and of nginx) at MEM_CONNS busy keep-alive connections (wrk -cMEM_CONNS).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
MEM_CONNS=${MEM_CONNS:-1000}
WARMUP=${WARMUP:-3s}
LOGS=${LOGS:-off}
case "$LOGS" in
    off) PROXY_ACCESS_LOG=off; GATE_LOG=warn ;;
    both) PROXY_ACCESS_LOG=; GATE_LOG=info ;;
    *) echo "LOGS must be off or both" >&2; exit 64 ;;
esac
export LOGS

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$HERE/out/$STAMP"
mkdir -p "$OUT"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- tools ----------------------------------------------------------------------------------
missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" >&2
fi
for t in openssl curl python3 cargo; do command -v "$t" >/dev/null || die "$t not found"; done
NGINX=/usr/sbin/nginx

# --- file descriptors -----------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
need=$((MEM_CONNS * 2 + 512))
[ "$NOFILE" = unlimited ] || [ "$NOFILE" -ge "$need" ] ||
    die "ulimit -n is $NOFILE, need >= $need for $MEM_CONNS connections"
log "ulimit -n = $NOFILE"

# --- temp dir and cleanup -------------------------------------------------------------------
TMP=$(mktemp -d /tmp/oauthgate-bench.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # keep the stderr of the servers for inspection
    for f in "$TMP"/oauthgate-*.err "$TMP"/*/error.log; do
        [ -f "$f" ] || continue
        name=$(echo "${f#"$TMP"/}" | tr / _)
        if [ "$(stat -c %s "$f")" -gt 1000000 ]; then
            { head -n 20 "$f"; echo "... ($(wc -l <"$f") lines total, truncated) ..."; tail -n 20 "$f"; } >"$OUT/$name"
        else
            cp "$f" "$OUT/$name"
        fi
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# wait_ready NAME PID URL [curl args...]: poll URL until HTTP 200, at most ~15 s.
wait_ready() {
    local name=$1 pid=$2 url=$3
    shift 3
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited during startup"
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)" = 200 ]; then
            log "$name ready at $url (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    die "$name not ready at $url after 15 s"
}

# --- certificate (ECDSA P-256, shared by nginx and oauthgate) -------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

BACKEND_PORT=$(free_port)
NGINX_PORT=$(free_port)
GATE_PORT=$(free_port)

# --- A: backend nginx -----------------------------------------------------------------------
nginx_common() { # $1 = prefix dir
    cat <<CONF
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $NOFILE;
CONF
}
nginx_http_common() { # $1 = prefix dir, $2 = access_log setting (off, or empty: a file)
    cat <<CONF
    access_log ${2:-$1/access.log};
    client_body_temp_path $1/client_body;
    proxy_temp_path       $1/proxy;
    fastcgi_temp_path     $1/fastcgi;
    uwsgi_temp_path       $1/uwsgi;
    scgi_temp_path        $1/scgi;
    # oauthgate has no per-connection request limit; nginx's default (1000) would add a
    # reconnect (and, on the TLS side, a handshake) every 1000 requests.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
CONF
}

B_DIR="$TMP/backend"; mkdir -p "$B_DIR"
{
    nginx_common "$B_DIR"
    cat <<CONF
worker_processes 1;
events { worker_connections 4096; }
http {
$(nginx_http_common "$B_DIR" off)
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / {
            default_type text/plain;
            return 200 "hello\n";
        }
    }
}
CONF
} >"$B_DIR/nginx.conf"
"$NGINX" -t -q -p "$B_DIR" -e "$B_DIR/error.log" -c "$B_DIR/nginx.conf"
"$NGINX" -p "$B_DIR" -e "$B_DIR/error.log" -c "$B_DIR/nginx.conf" &
BACKEND_PID=$!; PIDS+=("$BACKEND_PID")
wait_ready backend "$BACKEND_PID" "http://127.0.0.1:$BACKEND_PORT/"

# --- B: nginx TLS proxy ---------------------------------------------------------------------
N_DIR="$TMP/nginx"; mkdir -p "$N_DIR"
{
    nginx_common "$N_DIR"
    cat <<CONF
worker_processes auto;
events { worker_connections 8192; }
http {
$(nginx_http_common "$N_DIR" "$PROXY_ACCESS_LOG")
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
    }
    server {
        # nginx 1.22: http2 is a listen parameter (the \`http2 on;\` directive is 1.25.1+)
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        server_name localhost;
        ssl_certificate     $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
CONF
} >"$N_DIR/nginx.conf"
"$NGINX" -t -q -p "$N_DIR" -e "$N_DIR/error.log" -c "$N_DIR/nginx.conf"
"$NGINX" -p "$N_DIR" -e "$N_DIR/error.log" -c "$N_DIR/nginx.conf" &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
wait_ready nginx "$NGINX_PID" "https://127.0.0.1:$NGINX_PORT/" -k

# --- C: oauthgate ---------------------------------------------------------------------------
# Which oauthgate: OAUTHGATE_BIN=/path/to/binary (no build), or OAUTHGATE_REF=<git ref> (a clean
# `git archive` snapshot of that commit, built in $BUILD_DIR with its own target dir, so an
# in-progress working tree neither breaks nor leaks into the measurement), or by default the
# working tree of this repo with `cargo build --release`.
if [ -n "${OAUTHGATE_BIN:-}" ]; then
    GATE_BIN=$(realpath "$OAUTHGATE_BIN")
    GATE_SRC="binary $GATE_BIN"
elif [ -n "${OAUTHGATE_REF:-}" ]; then
    BUILD_DIR=${BUILD_DIR:-/tmp/oauthgate-bench-build}
    commit=$(git -C "$REPO" rev-parse --verify "$OAUTHGATE_REF^{commit}")
    rm -rf "$BUILD_DIR/src"; mkdir -p "$BUILD_DIR/src"
    git -C "$REPO" archive "$commit" | tar -x -C "$BUILD_DIR/src"
    log "building oauthgate $commit in $BUILD_DIR (cargo build --release --locked)"
    (cd "$BUILD_DIR/src" && CARGO_TARGET_DIR="$BUILD_DIR/target" cargo build --release --locked >&2)
    GATE_BIN="$BUILD_DIR/target/release/oauthgate"
    GATE_SRC="commit $commit (clean snapshot)"
else
    log "building oauthgate (cargo build --release in $REPO)"
    (cd "$REPO" && cargo build --release >&2)
    GATE_BIN="$REPO/target/release/oauthgate"
    GATE_SRC="working tree of $REPO at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
fi
cat >"$TMP/oauthgate.yaml" <<CONF
listen: 127.0.0.1:$GATE_PORT
public_url: https://localhost:$GATE_PORT
data_dir: $TMP/data
tls:
  cert: $TMP/cert.pem
  key: $TMP/key.pem
gateway:
  routes:
    - prefix: /
      upstream: http://127.0.0.1:$BACKEND_PORT
CONF
GATE_PID=
start_gate() { # $1 = RUST_LOG value, $2 = stderr file tag
    RUST_LOG=$1 "$GATE_BIN" --config "$TMP/oauthgate.yaml" 2>"$TMP/oauthgate-$2.err" &
    GATE_PID=$!; PIDS+=("$GATE_PID")
    wait_ready "oauthgate(RUST_LOG=$1)" "$GATE_PID" "https://127.0.0.1:$GATE_PORT/_auth/health" -k
}
stop_gate() {
    kill -TERM "$GATE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$GATE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$GATE_PID" 2>/dev/null || true
    wait "$GATE_PID" 2>/dev/null || true
}
start_gate "$GATE_LOG" "$GATE_LOG"

# sanity: every target answers hello
for u in "http://127.0.0.1:$BACKEND_PORT/" "https://127.0.0.1:$NGINX_PORT/" "https://127.0.0.1:$GATE_PORT/"; do
    body=$(curl -sk --max-time 2 -H "Host: localhost" "$u")
    [ "$body" = hello ] || die "$u answered '$body', expected 'hello'"
done

declare -A SERVER_PID
SERVER_PID=([backend]=$BACKEND_PID [nginx]=$NGINX_PID [oauthgate]=$GATE_PID)
declare -A URL=(
    [backend]="http://127.0.0.1:$BACKEND_PORT/"
    [nginx]="https://127.0.0.1:$NGINX_PORT/"
    [oauthgate]="https://127.0.0.1:$GATE_PORT/"
)

# CPU time (utime+stime, clock ticks) of a process plus its direct children (nginx workers)
cpu_ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# busy clock ticks of the whole machine (user nice system irq softirq steal) from /proc/stat
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# The machine is shared (2 cores): before each measured run wait, at most 120 s, until the
# machine is quiet (< 10% of one core busy over 1 s), so that another build or test run does
# not land in the middle of a run. Any CPU used by others during a run is still measured and
# reported per run ("other_cpu_seconds").
QUIET_MAX=${QUIET_MAX:-120}
wait_quiet() {
    local a b
    for i in $(seq "$QUIET_MAX"); do
        a=$(machine_ticks); sleep 1; b=$(machine_ticks)
        if [ $((b - a)) -le $((CLK_TCK / 10)) ]; then
            [ "$i" -eq 1 ] || log "machine quiet again after ${i} s"
            return 0
        fi
        [ "$i" -ne 1 ] || log "machine busy ($((b - a)) ticks/s outside the benchmark?), waiting up to 120 s"
    done
    log "machine still busy after $QUIET_MAX s; running anyway (see other_cpu_seconds)"
}

# run_wrk FILE CONNS DURATION URL [SERVER_PID [BACKEND_PID]]: raw wrk output to FILE. With
# SERVER_PID, also appends the CPU seconds used during the run by the server
# ("server_cpu_seconds"), by wrk ("client_cpu_seconds") and by everything else on the machine
# ("other_cpu_seconds" = machine busy - server - backend - wrk).
run_wrk() {
    local file=$1 conns=$2 dur=$3 url=$4 pid=${5:-} bpid=${6:-}
    # Host: public_url's host, which oauthgate requires of requests to upstreams (421 else);
    # nginx and the backend ignore it.
    local cmd=(wrk -t1 "-c$conns" "-d$dur" --latency -H "Host: localhost" "$url")
    echo "\$ ${cmd[*]}" >"$file"
    if [ -z "$pid" ]; then
        "${cmd[@]}" >>"$file" 2>&1 || log "wrk exited non-zero for $url (see $file)"
        return 0
    fi
    [ "$bpid" != "$pid" ] || bpid=
    local s0 b0 m0 s1 b1 m1
    s0=$(cpu_ticks "$pid"); b0=0; [ -z "$bpid" ] || b0=$(cpu_ticks "$bpid"); m0=$(machine_ticks)
    python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("client_cpu_seconds: %.2f" % (r.ru_utime + r.ru_stime), flush=True)
sys.exit(rc)' "${cmd[@]}" >>"$file" 2>&1 || log "wrk exited non-zero for $url (see $file)"
    s1=$(cpu_ticks "$pid"); b1=0; [ -z "$bpid" ] || b1=$(cpu_ticks "$bpid"); m1=$(machine_ticks)
    local client
    client=$(awk '/^client_cpu_seconds:/ {print $2}' "$file")
    awk -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v m=$((m1 - m0)) -v c="${client:-0}" -v hz="$CLK_TCK" 'BEGIN {
        printf "server_cpu_seconds: %.2f\nbackend_cpu_seconds: %.2f\nmachine_busy_seconds: %.2f\nother_cpu_seconds: %.2f\n",
            s / hz, b / hz, m / hz, m / hz - s / hz - b / hz - c }' >>"$file"
}

{
    echo "date: $(date -Is)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -srm)"
    echo "nginx: $("$NGINX" -v 2>&1)"
    echo "wrk: $(wrk --version 2>&1 | head -n1 | sed 's/ Copyright.*//')"
    echo "rustc: $(rustc --version)"
    echo "oauthgate binary sha256: $(sha256sum "$GATE_BIN" | cut -c1-16)"
    echo "oauthgate: $GATE_SRC"
    echo "ulimit -n: $NOFILE"
    echo "LOGS=$LOGS (nginx access_log ${PROXY_ACCESS_LOG:-on}, oauthgate RUST_LOG=$GATE_LOG)"
    echo "ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS MEM_CONNS=$MEM_CONNS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2
# what else is using the CPU (another build or test run would skew everything)
ps -eo pid,pcpu,etime,args --sort=-pcpu | head -n 8 >"$OUT/ps-start.txt"

# A run during which other processes used more than OTHER_MAX (fraction of all cores x the
# duration, default 5%) is discarded (kept as *.discarded-N.txt) and repeated, at most
# RETRIES times; the last attempt is kept whatever it shows.
OTHER_MAX=${OTHER_MAX:-0.05}
RETRIES=${RETRIES:-3}
DUR_S=$(python3 -c 'import re,sys;m=re.fullmatch(r"([\d.]+)([smh]?)",sys.argv[1]);print(float(m.group(1))*{"":1,"s":1,"m":60,"h":3600}[m.group(2)])' "$DURATION")
OTHER_LIMIT=$(awk -v f="$OTHER_MAX" -v n="$(nproc)" -v d="$DUR_S" 'BEGIN {printf "%.2f", f * n * d}')
DISCARDED=0
measured_run() { # FILE LABEL URL SERVER_PID
    local file=$1 label=$2 url=$3 pid=$4 other
    for attempt in $(seq $((RETRIES + 1))); do
        wait_quiet
        if [ "$attempt" -eq 1 ]; then log "$label"; else log "$label (attempt $attempt)"; fi
        run_wrk "$file" "$CONNS" "$DURATION" "$url" "$pid" "$BACKEND_PID"
        other=$(awk '/^other_cpu_seconds:/ {print $2}' "$file")
        if awk -v o="$other" -v l="$OTHER_LIMIT" 'BEGIN {exit !(o <= l)}'; then return 0; fi
        if [ "$attempt" -le "$RETRIES" ]; then
            log "  other processes used ${other} CPU s (limit $OTHER_LIMIT): discarding and repeating"
            mv "$file" "${file%.txt}.discarded-$attempt.txt"
            DISCARDED=$((DISCARDED + 1))
        else
            log "  other processes used ${other} CPU s (limit $OTHER_LIMIT); keeping it, out of retries"
        fi
    done
}

# --- warm-up (not counted) ------------------------------------------------------------------
for t in backend nginx oauthgate; do
    log "warm-up $t ($WARMUP)"
    run_wrk "$OUT/warmup-$t.txt" "$CONNS" "$WARMUP" "${URL[$t]}"
done

# --- rounds: A/B/C alternating --------------------------------------------------------------
for r in $(seq "$ROUNDS"); do
    for t in backend nginx oauthgate; do
        measured_run "$OUT/round$r-$t.txt" "round $r/$ROUNDS: $t" "${URL[$t]}" "${SERVER_PID[$t]}"
    done
done

# --- one round of oauthgate with the default RUST_LOG=info (access log to a file) ---------
stop_gate
start_gate info info
log "oauthgate with RUST_LOG=info"
run_wrk "$OUT/warmup-oauthgate-info.txt" "$CONNS" "$WARMUP" "${URL[oauthgate]}"
measured_run "$OUT/info-oauthgate.txt" "oauthgate RUST_LOG=info run" "${URL[oauthgate]}" "$GATE_PID"
INFO_LOG_LINES=$(wc -l <"$TMP/oauthgate-info.err")
INFO_LOG_BYTES=$(stat -c %s "$TMP/oauthgate-info.err")
stop_gate

# --- memory at MEM_CONNS connections --------------------------------------------------------
kb() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }
# sum of a field over nginx master + workers (children of the master)
nginx_sum() { # $1 = master pid, $2 = Rss|Pss  (from smaps_rollup)
    local total=0 p v
    for p in "$1" $(pgrep -P "$1"); do
        v=$(awk -v k="$2:" '$1==k {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Quiet keep-alive connections: each made one request and now waits, as browsers leave them.
# hold.py prints "open N" once all N are open; memory is read 1.5 s later.
hold_quiet() { # $1 = port, $2 = output file; returns when all connections are open + 1.5 s
    python3 "$HERE/hold.py" "$1" "$MEM_CONNS" 6 >"$2" 2>&1 &
    HOLD_PID=$!
    for _ in $(seq 600); do
        grep -q '^open' "$2" && break
        kill -0 "$HOLD_PID" 2>/dev/null || die "hold.py failed: $(cat "$2")"
        sleep 0.1
    done
    sleep 1.5
}
start_gate warn quiet
wait_quiet
Q_RSS0=$(kb "$GATE_PID" VmRSS)
log "oauthgate: $MEM_CONNS quiet keep-alive connections"
hold_quiet "$GATE_PORT" "$OUT/quiet-oauthgate.txt"
Q_RSS1=$(kb "$GATE_PID" VmRSS); Q_HWM1=$(kb "$GATE_PID" VmHWM)
wait "$HOLD_PID" || die "hold.py failed against oauthgate: $(cat "$OUT/quiet-oauthgate.txt")"
stop_gate
wait_quiet
QN_RSS0=$(nginx_sum "$NGINX_PID" Rss); QN_PSS0=$(nginx_sum "$NGINX_PID" Pss)
log "nginx: $MEM_CONNS quiet keep-alive connections"
hold_quiet "$NGINX_PORT" "$OUT/quiet-nginx.txt"
QN_RSS1=$(nginx_sum "$NGINX_PID" Rss); QN_PSS1=$(nginx_sum "$NGINX_PID" Pss)
wait "$HOLD_PID" || die "hold.py failed against nginx: $(cat "$OUT/quiet-nginx.txt")"

start_gate warn mem
wait_quiet
G_RSS0=$(kb "$GATE_PID" VmRSS); G_HWM0=$(kb "$GATE_PID" VmHWM)
G_THREADS=$(kb "$GATE_PID" Threads)
log "oauthgate idle: VmRSS ${G_RSS0} kB, VmHWM ${G_HWM0} kB; wrk -c$MEM_CONNS"
run_wrk "$OUT/mem-oauthgate.txt" "$MEM_CONNS" "$DURATION" "${URL[oauthgate]}" &
WRK_PID=$!
G_RSS_MAX=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    v=$(kb "$GATE_PID" VmRSS || echo 0); [ "${v:-0}" -gt "$G_RSS_MAX" ] && G_RSS_MAX=$v
    sleep 0.2
done
wait "$WRK_PID" || true
G_HWM1=$(kb "$GATE_PID" VmHWM); G_RSS1=$(kb "$GATE_PID" VmRSS)

wait_quiet
N_RSS0=$(nginx_sum "$NGINX_PID" Rss); N_PSS0=$(nginx_sum "$NGINX_PID" Pss)
log "nginx before: RSS sum ${N_RSS0} kB, PSS sum ${N_PSS0} kB; wrk -c$MEM_CONNS"
run_wrk "$OUT/mem-nginx.txt" "$MEM_CONNS" "$DURATION" "${URL[nginx]}" &
WRK_PID=$!
N_RSS_MAX=0; N_PSS_MAX=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    v=$(nginx_sum "$NGINX_PID" Rss); [ "$v" -gt "$N_RSS_MAX" ] && N_RSS_MAX=$v
    v=$(nginx_sum "$NGINX_PID" Pss); [ "$v" -gt "$N_PSS_MAX" ] && N_PSS_MAX=$v
    sleep 0.2
done
wait "$WRK_PID" || true
N_WORKERS=$(pgrep -P "$NGINX_PID" | wc -l)

cat >"$OUT/memory.env" <<ENV
G_RSS0=$G_RSS0 G_HWM0=$G_HWM0 G_HWM1=$G_HWM1 G_RSS1=$G_RSS1 G_RSS_MAX=$G_RSS_MAX G_THREADS=$G_THREADS
N_RSS0=$N_RSS0 N_PSS0=$N_PSS0 N_RSS_MAX=$N_RSS_MAX N_PSS_MAX=$N_PSS_MAX N_WORKERS=$N_WORKERS
Q_RSS0=$Q_RSS0 Q_RSS1=$Q_RSS1 Q_HWM1=$Q_HWM1 QN_RSS0=$QN_RSS0 QN_PSS0=$QN_PSS0 QN_RSS1=$QN_RSS1 QN_PSS1=$QN_PSS1
INFO_LOG_LINES=$INFO_LOG_LINES INFO_LOG_BYTES=$INFO_LOG_BYTES DISCARDED=$DISCARDED
ENV

ps -eo pid,pcpu,etime,args --sort=-pcpu | head -n 8 >"$OUT/ps-end.txt"
cat /proc/loadavg >>"$OUT/ps-end.txt"

# --- report ---------------------------------------------------------------------------------
python3 "$HERE/report.py" "$OUT" "$ROUNDS" | tee "$OUT/report.md"

for f in "$TMP/oauthgate-$GATE_LOG.err" "$TMP"/oauthgate-mem.err; do
    log "$(basename "$f"): $(wc -l <"$f") lines, of which $(grep -c 'Illegal SNI extension' "$f" || true) are rustls 'Illegal SNI extension' warnings; other lines:"
    grep -v 'Illegal SNI extension' "$f" | head -n 20 >&2 || true
done
log "raw outputs in $OUT"
