"""The leader Lease on the real API server: two replicas whose loops both run (each alone in
its own kopf peering group, the worst case of peering resuming a standby) never both
evaluate; when the holder is killed the other takes the Lease over after its duration."""

from __future__ import annotations

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support.operator import logged_cycles
from tests.support.replicas import hot_route, takeover_seconds

pytestmark = pytest.mark.integration

LEASE_SECONDS = 6
LOOP = "timeout-budget-operator-loop"


def test_two_running_loops_one_lease_one_evaluator(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    namespace: str,
) -> None:
    scene = hot_route(control_plane, origin, prometheus, namespace, "lease", "tbo-a", "tbo-b")
    cp, ns = control_plane, namespace
    env = {
        "TBO_OPERATOR_NAMESPACE": ns,
        "TBO_PEERING_SETTLE_SECONDS": "0",
        "TBO_LEADER_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    replicas = {
        group: scene.replica(f"lease-{group}", env, "--peering", group)
        for group in ("tbo-a", "tbo-b")
    }
    try:
        # Both loops run: peering cannot pause either (each is alone in its group).
        for rep in replicas.values():
            kube.wait_for(lambda r=rep: "evaluation loop active" in r.output(), 60, "loop up")
        scene.apply_scaling()
        kube.wait_for(lambda: scene.replicas() >= 3, 90, "scale-up by the holder")
        lease = kube.get_json(cp, "lease", LOOP, "-n", ns)
        holder_id = lease["spec"]["holderIdentity"]
        active = [g for g, r in replicas.items() if logged_cycles(r.log) > 0]
        assert len(active) == 1, f"replicas that evaluated: {active}"
        holder, other = active[0], next(g for g in replicas if g != active[0])
        assert "standing by: the leader lease is held by" in replicas[other].output()
        assert holder_id in replicas[other].output()
        assert logged_cycles(replicas[other].log) == 0

        takeover = takeover_seconds(replicas[holder], replicas[other], 60, "the other takes over")
        print(f"lease taken over {takeover:.1f}s after SIGKILL (lease {LEASE_SECONDS}s)")
        # No sooner than the Lease duration after the last renewal (at most one retry,
        # 0.8 s, before the kill), and without a long wait after it.
        assert takeover >= LEASE_SECONDS - 1
        assert takeover <= LEASE_SECONDS + 30
        lease = kube.get_json(cp, "lease", LOOP, "-n", ns)
        assert lease["spec"]["holderIdentity"] != holder_id
        assert lease["spec"]["leaseTransitions"] == 1
        kube.wait_for(lambda: scene.replicas() == 5, 90, "the new holder scales")

        # A clean stop hands the Lease over: it is released, not left to expire.
        replicas[other].stop()
        lease = kube.get_json(cp, "lease", LOOP, "-n", ns)
        assert not lease["spec"].get("holderIdentity")
    finally:
        for rep in replicas.values():
            rep.stop()
