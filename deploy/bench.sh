#!/usr/bin/env bash
# make bench: runs rz-bench (release build) against the local stack; it starts the services
# it measures itself (from target/release), prints a table and writes var/bench/result.json.
#
# TLS and identities are on: the services run with mutual TLS, authorisation and rate limits (far
# above the load) on their own test PKI (var/bench/run/pki), and every call is made as the party
# it belongs to. The `tls` section measures what that costs one call (plain, mutual TLS, mutual TLS
# plus the checks, on an in-process server; var/bench/pki), e.g. `BENCH_ARGS="--only tls" make bench`.
#
# Expects DATABASE_URL and NATS_URL (make bench reads them from var/stack.env). Extra arguments,
# or BENCH_ARGS, go to rz-bench, e.g.
#   BENCH_ARGS="--only limits" make bench
#   deploy/bench.sh --only flow,webhook --quick
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
BIN="${BIN:-$ROOT/target/release}"

: "${DATABASE_URL:?set DATABASE_URL (make bench does)}"
: "${NATS_URL:?set NATS_URL (make bench does)}"

if [ ! -x "$BIN/rz-bench" ]; then
    echo "bench: $BIN/rz-bench not built (make bench runs cargo build --release first)" >&2
    exit 1
fi
PGBENCH="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n1 || true)"
mkdir -p "$ROOT/var/bench"

# shellcheck disable=SC2086
exec "$BIN/rz-bench" --bin-dir "$BIN" --work-dir "$ROOT/var/bench" \
    --out "$ROOT/var/bench/result.json" ${PGBENCH:+--pgbench "$PGBENCH"} ${BENCH_ARGS:-} "$@"
