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
from typing import Any

import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from tests.reliability import fixtures
from tests.reliability.helpers import Scene, condition, short
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.objects import (
    HOST,
    deployment,
    edge_route,
    secret,
    zone,
    zone_status,
)

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-cf"
AREA = "Faults: Cloudflare"
TOKEN = "cf-reliability-token-5b1e0c2f9a"
ROTATED = "cf-reliability-rotated-8d77e1a4c3"
BUDGET_TOKEN = "cf-reliability-budget-31c9f0aa42"
TOKENS = (TOKEN, ROTATED, BUDGET_TOKEN)
"""Every token the emulator knows: none may ever show in a log, Event or metric."""
ZONE_ID = "0123456789abcdef0123456789abcdef"
BUDGET_ZONE_ID = "fedcba9876543210fedcba9876543210"
WRONG_ZONE_ID = "00000000000000000000000000000abc"
RULES = "/rulesets/phases/http_request_cache_settings/entrypoint"


emulator = fixtures.emulator(TOKENS, ZONE_ID, (BUDGET_ZONE_ID, "enterprise", "example.org", 120))
foreign = fixtures.foreign(
    "Cloudflare faults module: other tools' Cache Rules and DNS records in the zone the "
    "operator writes to, plus a Deployment, Service and HPA no route names",
    ZONE_ID,
    lambda planted: (
        f"made {sum(e.status < 400 for e in rule_writes(planted.emulator))} Cache Rule writes "
        f"in the zone (each create, edit or delete names one rule; the whole list is never "
        f"replaced) and kept every foreign rule and record as it was (identical after each "
        f"of {planted.checks - 1} scenarios)"
    ),
)
operator = fixtures.operator(
    "rel-cf", cloudflare="emulator", zone=(TOKEN, ZONE_ID), never_logged=TOKENS
)


def add_route(scene: Scene, name: str, zone_name: str = "main") -> None:
    scene.origin.set_route(name, p95=40.0, rps=20, host=HOST)
    scene.apply(deployment(name, 1), edge_route(name, zone_name))


def add_failing_route(scene: Scene, name: str, fault: str) -> str:
    """Add the route ``name`` and wait for its EdgeSynced=False message (``fault`` in it)."""
    add_route(scene, name)
    return kube.wait_for(lambda: edge_message(scene, name), 60, f"{fault} in status")


def owned_rules(emu: CloudflareEmulator, name: str, zone_id: str = ZONE_ID) -> list[dict[str, Any]]:
    return [r for r in emu.rules(zone_id) if str(r.get("description", "")).endswith(f"/{name}")]


def synced(scene: Scene, name: str) -> dict[str, Any] | None:
    st = scene.status(name)
    ok = condition(st, "EdgeSynced").get("status") == "True" and st.get("edgeTimeoutSeconds") == 301
    return st if ok else None


def converged(scene: Scene, name: str, timeout: float) -> float:
    """Seconds until the route's one rule says 301 and its status says so."""
    started = time.monotonic()
    kube.wait_for(lambda: synced(scene, name), timeout, f"{name}: edge synced")
    rules = owned_rules(scene.emu, name)
    assert len(rules) == 1, rules
    assert rules[0]["action_parameters"]["read_timeout"] == 301
    return time.monotonic() - started


def edge_message(scene: Scene, name: str) -> str | None:
    found = condition(scene.status(name), "EdgeSynced")
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


def test_429_with_retry_after_is_honoured(scene: Scene) -> None:
    name = "limited"
    wait = 5
    with scene.case(
        f"429 with Retry-After: {wait} on the Cache Rules write of a new route",
        "the route's EdgeSynced says rate limited; not one request to Cloudflare until "
        "Retry-After has passed (emulator log); then exactly one rule with read_timeout 301",
        alive=True,
    ) as row:
        # The zone's entry point exists (the foreign rules): the write is the rule's create.
        scene.emu.fail_next(
            1, status=429, method="POST", path_prefix=f"/zones/{ZONE_ID}/rulesets", retry_after=wait
        )
        limited = add_failing_route(scene, name, "the 429")
        hit = next(e for e in rule_writes(scene.emu) if e.status == 429)
        took = converged(scene, name, 60)
        after = zone_requests(scene.emu, hit.started_at + 0.001)
        first_after = min(e.started_at for e in after) - hit.started_at
        assert first_after >= wait, f"a request {first_after:.1f}s after the 429"
        row.did = (
            f"EdgeSynced=False: '{short(limited, 150)}'; next request {first_after:.1f} s "
            f"after the 429; rule written {took:.0f} s after status showed the 429"
        )


def test_5xx_burst_backs_off_and_converges(scene: Scene) -> None:
    name = "burst"
    burst = 20.0
    with scene.case(
        f"5xx burst: every request to the zone answered 503 for {burst:.0f} s",
        "EdgeSynced=False names Cloudflare's 503; at most one request per backoff step (15 s, "
        "then 30 s) during the burst, no SDK retries; rule written once the burst is over",
        alive=True,
    ) as row:
        start = time.time()
        scene.emu.fail_next(1000, status=503, path_prefix=f"/zones/{ZONE_ID}")
        try:
            failed = add_failing_route(scene, name, "the 503")
            time.sleep(max(0.0, start + burst - time.time()))
        finally:
            scene.emu.clear_faults()
        during = zone_requests(scene.emu, start)
        assert 1 <= len(during) <= 3, [(e.method, e.status) for e in during]
        assert all(e.status == 503 for e in during)
        took = converged(scene, name, 60)
        row.did = (
            f"EdgeSynced=False: '{short(failed, 160)}'; {len(during)} request(s) in the "
            f"{burst:.0f} s burst; rule written {took:.0f} s after it ended"
        )


def test_hanging_request_times_out_and_converges(scene: Scene) -> None:
    name = "hang"
    with scene.case(
        "Timeout: the Cache Rules read hangs 25 s without an answer (operator timeout 20 s)",
        "EdgeSynced=False says Cloudflare did not answer in time; the evaluation loop goes "
        "on afterwards; one retry after the backoff writes the rule",
        alive=True,
    ) as row:
        start = time.time()
        scene.emu.hang_next(
            1, hold_seconds=25, method="GET", path_prefix=f"/zones/{ZONE_ID}/rulesets"
        )
        failed = add_failing_route(scene, name, "the timeout")
        took = converged(scene, name, 60)
        cycles = [
            float(line.rsplit(" in ", 1)[1].split("s", 1)[0])
            for line in scene.operator.output().splitlines()
            if "cycle: " in line and " in " in line
        ]
        row.did = (
            f"EdgeSynced=False: '{short(failed, 150)}'; the cycle waiting on it took "
            f"{max(cycles):.0f} s (the request timeout), later cycles normal; rule written "
            f"{time.time() - start:.0f} s after the hang began ({took:.0f} s after the failure "
            "showed)"
        )


def test_request_budget_caps_requests(scene: Scene) -> None:
    with scene.case(
        "The operator's own request budget: a CloudflareZone with apiRequestBudget 10 and "
        "routes that need more requests than that",
        "no more than 10 requests reach Cloudflare with that token in the 5-minute window "
        "(emulator log); routes past it say the budget is spent",
        alive=True,
    ) as row:
        scene.apply(
            secret("cf-budget", BUDGET_TOKEN),
            zone("small", BUDGET_ZONE_ID, "cf-budget", apiRequestBudget=10),
        )
        kube.wait_for(
            lambda: zone_status(scene.cp, scene.ns, "small").get(
                "effectiveProxyReadTimeoutSeconds"
            ),
            60,
            "the small zone read",
        )
        names: list[str] = []
        spent = None
        for i in range(8):  # one route at a time, so each costs its own read and write
            names.append(name := f"budget-{i}")
            add_route(scene, name, zone_name="small")
            kube.wait_for(
                lambda n=name: owned_rules(scene.emu, n, BUDGET_ZONE_ID) or edge_message(scene, n),
                60,
                f"{name} written or refused",
            )
            spent = next(
                (m for n in names if "budget" in (m := edge_message(scene, n) or "")), None
            )
            if spent:
                break
        assert spent, "the budget never ran out"
        operator_process.wait_cycles(scene.operator, 3)
        sent = len(scene.emu.requests(path_contains=BUDGET_ZONE_ID))
        written = sum(bool(owned_rules(scene.emu, n, BUDGET_ZONE_ID)) for n in names)
        assert sent <= 10, sent
        row.did = (
            f"sent {sent} requests, wrote {written} of {len(names)} rules, then held the rest: "
            f"'{short(spent, 150)}'"
        )


def test_revoked_token_is_not_retried_in_a_storm(scene: Scene) -> None:
    name = "revoked"
    quiet = 10.0
    with scene.case(
        "401 and 403: the token revoked (401 on the rules write), and a CloudflareZone whose "
        "Secret holds a token Cloudflare does not know (403)",
        f"the route's EdgeSynced=False says the token was rejected and what to check; the "
        f"zone with the unknown token says AuthFailed; no request with the rejected token for "
        f"{quiet:.0f} s (emulator log); after the token is rotated (new Secret) the rule is "
        "written",
        alive=True,
    ) as row:
        start = time.time()
        scene.emu.fail_next(1, status=401, method="POST", path_prefix=f"/zones/{ZONE_ID}/rulesets")
        rejected = add_failing_route(scene, name, "the 401")
        hit = next(e for e in rule_writes(scene.emu) if e.status == 401)
        time.sleep(max(0.0, hit.started_at + quiet - time.time()))
        after = zone_requests(scene.emu, hit.started_at + 0.001)
        assert after == [], [(e.method, e.path) for e in after]
        assert "rejected the API token" in rejected
        route_cond = condition(scene.status(name), "EdgeSynced")
        # A second zone whose Secret holds a token Cloudflare does not know at all.
        scene.apply(
            secret("cf-wrong", "not-a-valid-token-0000"),
            zone("wrong", WRONG_ZONE_ID, "cf-wrong"),
        )
        wrong = kube.wait_for(
            lambda: (
                (c := condition(zone_status(scene.cp, scene.ns, "wrong"), "EdgeSynced")).get(
                    "reason"
                )
                == "AuthFailed"
                and c
            ),
            60,
            "AuthFailed on the zone with the wrong token",
        )
        # The user rotates the token: a new Secret, the zone pointed at it.
        scene.apply(secret("cf-rotated", ROTATED), zone("main", ZONE_ID, "cf-rotated"))
        took = converged(scene, name, 60)
        row.did = (
            f"route EdgeSynced=False/{route_cond.get('reason')}: '{short(rejected, 170)}'; "
            f"0 requests in the {quiet:.0f} s after the 401; "
            f"zone 'wrong': AuthFailed '{short(wrong['message'], 120)}'; after rotation the "
            f"rule was written in {took:.0f} s ({time.time() - start:.0f} s in all)"
        )
        metrics = scrape(scene.operator.metrics_url)
        for token in TOKENS:
            assert token not in metrics
            assert token not in json.dumps(kube.get_json(scene.cp, "events", "-n", scene.ns))
