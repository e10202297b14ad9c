"""The leader Lease on the real API server: two replicas whose loops both run (each alone in
its own kopf peering group, the worst case of peering resuming a standby) never both
evaluate; when the holder is killed the other takes the Lease over after its duration."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support.objects import budget, deployment, spec_replicas
from tests.support.operator import OperatorProcess, logged_cycles

pytestmark = pytest.mark.integration

LEASE_SECONDS = 6
LOOP = "timeout-budget-operator-loop"


def test_two_running_loops_one_lease_one_evaluator(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    namespace: str,
) -> None:
    cp, ns = control_plane, namespace
    kube.kopf_peerings(cp, ns, "tbo-a", "tbo-b")
    origin.set_route("lease", p95=110.0, rps=40, host="api.example.com")
    env = {
        "TBO_OPERATOR_NAMESPACE": ns,
        "TBO_PEERING_SETTLE_SECONDS": "0",
        "TBO_LEADER_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    logs = cp.workdir / "logs"
    replicas = {
        group: OperatorProcess(
            cp,
            prometheus.url,
            [ns],
            logs / f"operator-lease-{group}.log",
            1.0,
            env,
            extra_args=["--peering", group],
        )
        for group in ("tbo-a", "tbo-b")
    }
    try:
        # Both loops run: peering cannot pause either (each is alone in its group).
        for rep in replicas.values():
            kube.wait_for(lambda r=rep: "evaluation loop active" in r.output(), 60, "loop up")
        lb = budget("lease", "lease")
        lb["spec"]["origin"]["maxReplicas"] = 5
        lb["spec"]["origin"]["scaleUpCooldownSeconds"] = 3
        for obj in (deployment("lease", 1), lb):
            cp.kubectl("apply", "-n", ns, "-f", "-", input_text=json.dumps(obj))
        kube.wait_for(lambda: spec_replicas(cp, ns, "lease") >= 3, 90, "scale-up by the holder")
        lease = kube.get_json(cp, "lease", LOOP, "-n", ns)
        holder_id = lease["spec"]["holderIdentity"]
        active = [g for g, r in replicas.items() if logged_cycles(r.log) > 0]
        assert len(active) == 1, f"replicas that evaluated: {active}"
        holder, other = active[0], next(g for g in replicas if g != active[0])
        assert "standing by: the leader lease is held by" in replicas[other].output()
        assert holder_id in replicas[other].output()
        assert logged_cycles(replicas[other].log) == 0

        os.killpg(replicas[holder].proc.pid, signal.SIGKILL)
        replicas[holder].proc.wait(timeout=10)
        killed = time.monotonic()
        kube.wait_for(lambda: logged_cycles(replicas[other].log) > 0, 60, "the other takes over")
        takeover = time.monotonic() - killed
        print(f"lease taken over {takeover:.1f}s after SIGKILL (lease {LEASE_SECONDS}s)")
        # No sooner than the Lease duration after the last renewal (at most one retry,
        # 0.8 s, before the kill), and without a long wait after it.
        assert takeover >= LEASE_SECONDS - 1
        assert takeover <= LEASE_SECONDS + 30
        lease = kube.get_json(cp, "lease", LOOP, "-n", ns)
        assert lease["spec"]["holderIdentity"] != holder_id
        assert lease["spec"]["leaseTransitions"] == 1
        kube.wait_for(lambda: spec_replicas(cp, ns, "lease") == 5, 90, "the new holder scales")

        # A clean stop hands the Lease over: it is released, not left to expire.
        replicas[other].stop()
        lease = kube.get_json(cp, "lease", LOOP, "-n", ns)
        assert not lease["spec"].get("holderIdentity")
    finally:
        for rep in replicas.values():
            rep.stop()
