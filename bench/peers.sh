#!/usr/bin/env bash
# What users run today, side by side in one run (issue 16): every server terminates TLS and
# proxies to the same plain nginx backend on 127.0.0.1.
#
#   nginx   proxy_pass, no authentication (the speed reference)
#   caddy   reverse_proxy, no authentication
#   apache  mod_auth_openidc holding a real OIDC session (logged in against tests/oidc's
#           oidc-provider), then mod_proxy_http: the authenticating peer
#   oauthgate  a logged-in session on a `login: required` route
#
# HTTP/1.1: wrk -t1 -cCONNS, keep-alive, ROUNDS alternating rounds. HTTP/2: h2load -cCONNS -m10
# against nginx `http2`, caddy and oauthgate (apache's mod_http2 is not loaded: its event MPM
# serves h2 from one thread per connection, which is not what anyone benchmarks). Every figure
# is requests/s plus the server's CPU time per request (utime+stime of the server's processes over
# the run, divided by the requests), which does not depend on how wrk and the server share the
# two cores. Access logs are off everywhere unless LOGS=1 (then each server writes its default
# access log to a file).
#
#   bench/peers.sh                   # ROUNDS=3 DURATION=5s CONNS=64
#   OAUTHGATE_BIN=/path bench/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5s}; CONNS=${CONNS:-64}; LOGS=${LOGS:-0}
H2_REQUESTS=${H2_REQUESTS:-200000}
BIN=${OAUTHGATE_BIN:-target/release/oauthgate}
[ -n "${OAUTHGATE_BIN:-}" ] || (set -x; cargo build --release --locked --bin oauthgate)
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/bin/caddy ] || need+=(caddy)
[ -x /usr/sbin/apache2 ] || need+=(apache2)
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
[ -d tests/oidc/node_modules ] || (cd tests/oidc && npm ci --silent)
ulimit -n 20000 2>/dev/null || true

D=$(mktemp -d); chmod 755 "$D"; PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$D/apache.pid" ] && kill "$(cat "$D/apache.pid")" 2>/dev/null || true
  wait 2>/dev/null || true; rm -rf "$D"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ready() { for _ in $(seq 150); do curl -sk -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
BP=$(port); NP=$(port); CP=$(port); AP=$(port); OP=$(port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$D/key.pem" \
  -out "$D/cert.pem" -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
chmod 644 "$D/key.pem"
temps() { for t in client_body proxy fastcgi uwsgi scgi; do printf '%s_temp_path %s/%s-%s;\n' "$t" "$D" "$1" "$t"; done; }
if [ "$LOGS" = 1 ]; then NGLOG="access_log $D/nginx.access;"; else NGLOG="access_log off;"; fi

# --- the backend and nginx ---------------------------------------------------------------------
cat > "$D/backend.conf" <<NG
daemon off; master_process off; worker_processes 1; pid $D/backend.pid; error_log $D/backend.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; $(temps backend)
  server { listen 127.0.0.1:$BP; location / { return 200 "hello\n"; } } }
NG
cat > "$D/nginx.conf" <<NG
daemon off; worker_processes 2; pid $D/nginx.pid; error_log $D/nginx.err;
events { worker_connections 4096; }
http { $NGLOG keepalive_requests 1000000; $(temps nginx)
  upstream backend { server 127.0.0.1:$BP; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$NP ssl http2; ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header X-Forwarded-Proto https; } } }
NG
/usr/sbin/nginx -p "$D" -c "$D/backend.conf" & PIDS+=($!)
/usr/sbin/nginx -p "$D" -c "$D/nginx.conf" & NGINX=$!; PIDS+=($NGINX)

# --- caddy ---------------------------------------------------------------------------------------
# (a Caddyfile block cannot open and close on one line)
if [ "$LOGS" = 1 ]; then CLOG="log {
    output file $D/caddy.access
  }"; else CLOG=""; fi
cat > "$D/Caddyfile" <<C
{
  admin off
  auto_https off
  storage file_system $D/caddy-data
}
https://localhost:$CP, https://127.0.0.1:$CP {
  tls $D/cert.pem $D/key.pem
  $CLOG
  reverse_proxy 127.0.0.1:$BP
}
C
HOME=$D XDG_DATA_HOME=$D XDG_CONFIG_HOME=$D /usr/bin/caddy run --config "$D/Caddyfile" --adapter caddyfile \
  >"$D/caddy.err" 2>&1 & CADDY=$!; PIDS+=($CADDY)

# --- the OIDC provider and apache with mod_auth_openidc ------------------------------------------
coproc IDP { exec node tests/oidc/server.mjs 2>"$D/idp.err"; }
PIDS+=($IDP_PID)
read -r -u "${IDP[0]}" _ IDPP
echo "{\"client_id\":\"bench\",\"client_secret\":\"bench-secret\",\"redirect_uris\":[\"https://localhost:$AP/redirect_uri\",\"https://localhost:$OP/oauth/callback/idp\"]}" >&"${IDP[1]}"
read -r -u "${IDP[0]}" line; [ "$line" = READY ] || { echo "idp: $line" >&2; exit 1; }
M=/usr/lib/apache2/modules
if [ "$LOGS" = 1 ]; then ALOG="LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common
CustomLog $D/apache.access common"; else ALOG=""; fi
cat > "$D/apache.conf" <<A
ServerRoot $D
ServerName localhost
$(for m in mpm_event authz_core authn_core authz_user ssl socache_shmcb proxy proxy_http auth_openidc; do
  echo "LoadModule ${m}_module $M/mod_$m.so"; done)
User www-data
Group www-data
PidFile $D/apache.pid
ErrorLog $D/apache.err
LogLevel warn
$ALOG
Mutex file:$D default
DefaultRuntimeDir $D
Listen 127.0.0.1:$AP
StartServers 2
ServerLimit 2
ThreadsPerChild 64
MaxRequestWorkers 128
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
SSLSessionCache shmcb:$D/ssl_scache(512000)
<VirtualHost 127.0.0.1:$AP>
  SSLEngine on
  SSLCertificateFile $D/cert.pem
  SSLCertificateKeyFile $D/key.pem
  OIDCProviderMetadataURL http://127.0.0.1:$IDPP/.well-known/openid-configuration
  OIDCClientID bench
  OIDCClientSecret bench-secret
  OIDCRedirectURI https://localhost:$AP/redirect_uri
  OIDCCryptoPassphrase bench-passphrase-0123456789abcdef
  OIDCPKCEMethod S256
  OIDCScope "openid email"
  <Location />
    AuthType openid-connect
    Require valid-user
  </Location>
  ProxyPass /redirect_uri !
  ProxyPass / http://127.0.0.1:$BP/ keepalive=On
</VirtualHost>
A
/usr/sbin/apache2 -f "$D/apache.conf" -k start
for _ in $(seq 50); do [ -s "$D/apache.pid" ] && break; sleep 0.1; done

# --- oauthgate -----------------------------------------------------------------------------------
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
    - {prefix: /, upstream: "http://127.0.0.1:$BP", login: required}
Y
if [ "$LOGS" = 1 ]; then OG_ENV=(RUST_LOG=info); else OG_ENV=(RUST_LOG=warn); fi
env "${OG_ENV[@]}" "$BIN" --config "$D/oauthgate.yaml" 2>"$D/oauthgate.err" & OAUTHGATE=$!; PIDS+=($OAUTHGATE)
ready "http://127.0.0.1:$BP/"; ready "https://127.0.0.1:$NP/"; ready "https://127.0.0.1:$CP/"
ready "https://127.0.0.1:$AP/"; ready "https://127.0.0.1:$OP/"

# Sessions: oauthgate through its dev provider, apache through the OIDC provider's pages.
J="$D/jar"; c() { curl -sk -c "$J" -b "$J" -o /dev/null -w '%{redirect_url}' "$@"; }
to_central=$(c "https://localhost:$OP/_auth/login?next=/")
form=$(c "$to_central")
back=$(c -d "state=${form##*state=}&login=bench&email=bench@example.com" "https://localhost:$OP/oauth/dev")
c "$back" >/dev/null
OG_COOKIE=$(awk '$6=="__Host-oauthgate-session"{print $6"="$7}' "$J")
AP_COOKIE=$(python3 bench/oidc_login.py "https://localhost:$AP/" bench)
code() { curl -sk -o /dev/null -w '%{http_code}' --resolve "localhost:$2:127.0.0.1" "${@:3}" "https://localhost:$2$1"; }
[ "$(code / "$OP" -H "Cookie: $OG_COOKIE")" = 200 ] || { echo "oauthgate session refused" >&2; exit 1; }
[ "$(code / "$OP")" = 401 ] || { echo "oauthgate let an anonymous request through" >&2; exit 1; }
[ "$(code / "$AP" -H "Cookie: $AP_COOKIE")" = 200 ] || { echo "apache session refused" >&2; exit 1; }
[ "$(code / "$AP")" = 302 ] || { echo "apache let an anonymous request through" >&2; exit 1; }

# CPU ticks (utime+stime) of a process and its children.
ticks() { local t=0 p; for p in $1 $(pgrep -P "$1" || true); do
  t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
HZ=$(getconf CLK_TCK)
# measure NAME PID REQUESTS_FROM_OUTPUT_CMD -- command...
measure() {
  local name=$1 pid=$2 kind=$3; shift 3
  local t0 t1 out rps n
  t0=$(ticks "$pid"); out=$("$@" 2>&1); t1=$(ticks "$pid")
  if [ "$kind" = wrk ]; then
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); n=$(awk '/requests in/{print $1}' <<<"$out")
    grep -q Non-2xx <<<"$out" && { echo "$name: non-2xx answers" >&2; echo "$out" >&2; exit 1; }
  else
    rps=$(awk '/^finished in/{print $4}' <<<"$out"); n=$(awk '/^status codes:/{print $3}' <<<"$out")
    [ "$(awk '/^status codes:/{print $5+$7+$9}' <<<"$out")" = 0 ] || { echo "$name: errors" >&2; echo "$out" >&2; exit 1; }
  fi
  printf '%-22s %10s req/s  %6.1f µs CPU/request\n' "$name" "$rps" \
    "$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN{print d / hz * 1e6 / n}')"
}
W=(wrk -t1 -c"$CONNS" -d"$DURATION" -H "Host: localhost")
APID=$(cat "$D/apache.pid")
echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(uname -r)"
echo "peers: $(/usr/sbin/nginx -v 2>&1 | cut -d' ' -f3), caddy $(/usr/bin/caddy version | cut -d' ' -f1), $(/usr/sbin/apache2 -v | head -1 | cut -d' ' -f3) + mod_auth_openidc $(dpkg-query -W -f '${Version}' libapache2-mod-auth-openidc); access logs: $([ "$LOGS" = 1 ] && echo on || echo off)"
for t in "$NP" "$CP" "$AP" "$OP"; do "${W[@]:0:2}" -c"$CONNS" -d2s -H "Cookie: $OG_COOKIE; $AP_COOKIE" "https://127.0.0.1:$t/" >/dev/null 2>&1; done
for r in $(seq "$ROUNDS"); do
  echo "round $r, HTTP/1.1 (wrk -t1 -c$CONNS -d$DURATION)"
  measure "nginx proxy_pass" "$NGINX" wrk "${W[@]}" "https://127.0.0.1:$NP/"
  measure "caddy reverse_proxy" "$CADDY" wrk "${W[@]}" "https://127.0.0.1:$CP/"
  measure "apache+auth_openidc" "$APID" wrk "${W[@]}" -H "Cookie: $AP_COOKIE" "https://127.0.0.1:$AP/"
  measure "oauthgate logged in" "$OAUTHGATE" wrk "${W[@]}" -H "Cookie: $OG_COOKIE" "https://127.0.0.1:$OP/"
  echo "round $r, HTTP/2 (h2load -c$CONNS -m10 -n$H2_REQUESTS)"
  H2=(h2load -c"$CONNS" -m10 -n"$H2_REQUESTS" -H ":authority: localhost")
  measure "nginx http2" "$NGINX" h2 "${H2[@]}" "https://127.0.0.1:$NP/"
  measure "caddy http2" "$CADDY" h2 "${H2[@]}" "https://127.0.0.1:$CP/"
  measure "oauthgate http2" "$OAUTHGATE" h2 "${H2[@]}" -H "Cookie: $OG_COOKIE" "https://127.0.0.1:$OP/"
done
