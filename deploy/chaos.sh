#!/usr/bin/env bash
# chaos.sh — the fault-injection run (`make chaos`): care flows and a handover while services,
# nats-server and PostgreSQL are SIGKILLed and restarted; then the invariants are checked.
#
# Usage: deploy/chaos.sh [--short] [--seconds N] [--seed N] [other rz-chaos flags]
#        make chaos [CHAOS_ARGS="--short"]
#
#   --short      the short version (one round of faults, about 30 s, 4 municipalities; about a
#                minute in all on an otherwise idle 2-core machine)
#   --seconds N  faults for at least N seconds, finishing the round (default 150: 6 rounds)
#   --seed N     repeat a run's fault schedule (gaps, downtimes, which access; each run prints its seed)
#   --rate F, --concurrency N, --municipalities M,M, --settle-seconds N: see rz-chaos --help
#
# Environment: BIN (directory of the built binaries, default target/debug), CHAOS_NO_BUILD=1 (do not
# run `cargo build` first; make chaos builds already).
# The run's record: var/chaos/run/result.json, the services' logs var/chaos/run/*.log.
# TLS and identities are on: rz-chaos generates the run's test PKI in var/chaos/run/pki, every
# service serves and calls with mutual TLS and authorises each call, the load calls as the operator,
# the municipality or the provider each call belongs to; rate limits are on, far above the load.
#
# It starts its OWN PostgreSQL cluster and nats-server (JetStream, file store) under var/chaos/ on
# free ports, so it can kill and restart them without touching the shared stack (DATABASE_URL and
# NATS_URL from `make` are not used). Everything it started is stopped at the end, also on failure
# or ctrl-c. The binary (target/debug/rz-chaos, or $BIN) kills and restarts the services
# itself and calls back into this script (`_pg kill|start`, `_nats kill|start`) for the servers.
# Exit status: the binary's (non-zero on any invariant violation).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SELF="$ROOT/deploy/chaos.sh"
CHAOS="$ROOT/var/chaos"
BIN="${BIN:-$ROOT/target/debug}"
PG_USER=postgres
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

log() { printf 'chaos.sh: %s\n' "$*" >&2; }
die() { printf 'chaos.sh: error: %s\n' "$*" >&2; exit 1; }

find_pg_bin() {
    local d best=""
    if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/pg_ctl" ]; then echo "$PG_BINDIR"; return 0; fi
    while IFS= read -r d; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$d"
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    [ -n "$best" ] || best="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
    [ -x "$best/pg_ctl" ] || return 1
    echo "$best"
}

find_nats_bin() {
    command -v nats-server 2>/dev/null && return 0
    for p in /usr/sbin/nats-server /usr/local/bin/nats-server; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

# PostgreSQL refuses to run as root: as root it runs as the postgres user.
as_pg() {
    if [ "$IS_ROOT" -eq 1 ]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        "$@"
    fi
}

port_answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1; }

pick_port() { # below the ephemeral range, like local-stack.sh
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        if ! port_answers "$port" && ! { command -v ss >/dev/null && ss -Htln "sport = :$port" | grep -q .; }; then
            echo "$port"
            return 0
        fi
    done
    die "no free port in 20000-32000"
}

# Where the cluster lives: var/chaos/pg, or under /var/tmp when the postgres user cannot reach
# the checkout (see local-stack.sh). Printed path is recorded in var/chaos/pg.dir.
pg_dir() { cat "$CHAOS/pg.dir"; }

pg_kill() { # SIGKILL the postmaster and every backend, as a crash would
    local data pid kids
    data="$(pg_dir)/data"
    [ -f "$data/postmaster.pid" ] || return 0
    pid="$(head -n1 "$data/postmaster.pid")"
    kill -0 "$pid" 2>/dev/null || return 0
    kids="$(pgrep -P "$pid" || true)"
    kill -KILL "$pid" $kids 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
}

pg_start() {
    local dir port pgbin
    dir="$(pg_dir)"
    port="$(cat "$CHAOS/pg.port")"
    pgbin="$(find_pg_bin)" || die "pg_ctl not found"
    rm -f "$dir/run"/.s.PGSQL.*
    # synchronous_commit stays on: a SIGKILLed server must not lose acknowledged commits. fsync is
    # off (the kernel survives a process kill), so restarts stay fast.
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -w -t 60 start -l "$dir/postgres.log" \
        -o "-p $port -k '$dir/run' -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=on" \
        >/dev/null 2>&1 </dev/null || { tail -n 20 "$dir/postgres.log" >&2; return 1; }
}

pg_stop() {
    local dir pgbin
    [ -f "$CHAOS/pg.dir" ] || return 0
    dir="$(pg_dir)"
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pgbin="$(find_pg_bin)" || return 0
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -w -t 30 stop -m immediate >/dev/null 2>&1 || pg_kill
}

nats_kill() {
    local pid
    pid="$(cat "$CHAOS/nats/nats.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
}

nats_start() {
    local port nats pid
    port="$(cat "$CHAOS/nats.port")"
    nats="$(find_nats_bin)" || die "nats-server not found"
    mkdir -p "$CHAOS/nats/data"
    setsid "$nats" -a 127.0.0.1 -p "$port" -js -sd "$CHAOS/nats/data" -l "$CHAOS/nats/nats.log" \
        </dev/null >>"$CHAOS/nats/nats.out" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$CHAOS/nats/nats.pid"
    for _ in $(seq 1 200); do
        port_answers "$port" && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$CHAOS/nats/nats.log" >&2; return 1; }
        sleep 0.05
    done
    return 1
}

nats_stop() {
    local pid
    pid="$(cat "$CHAOS/nats/nats.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    nats_kill
}

# Callbacks for the binary.
case "${1:-}" in
    _pg)
        case "${2:-}" in kill) pg_kill ;; start) pg_start ;; *) die "_pg kill|start" ;; esac
        exit $?
        ;;
    _nats)
        case "${2:-}" in kill) nats_kill ;; start) nats_start ;; *) die "_nats kill|start" ;; esac
        exit $?
        ;;
esac

ARGS=()
SECONDS_ARG=150
SHORT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --short) SHORT=1; SECONDS_ARG=20; shift ;;
        --seconds) [ $# -ge 2 ] || die "--seconds needs a value"; SECONDS_ARG="$2"; shift 2 ;;
        -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
[[ "$SECONDS_ARG" =~ ^[0-9]+$ ]] || die "--seconds takes a whole number of seconds"
if [ "$SHORT" -eq 1 ]; then
    ARGS=(--municipalities 0222,1859,1876,0197 --clients-per-old-provider 2 --concurrency 2 --settle-seconds 60 "${ARGS[@]}")
fi

PGBIN="$(find_pg_bin)" || die "PostgreSQL binaries not found (deploy/local-stack.sh up installs them)"
find_nats_bin >/dev/null || die "nats-server not found (deploy/local-stack.sh up installs it)"

if [ -z "${CHAOS_NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build -q --bins -p registration -p access -p assignment -p reporting -p notification -p rzctl -p rz-chaos) || die "cargo build failed"
fi
[ -x "$BIN/rz-chaos" ] || die "$BIN/rz-chaos missing (cargo build --workspace --bins)"

CHILD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM "$CHILD" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CHILD" 2>/dev/null || true
    fi
    # services the binary started (it kills them itself unless it was killed)
    for f in "$CHAOS"/run/*.pid; do
        [ -e "$f" ] || continue
        kill -KILL "$(cat "$f")" 2>/dev/null || true
    done
    nats_stop || true
    pg_stop || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh private stack each run.
if [ -f "$CHAOS/pg.dir" ]; then pg_stop || true; fi
if [ -f "$CHAOS/nats/nats.pid" ]; then nats_stop || true; fi
rm -rf "$CHAOS"
mkdir -p "$CHAOS/run" "$CHAOS/nats"
PGDIR="$CHAOS/pg"
if [ "$IS_ROOT" -eq 1 ]; then
    getent passwd "$PG_USER" >/dev/null || die "running as root but there is no '$PG_USER' user to run PostgreSQL"
    chmod o+x "$ROOT/var" "$CHAOS"
    if ! runuser -u "$PG_USER" -- test -x "$CHAOS"; then
        PGDIR="/var/tmp/regiozorg-chaos-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/pg"
        rm -rf "$PGDIR"
        chmod o+x "$(dirname "$PGDIR")" 2>/dev/null || true
    fi
fi
mkdir -p "$PGDIR/run"
[ "$IS_ROOT" -eq 1 ] && chown -R "$PG_USER:" "$PGDIR"
chmod 700 "$PGDIR/run"
echo "$PGDIR" >"$CHAOS/pg.dir"
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
    >"$CHAOS/initdb.log" 2>&1 || { tail -n 20 "$CHAOS/initdb.log" >&2; die "initdb failed"; }
pick_port >"$CHAOS/pg.port"
PG_PORT="$(cat "$CHAOS/pg.port")"
pg_start || die "PostgreSQL did not start (log: $PGDIR/postgres.log)"
NATS_PORT="$(pick_port)"
[ "$NATS_PORT" != "$PG_PORT" ] || NATS_PORT="$(pick_port)"
echo "$NATS_PORT" >"$CHAOS/nats.port"
nats_start || die "nats-server did not start (log: $CHAOS/nats/nats.log)"
log "private PostgreSQL on 127.0.0.1:$PG_PORT, nats-server on 127.0.0.1:$NATS_PORT (state under var/chaos/)"

"$BIN/rz-chaos" \
    --bin-dir "$BIN" --run-dir "$CHAOS/run" \
    --database-url "postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
    --nats-url "nats://127.0.0.1:$NATS_PORT" \
    --seconds "$SECONDS_ARG" \
    --pg-kill "$SELF _pg kill" --pg-start "$SELF _pg start" \
    --nats-kill "$SELF _nats kill" --nats-start "$SELF _nats start" \
    "${ARGS[@]}" &
CHILD=$!
set +e
wait "$CHILD"
RC=$?
set -e
CHILD=""
exit "$RC"
