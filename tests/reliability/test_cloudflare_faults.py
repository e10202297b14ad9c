"""Cloudflare misbehaving while the operator process syncs a zone through the real SDK.

Each scenario adds a route that needs a Cache Rule (``requiredSeconds: 300`` → read timeout
301) at the moment Cloudflare starts failing: a 429 with ``Retry-After``, a burst of 503s, a
request that hangs past the operator's 20 s timeout, a 401 (the token revoked), a token the
operator's own request budget allows only 10 requests for. What is checked each time:

* the route's status says why its edge is not synced (condition ``EdgeSynced``);
* requests stay bounded while Cloudflare refuses: counted at the emulator, which logs every
  request it answers (nothing while ``Retry-After`` runs, one per backoff step, none with a
  rejected token);
* once the fault clears, the state converges: exactly one Cache Rule for the route, the
  foreign rules and DNS records untouched (compared after every scenario);
* the operator process never exits.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.reliability.helpers import condition, short
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.emulator import enterprise_zone
from tests.support.foreign import Foreign
from tests.support.objects import (
    HOST,
    apply,
    deployment,
    edge_route,
    secret,
    status_of,
    zone,
    zone_status,
)
from tests.support.operator import OperatorProcess
from tests.support.reliability import REPORT, foreign_checked

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-cf"
AREA = "Faults: Cloudflare"
TOKEN = "cf-reliability-token-5b1e0c2f9a"
ROTATED = "cf-reliability-rotated-8d77e1a4c3"
BUDGET_TOKEN = "cf-reliability-budget-31c9f0aa42"
ZONE_ID = "0123456789abcdef0123456789abcdef"
BUDGET_ZONE_ID = "fedcba9876543210fedcba9876543210"
WRONG_ZONE_ID = "00000000000000000000000000000abc"
RULES = "/rulesets/phases/http_request_cache_settings/entrypoint"


@pytest.fixture(scope="module")
def emulator() -> Iterator[CloudflareEmulator]:
    with enterprise_zone([TOKEN, ROTATED, BUDGET_TOKEN], ZONE_ID) as emu:
        emu.add_zone(BUDGET_ZONE_ID, "enterprise", name="example.org", proxy_read_timeout=120)
        yield emu


@pytest.fixture(scope="module")
def foreign(
    control_plane: ControlPlane, ns: str, emulator: CloudflareEmulator
) -> Iterator[Foreign]:
    yield from foreign_checked(
        Foreign(control_plane, ns, emulator, ZONE_ID).plant(),
        "Cloudflare faults module: other tools' Cache Rules and DNS records in the zone the "
        "operator writes to, plus a Deployment, Service and HPA no route names",
        lambda planted: (
            f"made {sum(e.status < 400 for e in rule_writes(emulator))} Cache Rule writes in "
            f"the zone (each create, edit or delete names one rule; the whole list is never "
            f"replaced) and kept every foreign rule and record as it was (identical after each "
            f"of {planted.checks - 1} scenarios)"
        ),
    )


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane,
    prometheus: PrometheusServer,
    emulator: CloudflareEmulator,
    ns: str,
    foreign: Foreign,
) -> Iterator[OperatorProcess]:
    cp = control_plane
    apply(cp, ns, secret("cf", TOKEN), zone("main", ZONE_ID, "cf"))
    proc = operator_process.start(
        cp, prometheus.url, ns, "rel-cf", cloudflare_url=emulator.base_url
    )
    kube.wait_for(
        lambda: zone_status(cp, ns, "main").get("effectiveProxyReadTimeoutSeconds") == 120,
        60,
        "the zone read from Cloudflare",
    )
    yield proc
    proc.stop()
    output = proc.output()
    for token in (TOKEN, ROTATED, BUDGET_TOKEN):
        assert token not in output


def add_route(
    cp: ControlPlane, origin: OriginExporter, ns: str, name: str, zone_name: str = "main"
) -> None:
    origin.set_route(name, p95=40.0, rps=20, host=HOST)
    apply(cp, ns, deployment(name, 1), edge_route(name, zone_name))


def owned_rules(emu: CloudflareEmulator, name: str, zone_id: str = ZONE_ID) -> list[dict[str, Any]]:
    return [r for r in emu.rules(zone_id) if str(r.get("description", "")).endswith(f"/{name}")]


def synced(cp: ControlPlane, ns: str, name: str) -> dict[str, Any] | None:
    st = status_of(cp, ns, name)
    ok = condition(st, "EdgeSynced").get("status") == "True" and st.get("edgeTimeoutSeconds") == 301
    return st if ok else None


def converged(
    cp: ControlPlane, emu: CloudflareEmulator, ns: str, name: str, timeout: float
) -> float:
    """Seconds until the route's one rule says 301 and its status says so."""
    started = time.monotonic()
    kube.wait_for(lambda: synced(cp, ns, name), timeout, f"{name}: edge synced")
    rules = owned_rules(emu, name)
    assert len(rules) == 1, rules
    assert rules[0]["action_parameters"]["read_timeout"] == 301
    return time.monotonic() - started


def edge_message(cp: ControlPlane, ns: str, name: str) -> str | None:
    found = condition(status_of(cp, ns, name), "EdgeSynced")
    return str(found["message"]) if found.get("status") == "False" else None


def rule_writes(emu: CloudflareEmulator, zone_id: str = ZONE_ID) -> list[Any]:
    """The Cache Rules writes that reached the zone: a rule created (or the entry point
    holding it), edited or deleted; never a whole-list PUT."""
    writes = [
        e
        for m in ("POST", "PATCH", "DELETE", "PUT")
        for e in emu.requests(m, path_contains=f"/zones/{zone_id}/rulesets")
    ]
    assert not [e for e in writes if e.method == "PUT"], "the operator replaced the whole list"
    return writes


def zone_requests(emu: CloudflareEmulator, since: float, zone_id: str = ZONE_ID) -> list[Any]:
    return [e for e in emu.requests(path_contains=zone_id) if e.started_at >= since]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
    return text


def test_429_with_retry_after_is_honoured(
    control_plane: ControlPlane,
    origin: OriginExporter,
    emulator: CloudflareEmulator,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, emu, name = control_plane, emulator, "limited"
    wait = 5
    with REPORT.case(
        AREA,
        f"429 with Retry-After: {wait} on the Cache Rules write of a new route",
        "the route's EdgeSynced says rate limited; not one request to Cloudflare until "
        "Retry-After has passed (emulator log); then exactly one rule with read_timeout 301",
    ) as row:
        # The zone's entry point exists (the foreign rules): the write is the rule's create.
        emu.fail_next(
            1, status=429, method="POST", path_prefix=f"/zones/{ZONE_ID}/rulesets", retry_after=wait
        )
        add_route(cp, origin, ns, name)
        limited = kube.wait_for(lambda: edge_message(cp, ns, name), 60, "the 429 in status")
        hit = next(e for e in rule_writes(emu) if e.status == 429)
        took = converged(cp, emu, ns, name, 60)
        after = zone_requests(emu, hit.started_at + 0.001)
        first_after = min(e.started_at for e in after) - hit.started_at
        assert first_after >= wait, f"a request {first_after:.1f}s after the 429"
        assert operator.alive()
        row.did = (
            f"EdgeSynced=False: '{short(limited, 150)}'; next request {first_after:.1f} s "
            f"after the 429; rule written {took:.0f} s after status showed the 429"
        )
        foreign.assert_unchanged()


def test_5xx_burst_backs_off_and_converges(
    control_plane: ControlPlane,
    origin: OriginExporter,
    emulator: CloudflareEmulator,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, emu, name = control_plane, emulator, "burst"
    burst = 20.0
    with REPORT.case(
        AREA,
        f"5xx burst: every request to the zone answered 503 for {burst:.0f} s",
        "EdgeSynced=False names Cloudflare's 503; at most one request per backoff step (15 s, "
        "then 30 s) during the burst, no SDK retries; rule written once the burst is over",
    ) as row:
        start = time.time()
        emu.fail_next(1000, status=503, path_prefix=f"/zones/{ZONE_ID}")
        try:
            add_route(cp, origin, ns, name)
            failed = kube.wait_for(lambda: edge_message(cp, ns, name), 60, "the 503 in status")
            time.sleep(max(0.0, start + burst - time.time()))
        finally:
            emu.clear_faults()
        during = zone_requests(emu, start)
        assert 1 <= len(during) <= 3, [(e.method, e.status) for e in during]
        assert all(e.status == 503 for e in during)
        took = converged(cp, emu, ns, name, 60)
        assert operator.alive()
        row.did = (
            f"EdgeSynced=False: '{short(failed, 160)}'; {len(during)} request(s) in the "
            f"{burst:.0f} s burst; rule written {took:.0f} s after it ended"
        )
        foreign.assert_unchanged()


def test_hanging_request_times_out_and_converges(
    control_plane: ControlPlane,
    origin: OriginExporter,
    emulator: CloudflareEmulator,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, emu, name = control_plane, emulator, "hang"
    with REPORT.case(
        AREA,
        "Timeout: the Cache Rules read hangs 25 s without an answer (operator timeout 20 s)",
        "EdgeSynced=False says Cloudflare did not answer in time; the evaluation loop goes "
        "on afterwards; one retry after the backoff writes the rule",
    ) as row:
        start = time.time()
        emu.hang_next(1, hold_seconds=25, method="GET", path_prefix=f"/zones/{ZONE_ID}/rulesets")
        add_route(cp, origin, ns, name)
        failed = kube.wait_for(lambda: edge_message(cp, ns, name), 60, "the timeout in status")
        took = converged(cp, emu, ns, name, 60)
        cycles = [
            float(line.rsplit(" in ", 1)[1].split("s", 1)[0])
            for line in operator.output().splitlines()
            if "cycle: " in line and " in " in line
        ]
        assert operator.alive()
        row.did = (
            f"EdgeSynced=False: '{short(failed, 150)}'; the cycle waiting on it took "
            f"{max(cycles):.0f} s (the request timeout), later cycles normal; rule written "
            f"{time.time() - start:.0f} s after the hang began ({took:.0f} s after the failure "
            "showed)"
        )
        foreign.assert_unchanged()


def test_request_budget_caps_requests(
    control_plane: ControlPlane,
    origin: OriginExporter,
    emulator: CloudflareEmulator,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, emu = control_plane, emulator
    with REPORT.case(
        AREA,
        "The operator's own request budget: a CloudflareZone with apiRequestBudget 10 and "
        "routes that need more requests than that",
        "no more than 10 requests reach Cloudflare with that token in the 5-minute window "
        "(emulator log); routes past it say the budget is spent",
    ) as row:
        apply(
            cp,
            ns,
            secret("cf-budget", BUDGET_TOKEN),
            zone("small", BUDGET_ZONE_ID, "cf-budget", apiRequestBudget=10),
        )
        kube.wait_for(
            lambda: zone_status(cp, ns, "small").get("effectiveProxyReadTimeoutSeconds"),
            60,
            "the small zone read",
        )
        names: list[str] = []
        spent = None
        for i in range(8):  # one route at a time, so each costs its own read and write
            names.append(name := f"budget-{i}")
            add_route(cp, origin, ns, name, zone_name="small")
            kube.wait_for(
                lambda n=name: owned_rules(emu, n, BUDGET_ZONE_ID) or edge_message(cp, ns, n),
                60,
                f"{name} written or refused",
            )
            spent = next(
                (m for n in names if "budget" in (m := edge_message(cp, ns, n) or "")), None
            )
            if spent:
                break
        assert spent, "the budget never ran out"
        operator_process.wait_cycles(operator, 3)
        sent = len(emu.requests(path_contains=BUDGET_ZONE_ID))
        written = sum(bool(owned_rules(emu, n, BUDGET_ZONE_ID)) for n in names)
        assert sent <= 10, sent
        assert operator.alive()
        row.did = (
            f"sent {sent} requests, wrote {written} of {len(names)} rules, then held the rest: "
            f"'{short(spent, 150)}'"
        )
        foreign.assert_unchanged()


def test_revoked_token_is_not_retried_in_a_storm(
    control_plane: ControlPlane,
    origin: OriginExporter,
    emulator: CloudflareEmulator,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, emu, name = control_plane, emulator, "revoked"
    quiet = 10.0
    with REPORT.case(
        AREA,
        "401 and 403: the token revoked (401 on the rules write), and a CloudflareZone whose "
        "Secret holds a token Cloudflare does not know (403)",
        f"the route's EdgeSynced=False says the token was rejected and what to check; the "
        f"zone with the unknown token says AuthFailed; no request with the rejected token for "
        f"{quiet:.0f} s (emulator log); after the token is rotated (new Secret) the rule is "
        "written",
    ) as row:
        start = time.time()
        emu.fail_next(1, status=401, method="POST", path_prefix=f"/zones/{ZONE_ID}/rulesets")
        add_route(cp, origin, ns, name)
        rejected = kube.wait_for(lambda: edge_message(cp, ns, name), 60, "the 401 in status")
        hit = next(e for e in rule_writes(emu) if e.status == 401)
        time.sleep(max(0.0, hit.started_at + quiet - time.time()))
        after = zone_requests(emu, hit.started_at + 0.001)
        assert after == [], [(e.method, e.path) for e in after]
        assert "rejected the API token" in rejected
        route_cond = condition(status_of(cp, ns, name), "EdgeSynced")
        # A second zone whose Secret holds a token Cloudflare does not know at all.
        apply(
            cp,
            ns,
            secret("cf-wrong", "not-a-valid-token-0000"),
            zone("wrong", WRONG_ZONE_ID, "cf-wrong"),
        )
        wrong = kube.wait_for(
            lambda: (
                (c := condition(zone_status(cp, ns, "wrong"), "EdgeSynced")).get("reason")
                == "AuthFailed"
                and c
            ),
            60,
            "AuthFailed on the zone with the wrong token",
        )
        # The user rotates the token: a new Secret, the zone pointed at it.
        apply(cp, ns, secret("cf-rotated", ROTATED), zone("main", ZONE_ID, "cf-rotated"))
        took = converged(cp, emu, ns, name, 60)
        assert operator.alive()
        row.did = (
            f"route EdgeSynced=False/{route_cond.get('reason')}: '{short(rejected, 170)}'; "
            f"0 requests in the {quiet:.0f} s after the 401; "
            f"zone 'wrong': AuthFailed '{short(wrong['message'], 120)}'; after rotation the "
            f"rule was written in {took:.0f} s ({time.time() - start:.0f} s in all)"
        )
        foreign.assert_unchanged()
        metrics = scrape(operator.metrics_url)
        for token in (TOKEN, ROTATED, BUDGET_TOKEN):
            assert token not in metrics
            assert token not in json.dumps(kube.get_json(cp, "events", "-n", ns))
