#!/usr/bin/env python3
"""Checks one image in an OCI archive (deploy/images.sh check):

- its config: user 65532:65532, entrypoint /usr/local/bin/<bin>, OCI labels source, version (the
  crate's) and licenses;
- its filesystem (the layers unpacked in order, whiteouts applied): no shell (sh, bash, dash,
  busybox) anywhere;
- its software bill of materials: /usr/share/doc/regiozorg/sbom.cdx.json in the image, CycloneDX
  1.5 JSON whose metadata.component is the binary at this version, the same as the file next to
  the archive (<bin>-<version>.cdx.json, deploy/sbom.py);
- its binary runs from that filesystem alone: `chroot --userspec=65532:65532 <fs>
  /usr/local/bin/<bin> --version` prints "<bin> <version>" (a library missing from the image fails
  here, as the loader finds nothing of the build machine's).

    check_image.py ARCHIVE BIN VERSION
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
SHELLS = {"sh", "bash", "dash", "ash", "busybox", "zsh"}


def blob(outer: tarfile.TarFile, digest: str) -> bytes:
    algo, hexd = digest.split(":", 1)
    f = outer.extractfile(f"blobs/{algo}/{hexd}")
    if f is None:
        raise SystemExit(f"blob {digest} missing")
    return f.read()


def unpack_layer(data: bytes, root: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as layer:
        for m in layer.getmembers():
            name = os.path.normpath(m.name).lstrip("/")
            if name.startswith(".."):
                raise SystemExit(f"layer entry outside the root: {m.name}")
            base = os.path.basename(name)
            parent = os.path.join(root, os.path.dirname(name))
            if base == ".wh..wh..opq":
                for e in os.listdir(parent) if os.path.isdir(parent) else []:
                    p = os.path.join(parent, e)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
                continue
            if base.startswith(".wh."):
                p = os.path.join(parent, base[4:])
                if os.path.lexists(p):
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
                continue
            target = os.path.join(root, name)
            if os.path.lexists(target) and not (m.isdir() and os.path.isdir(target)):
                os.remove(target)
            layer.extract(m, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")


def main() -> int:
    archive, bin_, version = sys.argv[1:4]
    problems = []
    with tarfile.open(archive) as outer:
        index = json.loads(blob_index(outer))
        manifest = json.loads(blob(outer, index["manifests"][0]["digest"]))
        config = json.loads(blob(outer, manifest["config"]["digest"]))["config"]
        labels = config.get("Labels") or {}
        if config.get("User") != "65532:65532":
            problems.append(f"user is {config.get('User')!r}, not 65532:65532")
        if config.get("Entrypoint") != [f"/usr/local/bin/{bin_}"]:
            problems.append(f"entrypoint is {config.get('Entrypoint')!r}")
        for key in ("source", "version", "licenses"):
            if not labels.get(f"org.opencontainers.image.{key}"):
                problems.append(f"label org.opencontainers.image.{key} missing")
        if labels.get("org.opencontainers.image.version") != version:
            problems.append(f"label version {labels.get('org.opencontainers.image.version')!r} != {version}")
        root = tempfile.mkdtemp(prefix=f"rz-image-{bin_}-")
        os.chmod(root, 0o755)  # the image's / (mkdtemp makes it 0700: uid 65532 could not enter it)
        try:
            for layer in manifest["layers"]:
                unpack_layer(blob(outer, layer["digest"]), root)
            problems += check_sbom(root, archive, bin_, version)
            files = 0
            for dirpath, _dirs, names in os.walk(root):
                files += len(names)
                for n in names:
                    if n in SHELLS:
                        problems.append(f"shell in the image: {os.path.relpath(os.path.join(dirpath, n), root)}")
            run = subprocess.run(
                [CHROOT, "--userspec=65532:65532", root, f"/usr/local/bin/{bin_}", "--version"],
                capture_output=True, text=True, timeout=60, env={"PATH": "/usr/local/bin"},
            )
            out = run.stdout.strip()
            if run.returncode != 0 or out != f"{bin_} {version}":
                problems.append(
                    f"--version in the image: exit {run.returncode}, stdout {out!r}, stderr {run.stderr.strip()[:300]!r}"
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    size = os.path.getsize(archive) / 1e6
    name = os.path.basename(archive)
    if problems:
        for p in problems:
            print(f"images: FAILED {name}: {p}")
        return 1
    print(
        f"images: ok {name}: {len(manifest['layers'])} layers, {files} files, {size:.1f} MB, "
        f"user 65532:65532, no shell, SBOM, '{out}' from its own filesystem"
    )
    return 0


def check_sbom(root: str, archive: str, bin_: str, version: str) -> list:
    inside = os.path.join(root, "usr/share/doc/regiozorg/sbom.cdx.json")
    beside = archive[: -len(".oci.tar")] + ".cdx.json" if archive.endswith(".oci.tar") else archive + ".cdx.json"
    if not os.path.isfile(inside):
        return ["no SBOM at /usr/share/doc/regiozorg/sbom.cdx.json"]
    try:
        with open(inside, "rb") as f:
            data = f.read()
        bom = json.loads(data)
    except (OSError, ValueError) as e:
        return [f"SBOM in the image: {e}"]
    problems = []
    component = (bom.get("metadata") or {}).get("component") or {}
    if bom.get("bomFormat") != "CycloneDX" or bom.get("specVersion") != "1.5":
        problems.append(f"SBOM is {bom.get('bomFormat')!r} {bom.get('specVersion')!r}, not CycloneDX 1.5")
    if component.get("name") != bin_ or component.get("version") != version:
        problems.append(f"SBOM describes {component.get('name')!r} {component.get('version')!r}")
    if not bom.get("components"):
        problems.append("SBOM lists no components")
    try:
        with open(beside, "rb") as f:
            if f.read() != data:
                problems.append(f"{os.path.basename(beside)} differs from the SBOM in the image")
    except OSError:
        problems.append(f"no {os.path.basename(beside)} next to the archive")
    return problems


def blob_index(outer: tarfile.TarFile) -> bytes:
    f = outer.extractfile("index.json")
    if f is None:
        raise SystemExit("index.json missing")
    return f.read()


if __name__ == "__main__":
    sys.exit(main())
