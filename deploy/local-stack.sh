#!/usr/bin/env bash
# local-stack.sh — give this checkout its own private PostgreSQL and NATS JetStream.
#
# Usage: deploy/local-stack.sh up|down|status|env|prometheus CONFIG|prometheus-down
#
#   up      start (or reuse) the stack and write var/stack.env
#   down    stop the stack (data is kept) and remove var/stack.env; stops Prometheus too
#   status  show what runs on which port; exit 1 when the stack is not running
#   env     print var/stack.env
#   prometheus CONFIG
#           optional: start Prometheus (Debian's package, installed when missing) with the
#           configuration file CONFIG, or make a running one load it; data under
#           var/stack/prometheus/. Prints PROMETHEUS_URL=http://127.0.0.1:<port> (make demo uses it).
#   prometheus-down
#           stop Prometheus only
#
# All state lives under var/stack/ of the repository root (git-ignored); with STACK_NAME=x under
# var/x/ and var/x.env instead (make bench runs its own durable stack that way).
# var/stack.env holds two plain KEY=VALUE lines, readable by make (`include`)
# and by bash (`set -a; . var/stack.env; set +a`):
#   DATABASE_URL=postgres://postgres@127.0.0.1:<pgport>/postgres
#   NATS_URL=nats://127.0.0.1:<natsport>
#
# Environment:
#   DATABASE_URL + NATS_URL  both set: `up` starts nothing and only writes them
#                            to var/stack.env (external services), unless they
#                            are exactly this local stack's own URLs.
#   PG_BINDIR                directory with initdb/pg_ctl (default: the highest
#                            /usr/lib/postgresql/*/bin).
#   STACK_DURABLE=1          run PostgreSQL with fsync, synchronous_commit and
#                            full_page_writes on (default: off, for fast tests).
#   STACK_NAME=name          a second, independent stack under var/<name>/ with
#                            its env file var/<name>.env (default: stack).
#
# PostgreSQL loads pg_stat_statements when the server has it, so statements can
# be profiled (CREATE EXTENSION pg_stat_statements in the database you query).
#
# Processes are started detached and outlive this script; `down` stops them.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"
VAR_DIR="$ROOT/var"
STACK_NAME="${STACK_NAME:-stack}"
case "$STACK_NAME" in
    *[!a-z0-9_-]* | "") printf 'local-stack: error: STACK_NAME must be [a-z0-9_-]+, not `%s`\n' "$STACK_NAME" >&2; exit 2 ;;
esac
STACK_DIR="$VAR_DIR/$STACK_NAME"
ENV_FILE="$VAR_DIR/$STACK_NAME.env"
EXTERNAL_FLAG="$STACK_DIR/external"
LOCK_FILE="$STACK_DIR/.lock"

PG_DIR="$STACK_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
PG_PORT_FILE="$STACK_DIR/pg.port"
PG_MODE_FILE="$STACK_DIR/pg.mode"

NATS_DIR="$STACK_DIR/nats"
NATS_DATA="$NATS_DIR/data"
NATS_PID="$NATS_DIR/nats.pid"
NATS_LOG="$NATS_DIR/nats.log"
NATS_OUT="$NATS_DIR/nats.out"   # stdout/stderr of nats-server (early start-up errors)
NATS_PORT_FILE="$STACK_DIR/nats.port"

PROM_DIR="$STACK_DIR/prometheus"
PROM_DATA="$PROM_DIR/data"
PROM_PID="$PROM_DIR/prometheus.pid"
PROM_LOG="$PROM_DIR/prometheus.log"
PROM_CONFIG="$PROM_DIR/prometheus.yml"  # a copy of the CONFIG given to `prometheus`
PROM_PORT_FILE="$STACK_DIR/prometheus.port"

PG_USER=postgres          # system user that runs PostgreSQL when we are root
PORT_MIN=20000
PORT_MAX=32000           # below the ephemeral port range (32768+), see demo.sh

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# Progress goes to stderr; stdout of `up` and `env` is exactly the env file.
log() { printf 'local-stack: %s\n' "$*" >&2; }
warn() { printf 'local-stack: %s\n' "$*" >&2; }
die() { printf 'local-stack: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: deploy/local-stack.sh up|down|status|env|prometheus CONFIG|prometheus-down

  up      start (or reuse) a private PostgreSQL + NATS JetStream for this checkout
          and write var/stack.env (DATABASE_URL, NATS_URL)
  down    stop them and Prometheus (data under var/stack/ is kept), remove var/stack.env
  status  print what runs on which port; non-zero exit when not running
  env     print var/stack.env
  prometheus CONFIG   start Prometheus with CONFIG (or reload a running one); prints PROMETHEUS_URL
  prometheus-down     stop Prometheus

env: DATABASE_URL and NATS_URL both set -> `up` uses them, starts nothing
     STACK_DURABLE=1 -> PostgreSQL keeps fsync/synchronous_commit/full_page_writes on
EOF
}

# ---------------------------------------------------------------- helpers

# Serialise concurrent invocations for the same checkout.
take_lock() {
    mkdir -p "$STACK_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCK_FILE"
        if ! flock -w 120 9; then
            die "another local-stack.sh is busy with $STACK_DIR (lock $LOCK_FILE)"
        fi
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_answers() {
    local port=$1
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" >/dev/null 2>&1
}

# True when nothing listens on port $1 (checked by connecting and, if ss exists, by ss).
port_free() {
    local port=$1
    port_answers "$port" && return 1
    if command -v ss >/dev/null 2>&1; then
        if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
            return 1
        fi
    fi
    return 0
}

# Print a free port in PORT_MIN..PORT_MAX that differs from $1 (may be empty).
pick_port() {
    local avoid=${1:-} port i
    for ((i = 0; i < 200; i++)); do
        port=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % (PORT_MAX - PORT_MIN + 1)))
        [ "$port" = "$avoid" ] && continue
        if port_free "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "could not find a free TCP port in $PORT_MIN-$PORT_MAX on 127.0.0.1"
}

# Previous port from file $1 if it is still free (and not $2), else a new one.
choose_port() {
    local file=$1 avoid=${2:-} old=""
    [ -f "$file" ] && old="$(cat "$file" 2>/dev/null || true)"
    if [[ "$old" =~ ^[0-9]+$ ]] && [ "$old" != "$avoid" ] && port_free "$old"; then
        echo "$old"
    else
        pick_port "$avoid"
    fi
}

# pid is alive (and, when /proc is there, its command name contains $2)
pid_alive() {
    local pid=$1 name=${2:-}
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # a killed process may linger as a zombie until it is reaped
    if [ -r "/proc/$pid/stat" ]; then
        local stat
        stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
        stat="${stat##*) }"
        case "${stat%% *}" in Z | X | "") return 1 ;; esac
    fi
    if [ -n "$name" ] && [ -r "/proc/$pid/comm" ]; then
        grep -q "$name" "/proc/$pid/comm" 2>/dev/null || return 1
    fi
    return 0
}

read_port() { # file -> port or empty
    local p=""
    [ -f "$1" ] && p="$(cat "$1" 2>/dev/null || true)"
    if [[ "$p" =~ ^[0-9]+$ ]]; then echo "$p"; fi
}

# ---------------------------------------------------------------- installing

APT_UPDATED=0
SUDO=()

apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "cannot install $* automatically (no apt-get); install it yourself, or set DATABASE_URL and NATS_URL"
    if [ "$IS_ROOT" -ne 1 ] && [ "${#SUDO[@]}" -eq 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "need to install $* but am neither root nor is sudo available; install it yourself, or set DATABASE_URL and NATS_URL"
        SUDO=(sudo)
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
        die "apt-get install $* failed"
}

PG_BIN=""
find_pg_bin() {
    local d best=""
    if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ] && [ -x "$PG_BINDIR/pg_ctl" ]; then
        PG_BIN="$PG_BINDIR"
        return 0
    fi
    while IFS= read -r d; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && best="$d"
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [ -n "$best" ] || return 1
    PG_BIN="$best"
}

NATS_BIN=""
find_nats_bin() {
    if command -v nats-server >/dev/null 2>&1; then
        NATS_BIN="$(command -v nats-server)"
    elif [ -x /usr/sbin/nats-server ]; then
        NATS_BIN=/usr/sbin/nats-server
    elif [ -x /usr/local/bin/nats-server ]; then
        NATS_BIN=/usr/local/bin/nats-server
    else
        return 1
    fi
}

ensure_binaries() {
    local pkgs=()
    find_pg_bin || pkgs+=(postgresql)
    find_nats_bin || pkgs+=(nats-server)
    command -v xmllint >/dev/null 2>&1 || pkgs+=(libxml2-utils)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        apt_install "${pkgs[@]}"
    fi
    find_pg_bin || die "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin"
    find_nats_bin || die "nats-server not found (looked on PATH and in /usr/sbin)"
    command -v xmllint >/dev/null 2>&1 || warn "xmllint still missing (package libxml2-utils)"
}

# ---------------------------------------------------------------- PostgreSQL

# Run a command as the PostgreSQL owner: the postgres system user when we are root.
as_pg() {
    if [ "$IS_ROOT" -eq 1 ]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$PG_USER" -- "$@")
        else
            local cmd
            cmd="$(printf '%q ' "$@")"
            (cd / && su "$PG_USER" -s /bin/sh -c "$cmd")
        fi
    else
        "$@"
    fi
}

# As root: give the pg tree to the postgres user and make sure it can reach it.
prepare_pg_dirs() {
    mkdir -p "$PG_DIR" "$PG_RUN"
    if [ "$IS_ROOT" -ne 1 ]; then
        chmod 700 "$PG_RUN"
        return 0
    fi
    getent passwd "$PG_USER" >/dev/null 2>&1 ||
        die "running as root, but there is no '$PG_USER' system user to run PostgreSQL (PostgreSQL refuses to run as root); install the 'postgresql' package or run as a normal user"
    # var/ and var/stack/ are ours: make them traversable.
    chmod o+x "$VAR_DIR" "$STACK_DIR"
    chown -R "$PG_USER:" "$PG_DIR"
    chmod 700 "$PG_RUN"
    # Every parent directory must be traversable by the postgres user.
    if ! as_pg test -x "$PG_DIR" -a -w "$PG_DIR"; then
        # find the first directory, from / down, that it cannot traverse
        local d="" part rest="${PG_DIR#/}"
        while [ -n "$rest" ]; do
            part="${rest%%/*}"
            [ "$part" = "$rest" ] && rest="" || rest="${rest#*/}"
            d="$d/$part"
            if ! as_pg test -x "$d"; then
                die "the '$PG_USER' user cannot traverse $d, so it cannot reach $PG_DIR (PostgreSQL refuses to run as root, so it runs as '$PG_USER'). Fix with e.g. 'chmod o+x $d', put the checkout somewhere else, run as a normal user, or set DATABASE_URL and NATS_URL to use external services."
            fi
        done
        die "the '$PG_USER' user cannot write $PG_DIR"
    fi
}

pg_pid() {
    [ -f "$PG_DATA/postmaster.pid" ] || return 1
    local pid
    pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
    pid_alive "$pid" postgres || return 1
    echo "$pid"
}

pg_running() { # -> 0 when the postmaster is alive and answers on its recorded port
    local port
    port="$(read_port "$PG_PORT_FILE")"
    [ -n "$port" ] && pg_pid >/dev/null && port_answers "$port"
}

pg_durable_mode() { [ "${STACK_DURABLE:-}" = "1" ] && echo durable || echo fast; }

pg_initdb() {
    [ -f "$PG_DATA/PG_VERSION" ] && return 0
    local locale=C
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        locale=C.UTF-8
    fi
    log "initdb $PG_DATA (locale $locale)"
    rm -rf "$PG_DATA"
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale="$locale" --no-sync \
        >"$PG_DIR/initdb.log" 2>&1; then
        if [ "$locale" != C ]; then
            warn "initdb with locale $locale failed, retrying with locale C"
            rm -rf "$PG_DATA"
            as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
                >"$PG_DIR/initdb.log" 2>&1 || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
        else
            tail -n 20 "$PG_DIR/initdb.log" >&2
            die "initdb failed (log: $PG_DIR/initdb.log)"
        fi
    fi
}

pg_start() { # port
    local port=$1 opts sockdir="$PG_RUN"
    # Unix socket paths are limited to 107 bytes; without room we only use TCP.
    if [ $(( ${#PG_RUN} + 20 )) -gt 107 ]; then
        warn "path $PG_RUN is too long for a unix socket; PostgreSQL listens on TCP only"
        sockdir=""
    fi
    opts="-p $port -k '$sockdir' -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=256MB"
    if [ "$(pg_durable_mode)" = fast ]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    if [ -f "$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo "$PG_BIN/../lib")/pg_stat_statements.so" ]; then
        opts="$opts -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"
    fi
    # A postmaster.pid left by a crash or reboot whose pid is dead would block the start.
    # Same for socket lock files in our private socket dir (their pid may be a
    # killed postmaster that has not been reaped yet, which PostgreSQL takes as alive).
    if ! pg_pid >/dev/null; then
        rm -f "$PG_DATA/postmaster.pid" "$PG_RUN"/.s.PGSQL.*
    fi
    # fd 9 (the lock) must not leak into the daemon
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 start -l "$PG_LOG" -o "$opts" >/dev/null 2>&1 9>&-
}

pg_stop() {
    [ -f "$PG_DATA/PG_VERSION" ] || return 0
    if pg_pid >/dev/null; then
        if [ -n "$PG_BIN" ] || find_pg_bin; then
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 stop -m fast >/dev/null 2>&1 ||
                warn "pg_ctl stop failed (log: $PG_LOG)"
        else
            kill -INT "$(pg_pid)" 2>/dev/null || true
        fi
        log "PostgreSQL stopped"
    fi
}

pg_up() {
    local avoid=$1 port mode attempt
    mode="$(pg_durable_mode)"
    if pg_running; then
        port="$(read_port "$PG_PORT_FILE")"
        if [ "$(cat "$PG_MODE_FILE" 2>/dev/null || true)" = "$mode" ]; then
            log "PostgreSQL already running on 127.0.0.1:$port (pid $(pg_pid), $mode), reusing it"
            PG_PORT=$port
            return 0
        fi
        log "PostgreSQL runs in another durability mode; restarting it as $mode on port $port"
        pg_stop
    elif pg_pid >/dev/null; then
        warn "PostgreSQL runs (pid $(pg_pid)) but does not answer on its port; restarting it"
        pg_stop
    fi
    prepare_pg_dirs
    pg_initdb
    for attempt in 1 2 3; do
        port="$(choose_port "$PG_PORT_FILE" "$avoid")"
        if pg_start "$port" && port_answers "$port"; then
            echo "$port" >"$PG_PORT_FILE"
            echo "$mode" >"$PG_MODE_FILE"
            PG_PORT=$port
            log "PostgreSQL started on 127.0.0.1:$port ($mode; data $PG_DATA)"
            return 0
        fi
        if tail -n 20 "$PG_LOG" 2>/dev/null | grep -qi 'address already in use'; then
            warn "port $port was taken meanwhile, trying another (attempt $attempt)"
            rm -f "$PG_PORT_FILE"
            continue
        fi
        break
    done
    warn "last lines of $PG_LOG:"
    tail -n 20 "$PG_LOG" >&2 2>/dev/null || true
    die "PostgreSQL did not start"
}

# ---------------------------------------------------------------- NATS

nats_pid() {
    [ -f "$NATS_PID" ] || return 1
    local pid
    pid="$(cat "$NATS_PID" 2>/dev/null || true)"
    pid_alive "$pid" nats || return 1
    echo "$pid"
}

nats_running() {
    local port
    port="$(read_port "$NATS_PORT_FILE")"
    [ -n "$port" ] && nats_pid >/dev/null && port_answers "$port"
}

nats_stop() {
    local pid i
    if pid="$(nats_pid)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            warn "nats-server (pid $pid) did not stop in 10 s, killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        log "NATS stopped"
    fi
    rm -f "$NATS_PID"
}

nats_start() { # port -> 0 when it answers
    local port=$1 pid i
    mkdir -p "$NATS_DATA"
    rm -f "$NATS_PID"
    setsid nohup "$NATS_BIN" -a 127.0.0.1 -p "$port" -js -sd "$NATS_DATA" -P "$NATS_PID" -l "$NATS_LOG" \
        </dev/null >>"$NATS_OUT" 2>&1 9>&- &
    pid=$!
    for ((i = 0; i < 200; i++)); do
        if port_answers "$port"; then
            # the pid file is written by nats-server itself; fall back to $!
            [ -s "$NATS_PID" ] || echo "$pid" >"$NATS_PID"
            return 0
        fi
        pid_alive "$pid" || return 1
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    return 1
}

nats_up() {
    local avoid=$1 port attempt
    if nats_running; then
        port="$(read_port "$NATS_PORT_FILE")"
        log "NATS already running on 127.0.0.1:$port (pid $(nats_pid)), reusing it"
        NATS_PORT=$port
        return 0
    fi
    nats_stop # a live process that does not answer, or a stale pid file
    for attempt in 1 2 3; do
        port="$(choose_port "$NATS_PORT_FILE" "$avoid")"
        if nats_start "$port"; then
            echo "$port" >"$NATS_PORT_FILE"
            NATS_PORT=$port
            log "NATS JetStream started on 127.0.0.1:$port (pid $(nats_pid); store $NATS_DATA)"
            return 0
        fi
        if tail -n 20 "$NATS_LOG" "$NATS_OUT" 2>/dev/null | grep -qi 'address already in use'; then
            warn "port $port was taken meanwhile, trying another (attempt $attempt)"
            rm -f "$NATS_PORT_FILE"
            continue
        fi
        break
    done
    warn "last lines of $NATS_LOG and $NATS_OUT:"
    tail -n 20 "$NATS_LOG" "$NATS_OUT" >&2 2>/dev/null || true
    die "nats-server did not answer on 127.0.0.1:$port within 20 s"
}

# ---------------------------------------------------------------- Prometheus (optional)

PROM_BIN=""
find_prometheus_bin() {
    if command -v prometheus >/dev/null 2>&1; then
        PROM_BIN="$(command -v prometheus)"
    elif [ -x /usr/bin/prometheus ]; then
        PROM_BIN=/usr/bin/prometheus
    else
        return 1
    fi
}

prom_pid() {
    [ -f "$PROM_PID" ] || return 1
    local pid
    pid="$(cat "$PROM_PID" 2>/dev/null || true)"
    pid_alive "$pid" prometheus || return 1
    echo "$pid"
}

prom_running() {
    local port
    port="$(read_port "$PROM_PORT_FILE")"
    [ -n "$port" ] && prom_pid >/dev/null && port_answers "$port"
}

prom_stop() {
    local pid i
    if pid="$(prom_pid)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            warn "prometheus (pid $pid) did not stop in 10 s, killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "Prometheus stopped"
    fi
    rm -f "$PROM_PID"
}

# True once Prometheus says it is ready on port $1 (at most 20 s), false when it died.
prom_ready() {
    local port=$1 pid=$2 i
    for ((i = 0; i < 200; i++)); do
        if port_answers "$port" &&
            timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; printf 'GET /-/ready HTTP/1.0\r\n\r\n' >&3; grep -q ' 200 ' <&3" 2>/dev/null; then
            return 0
        fi
        pid_alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

cmd_prometheus() { # config file
    local config=$1 port pid attempt
    [ -f "$config" ] || die "no Prometheus configuration at $config"
    take_lock
    if ! find_prometheus_bin; then
        apt_install prometheus
        find_prometheus_bin || die "prometheus not found after installing the package"
    fi
    mkdir -p "$PROM_DATA"
    # Check before taking it: a running Prometheus would keep its old configuration silently.
    if command -v promtool >/dev/null 2>&1; then
        promtool check config "$config" >"$PROM_DIR/check.out" 2>&1 ||
            { cat "$PROM_DIR/check.out" >&2; die "invalid Prometheus configuration $config"; }
    fi
    cp "$config" "$PROM_CONFIG.tmp.$$" && mv -f "$PROM_CONFIG.tmp.$$" "$PROM_CONFIG"
    if prom_running; then
        port="$(read_port "$PROM_PORT_FILE")"
        kill -HUP "$(prom_pid)"
        log "Prometheus on 127.0.0.1:$port (pid $(prom_pid)) reloads $config"
        echo "PROMETHEUS_URL=http://127.0.0.1:$port"
        return 0
    fi
    prom_stop
    for attempt in 1 2 3; do
        port="$(choose_port "$PROM_PORT_FILE" "")"
        setsid nohup "$PROM_BIN" --config.file="$PROM_CONFIG" --storage.tsdb.path="$PROM_DATA" \
            --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$port" \
            --enable-feature=exemplar-storage \
            </dev/null >>"$PROM_LOG" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PROM_PID"
        if prom_ready "$port" "$pid"; then
            echo "$port" >"$PROM_PORT_FILE"
            log "Prometheus started on 127.0.0.1:$port (pid $pid; data $PROM_DATA; log $PROM_LOG)"
            echo "PROMETHEUS_URL=http://127.0.0.1:$port"
            return 0
        fi
        prom_stop
        if tail -n 20 "$PROM_LOG" 2>/dev/null | grep -qi 'address already in use'; then
            warn "port $port was taken meanwhile, trying another (attempt $attempt)"
            rm -f "$PROM_PORT_FILE"
            continue
        fi
        break
    done
    tail -n 20 "$PROM_LOG" >&2 2>/dev/null || true
    die "Prometheus did not become ready on 127.0.0.1:$port within 20 s"
}

# ---------------------------------------------------------------- commands

write_env() { # database_url nats_url
    local tmp="$ENV_FILE.tmp.$$"
    mkdir -p "$VAR_DIR"
    printf 'DATABASE_URL=%s\nNATS_URL=%s\n' "$1" "$2" >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
    cat "$ENV_FILE"
}

# True when DATABASE_URL/NATS_URL are exactly what our own local stack wrote to
# var/stack.env (e.g. a Makefile that included var/stack.env and exported it):
# they are not external services then, and `up` must (re)start the local stack.
env_is_ours() {
    local pg nats
    pg="$(read_port "$PG_PORT_FILE")"
    nats="$(read_port "$NATS_PORT_FILE")"
    [ -n "$pg" ] && [ -n "$nats" ] || return 1
    [ "$DATABASE_URL" = "postgres://postgres@127.0.0.1:$pg/postgres" ] &&
        [ "$NATS_URL" = "nats://127.0.0.1:$nats" ]
}

cmd_up() {
    if [ -n "${DATABASE_URL:-}" ] && [ -n "${NATS_URL:-}" ] && ! env_is_ours; then
        mkdir -p "$STACK_DIR"
        : >"$EXTERNAL_FLAG"
        log "DATABASE_URL and NATS_URL are set: using external services, starting nothing"
        write_env "$DATABASE_URL" "$NATS_URL"
        return 0
    fi
    take_lock
    rm -f "$EXTERNAL_FLAG"
    ensure_binaries
    mkdir -p "$STACK_DIR"
    PG_PORT="" NATS_PORT=""
    pg_up "$(read_port "$NATS_PORT_FILE")"
    nats_up "$PG_PORT"
    write_env "postgres://postgres@127.0.0.1:$PG_PORT/postgres" "nats://127.0.0.1:$NATS_PORT"
}

cmd_down() {
    if [ ! -d "$STACK_DIR" ]; then
        rm -f "$ENV_FILE"
        log "nothing to stop"
        return 0
    fi
    take_lock
    prom_stop
    nats_stop
    find_pg_bin || true
    pg_stop
    rm -f "$ENV_FILE" "$EXTERNAL_FLAG"
    log "stack is down (data kept in $STACK_DIR)"
}

cmd_status() {
    local ok=0 port
    if [ -f "$EXTERNAL_FLAG" ] && [ -f "$ENV_FILE" ]; then
        echo "external services (from var/stack.env):"
        sed 's/^/  /' "$ENV_FILE"
        return 0
    fi
    port="$(read_port "$PG_PORT_FILE")"
    if pg_running; then
        echo "postgres: running, pid $(pg_pid), 127.0.0.1:$port ($(cat "$PG_MODE_FILE" 2>/dev/null || echo '?'); data $PG_DATA)"
    elif pg_pid >/dev/null 2>&1; then
        echo "postgres: process $(pg_pid) alive but not answering on 127.0.0.1:${port:-?}"
        ok=1
    else
        echo "postgres: not running"
        ok=1
    fi
    port="$(read_port "$NATS_PORT_FILE")"
    if nats_running; then
        echo "nats:     running, pid $(nats_pid), 127.0.0.1:$port (JetStream store $NATS_DATA)"
    elif nats_pid >/dev/null 2>&1; then
        echo "nats:     process $(nats_pid) alive but not answering on 127.0.0.1:${port:-?}"
        ok=1
    else
        echo "nats:     not running"
        ok=1
    fi
    port="$(read_port "$PROM_PORT_FILE")"
    if prom_running; then
        echo "prometheus: running, pid $(prom_pid), http://127.0.0.1:$port (optional; data $PROM_DATA)"
    fi
    if [ -f "$ENV_FILE" ]; then
        echo "env file: $ENV_FILE"
    else
        echo "env file: missing (run: deploy/local-stack.sh up)"
    fi
    return "$ok"
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "$ENV_FILE does not exist; run: deploy/local-stack.sh up"
    cat "$ENV_FILE"
}

# As root, PostgreSQL runs as the postgres user. When that user cannot reach the checkout (a clone
# under /root, say), its cluster lives under /var/tmp instead, with var/stack/pg pointing there.
relocate_pg_if_unreachable() {
    [ "$IS_ROOT" -eq 1 ] || return 0
    getent passwd "$PG_USER" >/dev/null 2>&1 || return 0
    mkdir -p "$STACK_DIR"
    if [ -L "$PG_DIR" ] || ! runuser -u "$PG_USER" -- test -x "$ROOT"; then
        local alt sub=pg
        # Each named stack of the checkout gets its own data directory.
        [ "$STACK_NAME" = stack ] || sub="$STACK_NAME-pg"
        alt="/var/tmp/regiozorg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/$sub"
        mkdir -p "$alt"
        chmod o+x "$(dirname "$alt")"
        [ -L "$PG_DIR" ] || { rm -rf "$PG_DIR"; ln -s "$alt" "$PG_DIR"; }
        log "the '$PG_USER' user cannot reach $ROOT; PostgreSQL data lives in $alt (linked from $PG_DIR)"
        PG_DIR="$alt"
        PG_DATA="$PG_DIR/data"
        PG_RUN="$PG_DIR/run"
        PG_LOG="$PG_DIR/postgres.log"
    fi
}

main() {
    if [ "${1:-}" = prometheus ]; then
        [ $# -eq 2 ] || { usage; exit 2; }
        cmd_prometheus "$2"
        return
    fi
    [ $# -eq 1 ] || { usage; exit 2; }
    case "$1" in up | down | status) relocate_pg_if_unreachable ;; esac
    case "$1" in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        prometheus-down) take_lock; prom_stop ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
