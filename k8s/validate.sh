#!/usr/bin/env bash
# Validate the Kubernetes manifests under k8s/ offline, against the Kubernetes
# OpenAPI schemas shipped with kubernetes-validate (strict: unknown fields fail)
# and, for custom resources (cert-manager Certificates and Issuers), against the
# CustomResourceDefinitions in K8S_CRDS (default /work/shared/k8s-crds) with
# k8s/crd_validate.py (strict as well). A kind that neither knows fails.
#
#   k8s/validate.sh
#
# 1. every plain manifest file (everything but kustomization.yaml and the Helm
#    values) is validated on its own: each must be a valid standalone manifest;
# 2. every kustomization (base, base/access, overlays, per-municipality access
#    instances) is rendered with `kubectl kustomize` (or `kustomize build`) and
#    the output is validated; the overlays must not contain template placeholders;
#    The overlays that must be locked down (LOCKED_OVERLAYS: achterhoek-namespaced,
#    achterhoek-remote-access, municipality-access) are also checked by policy_check.py: pod
#    security "restricted" enforced on every Namespace, a default-deny NetworkPolicy (ingress and
#    egress) in every namespace with pods, restricted pod templates, no egress rule without ports;
#    every migration Job (label app.kubernetes.io/component=migrate) carries its image's tag in
#    its name (<service>-migrate-<tag, dots as dashes>[-<municipality>]): a Job cannot be changed
#    once created, so each release is a new Job (docs/operations/upgrade-with-migration.md);
# 3. k8s/nats/values*.yaml must parse as YAML (the chart itself is not rendered).
# Components (kind: Component) are checked through a kustomization using them
# (k8s/examples/own-pki).
#
# Kubernetes versions: K8S_VERSIONS (default "1.30.0 latest"; 1.30 is the
# oldest supported, as the preStop `sleep` action needs it).
# kubernetes-validate is installed with pip when missing. Not part of .ci/run.
set -euo pipefail

K8S_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
VERSIONS="${K8S_VERSIONS:-1.30.0 latest}"
CRDS="${K8S_CRDS:-/work/shared/k8s-crds}"
LOCKED_OVERLAYS="${LOCKED_OVERLAYS:-achterhoek-namespaced achterhoek-remote-access municipality-access}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf 'validate: %s\n' "$*"; }
fail=0

# ---------------------------------------------------------------- tools
PY="$(command -v python3 || command -v python || true)"
[ -n "$PY" ] || { say "python3 is required"; exit 1; }

if ! "$PY" -c 'import kubernetes_validate' 2>/dev/null; then
    say "installing kubernetes-validate with pip"
    "$PY" -m pip install --quiet kubernetes-validate 2>/dev/null ||
        "$PY" -m pip install --quiet --user kubernetes-validate 2>/dev/null ||
        "$PY" -m pip install --quiet --break-system-packages kubernetes-validate
fi
kv() { "$PY" -m kubernetes_validate "$@"; }

[ -d "$CRDS" ] || { say "no CRDs at $CRDS (set K8S_CRDS): custom resources cannot be checked"; exit 1; }
# "<apiVersion> <kind>" of every custom resource the CRDs define
"$PY" "$K8S_DIR/crd_validate.py" --kinds "$CRDS" >"$WORK/crd-kinds"

render=""
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    render="kubectl kustomize"
elif command -v kustomize >/dev/null 2>&1; then
    render="kustomize build"
fi

# A migration Job's name must carry its image's tag: a Job's pod template is immutable, so a
# new release (new tag) must be a new Job, and `kubectl apply` of a changed Job would fail.
job_check() { # rendered.yaml
    "$PY" - "$1" <<'PYEOF'
import re, sys, yaml
bad = 0
for d in yaml.safe_load_all(open(sys.argv[1])):
    if not d or d.get("kind") != "Job":
        continue
    meta = d.get("metadata") or {}
    if (meta.get("labels") or {}).get("app.kubernetes.io/component") != "migrate":
        continue
    name = meta["name"]
    for c in d["spec"]["template"]["spec"]["containers"]:
        image = c["image"].split("@")[0]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        want = re.sub(r"[^a-z0-9-]", "-", tag.lower())
        if not tag or not re.search(rf"-migrate-{re.escape(want)}(-|$)", name):
            print(f"validate: FAILED: Job {name}: its name must carry its image's tag "
                  f"(<service>-migrate-{want or '<tag>'}), image {c['image']}")
            bad = 1
    if len(name) > 63:
        print(f"validate: FAILED: Job {name}: longer than 63 characters (its pods' job-name label)")
        bad = 1
sys.exit(bad)
PYEOF
}

crfiles=() # every file checked, for the CRD check (one run, at the end)
validate() { # file...
    local v args line api kind rc
    for v in $VERSIONS; do
        args=(--strict --quiet)
        [ "$v" = latest ] || args+=(-k "$v")
        rc=0
        kv "${args[@]}" "$@" >"$WORK/kv.out" 2>&1 || rc=$?
        # kubernetes-validate only warns about kinds it has no schema for: those
        # must be custom resources of a known CRD (checked at the end), nothing else
        while IFS= read -r line; do
            case "$line" in
                *"Couldn't find schema for kind "*)
                    kind="${line#*find schema for kind }"; kind="${kind%% *}"
                    api="${line#* with api version }"; api="${api%% *}"
                    if ! grep -qxF "$api $kind" "$WORK/crd-kinds"; then
                        say "FAILED: no schema and no CRD for $kind ($api): $*"
                        fail=1
                    fi
                    ;;
                *) [ -z "$line" ] || printf '%s\n' "$line" ;;
            esac
        done <"$WORK/kv.out"
        if [ "$rc" -ne 0 ]; then
            say "FAILED (kubernetes $v): $*"
            fail=1
        fi
    done
    crfiles+=("$@")
}

# ---------------------------------------------------------------- 1. plain files
cd "$K8S_DIR"
n=0
while IFS= read -r f; do
    validate "$f"
    n=$((n + 1))
done < <(find . -name '*.yaml' ! -name kustomization.yaml ! -path './nats/*' | sort)
say "$n plain manifest files checked"

# ---------------------------------------------------------------- 2. kustomizations
if [ -z "$render" ]; then
    say "WARNING: neither kubectl nor kustomize found: kustomizations NOT rendered or checked"
    fail=1
else
    n=0
    while IFS= read -r k; do
        d="$(dirname "$k")"
        out="$WORK/$(echo "${d#./}" | tr '/' '_').yaml"
        if ! $render "$d" >"$out" 2>"$out.err"; then
            say "FAILED to render $d:"
            cat "$out.err" >&2
            fail=1
            continue
        fi
        validate "$out"
        job_check "$out" || fail=1
        case "$d" in
            ./overlays/*)
                # the access template's placeholders must be replaced in every instance
                # (municipality, database Secrets, certificate DNS names and Secret)
                if grep -nE 'value: "0000"|name: access-db(-migrate)?$|secretName: access-tls$|/access-0000/|^ *- access(\.regiozorg(\.svc(\.cluster\.local)?)?)?$' "$out"; then
                    say "FAILED: $d still contains the access template placeholders"
                    fail=1
                fi
                for o in $LOCKED_OVERLAYS; do
                    [ "$d" = "./overlays/$o" ] || continue
                    if pc="$("$PY" "$K8S_DIR/policy_check.py" "$out")"; then
                        say "$d: ${pc#policy_check: }"
                    else
                        printf '%s\n' "$pc"
                        say "FAILED: $d is not locked down"
                        fail=1
                    fi
                done
                ;;
        esac
        n=$((n + 1))
    done < <(find . -name kustomization.yaml | sort | while IFS= read -r k; do
        grep -q '^kind: Component' "$k" || echo "$k"
    done)
    say "$n kustomizations rendered with '$render' and checked"
fi

# ---------------------------------------------------------------- custom resources
if out="$("$PY" "$K8S_DIR/crd_validate.py" "$CRDS" "${crfiles[@]}")"; then
    say "${out#crd_validate: } (CRDs in $CRDS; rendered kustomizations repeat the plain files')"
else
    printf '%s\n' "$out"
    say "FAILED: custom resources do not match the CRDs in $CRDS"
    fail=1
fi

# ---------------------------------------------------------------- 3. helm values
for v in nats/values*.yaml; do
    if "$PY" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$v"; then
        say "$v parses"
    else
        say "FAILED: $v does not parse"
        fail=1
    fi
done

if [ "$fail" -ne 0 ]; then
    say "FAILED"
    exit 1
fi
say "all manifests valid (kubernetes $VERSIONS)"
