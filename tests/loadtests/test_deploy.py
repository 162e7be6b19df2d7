"""The Kubernetes manifests agree with each other and with the scenarios they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loadtests.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def option(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}="))


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_one_worker_deployment_per_region_pointing_at_the_master() -> None:
    docs = documents()
    master = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] ==
                  "locust-master")
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] ==
                   "locust-master")
    pod_labels = master["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    args = master["spec"]["template"]["spec"]["containers"][0]["args"]
    scenario = load_scenario(ROOT / args[1].removeprefix("/app/"))
    workers = [d for d in docs if d["kind"] == "Deployment" and
               d["metadata"]["name"].startswith("locust-worker-")]
    regions = {}
    for worker in workers:
        container = worker["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        region = env["PITCHEY_LOAD_REGION"]
        assert worker["metadata"]["labels"]["pitchey.io/region"] == region
        assert option(container["args"], "master-host") == service["metadata"]["name"]
        assert option(container["args"], "master-port") == option(args, "master-port")
        assert str(service["spec"]["ports"][0]["port"]) == option(args, "master-port")
        assert (ROOT / container["args"][1].removeprefix("/app/")).exists()
        regions[region] = worker["spec"]["replicas"]
    assert set(regions) == set(scenario.regions)
    assert sum(regions.values()) == int(option(args, "external-workers"))
    total_weight = sum(scenario.regions.values())
    for region, replicas in regions.items():  # workers follow the region weights
        assert replicas / sum(regions.values()) == scenario.regions[region] / total_weight
