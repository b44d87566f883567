#!/usr/bin/env bash
# Builds the container images of the services and the operator tool with buildah (no Docker
# daemon: storage driver vfs, isolation chroot, so it also works as root inside a container) into
# OCI archives under var/images/, and checks them:
#
#   deploy/images.sh build    the runtime base, then one image per binary:
#                             var/images/<bin>-<version>.oci.tar, tagged ghcr.io/regiozorg/<bin>:<version>,
#                             and its software bill of materials (CycloneDX 1.5, deploy/sbom.py) next to
#                             it, var/images/<bin>-<version>.cdx.json, and in the image at
#                             /usr/share/doc/regiozorg/sbom.cdx.json
#   deploy/images.sh check    unpacks each archive's filesystem and runs its binary inside it
#                             (chroot, as uid 65532) with --version; also checks the image's user,
#                             labels, its SBOM and that it holds no shell
#   deploy/images.sh all      build, then check (default)
#
# The binaries are taken from target/$PROFILE (default debug; PROFILE=release after
# `cargo build --release`); a missing one is built with `cargo build -p <crate>` first. The runtime
# base is made here from this machine's (Debian's) libraries: exactly the shared objects the
# binaries link (ldd), CA certificates, /etc/passwd and /etc/group with the user 65532 and a /tmp;
# no shell, no package manager (the files taken from this machine are listed in
# var/images/runtime-base.files, from which the SBOM names their Debian packages).
# RUNTIME_BASE=<image> uses another base (e.g. gcr.io/distroless/cc-debian12:nonroot) instead
# (its packages are then not in the SBOM). buildah is installed with apt-get when missing
# (as root; otherwise install the package "buildah" yourself).
#
# Environment: KEEP_STORAGE (keep buildah's storage under var/images/.storage), PROFILE (debug), IMAGES ("registration access assignment notification reporting
# rzctl"), REGISTRY (ghcr.io/regiozorg), OUT (var/images), RUNTIME_BASE (made here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
PROFILE="${PROFILE:-debug}"
IMAGES="${IMAGES:-registration access assignment notification reporting rzctl}"
REGISTRY="${REGISTRY:-ghcr.io/regiozorg}"
OUT="${OUT:-$ROOT/var/images}"
STORE="$OUT/.storage"
CONTAINERFILE="$ROOT/deploy/images/Containerfile"

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

B() { buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run" "$@"; }

ensure_buildah() {
    command -v buildah >/dev/null 2>&1 && return 0
    [ "$(id -u)" -eq 0 ] || die "buildah is missing: install the package 'buildah' (apt-get install buildah)"
    say "installing buildah with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah >/dev/null
    }
    command -v buildah >/dev/null 2>&1 || die "buildah still missing after apt-get install"
}

# the crate's version (Cargo.toml, through cargo metadata: no build)
version_of() { # bin
    cargo metadata --no-deps --format-version 1 --offline 2>/dev/null | python3 -c '
import json, sys
bin = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"] and t["name"] == bin:
            print(p["name"], p["version"]); sys.exit(0)
sys.exit(1)' "$1"
}

# ---------------------------------------------------------------- the runtime base
make_base() { # binaries... -> prints the base image name
    local rootfs="$OUT/.base-rootfs" deb tag f
    rm -rf "$rootfs"
    mkdir -p "$rootfs"/{etc/ssl/certs,tmp,usr/local/bin}
    chmod 1777 "$rootfs/tmp"
    # every shared object the binaries need, at the path the loader looks for it
    : >"$OUT/runtime-base.files"
    for f in $(ldd "$@" | awk '/=> \// {print $3} /^\s*\/.*ld-linux/ {print $1}' | sort -u); do
        mkdir -p "$rootfs$(dirname "$f")"
        cp -L "$f" "$rootfs$f"
        printf '%s\n' "$f" >>"$OUT/runtime-base.files"
    done
    cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    printf '%s\n' /etc/ssl/certs/ca-certificates.crt >>"$OUT/runtime-base.files"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
    printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    deb="$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo unknown)"
    tag="localhost/regiozorg-runtime:debian$deb"
    local c
    c="$(B from --pull=never scratch)"
    B copy "$c" "$rootfs/" / >/dev/null
    B config --user 65532:65532 \
        --label org.opencontainers.image.title=regiozorg-runtime \
        --label org.opencontainers.image.description="glibc, libgcc_s and CA certificates from Debian $deb; no shell" \
        --label org.opencontainers.image.licenses="LGPL-2.1-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1 AND MPL-2.0" \
        "$c"
    B commit --quiet --rm "$c" "$tag" >/dev/null
    rm -rf "$rootfs"
    printf '%s\n' "$tag"
}

build() {
    ensure_buildah
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
    mkdir -p "$OUT" "$STORE"
    local bin crate version ctx base basefiles="" revision created sbom c bins=()
    for bin in $IMAGES; do
        read -r crate version < <(version_of "$bin") || die "no binary '$bin' in the workspace"
        if [ ! -x "target/$PROFILE/$bin" ]; then
            say "building $bin (cargo build -p $crate${PROFILE:+, profile $PROFILE})"
            if [ "$PROFILE" = debug ]; then cargo build -q -p "$crate" --bin "$bin"
            else cargo build -q --profile "$PROFILE" -p "$crate" --bin "$bin"; fi
        fi
        bins+=("target/$PROFILE/$bin")
    done
    base="${RUNTIME_BASE:-}"
    if [ -z "$base" ]; then
        base="$(make_base "${bins[@]}")"
        basefiles="$OUT/runtime-base.files"
        say "runtime base $base (made from this machine's libraries)"
    fi
    revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # a small build context: only the binaries (the repository's target/ is gigabytes)
    ctx="$OUT/.context"
    rm -rf "$ctx"
    mkdir -p "$ctx/target/$PROFILE"
    for bin in $IMAGES; do
        read -r crate version < <(version_of "$bin")
        ln -f "target/$PROFILE/$bin" "$ctx/target/$PROFILE/$bin" 2>/dev/null ||
            cp "target/$PROFILE/$bin" "$ctx/target/$PROFILE/$bin"
        say "image $REGISTRY/$bin:$version"
        B build --quiet --isolation chroot --pull=never --layers=false \
            -f "$CONTAINERFILE" --target "$bin" \
            --build-arg RUNTIME_BASE="$base" --build-arg BINARIES=prebuilt \
            --build-arg BIN="$bin" --build-arg PROFILE="$PROFILE" \
            --build-arg VERSION="$version" --build-arg REVISION="$revision" \
            --build-arg CREATED="$created" \
            -t "$REGISTRY/$bin:$version" "$ctx" >/dev/null
        # its software bill of materials: next to the archive, and in the image (one more layer)
        sbom="$OUT/$bin-$version.cdx.json"
        python3 "$ROOT/deploy/sbom.py" --bin "$bin" --image "$REGISTRY/$bin:$version" \
            --timestamp "$created" ${basefiles:+--base-files "$basefiles"} -o "$sbom" >/dev/null
        c="$(B from --pull=never "$REGISTRY/$bin:$version")"
        B copy --chmod 0444 "$c" "$sbom" /usr/share/doc/regiozorg/sbom.cdx.json >/dev/null
        B commit --quiet --rm "$c" "$REGISTRY/$bin:$version" >/dev/null
        rm -f "$OUT/$bin-$version.oci.tar"
        B push --quiet "$REGISTRY/$bin:$version" "oci-archive:$OUT/$bin-$version.oci.tar:$REGISTRY/$bin:$version"
        say "  -> ${OUT#"$ROOT"/}/$bin-$version.oci.tar ($(du -h "$OUT/$bin-$version.oci.tar" | cut -f1)), ${sbom#"$ROOT"/}"
    done
    rm -rf "$ctx"
    # buildah's vfs storage holds a full copy of every layer (about 1 GB for the six debug
    # images): the archives are the result, so it goes unless KEEP_STORAGE is set
    [ -n "${KEEP_STORAGE:-}" ] || rm -rf "$STORE"
}

# ---------------------------------------------------------------- the check
check() {
    [ "$(id -u)" -eq 0 ] || die "the check needs root (chroot)"
    local bin crate version archive fails=0 n=0
    for bin in $IMAGES; do
        read -r crate version < <(version_of "$bin")
        archive="$OUT/$bin-$version.oci.tar"
        [ -f "$archive" ] || { say "FAILED $bin: no $archive (run deploy/images.sh build)"; fails=$((fails + 1)); continue; }
        if python3 "$ROOT/deploy/images/check_image.py" "$archive" "$bin" "$version"; then
            n=$((n + 1))
        else
            fails=$((fails + 1))
        fi
    done
    if [ "$fails" -ne 0 ]; then
        say "check FAILED: $fails image(s)"
        exit 1
    fi
    say "check passed: $n image(s)"
}

case "${1:-all}" in
    build) build ;;
    check) check ;;
    all) build; check ;;
    *) die "usage: deploy/images.sh [build|check|all]" ;;
esac
