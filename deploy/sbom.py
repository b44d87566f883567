#!/usr/bin/env python3
"""Writes a CycloneDX 1.5 JSON software bill of materials for one regiozorg image: the binary, the
Rust crates compiled into it, and the Debian packages its runtime base was made from.

    deploy/sbom.py --bin registration [--base-files FILE] [--image REF] [-o FILE]

- The crates come from `cargo metadata --format-version 1 --locked --filter-platform <target>`
  (no build; offline when the crates are already downloaded): starting at the package that
  provides the binary, the `resolve` graph is followed through normal dependencies only
  (`dep_kinds` with kind null; no dev- or build-dependencies; only those for the target
  platform). Each crate: name, version, purl `pkg:cargo/<name>@<version>` (crates.io; the
  workspace's own crates have none: they are not published), its `license` field as an SPDX
  expression (old "MIT/Apache-2.0" as "MIT OR Apache-2.0") and the SHA-256 of the .crate file
  from Cargo.lock.
- The Debian packages: FILE lists the build machine's files deploy/images.sh copied into the
  runtime base (the shared objects the binaries link, the CA certificates); each is mapped to its
  package with `dpkg-query -S`, and the package's version and architecture come from
  `dpkg-query -W` (purl `pkg:deb/debian/<name>@<version>?arch=<arch>`). Without FILE (another
  RUNTIME_BASE) the base's packages are not listed; a property says so.
- `metadata.component` is the binary (type application) with its crate's version and licence;
  `dependencies` repeats the resolve graph.

Why a script and not cargo-cyclonedx: that tool would be compiled from crates.io on every fresh
machine (a few minutes and a few hundred crates more for the image build); this needs only
python3, cargo and dpkg-query, which the image build has anyway.

Options: --target (default: rustc's host), --manifest-path (default: the workspace's
Cargo.toml), --metadata FILE (cargo metadata's JSON instead of running cargo), --timestamp
(ISO 8601, UTC; default now; images.sh passes the image's creation time).
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tomllib
import urllib.parse
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def host_target() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.split(": ", 1)[1].strip()
    raise SystemExit("sbom: rustc -vV names no host")


def cargo_metadata(manifest: str, target: str) -> dict:
    base = ["cargo", "metadata", "--format-version", "1", "--locked", "--manifest-path", manifest,
            "--filter-platform", target]
    # offline first: after a build every crate is there, and no index is fetched
    for cmd in (base + ["--offline"], base):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return json.loads(r.stdout)
    raise SystemExit(f"sbom: cargo metadata failed:\n{r.stderr}")


def spdx(expr):
    """The crate's `license` field as an SPDX expression ("MIT/Apache-2.0" is the old form of
    "MIT OR Apache-2.0")."""
    if not expr:
        return None
    return re.sub(r"\s*/\s*", " OR ", expr.strip())


def lock_checksums(manifest: str) -> dict:
    lock = os.path.join(os.path.dirname(os.path.abspath(manifest)), "Cargo.lock")
    with open(lock, "rb") as f:
        data = tomllib.load(f)
    return {(p["name"], p["version"]): p["checksum"] for p in data.get("package", []) if "checksum" in p}


def crate_closure(meta: dict, bin_name: str):
    """(the binary's package, [packages it links], {package id: [dependency ids]})."""
    packages = {p["id"]: p for p in meta["packages"]}
    root = None
    for p in meta["packages"]:
        if p["id"] in meta["workspace_members"] and any(
            t["name"] == bin_name and "bin" in t["kind"] for t in p["targets"]
        ):
            root = p
            break
    if root is None:
        raise SystemExit(f"sbom: no workspace package has a binary '{bin_name}'")
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    edges, seen, todo = {}, {root["id"]}, [root["id"]]
    while todo:
        pid = todo.pop()
        deps = []
        for d in nodes[pid]["deps"]:
            if any(k.get("kind") in (None, "normal") for k in d["dep_kinds"]):
                deps.append(d["pkg"])
                if d["pkg"] not in seen:
                    seen.add(d["pkg"])
                    todo.append(d["pkg"])
        edges[pid] = sorted(set(deps))
    linked = sorted((packages[i] for i in seen if i != root["id"]), key=lambda p: (p["name"], p["version"]))
    return root, linked, edges


def ref_of(p: dict) -> str:
    if p["source"] == CRATES_IO:
        return f"pkg:cargo/{p['name']}@{p['version']}"
    return f"workspace:{p['name']}@{p['version']}"


def crate_component(p: dict, checksums: dict) -> dict:
    c = {"type": "library", "bom-ref": ref_of(p), "name": p["name"], "version": p["version"]}
    if p.get("description"):
        c["description"] = " ".join(p["description"].split())
    lic = spdx(p.get("license"))
    if lic:
        c["licenses"] = [{"expression": lic}]
    if p["source"] == CRATES_IO:
        c["purl"] = ref_of(p)
        sha = checksums.get((p["name"], p["version"]))
        if sha:
            c["hashes"] = [{"alg": "SHA-256", "content": sha}]
    elif p["source"] is None:
        c["properties"] = [{"name": "regiozorg:source", "value": "workspace (not published)"}]
    else:
        c["properties"] = [{"name": "regiozorg:source", "value": p["source"]}]
    if p.get("repository"):
        c["externalReferences"] = [{"type": "vcs", "url": p["repository"]}]
    return c


def deb_packages(files):
    """{package: [files]} of the files' Debian packages (dpkg-query -S; the path as given, then
    with symlinks resolved, for merged /usr)."""
    owners = {}
    for f in files:
        pkgs = None
        for path in dict.fromkeys([f, os.path.realpath(f)]):
            r = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
            if r.returncode == 0:
                for line in r.stdout.splitlines():
                    if line.startswith("diversion by") or ": " not in line:
                        continue
                    names, _ = line.split(": ", 1)
                    pkgs = [n.strip().split(":")[0] for n in names.split(",")]
                    break
            if pkgs:
                break
        if not pkgs and f.startswith("/etc/ssl/certs/"):
            # generated by update-ca-certificates from the package's certificates
            pkgs = ["ca-certificates"]
        if not pkgs:
            print(f"sbom: warning: {f} belongs to no Debian package", file=sys.stderr)
            continue
        for p in pkgs:
            owners.setdefault(p, []).append(f)
    return owners


def deb_component(name: str, files, distro: str) -> dict:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Version}\t${Architecture}\n", name],
        capture_output=True, text=True, check=True,
    )
    pkg, version, arch = r.stdout.splitlines()[0].split("\t")
    purl = f"pkg:deb/debian/{pkg}@{urllib.parse.quote(version, safe='.~-')}?arch={arch}"
    if distro:
        purl += f"&distro={distro}"
    return {
        "type": "library",
        "bom-ref": purl,
        "name": pkg,
        "version": version,
        "purl": purl,
        "properties": [{"name": "regiozorg:file", "value": f} for f in sorted(files)],
    }


def debian_distro() -> str:
    try:
        with open("/etc/debian_version") as f:
            return "debian-" + f.read().strip().split(".")[0]
    except OSError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--base-files")
    ap.add_argument("--image", help="the image's name and tag, recorded as a property")
    ap.add_argument("--target")
    ap.add_argument("--manifest-path", default=os.path.join(ROOT, "Cargo.toml"))
    ap.add_argument("--metadata")
    ap.add_argument("--timestamp")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()

    target = a.target or host_target()
    if a.metadata:
        with open(a.metadata) as f:
            meta = json.load(f)
    else:
        meta = cargo_metadata(a.manifest_path, target)
    root, linked, edges = crate_closure(meta, a.bin)
    checksums = lock_checksums(a.manifest_path)

    components = [crate_component(p, checksums) for p in linked]
    packages = {p["id"]: p for p in meta["packages"]}
    dependencies = [
        {"ref": ref_of(packages[pid]), "dependsOn": [ref_of(packages[d]) for d in deps]}
        for pid, deps in sorted(edges.items(), key=lambda e: ref_of(packages[e[0]]))
    ]

    properties = [
        {"name": "regiozorg:target", "value": target},
        {"name": "regiozorg:crates", "value": "normal dependencies of the binary's package (cargo metadata resolve)"},
    ]
    if a.image:
        properties.append({"name": "regiozorg:image", "value": a.image})
    if a.base_files:
        with open(a.base_files) as f:
            files = [line.strip() for line in f if line.strip()]
        distro = debian_distro()
        debs = [deb_component(n, fs, distro) for n, fs in sorted(deb_packages(files).items())]
        components += debs
        properties.append({"name": "regiozorg:runtime-base",
                           "value": "made by deploy/images.sh from the build machine's Debian packages"})
    else:
        properties.append({"name": "regiozorg:runtime-base",
                           "value": "another image (RUNTIME_BASE): its packages are not listed here"})

    app = {
        "type": "application",
        "bom-ref": f"app:{a.bin}@{root['version']}",
        "name": a.bin,
        "version": root["version"],
        "description": " ".join((root.get("description") or f"regiozorg {a.bin}").split()),
    }
    lic = spdx(root.get("license"))
    if lic:
        app["licenses"] = [{"expression": lic}]
    if root.get("repository"):
        app["externalReferences"] = [{"type": "vcs", "url": root["repository"]}]
    # the binary's package's own edges point at the application
    for d in dependencies:
        if d["ref"] == ref_of(root):
            d["ref"] = app["bom-ref"]

    timestamp = a.timestamp or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "deploy/sbom.py", "group": "regiozorg"}]},
            "component": app,
            "properties": properties,
        },
        "components": components,
        "dependencies": dependencies,
    }
    text = json.dumps(bom, indent=2, ensure_ascii=False) + "\n"
    if a.output:
        tmp = a.output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.output)
        print(f"sbom: {a.output}: {a.bin} {root['version']}, {len(linked)} crates, "
              f"{len(components) - len(linked)} Debian packages")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
