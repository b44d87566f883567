#!/usr/bin/env python3
"""Checks a rendered overlay (used by validate.sh for the overlays that must be locked down):

- every Namespace it creates enforces the "restricted" Pod Security Standard;
- every namespace with pods of its own (pod templates, Services, CloudNativePG Clusters) has a default-deny NetworkPolicy
  (empty podSelector, policyTypes Ingress AND Egress, no rules) in the same rendering;
- every pod template (Deployment, StatefulSet, Job, CronJob) meets the restricted fields: runAsNonRoot,
  seccomp RuntimeDefault (pod or container), and per container allowPrivilegeEscalation false and
  capabilities drop ALL;
- every Deployment and access instance's egress is limited: each pod-selecting NetworkPolicy's
  egress rule names ports (no "allow all ports").

    policy_check.py RENDERED.yaml
Prints one line with the counts; exits 1 with the problems when any.
"""

import sys

import yaml

# kinds that put pods (or their endpoints) into a namespace, besides pod templates: such a
# namespace must deny by default (the CA Certificate in cert-manager's namespace does not count)
RUNS_PODS = {"Service", "Cluster"}


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return (spec.get("template") or {}).get("spec")
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind == "Pod":
        return spec
    return None


def main() -> int:
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    problems = []
    namespaces = {}
    used = set()
    deny = set()
    pods = 0
    for d in docs:
        kind, meta = d["kind"], d.get("metadata") or {}
        if kind == "Namespace":
            namespaces[meta["name"]] = meta.get("labels") or {}
        elif kind in RUNS_PODS or pod_spec(d) is not None:
            used.add(meta.get("namespace", "<none>"))
        if kind == "NetworkPolicy":
            s = d.get("spec") or {}
            if (s.get("podSelector") in ({}, None) and set(s.get("policyTypes") or []) == {"Ingress", "Egress"}
                    and not s.get("ingress") and not s.get("egress")):
                deny.add(meta.get("namespace", "<none>"))
            for rule in s.get("egress") or []:
                if not rule.get("ports"):
                    problems.append(f"NetworkPolicy {meta.get('namespace')}/{meta['name']}: an egress rule without ports")
        ps = pod_spec(d)
        if ps is not None:
            pods += 1
            where = f"{kind} {meta.get('namespace')}/{meta['name']}"
            psc = ps.get("securityContext") or {}
            if not psc.get("runAsNonRoot"):
                problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
            pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
            for c in (ps.get("initContainers") or []) + (ps.get("containers") or []):
                sc = c.get("securityContext") or {}
                if sc.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{where}: container {c['name']} allowPrivilegeEscalation is not false")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    problems.append(f"{where}: container {c['name']} does not drop ALL capabilities")
                if (sc.get("seccompProfile") or {}).get("type", pod_seccomp) not in ("RuntimeDefault", "Localhost"):
                    problems.append(f"{where}: container {c['name']} has no seccomp profile RuntimeDefault")
    for name, labels in namespaces.items():
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append(f"Namespace {name}: pod security enforce is "
                            f"{labels.get('pod-security.kubernetes.io/enforce')!r}, not restricted")
    for ns in sorted(used - deny):
        problems.append(f"namespace {ns}: no default-deny NetworkPolicy (ingress and egress)")
    if problems:
        for p in problems:
            print(f"policy_check: {sys.argv[1]}: {p}")
        return 1
    print(f"policy_check: {len(namespaces)} namespaces restricted, {len(used)} namespaces default-deny, "
          f"{pods} pod templates restricted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
