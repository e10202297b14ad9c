"""The sandbox's control plane behaves like a cluster: Deployments get Running pods on
KWOK nodes, RBAC is enforced, and service-account tokens can be requested."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from sandbox.controlplane import ControlPlane, kubeconfig_dict
from tests.support import kube
from tests.support.objects import deployment

pytestmark = pytest.mark.integration


def running_pods(cp: ControlPlane, namespace: str, app: str) -> int:
    pods = kube.get_json(cp, "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return sum(
        1
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    )


def test_nodes_are_ready(control_plane: ControlPlane) -> None:
    nodes = kube.get_json(control_plane, "nodes")["items"]
    assert len(nodes) == 3
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready
        assert ready[0]["status"] == "True"


def test_deployment_scaled_to_three_gets_three_running_pods(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    cp.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input_text=json.dumps(deployment("web", 1, container="app")),
    )
    kube.wait_for(lambda: running_pods(cp, namespace, "web") == 1, 60, "1 running pod")
    cp.kubectl("scale", "deployment/web", "-n", namespace, "--replicas=3")
    kube.wait_for(lambda: running_pods(cp, namespace, "web") == 3, 60, "3 running pods")
    dep = kube.get_json(cp, "deployment", "web", "-n", namespace)
    assert dep["status"]["readyReplicas"] == 3
    pods = kube.get_json(cp, "pods", "-n", namespace, "-l", "app=web")["items"]
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)
    cp.kubectl("scale", "deployment/web", "-n", namespace, "--replicas=1")
    kube.wait_for(lambda: running_pods(cp, namespace, "web") == 1, 60, "scale back to 1")


def test_token_request_works_and_rbac_is_enforced(
    control_plane: ControlPlane, namespace: str, tmp_path: object
) -> None:
    cp = control_plane
    token = cp.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2  # a signed JWT
    cfg = kubeconfig_dict(cp.server, cp.pki / "ca.crt", token, "default-sa")
    path = cp.workdir / f"sa-{namespace}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    result = subprocess.run(
        [str(cp.binaries.kubectl), f"--kubeconfig={path}", "get", "secrets", "-n", namespace],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "forbidden" in result.stderr
    assert f"system:serviceaccount:{namespace}:default" in result.stderr
    who = subprocess.run(
        [str(cp.binaries.kubectl), f"--kubeconfig={path}", "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{namespace}:default"
    )
