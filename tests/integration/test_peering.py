"""High availability: two operator processes in one kopf peering group, only one acts; when
the active one is killed, the other takes over within the peering lifetime plus a cycle."""

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

LIFETIME = 10


def test_only_one_replica_acts_and_the_standby_takes_over(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    namespace: str,
) -> None:
    cp, ns = control_plane, namespace
    kube.kopf_peerings(cp, ns, "tbo")
    origin.set_route("ha", p95=110.0, rps=40, host="api.example.com")
    env = {"TBO_OPERATOR_NAMESPACE": ns, "TBO_PEERING_LIFETIME_SECONDS": str(LIFETIME)}
    logs = cp.workdir / "logs"
    high = OperatorProcess(
        cp, prometheus.url, [ns], logs / "operator-high.log", 1.0, env,
        extra_args=["--peering", "tbo", "--priority", "200"],
    )  # fmt: skip
    low = OperatorProcess(
        cp, prometheus.url, [ns], logs / "operator-low.log", 1.0, env,
        extra_args=["--peering", "tbo", "--priority", "100"],
    )  # fmt: skip
    try:
        ha = budget("ha", "ha")
        ha["spec"]["origin"]["maxReplicas"] = 5
        ha["spec"]["origin"]["scaleUpCooldownSeconds"] = 3
        for obj in (deployment("ha", 1), ha):
            cp.kubectl("apply", "-n", ns, "-f", "-", input_text=json.dumps(obj))
        kube.wait_for(lambda: spec_replicas(cp, ns, "ha") >= 3, 90, "scale-up by the active one")
        assert logged_cycles(high.log) > 0
        # The standby ran no cycle. (Whether kopf logs "Pausing operations in favour of"
        # depends on which process registered first, so the log line is not asserted.)
        assert logged_cycles(low.log) == 0, "the standby evaluated while the other was active"

        # Kill the active replica without a goodbye: its claim must expire first.
        os.killpg(high.proc.pid, signal.SIGKILL)
        high.proc.wait(timeout=10)
        killed_at = time.monotonic()
        kube.wait_for(lambda: logged_cycles(low.log) > 0, LIFETIME + 60, "the standby takes over")
        takeover = time.monotonic() - killed_at
        print(f"standby took over {takeover:.1f}s after SIGKILL (peering lifetime {LIFETIME}s)")
        assert takeover <= LIFETIME + 30
        kube.wait_for(lambda: spec_replicas(cp, ns, "ha") == 5, 90, "the standby keeps scaling")
    finally:
        high.stop()
        low.stop()
