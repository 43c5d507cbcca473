#!/usr/bin/env bash
# Authenticated proxied requests (SPEC §5): oauthgate with a session cookie on a
# `login: required` route, the same oauthgate on a `login: none` route, and nginx proxy_pass
# (no auth), alternating, in one run. Quicker and simpler than proxy.sh (no contention checks).
#
#   bench/auth.sh                 # ROUNDS=3 DURATION=5s CONNS=64
#   OAUTHGATE_BIN=/path bench/auth.sh
#   IDENTITY=1 bench/auth.sh      # also: a second oauthgate with identity.headers and
#                                 # assertion: true (cookie), and a bearer-token request
#   LOGS=both bench/auth.sh       # "both log": nginx access_log on, oauthgate's default
#                                 # logging (RUST_LOG=info); each to a file
#   OPS=1 bench/auth.sh           # oauthgate with metrics on (a metrics: listener) and
#                                 # log.format: json (with LOGS=both, JSON access lines)
#   PERF=1 bench/auth.sh          # instead of the rounds: `perf record` of oauthgate while
#                                 # wrk sends authenticated requests; prints where the CPU
#                                 # goes (by shared object, then the top symbols)
#   PERF=stat bench/auth.sh       # instead of the rounds: per request, the CPU time, context
#                                 # switches and system calls of nginx's workers and of
#                                 # oauthgate (authenticated), from `perf stat`
#   CALLGRIND=1 bench/auth.sh     # instead of the rounds: oauthgate with one serving thread
#                                 # under callgrind; prints the user-space instructions per
#                                 # authenticated request (20,000 by h2load --h1 -c16, after
#                                 # 2,000 unmeasured), a count that does not drift as CPU time
#                                 # does (TOP=40 also lists the functions by their own count;
#                                 # CALLGRIND_OUT=file keeps the profile for callgrind_annotate)
#   AB=/path/to/base bench/auth.sh  # instead of the rounds: nginx, this oauthgate and a base
#                                 # binary (logged in each), alternated for ROUNDS rounds
#                                 # (try ROUNDS=20 DURATION=3s); per request, the user and
#                                 # system CPU of each from /proc (nginx: its workers), and the
#                                 # median over rounds of each round's nginx ÷ oauthgate ratio
#   PERF=stat FLOOR=1 bench/auth.sh  # also the floor (bench/floor.rs): the least a tokio +
#                                 # rustls proxy spends per request (FLOOR_BIN=path to reuse one)
#   STORE=redis bench/auth.sh     # also: a second oauthgate with session.store: redis (a
#                                 # redis-server started here), beside the cookie store
#   IDLE=2h bench/auth.sh         # gateway.session.idle_timeout set (wrk keeps sending the
#                                 # login's cookie, so after a minute every answer renews it)
#
# Everything on 127.0.0.1, ports picked at runtime, temp dir removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5s}; CONNS=${CONNS:-64}; LOGS=${LOGS:-off}
case "$LOGS" in off) ACCESS_LOG=off; GATE_LOG=warn ;; both) ACCESS_LOG=; GATE_LOG=info ;;
  *) echo "LOGS must be off or both" >&2; exit 64 ;; esac
BIN=${OAUTHGATE_BIN:-target/release/oauthgate}
[ -n "${OAUTHGATE_BIN:-}" ] || (set -x; cargo build --release --locked --bin oauthgate)
command -v wrk >/dev/null && [ -x /usr/sbin/nginx ] || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx-light; }
ulimit -n 20000 2>/dev/null || true

D=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ready() { for _ in $(seq 150); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
BP=$(port); NP=$(port); RP=$(port); OP=$(port); IP=$(port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$D/key.pem" \
  -out "$D/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
temps() { for t in body proxy fastcgi uwsgi scgi; do printf '%s_temp_path %s/%s-%s;\n' "$t" "$D" "$1" "$t" | sed 's/^body_/client_body_/'; done; }

cat > "$D/backend.conf" <<NG
daemon off; master_process off; worker_processes 1; pid $D/backend.pid; error_log $D/backend.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; $(temps backend)
  server { listen 127.0.0.1:$BP; location / { return 200 "hello\n"; } } }
NG
cat > "$D/proxy.conf" <<NG
daemon off; worker_processes 2; pid $D/proxy.pid; error_log $D/proxy.err;
events { worker_connections 4096; }
http { access_log ${ACCESS_LOG:-$D/proxy-access.log}; keepalive_requests 1000000; $(temps proxy)
  upstream backend { server 127.0.0.1:$BP; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$NP ssl; ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header X-Forwarded-Proto https; } } }
NG
/usr/sbin/nginx -p "$D" -c "$D/backend.conf" & PIDS+=($!)
/usr/sbin/nginx -p "$D" -c "$D/proxy.conf" & PIDS+=($!)

# One oauthgate process: central (dev provider) + gateway; /open is login: none, the rest
# requires a login.
cat > "$D/oauthgate.yaml" <<Y
listen: 127.0.0.1:$OP
public_url: https://localhost:$OP
data_dir: $D/data
tls: {cert: $D/cert.pem, key: $D/key.pem}
central:
  providers:
    dev: {kind: dev}
gateway:
  routes:
    - {prefix: /open, upstream: "http://127.0.0.1:$BP", login: none}
    - {prefix: /, upstream: "http://127.0.0.1:$BP", login: required}
Y
if [ -n "${IDLE:-}" ]; then
  sed -i "s/^gateway:$/gateway:\n  session: {idle_timeout: $IDLE}/" "$D/oauthgate.yaml"
fi
if [ -n "${OPS:-}" ]; then
  printf 'metrics: {listen: "127.0.0.1:%s"}\nlog: {format: json}\n' "$(port)" >>"$D/oauthgate.yaml"
fi
RUST_LOG=$GATE_LOG "$BIN" --config "$D/oauthgate.yaml" 2>"$D/oauthgate.err" & PIDS+=($!); OGPID=$!
ready "http://127.0.0.1:$BP/"; ready "https://127.0.0.1:$NP/"; ready "https://127.0.0.1:$OP/_auth/health"

# A real login through the dev provider, as a browser would, to get a session cookie.
login() { # port -> the session cookie
  local J="$D/jar-$1"
  c() { curl -sk -c "$J" -b "$J" -o /dev/null -w '%{redirect_url}' "$@"; }
  local to_central form back
  to_central=$(c "https://localhost:$1/_auth/login?next=/")
  form=$(c "$to_central")
  back=$(c -d "state=${form##*state=}&login=bench&email=bench@example.com&groups=ops,bench" "https://localhost:$1/oauth/dev")
  c "$back" >/dev/null
  awk '$6=="__Host-oauthgate-session"{print $6"="$7}' "$J"
}
COOKIE=$(login "$OP")
if [ -n "${IDENTITY:-}" ]; then
  # The same gateway with identity headers and X-User-Assertion on, and a bearer route.
  sed -e "s/127.0.0.1:$OP/127.0.0.1:$IP/; s/localhost:$OP/localhost:$IP/; s|$D/data|$D/data-id|" \
    -e 's|^  routes:|  identity:\n    headers: {Remote-User: login, Remote-Email: email, Remote-Groups: groups}\n    assertion: true\n  routes:\n    - {prefix: /api, upstream: "http://127.0.0.1:'"$BP"'", bearer: true}|' \
    "$D/oauthgate.yaml" > "$D/identity.yaml"
  RUST_LOG=warn "$BIN" --config "$D/identity.yaml" 2>"$D/identity.err" & PIDS+=($!); IDPID=$!
  ready "https://127.0.0.1:$IP/_auth/health"
  ICOOKIE=$(login "$IP")
  TOKEN=$("$BIN" token --config "$D/identity.yaml" --sub bench-bot --groups ops --ttl 1h)
  [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Host: localhost" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$IP/api/")" = 200 ]
  [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Host: localhost" -H "Cookie: $ICOOKIE" "https://127.0.0.1:$IP/")" = 200 ]
fi
if [ "${STORE:-}" = redis ]; then
  # The same gateway with its sessions in Redis: the cookie holds a sealed id, the gateway
  # reads the record at most every 2 s per session (its cache) and serves from memory between.
  command -v redis-server >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }
  XP=$(port); SP=$(port)
  redis-server --port "$XP" --bind 127.0.0.1 --save "" --appendonly no --dir "$D" >"$D/redis.log" 2>&1 & PIDS+=($!); RPID=$!
  for _ in $(seq 100); do [ "$(redis-cli -p "$XP" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  sed -e "s/127.0.0.1:$OP/127.0.0.1:$SP/; s/localhost:$OP/localhost:$SP/; s|$D/data|$D/data-redis|" \
    -e "s|^  routes:|  session: {store: \"redis://127.0.0.1:$XP/0\"}\n  routes:|" \
    "$D/oauthgate.yaml" > "$D/redis.yaml"
  RUST_LOG=$GATE_LOG "$BIN" --config "$D/redis.yaml" 2>"$D/redis-gate.err" & PIDS+=($!); SPID=$!
  ready "https://127.0.0.1:$SP/_auth/health"
  SCOOKIE=$(login "$SP")
  [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Host: localhost" -H "Cookie: $SCOOKIE" "https://127.0.0.1:$SP/")" = 200 ]
  [ "$(redis-cli -p "$XP" --scan --pattern 'oauthgate:session:*' | wc -l)" = 1 ]
fi
# Host: public_url's host, which oauthgate requires of requests to upstreams (421 else).
H=(-H "Host: localhost")
[ "$(curl -sk -o /dev/null -w '%{http_code}' "${H[@]}" -H "Cookie: $COOKIE" "https://127.0.0.1:$OP/")" = 200 ]
[ "$(curl -sk -o /dev/null -w '%{http_code}' "${H[@]}" "https://127.0.0.1:$OP/")" = 401 ]

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }   # user+system clock ticks
run() { # name url pid|- [wrk args]; with a pid, also its CPU time per request (less
  # sensitive than req/s to other load on the machine)
  local name=$1 url=$2 pid=$3; shift 3
  local before=0; [ "$pid" = - ] || before=$(cpu "$pid")
  local out; out=$(set -x; wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${H[@]}" "$@" "$url" 2>&1)
  local per=""
  if [ "$pid" != - ]; then
    local ticks=$(( $(cpu "$pid") - before )) reqs; reqs=$(awk '/requests in/{print $1}' <<<"$out")
    per="  cpu $(awk -v t="$ticks" -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", t/hz*1e6/r}') us/req"
  fi
  printf '%-24s %s  p50 %s  p99 %s%s%s\n' "$name" "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" "$per" \
    "$(grep -q Non-2xx <<<"$out" && echo "  NON-2xx: $(awk '/Non-2xx/{print $4}' <<<"$out")")"
}
for t in "https://127.0.0.1:$NP/" "https://127.0.0.1:$OP/open" "https://127.0.0.1:$OP/"; do
  wrk -t1 -c"$CONNS" -d2s "${H[@]}" -H "Cookie: $COOKIE" "$t" >/dev/null 2>&1   # warm-up
done
[ -z "${SCOOKIE:-}" ] || wrk -t1 -c"$CONNS" -d2s "${H[@]}" -H "Cookie: $SCOOKIE" "https://127.0.0.1:$SP/" >/dev/null 2>&1
if [ -n "${IDENTITY:-}" ]; then
  wrk -t1 -c"$CONNS" -d2s "${H[@]}" -H "Cookie: $ICOOKIE" "https://127.0.0.1:$IP/" >/dev/null 2>&1
  wrk -t1 -c"$CONNS" -d2s "${H[@]}" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$IP/api/" >/dev/null 2>&1
fi
if [ -n "${CALLGRIND:-}" ]; then
  for tool in valgrind h2load; do command -v $tool >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind nghttp2-client; }; done
  CP=$(port); N=${REQUESTS:-20000}
  sed -e "s/127.0.0.1:$OP/127.0.0.1:$CP/; s/localhost:$OP/localhost:$CP/; s|$D/data|$D/data-cg|" "$D/oauthgate.yaml" > "$D/cg.yaml"
  # One serving thread: every request's instructions are on the thread callgrind counts.
  TOKIO_WORKER_THREADS=1 RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$D/cg.out" "$BIN" --config "$D/cg.yaml" 2>"$D/cg.err" & PIDS+=($!); CGPID=$!
  for _ in $(seq 300); do curl -sk -o /dev/null "https://127.0.0.1:$CP/_auth/health" && break; sleep 0.1; done
  CCOOKIE=$(login "$CP")
  h2load --h1 -n 2000 -c 16 -H "Cookie: $CCOOKIE" "https://localhost:$CP/" >/dev/null 2>&1
  callgrind_control -i on "$CGPID" >/dev/null 2>&1
  h2load --h1 -n "$N" -c 16 -H "Cookie: $CCOOKIE" "https://localhost:$CP/" | grep -E '^status codes'
  callgrind_control -i off "$CGPID" >/dev/null 2>&1; callgrind_control -d "$CGPID" >/dev/null 2>&1; sleep 1
  awk -v n="$N" '/^totals:/{printf "oauthgate authenticated  %d user-space instructions per request\n", $2/n}' "$D/cg.out.1"
  [ -z "${CALLGRIND_OUT:-}" ] || cp "$D/cg.out.1" "$CALLGRIND_OUT"
  [ -z "${TOP:-}" ] || callgrind_annotate "$D/cg.out.1" 2>/dev/null | sed -n '/file:function/,$p' | head -"$TOP"
  exit 0
fi
if [ -n "${AB:-}" ]; then
  # The base binary beside this one: the same configuration on a port of its own.
  AP=$(port)
  sed -e "s/127.0.0.1:$OP/127.0.0.1:$AP/; s/localhost:$OP/localhost:$AP/; s|$D/data|$D/data-ab|" "$D/oauthgate.yaml" > "$D/ab.yaml"
  RUST_LOG=$GATE_LOG "$AB" --config "$D/ab.yaml" 2>"$D/ab.err" & PIDS+=($!); ABPID=$!
  ready "https://127.0.0.1:$AP/_auth/health"
  ACOOKIE=$(login "$AP")
  wrk -t1 -c"$CONNS" -d2s "${H[@]}" -H "Cookie: $ACOOKIE" "https://127.0.0.1:$AP/" >/dev/null 2>&1
  NGW=$(pgrep -d' ' -P "$(cat "$D/proxy.pid")")
  ticks() { local u=0 s=0 p a b; for p in "$@"; do read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat"); u=$((u+a)); s=$((s+b)); done; echo "$u $s"; }
  ab_run() { # round name url pids… [-- wrk args]: one line "round name requests user_us sys_us"
    local round=$1 name=$2 url=$3; shift 3; local pids=() args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do pids+=("$1"); shift; done; [ $# -gt 0 ] && shift; args=("$@")
    local u0 s0 u1 s1 out reqs
    read -r u0 s0 < <(ticks "${pids[@]}")
    out=$(wrk -t1 -c"$CONNS" -d"$DURATION" "${H[@]}" "${args[@]}" "$url" 2>&1)
    read -r u1 s1 < <(ticks "${pids[@]}")
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    awk -v r="$round" -v n="$name" -v q="$reqs" -v u=$((u1-u0)) -v s=$((s1-s0)) -v hz="$(getconf CLK_TCK)" \
      'BEGIN{printf "%d %s %d %.3f %.3f\n", r, n, q, u/hz*1e6/q, s/hz*1e6/q}'
  }
  echo "AB: nginx (workers $NGW), oauthgate $BIN, base $AB; ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS LOGS=$LOGS"
  for r in $(seq "$ROUNDS"); do
    ab_run "$r" nginx "https://127.0.0.1:$NP/" $NGW
    ab_run "$r" oauthgate "https://127.0.0.1:$OP/" "$OGPID" -- -H "Cookie: $COOKIE"
    ab_run "$r" base "https://127.0.0.1:$AP/" "$ABPID" -- -H "Cookie: $ACOOKIE"
  done | tee "$D/ab.txt"
  python3 - "$D/ab.txt" <<'PY'
import collections, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(dict)
for r, name, reqs, user, system in rows:
    by[int(r)][name] = (float(user), float(system))
names = ["nginx", "oauthgate", "base"]
med = lambda xs: statistics.median(xs)
for n in names:
    u = [by[r][n][0] for r in by]; s = [by[r][n][1] for r in by]
    a = [x + y for x, y in zip(u, s)]
    print(f"{n:10s} CPU per request, medians: user {med(u):5.2f} us  system {med(s):5.2f} us  all {med(a):5.2f} us")
for n in names[1:]:
    ratio = [sum(by[r]["nginx"]) / sum(by[r][n]) for r in by]
    print(f"nginx / {n:9s} per-round ratio: median {med(ratio):.3f} (min {min(ratio):.3f}, max {max(ratio):.3f}) over {len(ratio)} rounds")
PY
  exit 0
fi
if [ "${PERF:-}" = stat ]; then
  EV=task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait${EXTRA_EVENTS:+,$EXTRA_EVENTS}
  pstat() { # name url pids [wrk args]: perf stat of pids while wrk runs, per request
    local name=$1 url=$2 pids=$3; shift 3
    wrk -t1 -c"$CONNS" -d"$DURATION" "${H[@]}" "$@" "$url" >"$D/wrk.out" 2>&1 & local w=$!
    perf stat -x, -e "$EV" -p "$pids" -o "$D/stat" -- sleep "${DURATION%s}" 2>/dev/null; wait "$w"
    local reqs; reqs=$(awk '/requests in/{print $1}' "$D/wrk.out")
    awk -F, -v n="$name" -v r="$reqs" 'BEGIN{printf "%-24s %8d req", n, r}
      $3!=""{v=$1/r; if ($3=="task-clock") printf "  cpu %.1f us", v*1000; else printf "  %s %.2f", $3, v}
      END{print ""}' "$D/stat"
  }
  pstat "nginx proxy_pass" "https://127.0.0.1:$NP/" "$(pgrep -d, -P "$(cat "$D/proxy.pid")")"
  pstat "oauthgate authenticated" "https://127.0.0.1:$OP/" "$OGPID" -H "Cookie: $COOKIE"
  if [ -n "${FLOOR:-}" ]; then
    # The floor (bench/floor.rs): tokio + rustls with one runtime per core, the same system
    # calls per request, no HTTP work at all. The same request bytes as the line above.
    FB=${FLOOR_BIN:-target/release/examples/floor}
    [ -n "${FLOOR_BIN:-}" ] || (set -x; cargo build --release --locked --example floor)
    FP=$(port)
    "$FB" "127.0.0.1:$FP" "127.0.0.1:$BP" "$D/cert.pem" "$D/key.pem" & PIDS+=($!); FPID=$!
    ready "https://127.0.0.1:$FP/"
    pstat "floor (no HTTP work)" "https://127.0.0.1:$FP/" "$FPID" -H "Cookie: $COOKIE"
  fi
  exit 0
fi
if [ -n "${PERF:-}" ]; then
  command -v perf >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf; }
  wrk -t1 -c"$CONNS" -d"$DURATION" "${H[@]}" -H "Cookie: $COOKIE" "https://127.0.0.1:$OP/" >"$D/wrk.out" 2>&1 &
  WRK=$!
  if [ "$PERF" = callers ]; then   # inclusive costs through DWARF call graphs (slower)
    perf record -q -F 499 --call-graph dwarf,32768 -p "$OGPID" -o "$D/perf.data" -- sleep 3 2>/dev/null
    wait "$WRK"
    perf report -q -i "$D/perf.data" --children --sort symbol -g none --percent-limit 1.5 2>/dev/null | head -"${TOP:-80}"
    exit 0
  fi
  perf record -q -F 1999 -p "$OGPID" -o "$D/perf.data" -- sleep "${DURATION%s}" 2>/dev/null
  wait "$WRK"; grep -E 'Requests/sec' "$D/wrk.out"
  perf report -q -i "$D/perf.data" --no-children --sort dso 2>/dev/null | head -8
  # The same samples by who spends them: the kernel, the C library, then by Rust crate.
  perf report -q -i "$D/perf.data" --no-children --sort dso,symbol 2>/dev/null | awk '
    { p=$1; sub("%","",p); dso=$2; sym=$0; sub(/^[^]]*] /,"",sym)
      if (dso ~ /kernel/) g="kernel (TCP over loopback, epoll, scheduler)"
      else if (dso ~ /libc|libm|vdso/) g="libc (malloc/free, memcpy, syscall stubs)"
      else if (sym ~ /ring_core|^ring::|rustls/) g="rustls + ring (TLS records, AES-GCM)"
      else if (sym ~ /hyper/) g="hyper (HTTP/1.1 parse, dispatch, client)"
      else if (sym ~ /tokio/) g="tokio (scheduler, I/O readiness, timers)"
      else if (sym ~ /oauthgate/) g="oauthgate (routing, session, headers, logs)"
      else if (sym ~ /^http::|bytes::|httparse/) g="http + bytes + httparse (header maps, buffers)"
      else if (sym ~ /tracing/) g="tracing (spans)"
      else g="other (std, inlined, unknown)"
      t[g]+=p }
    END { for (g in t) printf "%6.1f%%  %s\n", t[g], g }' | sort -rn
  perf report -q -i "$D/perf.data" --no-children --sort symbol 2>/dev/null | head -"${TOP:-60}"
  exit 0
fi
echo "LOGS=$LOGS: nginx access_log ${ACCESS_LOG:-on}, oauthgate RUST_LOG=$GATE_LOG${OPS:+, metrics on, log.format json}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(uname -r); $(/usr/sbin/nginx -v 2>&1)"
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  run "nginx proxy_pass" "https://127.0.0.1:$NP/" -
  run "oauthgate login: none" "https://127.0.0.1:$OP/open" "$OGPID"
  run "oauthgate authenticated" "https://127.0.0.1:$OP/" "$OGPID" -H "Cookie: $COOKIE"
  if [ -n "${SCOOKIE:-}" ]; then
    run "redis store authenticated" "https://127.0.0.1:$SP/" "$SPID" -H "Cookie: $SCOOKIE"
    echo "  redis-server cpu so far: $(awk -v t="$(cpu "$RPID")" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t/hz}') s"
  fi
  if [ -n "${IDENTITY:-}" ]; then
    run "identity+assertion" "https://127.0.0.1:$IP/" "$IDPID" -H "Cookie: $ICOOKIE"
    run "bearer token" "https://127.0.0.1:$IP/api/" "$IDPID" -H "Authorization: Bearer $TOKEN"
  fi
done
