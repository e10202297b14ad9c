"""The scene of the high-availability tests (``test_peering``: kopf peering decides who acts;
``test_leader_lease``: the leader Lease does): operator replicas on one namespace whose origin
route is at risk, the budget that lets them scale it, and the takeover after a SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support.objects import HOST, apply, budget, deployment, spec_replicas
from tests.support.operator import OperatorProcess, logged_cycles


@dataclass(frozen=True)
class HotRoute:
    """Namespace ``ns`` whose origin route ``route`` answers at P95 110 s: at risk under the
    default 120 s budget."""

    cp: ControlPlane
    prometheus: PrometheusServer
    ns: str
    route: str

    def replica(self, label: str, env: dict[str, str], *args: str) -> OperatorProcess:
        """An operator process serving ``ns`` at a 1 s interval with the command-line ``args``,
        its log in ``logs/operator-<label>.log``."""
        log = self.cp.workdir / "logs" / f"operator-{label}.log"
        return OperatorProcess(
            self.cp, self.prometheus.url, [self.ns], log, 1.0, env, extra_args=list(args)
        )

    def apply_scaling(self) -> None:
        """Deployment ``route`` at 1 replica and its budget, which may scale it up to 5 with a
        3 s cooldown."""
        tb = budget(self.route, self.route)
        tb["spec"]["origin"]["maxReplicas"] = 5
        tb["spec"]["origin"]["scaleUpCooldownSeconds"] = 3
        apply(self.cp, self.ns, deployment(self.route, 1), tb)

    def replicas(self) -> int:
        """The Deployment's spec.replicas now."""
        return spec_replicas(self.cp, self.ns, self.route)


def hot_route(
    cp: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    ns: str,
    route: str,
    *peerings: str,
) -> HotRoute:
    """kopf's ``KopfPeering`` objects ``peerings`` in ``ns``, and origin route ``route`` at
    P95 110 s and 40 requests per second."""
    kube.kopf_peerings(cp, ns, *peerings)
    origin.set_route(route, p95=110.0, rps=40, host=HOST)
    return HotRoute(cp, prometheus, ns, route)


def takeover_seconds(
    killed: OperatorProcess, successor: OperatorProcess, timeout: float, what: str
) -> float:
    """SIGKILL ``killed`` (no goodbye: its claim must expire), and the seconds from then until
    ``successor`` logs its first evaluation cycle."""
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait(timeout=10)
    killed_at = time.monotonic()
    kube.wait_for(lambda: logged_cycles(successor.log) > 0, timeout, what)
    return time.monotonic() - killed_at
