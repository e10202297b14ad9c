"""``spec.chain.sync`` on the real API server: the operator raises the route's Ingress
read timeout with server-side apply under its own field manager, owns exactly the fields it
wrote (so a GitOps tool can ignore them), and gives the original back exactly when sync is
removed and when the route is deleted."""

from __future__ import annotations

import json

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from tests.support import kube
from tests.support.objects import (
    HOST,
    apply,
    budget,
    chain_of,
    deployment,
    event_reasons,
    ingress,
    status_of,
)
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.integration

NS_PREFIX = "csync"
READ_TIMEOUT = "nginx.ingress.kubernetes.io/proxy-read-timeout"
ORIGINAL = "timeoutbudget.io/original-proxy-read-timeout"
OWNER = "timeoutbudget.io/owner"
GITOPS = "argocd-controller"


def annotations(cp: ControlPlane, ns: str, name: str) -> dict[str, str]:
    out = cp.kubectl("get", "ingress", name, "-n", ns, "-o", "json").stdout
    notes: dict[str, str] = json.loads(out)["metadata"].get("annotations") or {}
    return notes


def owned_by(cp: ControlPlane, ns: str, name: str, manager: str) -> set[str]:
    """The annotation keys ``manager`` owns, from ``managedFields``."""
    out = cp.kubectl("get", "ingress", name, "-n", ns, "--show-managed-fields", "-o", "json")
    owned: set[str] = set()
    for entry in json.loads(out.stdout)["metadata"]["managedFields"]:
        if entry["manager"] == manager:
            fields = entry.get("fieldsV1", {}).get("f:metadata", {}).get("f:annotations", {})
            owned |= {key.removeprefix("f:") for key in fields if key != "."}
    return owned


def test_the_ingress_is_raised_owned_exactly_and_given_back(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    origin.set_route("report", p95=10.0, rps=20, host=HOST)
    # The Ingress as a GitOps tool applies it: its own field manager owns the 60 s.
    cp.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={GITOPS}",
        "-n",
        ns,
        "-f",
        "-",
        input_text=json.dumps(ingress("report", "/report", "60")),
    )
    synced = budget("report", "report", chain={"sync": {"ingressName": "report"}})
    apply(cp, ns, deployment("report", 1), synced)
    key = f"{ns}/report"
    kube.wait_for(lambda: annotations(cp, ns, "report").get(READ_TIMEOUT) == "121", 60, "the raise")
    assert annotations(cp, ns, "report")[ORIGINAL] == "60"
    assert annotations(cp, ns, "report")[OWNER] == key
    assert owned_by(cp, ns, "report", "timeout-budget-operator") == {READ_TIMEOUT, ORIGINAL, OWNER}
    assert owned_by(cp, ns, "report", GITOPS) == set()  # taken over, the field alone
    kube.wait_for(
        lambda: (
            chain_of(cp, ns, "report") == [("cloudflare", 120, "Ok"), ("ingress-nginx", 121, "Ok")]
        ),
        60,
        "a consistent chain",
    )
    assert "HopTimeoutSet" in event_reasons(cp, ns, "report")

    # The chain removed from the spec: the 60 s comes back, the bookkeeping goes.
    apply(cp, ns, budget("report", "report"))
    kube.wait_for(lambda: annotations(cp, ns, "report").get(READ_TIMEOUT) == "60", 60, "given back")
    assert ORIGINAL not in annotations(cp, ns, "report")
    assert OWNER not in annotations(cp, ns, "report")

    # Sync on again, then the route deleted: the finalizer gives the 60 s back.
    apply(cp, ns, synced)
    kube.wait_for(
        lambda: annotations(cp, ns, "report").get(READ_TIMEOUT) == "121", 60, "raised again"
    )
    assert annotations(cp, ns, "report")[ORIGINAL] == "60"
    cp.kubectl("delete", "tb", "report", "-n", ns, "--timeout=60s")
    notes = annotations(cp, ns, "report")
    assert notes.get(READ_TIMEOUT) == "60"
    assert ORIGINAL not in notes
    assert OWNER not in notes


def test_an_ingress_the_route_does_not_name_is_never_written(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    origin.set_route("upload", p95=10.0, rps=20, host=HOST)
    apply(cp, ns, ingress("upload", "/upload", "60"))
    wrong = budget("upload", "upload", chain={"sync": {"ingressName": "elsewhere"}})
    apply(cp, ns, deployment("upload", 1), wrong)
    kube.wait_for(
        lambda: "not Ingress elsewhere: nothing written" in json.dumps(status_of(cp, ns, "upload")),
        60,
        "the refusal in status",
    )
    notes = annotations(cp, ns, "upload")
    assert {k: v for k, v in notes.items() if not k.startswith("kubectl.kubernetes.io/")} == {
        READ_TIMEOUT: "60"
    }
