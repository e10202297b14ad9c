"""What the demo plays: the routes' origins and the load profile, as plain data.

The demo has to make the operator climb every rung of its ladder and come back down, on a
clock short enough to watch. The numbers below are chosen for that, against the synthetic
origin's queueing model (``origin_exporter.queueing_stretch``): each surge lands the API
route's P95 in a known band at a known replica count, e.g. 15.6 req/s on 2 replicas gives a
P95 of about 103 s (at risk: 96 s is 80 % of the 120 s budget) and about 42 s on 4. The
reports route is shifted by weights on its HTTPRoute (``reroute.httpRoute``): each of its
loads lands at risk before a step and between the lines after it (``REPORTS``).
``tests/sandbox/test_demo_scenario.py`` checks those bands, so a change here that would stop the
demo from showing what it claims fails fast, without a sandbox.

Nothing here does I/O: ``sandbox.demo_world`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

NAMESPACE = "demo"
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
ZONE_NAME = "example.com"
ZONE_RESOURCE = "example-com"
"""The CloudflareZone (``manifests/demo/zone.yaml``)."""
ZONE_PROXY_READ_TIMEOUT = 120
"""Cloudflare's default Proxy Read Timeout (Error 524 page)."""
ANALYTICS_DELAY_SECONDS = 5.0
"""How late the emulator's GraphQL Analytics API shows the edge's requests (Cloudflare's
are minutes late; the demo's minutes are seconds)."""
API_TOKEN = "demo-cloudflare-token-5d1e"  # noqa: S105  (the local emulator's, loopback only)
EVALUATION_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Pool:
    """Pods that can serve a route: a Deployment, the labels of its pods, their capacity."""

    name: str
    deployment: str
    labels: Mapping[str, str]
    capacity_rps_per_replica: float
    """Requests per second one replica serves at full utilisation."""
    servers_per_replica: int = 1
    """Parallel slots per replica (the queueing model's ``c`` per replica)."""
    base_p95: float | None = None
    """This pool's P95 without queueing; default: the route's."""


@dataclass(frozen=True)
class Route:
    """One TimeoutBudget of the demo and the origin behind it."""

    name: str
    """The TimeoutBudget's name, also the ``route`` label of its latency histogram."""
    host: str
    path: str
    base_p95: float
    """P95 in seconds with plenty of headroom."""
    pools: tuple[Pool, ...]
    """The first is the route's own Deployment; others are reroute targets."""
    service: str | None = None
    """The Service in front: its selector says which pool serves the route."""
    hpa: str | None = None
    http_route: str | None = None
    """The HTTPRoute whose rule's weights split the requests between the pools."""
    long_backend: tuple[str, int] | None = None
    """With ``http_route``: the long-running pool's Service and port in the rule."""
    about: str = ""
    """One line for the plot's title."""

    @property
    def main(self) -> Pool:
        return self.pools[0]

    def pool_for(self, selector: Mapping[str, str] | None) -> Pool:
        """The pool a Service with ``selector`` sends the route's requests to."""
        if selector:
            for pool in self.pools:
                if all(pool.labels.get(k) == v for k, v in selector.items()):
                    return pool
        return self.main


API = Route(
    name="api",
    host="api.example.com",
    path="/",
    base_p95=40.0,
    service="api",
    about="120 s budget; rerouted to a long-running pool when 4 replicas are not enough",
    pools=(
        Pool("main", "api", {"app": "api"}, capacity_rps_per_replica=10.0),
        Pool(
            "long-running",
            "api-long-running",
            {"app": "api-long-running"},
            capacity_rps_per_replica=21.0,
            servers_per_replica=2,
        ),
    ),
)
EXPORT = Route(
    name="export",
    host="api.example.com",
    path="/export",
    base_p95=150.0,
    about="needs 300 s: the edge must allow it (Cache Rule read_timeout 301 s)",
    pools=(
        Pool(
            "main", "export", {"app": "export"}, capacity_rps_per_replica=20, servers_per_replica=4
        ),
    ),
)
SEARCH = Route(
    name="search",
    host="search.example.com",
    path="/",
    base_p95=30.0,
    hpa="search",
    about="an HPA owns the replicas: the operator raises its minReplicas",
    pools=(Pool("main", "search", {"app": "search"}, capacity_rps_per_replica=10.0),),
)
REPORTS = Route(
    name="reports",
    host="reports.example.com",
    path="/",
    base_p95=40.0,
    http_route="reports",
    long_backend=("reports-long-running", 8080),
    about="weights shifted step by step to a long-running backend on its HTTPRoute",
    pools=(
        Pool("main", "reports", {"app": "reports"}, capacity_rps_per_replica=10.0),
        Pool(
            "long-running",
            "reports-long-running",
            {"app": "reports-long-running"},
            capacity_rps_per_replica=10.0,
            base_p95=60.0,
        ),
    ),
)
"""Two replicas at most (its min), the linear load model: the surge is at risk at max
(108 s), 20 % on the long-running backend brings it between the lines (83 s); beyond max it
is at risk again at 20 % (108 s) and 40 % brings it back (85 s). The steps in
``routes.yaml`` are 20, 40, 100."""
ROUTES: tuple[Route, ...] = (API, EXPORT, SEARCH, REPORTS)


@dataclass(frozen=True)
class UnbudgetedPath:
    """Requests to a proxied host that no TimeoutBudget covers: the edge still counts them
    (and their 524s), and the operator can only report them (``status.edgeView``)."""

    name: str
    """The origin model's ``route`` label (no TimeoutBudget selects it)."""
    host: str
    path: str
    p95: float
    rps: float
    sigma: float
    """The log-normal spread: narrow, so its time to first byte stays near the zone's."""
    about: str = ""


UNBUDGETED = UnbudgetedPath(
    name="www-export",
    host="www.example.com",
    path="/export",
    p95=125.0,
    rps=2.0,
    sigma=0.2,
    about="a legacy CSV export no TimeoutBudget covers, near the zone's 120 s",
)
"""About 7 % of its requests outlive the zone's 120 s (a 524 each), whatever the load."""

CALM = {"api": 10.0, "export": 10.0, "search": 4.0, "reports": 10.0}
SURGE = {"api": 15.6, "export": 12.0, "search": 7.2, "reports": 54.0}
BEYOND = {"api": 35.4, "export": 15.0, "search": 4.0, "reports": 71.2}
NO_TRAFFIC = {"api": 0.0, "export": 0.0, "search": 0.0, "reports": 0.0}


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    rps: Mapping[str, float]
    """Requests per second per route once the ramp is done."""
    caption: str
    """What to watch for, printed when the phase begins."""
    ramp_seconds: float = 0.0
    """Linear ramp from the previous phase's rates."""
    prometheus_up: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str
    phases: tuple[Phase, ...]
    routes: tuple[Route, ...] = ROUTES
    interval_seconds: float = EVALUATION_INTERVAL_SECONDS
    start_rps: Mapping[str, float] = field(default_factory=lambda: dict(CALM))

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def phase_at(self, t: float) -> tuple[int, Phase]:
        """The phase running ``t`` seconds into the scenario (the last one after the end)."""
        start = 0.0
        for index, phase in enumerate(self.phases):
            if t < start + phase.seconds:
                return index, phase
            start += phase.seconds
        return len(self.phases) - 1, self.phases[-1]

    def phase_start(self, index: int) -> float:
        return sum(p.seconds for p in self.phases[:index])

    def load_steps(self) -> list[str]:
        """The phases whose load rises for some route over the phase before (or the start)."""
        names, previous = [], self.start_rps
        for phase in self.phases:
            if any(phase.rps[r] > previous[r] for r in phase.rps):
                names.append(phase.name)
            previous = phase.rps
        return names

    def rps_at(self, route: str, t: float) -> float:
        index, phase = self.phase_at(t)
        target = phase.rps[route]
        previous = self.phases[index - 1].rps[route] if index else self.start_rps[route]
        into = t - self.phase_start(index)
        if phase.ramp_seconds <= 0 or into >= phase.ramp_seconds:
            return target
        return previous + (target - previous) * max(0.0, into) / phase.ramp_seconds


def _phases(calm: float, surge: float, beyond: float, over: float, outage: float,
            recovery: float, ramp: float) -> tuple[Phase, ...]:  # fmt: skip
    return (
        Phase("calm", calm, CALM, "every route well inside its budget"),
        Phase(
            "surge",
            surge,
            SURGE,
            "api's P95 climbs past the at-risk line (96 s): it is scaled up 2 -> 4 (its max; "
            "at risk at max until the new pods show, so the edge read timeout goes to 121 s) "
            "and P95 comes back under; search's HPA gets a higher minReplicas; reports (at its "
            "max) gets 20 % of its HTTPRoute rule shifted to the long-running backend",
            ramp,
        ),
        Phase(
            "beyond max",
            beyond,
            BEYOND,
            "4 replicas (api's max) are not enough: at risk at max for 8 evaluations -> the "
            "api Service is rerouted to the long-running pool: its load leaves the main pool; "
            "reports is at risk again at 20 %: shifted to 40 %",
            ramp,
        ),
        Phase("surge over", over, CALM, "the load is back to normal: P95 falls, recovery starts"),
        Phase(
            "prometheus down",
            outage,
            CALM,
            "no latency data: the operator holds everything (no undo, no scale-down)",
            prometheus_up=False,
        ),
        Phase(
            "recovery",
            recovery,
            CALM,
            "data is back: the reroute is undone, then one replica at a time is given back; "
            "reports' weights are walked back 40 % -> 20 % -> the original rule",
        ),
    )


def default() -> Scenario:
    """About two and a half minutes, paced for a person to follow."""
    return Scenario("default", _phases(15, 18, 35, 8, 25, 50, ramp=3))  # 151 s


def fast() -> Scenario:
    """The same story, as short as the operator's timings allow (tests)."""
    return Scenario("fast", _phases(4, 14, 20, 7, 8, 30, ramp=2))  # 83 s
