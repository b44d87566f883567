#!/usr/bin/env bash
# Checks the Prometheus files of deploy/prometheus:
#   1. `promtool check rules` on every rules file (rules/*.yml but the *_test.yml),
#   2. `promtool test rules` on every rules/*_test.yml (each alert's unit tests),
#   3. `promtool check config` on prometheus.yml as the demo fills it in,
#   4. k8s/base/observability/prometheusrule.yaml carries exactly the groups of rules/regiozorg.yml
#      (`check.sh --write` regenerates it after a change of the rules).
# promtool comes with Debian's package `prometheus`, installed here with apt-get when missing.
#
#   deploy/prometheus/check.sh [--write]
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$DIR/../.." && pwd -P)"
RULE="$ROOT/k8s/base/observability/prometheusrule.yaml"
say() { printf 'prometheus-check: %s\n' "$*"; }

if ! command -v promtool >/dev/null 2>&1; then
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    say "installing the Debian package prometheus (for promtool)"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# The PrometheusRule for the operator: the rules file's groups under spec.
render_rule() {
    python3 - "$DIR/rules/regiozorg.yml" <<'PY'
import sys, yaml
groups = yaml.safe_load(open(sys.argv[1]))["groups"]
def text(dumper, data):  # multi-line expressions as literal blocks, as in the rules file
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)
yaml.SafeDumper.add_representer(str, text)
print("# Generated from deploy/prometheus/rules/regiozorg.yml by deploy/prometheus/check.sh --write;")
print("# edit the rules file (and its tests, rules/regiozorg_test.yml), then regenerate this one.")
print(yaml.safe_dump({
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {
        "name": "regiozorg",
        "namespace": "regiozorg",
        "labels": {"app.kubernetes.io/part-of": "regiozorg"},
    },
    "spec": {"groups": groups},
}, sort_keys=False, width=120), end="")
PY
}

if [ "${1:-}" = "--write" ]; then
    render_rule >"$RULE"
    say "wrote $RULE"
fi

rules=() tests=()
for f in "$DIR"/rules/*.yml; do
    case "$f" in *_test.yml) tests+=("$f") ;; *) rules+=("$f") ;; esac
done
promtool check rules "${rules[@]}"
(cd "$DIR/rules" && promtool test rules "${tests[@]}")

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo '[{"targets": ["127.0.0.1:9464"], "labels": {"job": "registration"}}]' >"$work/targets.json"
sed -e "s|@RULES@|$DIR/rules|" -e "s|@TARGETS@|$work/targets.json|" "$DIR/prometheus.yml" >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml"

if ! diff -u "$RULE" <(render_rule) >"$work/rule.diff"; then
    cat "$work/rule.diff"
    say "FAILED: $RULE differs from deploy/prometheus/rules/regiozorg.yml (run deploy/prometheus/check.sh --write)"
    exit 1
fi
say "ok: ${#rules[@]} rules file(s), ${#tests[@]} test file(s), the demo's configuration and the PrometheusRule"
