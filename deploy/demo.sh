#!/usr/bin/env bash
# The demo: runs the regiozorg services against the local stack, loads the Achterhoek register and
# shows the region's contract landscape. The services keep running until `make down`.
#
# Everything talks mutual TLS with identities: the demo first writes a test PKI to var/demo/pki/
# (`rzctl pki init`: the region's CA, a certificate per provider of the seed, per municipality,
# the operator and each service, and a consulent's staff token per municipality, valid a day).
# Each service serves and calls with its service-<name>/ certificate and verifies staff tokens
# with token-signing.pub (var/demo/config/<service>.toml); every client calls as the party it is.
#
# Expects DATABASE_URL and NATS_URL (make demo reads them from var/stack.env) and built binaries in
# target/debug. Each service gets its own database on the same PostgreSQL server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DEMO="$ROOT/var/demo"
BIN="${BIN:-$ROOT/target/debug}"
mkdir -p "$DEMO"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

PSQL="$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1)"
[ -x "$PSQL" ] || { echo "demo: psql not found" >&2; exit 1; }

# The URL of database $1 on the server of DATABASE_URL.
db_url() {
    local base="${DATABASE_URL%%\?*}"
    echo "${base%/*}/$1"
}

# The role the services run as: it reads and writes rows but cannot change the schema (each
# service's `migrate --grant-to` grants it), as on Kubernetes; the migrations run as the owner.
RUNTIME_ROLE=rz_app
ensure_runtime_role() {
    "$PSQL" "$DATABASE_URL" -qc "DO \$\$ BEGIN CREATE ROLE $RUNTIME_ROLE LOGIN PASSWORD '$RUNTIME_ROLE';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END \$\$;" >/dev/null
}

# The URL $1 with the runtime role as its user.
as_runtime() {
    echo "$1" | sed -E "s#^([a-z]+://)([^@/]*@)?#\1$RUNTIME_ROLE:$RUNTIME_ROLE@#"
}

ensure_db() {
    if ! "$PSQL" "$DATABASE_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1; then
        "$PSQL" "$DATABASE_URL" -qc "CREATE DATABASE $1" >/dev/null
    fi
}

# Below the kernel's ephemeral range (ip_local_port_range, usually from 32768), so a port that
# looks free is not the source port of some outgoing connection.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "demo: no free port found" >&2
    return 1
}

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start NAME DB [extra env...]: (re)starts a service with its own database and a free port.
# NAME is the binary, or BINARY@INSTANCE for one of several instances (access@0222).
start() {
    local name="$1" db="$2" bin="${1%%@*}"
    shift 2
    stop "$name"
    ensure_db "$db"
    local port mport
    port="$(free_port)"
    # Prometheus metrics on a port of their own (GET /metrics), scraped by the demo's Prometheus.
    mport="$(free_port)"
    while [ "$mport" = "$port" ]; do mport="$(free_port)"; done
    local folder="$PKI/service-$bin"
    # Migrations first, as the database's owner (the Kubernetes Job's `migrate`), then the
    # service as the runtime role, which only checks that they were applied.
    if ! RZ__DATABASE__URL="$(db_url "$db")" "$BIN/$bin" migrate --grant-to "$RUNTIME_ROLE" \
        >"$DEMO/$name.migrate.log" 2>&1; then
        echo "demo: $name's migrations failed; its log:" >&2
        tail -n 20 "$DEMO/$name.migrate.log" >&2
        exit 1
    fi
    env RZ__DATABASE__URL="$(as_runtime "$(db_url "$db")")" RZ__DATABASE__MIGRATE=false \
        RZ__NATS__URL="$NATS_URL" RZ__SERVER__LISTEN="127.0.0.1:$port" \
        RZ__METRICS__LISTEN="127.0.0.1:$mport" \
        RZ__TLS__CA="$PKI/ca.crt" RZ__TLS__CERT="$folder/tls.crt" RZ__TLS__KEY="$folder/tls.key" "$@" \
        setsid nohup "$BIN/$bin" serve --config "$(service_config "$bin")" >"$DEMO/$name.log" 2>&1 </dev/null &
    echo $! >"$DEMO/$name.pid"
    echo "$port" >"$DEMO/$name.port"
    echo "$mport" >"$DEMO/$name.metrics"
    if ! wait_port "$port"; then
        echo "demo: $name did not start; its log:" >&2
        tail -n 20 "$DEMO/$name.log" >&2
        exit 1
    fi
    echo "  $name listening on 127.0.0.1:$port, metrics on :$mport (log: var/demo/$name.log)"
}

# Prometheus' scrape targets: a group per running service instance (job = the service; access
# instances also carry their municipality's CBS code), as a file_sd file Prometheus re-reads.
write_targets() {
    local out="$DEMO/prometheus/targets.json" f name job sep="" labels
    mkdir -p "$DEMO/prometheus"
    {
        echo "["
        for f in "$DEMO"/*.metrics; do
            [ -e "$f" ] || continue
            name="$(basename "$f" .metrics)"
            job="${name%%@*}"
            labels="\"job\": \"$job\""
            [ "$name" = "$job" ] || labels="$labels, \"municipality\": \"${name#*@}\""
            printf '%s  {"targets": ["127.0.0.1:%s"], "labels": {%s}}\n' "$sep" "$(cat "$f")" "$labels"
            sep=","
        done
        echo "]"
    } >"$out.tmp" && mv -f "$out.tmp" "$out"
}

# The value of the PromQL expression $1 (a single number) from Prometheus' HTTP API; empty if none.
prom_query() {
    curl -fsS -G "$PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
        sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}

# The configuration file of service $1: what cannot come from the environment (a list: the keys
# that verify staff tokens) and the demo's rate limits, generous for the compressed half year.
# The TLS files come from the environment (RZ__TLS__CA/CERT/KEY) in start().
service_config() {
    local file="$DEMO/config/$1.toml"
    mkdir -p "$DEMO/config"
    cat >"$file" <<EOC
# Written by deploy/demo.sh for $1.
[tls]
ca = "$PKI/ca.crt"
cert = "$PKI/service-$1/tls.crt"
key = "$PKI/service-$1/tls.key"

[identity]
token_keys = ["$PKI/token-signing.pub"]

[limits]
provider_per_second = 2000
provider_burst = 20000
municipality_per_second = 5000
municipality_burst = 50000
operator_per_second = 10000
operator_burst = 100000
EOC
    echo "$file"
}

stop() {
    local pidfile="$DEMO/$1.pid"
    if [ -f "$pidfile" ]; then
        local pid
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile" "$DEMO/$1.port" "$DEMO/$1.metrics"
    fi
}


if [ "${1:-}" = "stop" ]; then
    for f in "$DEMO"/*.pid; do
        [ -e "$f" ] || continue
        stop "$(basename "$f" .pid)"
    done
    exit 0
fi

: "${DATABASE_URL:?set DATABASE_URL (make demo does)}"
: "${NATS_URL:?set NATS_URL (make demo does)}"

PKI="$DEMO/pki"
say "A test PKI for the region in var/demo/pki (CA, certificates, staff tokens)"
"$BIN/rzctl" pki init --dir "$PKI"

say "Starting the services"
ensure_runtime_role
# The services' date: the demo plays the second half of 2022 in compressed time and moves this
# file a week at a time (registration, access and assignment read it; a real deployment uses the
# system date).
CLOCK="$DEMO/today"
[ -s "$CLOCK" ] || echo 2022-07-01 >"$CLOCK"
start registration rz_registration RZ__REGISTRATION__TODAY_FILE="$CLOCK"
REG="http://127.0.0.1:$(cat "$DEMO/registration.port")"

# The region's secret for pseudonymous client keys; a real deployment keeps it in a secret store.
SECRET_FILE="$DEMO/client-key-secret"
[ -s "$SECRET_FILE" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET_FILE"
# The key that seals residents' BSNs, names and addresses at rest (access, assignment), outside
# the databases (`<key id> <base64 of 32 bytes>`); a real deployment keeps it in a secret store.
PERSONAL_KEYS="$DEMO/personal-data-keys"
[ -s "$PERSONAL_KEYS" ] || printf 'pd1 %s\n' "$(head -c 32 /dev/urandom | base64)" >"$PERSONAL_KEYS"
MUNICIPALITIES="0197 1859 1876 0222 1955 1586 1509 0294"
for m in $MUNICIPALITIES; do
    start "access@$m" "rz_access_$m" RZ__ACCESS__MUNICIPALITY="$m" RZ__ACCESS__TODAY_FILE="$CLOCK" \
        RZ__ACCESS__CLIENT_KEY_SECRET="$(cat "$SECRET_FILE")" RZ__ACCESS__REGISTRATION_ENDPOINT="$REG" \
        RZ__PERSONAL_DATA__KEYS_FILE="$PERSONAL_KEYS"
done

ACCESS_ENV=()
for m in $MUNICIPALITIES; do
    ACCESS_ENV+=("RZ__ASSIGNMENT__ACCESS_ENDPOINTS__$m=http://127.0.0.1:$(cat "$DEMO/access@$m.port")")
done
start assignment rz_assignment "${ACCESS_ENV[@]}" RZ__ASSIGNMENT__TODAY_FILE="$CLOCK" \
    RZ__ASSIGNMENT__CLIENT_KEY_SECRET="$(cat "$SECRET_FILE")" RZ__ASSIGNMENT__REGISTRATION_ENDPOINT="$REG" \
    RZ__PERSONAL_DATA__KEYS_FILE="$PERSONAL_KEYS"
ASG="http://127.0.0.1:$(cat "$DEMO/assignment.port")"
start reporting rz_reporting
NOTIFICATION_ENV=()
for m in $MUNICIPALITIES; do
    NOTIFICATION_ENV+=("RZ__NOTIFICATION__ACCESS_ENDPOINTS__$m=http://127.0.0.1:$(cat "$DEMO/access@$m.port")")
done
# The key that seals webhook subscription secrets (`<key id> <base64 of 32 bytes>`); a real
# deployment keeps it in a secret store, outside the database.
WEBHOOK_KEYS="$DEMO/webhook-keys"
[ -s "$WEBHOOK_KEYS" ] || printf 'demo1 %s\n' "$(head -c 32 /dev/urandom | base64)" >"$WEBHOOK_KEYS"
# The demo asks for deadline scans itself, with each simulated date (ScanDeadlines).
start notification rz_notification "${NOTIFICATION_ENV[@]}" RZ__NOTIFICATION__ASSIGNMENT_ENDPOINT="$ASG" \
    RZ__NOTIFICATION__SCAN_INTERVAL_SECS=0 RZ__WEBHOOKS__SECRET_KEYS_FILE="$WEBHOOK_KEYS"
NTF="http://127.0.0.1:$(cat "$DEMO/notification.port")"
REP="http://127.0.0.1:$(cat "$DEMO/reporting.port")"

say "Prometheus scraping every service (deploy/prometheus; alert rules deploy/prometheus/rules)"
write_targets
sed -e "s|@RULES@|$ROOT/deploy/prometheus/rules|" -e "s|@TARGETS@|$DEMO/prometheus/targets.json|" \
    "$ROOT/deploy/prometheus/prometheus.yml" >"$DEMO/prometheus/prometheus.yml"
PROMETHEUS_URL="$("$ROOT/deploy/local-stack.sh" prometheus "$DEMO/prometheus/prometheus.yml" | sed -n 's/^PROMETHEUS_URL=//p')"
[ -n "$PROMETHEUS_URL" ] || { echo "demo: Prometheus did not start" >&2; exit 1; }
echo "$PROMETHEUS_URL" >"$DEMO/prometheus/url"
TARGETS="$(ls "$DEMO"/*.metrics | wc -l)"
for _ in $(seq 1 60); do
    [ "$(prom_query 'count(up{job!="prometheus"} == 1)')" = "$TARGETS" ] && break
    sleep 0.5
done
echo "  $PROMETHEUS_URL: $(prom_query 'count(up == 1)' || true) of $TARGETS targets up"

# The provider systems: one simulator answering every provider's assignments with a start of care.
stop provider-sim
NATS_URL="$NATS_URL" setsid nohup "$BIN/rz-provider-sim" --endpoint "$ASG" --pki "$PKI" --late-start-every 20 >"$DEMO/provider-sim.log" 2>&1 </dev/null &
echo $! >"$DEMO/provider-sim.pid"
echo "  provider-sim answering assignments, each provider with its own certificate (log: var/demo/provider-sim.log)"

say "Loading the Achterhoek contract register (catalogue, providers, tenders, contracts)"
"$BIN/rzctl" seed --endpoint "$REG" --pki "$PKI" --as operator

say "The region's contract landscape"
"$BIN/rzctl" landscape --endpoint "$REG" --pki "$PKI" | tee "$DEMO/landscape.txt"

say "The second half of 2022 in compressed time: existing care, decisions, GP referrals, the handover"
DEMO_ARGS=()
for m in $MUNICIPALITIES; do
    DEMO_ARGS+=(--access "$m=http://127.0.0.1:$(cat "$DEMO/access@$m.port")")
done
RZ_CLIENT_KEY_SECRET="$(cat "$SECRET_FILE")" "$BIN/rz-demo" --registration "$REG" --assignment "$ASG" --reporting "$REP" --clock-file "$CLOCK" --notification "$NTF" \
    --pki "$PKI" --reports-dir "$DEMO/reports" --messages-dir "$DEMO/messages" "${DEMO_ARGS[@]}" \
    | tee "$DEMO/care-flow.txt"

# Every message written for the providers, checked against the official XSDs (when they are here).
XSD_DIR="${ISTANDAARDEN_DIR:-$ROOT/../shared/istandaarden}"
if [ -d "$XSD_DIR" ] && command -v xmllint >/dev/null && [ -d "$DEMO/messages" ]; then
    say "The providers' XML messages against the official iJw/iWmo 3.2 XSDs ($XSD_DIR)"
    for pair in "ijw-3.2 JW301 jw301" "ijw-3.2 JW319 jw319" "iwmo-3.2 WMO301 wmo301" "iwmo-3.2 WMO319 wmo319"; do
        set -- $pair
        mapfile -t files < <(grep -rl "istandaarden.nl/${1%-3.2}/3_2/$3/schema" "$DEMO/messages" 2>/dev/null || true)
        [ "${#files[@]}" -gt 0 ] || continue
        failed=0
        for ((i = 0; i < ${#files[@]}; i += 200)); do
            out="$(xmllint --noout --schema "$XSD_DIR/$1/$2.xsd" "${files[@]:i:200}" 2>&1 || true)"
            failed=$(( failed + $(grep -c 'fails to validate' <<<"$out" || true) ))
        done
        printf '  %-7s %5d messages, %d invalid\n' "$2" "${#files[@]}" "$failed" | tee -a "$DEMO/care-flow.txt"
    done
fi

say "What Prometheus saw ($PROMETHEUS_URL, read back from its HTTP API)"
write_targets
sleep 6 # one more scrape (every 5 s) after the last call
figure() { # label expr
    local v
    v="$(prom_query "$2" || true)"
    printf '  %-52s %s\n' "$1" "$(printf '%.0f' "${v:-0}" 2>/dev/null || echo "${v:-?}")" | tee -a "$DEMO/care-flow.txt"
}
figure "targets up (of $TARGETS service instances)" 'count(up == 1)'
figure "gRPC calls answered" 'sum(rz_rpc_requests_total)'
figure "  of which not OK" 'sum(rz_rpc_requests_total{code!="OK"}) or vector(0)'
figure "  of which INTERNAL or UNKNOWN" 'sum(rz_rpc_requests_total{code=~"INTERNAL|UNKNOWN"}) or vector(0)'
figure "events published by the outbox relays" 'sum(rz_outbox_published_total)'
figure "events delivered to consumers" 'sum(rz_consumer_delivered_total)'
figure "outbox rows pending now" 'sum(rz_outbox_pending)'
figure "events in the dead-letter stream" 'max(rz_dlq_messages)'
figure "alerts firing" 'count(ALERTS{alertstate="firing"}) or vector(0)'
up_now="$(prom_query 'count(up == 1)' || true)"
if [ "${up_now:-0}" != "$TARGETS" ]; then
    echo "demo: only ${up_now:-0} of $TARGETS service instances are up in Prometheus:" >&2
    curl -fsS -G "$PROMETHEUS_URL/api/v1/query" --data-urlencode 'query=up == 0' >&2 || true
    exit 1
fi

say "Look around"
NTF_DB="$(db_url rz_notification)"
ACC0197="http://127.0.0.1:$(cat "$DEMO/access@0197.port")"
cat <<EOT
The services keep running until 'make down'. Try:
  cat var/demo/care-flow.txt                      # this report again
  target/debug/rzctl landscape --endpoint $REG            # contracted providers per segment and municipality (as the operator, var/demo/pki)
  target/debug/rzctl landscape --endpoint $REG --as provider-03010028   # the same, as a provider (the register is the region's)
  # a municipality's own call, with its certificate and a consulent's token (README: Identities and TLS)
  grpcurl -import-path proto -proto regiozorg/access/v1/access.proto -cacert var/demo/pki/ca.crt \\
    -cert var/demo/pki/municipality-0197/tls.crt -key var/demo/pki/municipality-0197/tls.key \\
    -H "authorization: Bearer \$(cat var/demo/pki/municipality-0197/staff.jwt)" -d '{"as_of":"2022-12-31"}' \\
    ${ACC0197#http://} regiozorg.access.v1.AccessService/ListDeadlines
  psql "$(db_url rz_registration)" -c 'select agb_code, name, kind from providers order by 1'   # every provider
  # a resident's letters (sealed at rest; read as the municipality): pick a client key, then read them
  target/debug/rzctl letters --endpoint $NTF --as municipality-0197 --municipality 0197 --limit 12
  target/debug/rzctl letters --endpoint $NTF --as municipality-0197 --municipality 0197 --client-key PASTE-A-CLIENT-KEY
  psql "$NTF_DB" -c "select municipality, kind, state, due from staff_alerts where state <> 'resolved' order by due"   # staff alerts
  NATS_URL=$NATS_URL target/debug/rzctl events --provider 03010028     # a provider's events, as its system receives them
  ls var/demo/messages/03010028/                  # the same provider's messages as iStandaarden XML (JW301, JW319)
  ls var/demo/reports/                            # the reporting read model as CSV
  NATS_URL=$NATS_URL target/debug/rzctl dlq list  # the dead-letter stream (empty when all went well)
  curl -s $PROMETHEUS_URL/api/v1/query --data-urlencode 'query=sum by (job, code) (rz_rpc_requests_total)'   # Prometheus (alerts: $PROMETHEUS_URL/alerts)
  curl -s http://127.0.0.1:$(cat "$DEMO/assignment.metrics")/metrics | grep rz_outbox   # a service's own /metrics
Logs: var/demo/*.log (JSON lines, no personal data).
EOT
