"""High availability: two operator processes in one kopf peering group, only one acts; when
the active one is killed, the other takes over within the peering lifetime plus a cycle."""

from __future__ import annotations

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support.operator import logged_cycles
from tests.support.replicas import hot_route, takeover_seconds

pytestmark = pytest.mark.integration

LIFETIME = 10


def test_only_one_replica_acts_and_the_standby_takes_over(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    namespace: str,
) -> None:
    ha = hot_route(control_plane, origin, prometheus, namespace, "ha", "tbo")
    env = {"TBO_OPERATOR_NAMESPACE": namespace, "TBO_PEERING_LIFETIME_SECONDS": str(LIFETIME)}
    high = ha.replica("high", env, "--peering", "tbo", "--priority", "200")
    low = ha.replica("low", env, "--peering", "tbo", "--priority", "100")
    try:
        ha.apply_scaling()
        kube.wait_for(lambda: ha.replicas() >= 3, 90, "scale-up by the active one")
        assert logged_cycles(high.log) > 0
        # The standby ran no cycle. (Whether kopf logs "Pausing operations in favour of"
        # depends on which process registered first, so the log line is not asserted.)
        assert logged_cycles(low.log) == 0, "the standby evaluated while the other was active"

        # Kill the active replica without a goodbye: its claim must expire first.
        takeover = takeover_seconds(high, low, LIFETIME + 60, "the standby takes over")
        print(f"standby took over {takeover:.1f}s after SIGKILL (peering lifetime {LIFETIME}s)")
        assert takeover <= LIFETIME + 30
        kube.wait_for(lambda: ha.replicas() == 5, 90, "the standby keeps scaling")
    finally:
        high.stop()
        low.stop()
