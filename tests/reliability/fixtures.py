"""Fixture factories of the reliability modules. A module declares its Cloudflare emulator,
fault proxies, foreign objects and operator in one line each, e.g.
``emulator = fixtures.emulator(TOKEN, ZONE_ID)``, and pytest finds the fixture under the
name it is given there. Every fixture made here is module-scoped and asks for the fixtures
it builds on by name (``request.getfixturevalue``), so a module says what differs (tokens,
zones, which Prometheus, which settings), not how the parts are plugged together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from sandbox.prometheus import PrometheusServer
from tests.support import kube, servers
from tests.support import operator as operator_process
from tests.support.emulator import enterprise_zone
from tests.support.faults import FaultProxy
from tests.support.foreign import Foreign
from tests.support.objects import apply, secret, zone_status
from tests.support.objects import zone as cloudflare_zone
from tests.support.operator import OperatorProcess
from tests.support.reliability import REPORT, foreign_checked

Zone = tuple[str, str, str, int]
"""Another zone of the emulator: zone id, plan, name, proxy read timeout (seconds)."""


def emulator(tokens: str | Sequence[str], zone_id: str, *more: Zone) -> Any:
    """The Cloudflare emulator knowing ``tokens``, with the Enterprise zone ``zone_id``
    (example.com, 120 s) and each of ``more``."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[CloudflareEmulator]:
        with enterprise_zone(tokens, zone_id) as emu:
            for other_id, plan, name, read_timeout in more:
                emu.add_zone(other_id, plan, name=name, proxy_read_timeout=read_timeout)
            yield emu

    return fixture


def prometheus(origin: str, workdir: str, *, report_version: bool = False) -> Any:
    """A Prometheus of the module's own scraping the fixture ``origin``, in ``workdir`` of the
    sandbox's; ``report_version``: its version goes into the report's header."""

    @pytest.fixture(scope="module")
    def fixture(
        request: pytest.FixtureRequest, control_plane: ControlPlane
    ) -> Iterator[PrometheusServer]:
        scraped = request.getfixturevalue(origin)
        with servers.prometheus_scraping(scraped, control_plane.workdir / workdir) as server:
            if report_version:
                REPORT.facts.setdefault("Prometheus", f"{server.version()} (Debian package)")
            yield server

    return fixture


def proxy(upstream: str, **options: Any) -> Any:
    """A ``FaultProxy`` (with ``options``) in front of the fixture ``upstream``'s ``url``."""

    @pytest.fixture(scope="module")
    def fixture(request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
        with FaultProxy(request.getfixturevalue(upstream).url, **options) as running:
            yield running

    return fixture


def foreign(
    what: str, zone_id: str | None = None, did: Callable[[Foreign], str] | None = None
) -> Any:
    """Foreign objects planted in the module's ``ns`` (and, given ``zone_id``, in that zone
    of its ``emulator``); when the module is done, the report row ``what`` on whether they
    were left alone (``tests.support.reliability.foreign_checked``)."""

    @pytest.fixture(scope="module")
    def fixture(
        request: pytest.FixtureRequest, control_plane: ControlPlane, ns: str
    ) -> Iterator[Foreign]:
        emu = request.getfixturevalue("emulator") if zone_id is not None else None
        yield from foreign_checked(Foreign(control_plane, ns, emu, zone_id).plant(), what, did)

    return fixture


def operator(
    log_name: str,
    prometheus: str = "prometheus",
    *,
    interval: float = 1.0,
    cloudflare: str | None = None,
    zone: tuple[str, str] | None = None,
    settings: str | None = None,
    never_logged: Sequence[str] = (),
    restartable: bool = False,
) -> Any:
    """The operator process serving the module's ``ns`` (log ``operator-<log_name>.log``),
    reading the fixture ``prometheus``; started once the module's ``foreign`` objects (if it
    has them) are planted, stopped when the module is done, its output then holding none of
    ``never_logged``.

    ``cloudflare``: the fixture it reaches Cloudflare at (the ``emulator``, or a proxy in
    front of it), through that fixture's ``url``. ``zone`` (token, zone id): the Secret
    ``cf`` holding the token and the CloudflareZone ``main`` of that zone are applied first,
    and the fixture waits until the operator has read the zone (its 120 s). ``settings``
    names a fixture of further ``TBO_*`` settings. ``restartable``: the fixture is an
    ``operator_process.Restartable``, its ``proc`` the process."""

    @pytest.fixture(scope="module")
    def fixture(
        request: pytest.FixtureRequest, control_plane: ControlPlane, ns: str
    ) -> Iterator[OperatorProcess | operator_process.Restartable]:
        cp = control_plane
        module_fixture(request, "foreign")
        url = None
        if cloudflare is not None:
            url = f"{request.getfixturevalue(cloudflare).url}/client/v4"
        if zone is not None:
            apply(cp, ns, secret("cf", zone[0]), cloudflare_zone("main", zone[1], "cf"))
        env = request.getfixturevalue(settings) if settings is not None else None
        prometheus_url = request.getfixturevalue(prometheus).url
        run = operator_process.Restartable if restartable else operator_process.start
        proc = run(cp, prometheus_url, ns, log_name, interval=interval, cloudflare_url=url, env=env)
        try:
            if zone is not None:
                kube.wait_for(
                    lambda: (
                        zone_status(cp, ns, "main").get("effectiveProxyReadTimeoutSeconds") == 120
                    ),
                    60,
                    "the zone read from Cloudflare",
                )
            yield proc
        finally:
            proc.stop()
        output = proc.output()
        for text in never_logged:
            assert text not in output

    return fixture


def module_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    """The value of the fixture ``name`` where the module has one, else ``None``."""
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return None
