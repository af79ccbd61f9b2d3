"""Offline checks of deploy/k8s: every document against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields fail), KEDA's ScaledObject against the schema in
deploy/schemas, then the rules this project holds its pods to (non-root, read-only root,
no capabilities, requests, probes, secrets only from Secrets, a PDB per scaled workload).

    python deploy/check_manifests.py [deploy/k8s/*.yaml]
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.31.0"  # the oldest release these manifests promise to run on
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): HERE / "schemas" / "keda-scaledobject.json"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|BASIC_AUTH|API_KEY|DATABASE_URL|BROKER_URL|ACCESS_KEY")
MIN_WORKER_GRACE_S = 60  # one segment (60 frames) and its upload on a slow node


def documents(paths: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc if isinstance(doc, dict) else {}


def schema_errors(doc: dict[str, Any]) -> list[str]:
    if not isinstance(doc, dict) or not {"apiVersion", "kind"} <= doc.keys():
        return ["not a Kubernetes object (no apiVersion and kind)"]
    crd = CRD_SCHEMAS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
    try:
        if crd:
            jsonschema.validate(doc, json.loads(crd.read_text()))
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
        return [f"schema: {exc.message} at {'.'.join(map(str, exc.absolute_path)) or '(top)'}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"schema: none for {exc}"]
    return []


def pod_errors(name: str, pod: dict[str, Any]) -> list[str]:
    errors = []
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        errors.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    if pod.get("automountServiceAccountToken") is not False:
        errors.append(f"{name}: automountServiceAccountToken is not false")
    for kind in ("initContainers", "containers"):
        for container in pod.get(kind, []):
            errors += container_errors(
                f"{name}/{container['name']}", container, long_running=kind == "containers"
            )
    return errors


def container_errors(name: str, container: dict[str, Any], *, long_running: bool) -> list[str]:
    errors = []
    context = container.get("securityContext", {})
    if context.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{name}: readOnlyRootFilesystem is not true")
    if context.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{name}: allowPrivilegeEscalation is not false")
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        errors.append(f"{name}: capabilities are not all dropped")
    requests = container.get("resources", {}).get("requests", {})
    if not {"cpu", "memory"} <= requests.keys():
        errors.append(f"{name}: no cpu and memory requests")
    if long_running and not ("readinessProbe" in container and "livenessProbe" in container):
        errors.append(f"{name}: no readiness and liveness probes")
    for env in container.get("env", []):
        if SECRET_NAME.search(env["name"]) and "value" in env:
            errors.append(f"{name}: {env['name']} is written inline, not read from a Secret")
    return errors


def deployment_errors(doc: dict[str, Any], pdbs: set[str]) -> list[str]:
    name = doc["metadata"]["name"]
    pod = doc["spec"]["template"]["spec"]
    errors = pod_errors(name, pod)
    app = doc["spec"]["selector"]["matchLabels"].get("app")
    if "worker" in name and pod.get("terminationGracePeriodSeconds", 30) < MIN_WORKER_GRACE_S:
        errors.append(
            f"{name}: terminationGracePeriodSeconds shorter than a segment ({MIN_WORKER_GRACE_S} s)"
        )
    if "gpu" in name and not any(
        "nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in pod["containers"]
    ):
        errors.append(f"{name}: no nvidia.com/gpu limit")
    if (doc["spec"].get("replicas", 1) > 1 or "worker" in name) and app not in pdbs:
        errors.append(f"{name}: no PodDisruptionBudget selects app={app}")
    return errors


def check(paths: list[Path]) -> list[str]:
    docs = list(documents(paths))
    errors = [
        f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}: {e}"
        for path, doc in docs
        for e in schema_errors(doc)
    ]
    if errors:
        return errors  # the rules below read fields the schemas guarantee
    pdbs = {
        d["spec"]["selector"]["matchLabels"].get("app") for _, d in docs if d["kind"] == "PodDisruptionBudget"
    }
    deployments = {d["metadata"]["name"] for _, d in docs if d["kind"] == "Deployment"}
    for path, doc in docs:
        if doc["kind"] == "Deployment":
            errors += [f"{path.name}: {e}" for e in deployment_errors(doc, pdbs)]
        if doc["kind"] == "ScaledObject" and doc["spec"]["scaleTargetRef"]["name"] not in deployments:
            errors.append(f"{path.name}: ScaledObject targets no Deployment here")
    return errors


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((HERE / "k8s").glob("*.yaml"))
    try:
        errors = check(paths)
    except yaml.YAMLError as exc:
        print(f"deploy/k8s: not YAML: {exc}", file=sys.stderr)
        return 1
    for error in errors:
        print(error, file=sys.stderr)
    count = sum(1 for _ in documents(paths))
    print(f"deploy/k8s: {count} documents, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
