#!/usr/bin/env python3
"""Validate custom resources (cert-manager Certificates, Issuers, ...) offline
against the openAPIV3Schema of their CustomResourceDefinitions.

    crd_validate.py CRD_DIR FILE...     validate every document of FILE... whose
                                        group has a CRD in CRD_DIR; print one line
                                        per error, exit 1 if there is any
    crd_validate.py --kinds CRD_DIR     print "<apiVersion> <kind>" per served
                                        version of every CRD in CRD_DIR

Strict like `kubernetes-validate --strict`: an object schema that lists its
properties rejects any other property (the API server would silently prune it),
unless the CRD marks it x-kubernetes-preserve-unknown-fields. `metadata` is
checked for a name and string labels/annotations. CEL rules
(x-kubernetes-validations) are not evaluated. Used by k8s/validate.sh.
"""

import glob
import os
import sys

import jsonschema
import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def strict(schema):
    """The schema with additionalProperties: false wherever properties are listed."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def load_crds(crd_dir):
    """{(apiVersion, kind): schema} for every served version of every CRD."""
    schemas = {}
    files = sorted(glob.glob(os.path.join(crd_dir, "*.yaml")))
    if not files:
        raise SystemExit(f"crd_validate: no CRDs in {crd_dir}")
    for path in files:
        with open(path) as f:
            for crd in yaml.load_all(f, Loader=LOADER):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for v in crd["spec"]["versions"]:
                    if not v.get("served", True):
                        continue
                    schema = strict(v["schema"]["openAPIV3Schema"])
                    schema.setdefault("properties", {})["metadata"] = METADATA
                    schema.setdefault("required", [])
                    for key in ("apiVersion", "kind", "metadata"):
                        if key not in schema["required"]:
                            schema["required"].append(key)
                    schemas[(f"{group}/{v['name']}", kind)] = schema
    return schemas


def main(argv):
    if len(argv) == 2 and argv[0] == "--kinds":
        for api, kind in sorted(load_crds(argv[1])):
            print(api, kind)
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = load_crds(argv[0])
    groups = {api.split("/")[0] for api, _ in schemas}
    errors = 0
    checked = 0
    for path in argv[1:]:
        with open(path) as f:
            docs = list(yaml.load_all(f, Loader=LOADER))
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            name = (doc.get("metadata") or {}).get("name", "?")
            where = f"{path}: {kind} {name}"
            if (api, kind) not in schemas:
                if api.split("/")[0] in groups:
                    print(f"{where}: no CRD serves {kind} in {api}")
                    errors += 1
                continue
            checked += 1
            validator = jsonschema.Draft7Validator(schemas[(api, kind)])
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                field = ".".join(str(p) for p in e.absolute_path) or "(document)"
                print(f"{where}: {field}: {e.message}")
                errors += 1
    if checked and not errors:
        print(f"crd_validate: {checked} custom resource(s) valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
