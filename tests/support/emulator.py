"""The Cloudflare emulator as the operator-process tests start it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from sandbox.operator_process import OperatorProcess
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import objects
from tests.support import operator as operator_process

ZONE_NAME = "example-com"
"""The CloudflareZone the operator-process tests create for the emulator's zone."""


@contextmanager
def enterprise_zone(token: str | Iterable[str], zone_id: str) -> Iterator[CloudflareEmulator]:
    """The emulator running, knowing ``token`` (one or several), with one Enterprise zone
    ``zone_id`` named example.com whose ``proxy_read_timeout`` is 120 s."""
    with CloudflareEmulator(token=token).running() as emu:
        emu.add_zone(zone_id, "enterprise", name="example.com", proxy_read_timeout=120)
        yield emu


@dataclass
class EdgeCluster:
    """An operator-process test with Cloudflare: the sandbox's control plane and a namespace,
    Prometheus scraping the synthetic origin, and ``enterprise_zone(token, zone_id)``."""

    cp: ControlPlane
    ns: str
    origin: OriginExporter
    prometheus: PrometheusServer
    emulator: CloudflareEmulator
    token: str
    zone_id: str

    @contextmanager
    def operator(self, log_name: str, route: dict[str, Any]) -> Iterator[OperatorProcess]:
        """The origin serving ``route`` (a TimeoutBudget) at p95 40 ms and 20 rps, the
        operator process syncing Cloudflare through the emulator (its log
        ``operator-<log_name>.log``), then the zone's Secret ``cf`` and CloudflareZone
        ``ZONE_NAME``, ``route``'s Deployment (1 replica) and ``route`` applied; stopped
        on exit."""
        spec = route["spec"]
        self.origin.set_route(
            spec["latency"]["selector"]["route"], p95=40.0, rps=20, host=spec["route"]["host"]
        )
        proc = operator_process.start(
            self.cp, self.prometheus.url, self.ns, log_name, cloudflare_url=self.emulator.base_url
        )
        try:
            objects.apply(
                self.cp,
                self.ns,
                objects.secret("cf", self.token),
                objects.zone(ZONE_NAME, self.zone_id),
                objects.deployment(spec["origin"]["deploymentName"], 1),
                route,
            )
            yield proc
        finally:
            proc.stop()
