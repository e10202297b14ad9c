"""The Cloudflare API token and the Prometheus bearer token never show up where people (or
log collectors) read: logs, Events, status, metrics, exception messages.

The operator runs with ``--verbose`` (debug logging of every HTTP client it uses), reads its
Prometheus bearer token from a file (``TBO_PROMETHEUS_BEARER_TOKEN_FILE``) and its Cloudflare
token from a Secret. Prometheus sits behind ``FaultProxy``, which answers 401 unless that
bearer token comes, so every reading proves the token was sent. Then every path that builds
a message from a failure is driven: Prometheus refusing the token (401), erroring (503),
timing out; Cloudflare rejecting the token (403), erroring (500), rate limiting (429). At the
end everything captured is searched for both tokens, raw and base64-encoded.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from typing import Any

import pytest

from tests.reliability import fixtures
from tests.reliability.helpers import Scene, condition, short
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.faults import FaultProxy
from tests.support.objects import HOST, budget, deployment, zone
from tests.support.reliability import REPORT

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-secrets"
AREA = "Secrets"
CF_TOKEN = "cf-secret-token-b3c9d1e7a5f24680"
PROM_TOKEN = "prom-bearer-token-7e4a9c2d6b1f3085"
ZONE_ID = "b3c9d1e7a5f24680b3c9d1e7a5f24680"
FAULT_ZONES = {
    403: "40340340340340340340340340340340",
    500: "50050050050050050050050050050050",
    429: "42942942942942942942942942942942",
}


guarded_prometheus = fixtures.proxy("prometheus", require_bearer=PROM_TOKEN)
emulator = fixtures.emulator(CF_TOKEN, ZONE_ID)
operator = fixtures.operator(
    "rel-secrets",
    "guarded_prometheus",
    cloudflare="emulator",
    zone=(CF_TOKEN, ZONE_ID),
    settings="prometheus_token",
)


@pytest.fixture(scope="module")
def prometheus_token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The operator's settings reading its Prometheus bearer token from a file (mode 600)."""
    path = tmp_path_factory.mktemp("prometheus-token") / "token"
    path.write_text(PROM_TOKEN + "\n")
    path.chmod(0o600)
    return {"TBO_PROMETHEUS_BEARER_TOKEN_FILE": str(path), "TBO_PROMETHEUS_TIMEOUT_SECONDS": "2"}


def metrics_failure(scene: Scene, needle: str) -> str | None:
    """The route's MetricsAvailable message when it reports Prometheus failing with ``needle``."""
    found = condition(scene.status("secret"), "MetricsAvailable")
    message = str(found.get("message", ""))
    unavailable = found.get("reason") == "MetricsUnavailable"
    return message if unavailable and needle in message else None


def failure_event(scene: Scene, name: str, needle: str) -> str | None:
    """The message of a Warning Event ActionFailed about ``name`` that mentions ``needle``."""
    selector = f"involvedObject.name={name}"
    events = kube.get_json(scene.cp, "events", "-n", scene.ns, "--field-selector", selector)
    return next(
        (
            e["message"]
            for e in events["items"]
            if e["reason"] == "ActionFailed" and needle in e["message"]
        ),
        None,
    )


def test_tokens_never_leak_through_any_failure(
    scene: Scene, guarded_prometheus: FaultProxy
) -> None:
    proxy = guarded_prometheus
    seen: list[str] = []  # the failure messages the operator reported, for the report
    with REPORT.case(
        AREA,
        "Prometheus bearer token from TBO_PROMETHEUS_BEARER_TOKEN_FILE, Prometheus behind a "
        "proxy that answers 401 without it",
        "every query the operator sent carried the token (proxy log), so readings come",
    ) as row:
        scene.origin.set_route("secret", p95=40.0, rps=20, host=HOST)
        tb = budget("secret", "secret")
        tb["spec"]["budget"] = {"timeoutSeconds": 360, "requiredSeconds": 300}
        tb["spec"]["edge"] = {"zoneRef": {"name": "main"}}
        scene.apply(deployment("secret", 1), tb)
        kube.wait_for(lambda: scene.status("secret").get("p95Seconds"), 60, "a reading")
        kube.wait_for(
            lambda: scene.status("secret").get("edgeTimeoutSeconds") == 301, 60, "the rule"
        )
        sent = proxy.requests("/api/v1/")
        assert sent
        assert all(s.authorized for s in sent), [s.path for s in sent if not s.authorized]
        row.did = f"{len(sent)} Prometheus requests, all with the bearer token; P95 read"

    with REPORT.case(
        AREA,
        "Failures whose messages could carry a token: Prometheus 401 (token refused), 503, a "
        "query timing out; Cloudflare 403 (token refused), 500, 429",
        "each failure is reported (MetricsAvailable in status; a Warning Event ActionFailed "
        "per failed Cloudflare write) with its reason",
    ) as row:
        proxy.require_bearer = "a-different-token"  # Prometheus now refuses ours
        seen.append(kube.wait_for(lambda: metrics_failure(scene, "401"), 30, "a 401 reported"))
        proxy.require_bearer = PROM_TOKEN
        proxy.fail_next("", "/api/v1/query", 503, count=6)
        seen.append(kube.wait_for(lambda: metrics_failure(scene, "503"), 30, "a 503 reported"))
        proxy.clear()
        proxy.hold_next("", "/api/v1/query", seconds=4, count=4)
        seen.append(
            kube.wait_for(lambda: metrics_failure(scene, "did not answer"), 30, "a timeout")
        )
        proxy.clear()
        for code, zone_id in FAULT_ZONES.items():
            scene.emu.add_zone(zone_id, "enterprise", name=f"z{code}.example.com")
            # The zone has no Cache Rules entry point yet: the route's write is the POST
            # creating it (holding the rule).
            scene.emu.fail_next(
                1,
                status=code,
                method="POST",
                path_prefix=f"/zones/{zone_id}/rulesets",
                retry_after=1,
            )
            scene.apply(zone(f"z{code}", zone_id), _with_required(f"need-{code}", f"z{code}"))
        for code in FAULT_ZONES:
            seen.append(
                kube.wait_for(
                    lambda c=code: failure_event(scene, f"need-{c}", str(c)),
                    60,
                    f"Cloudflare's {code} reported",
                )
            )
        for code, zone_id in FAULT_ZONES.items():
            # the fault answered the entry point's create; the whole list was never PUT
            creates = scene.emu.requests("POST", f"/zones/{zone_id}/rulesets")
            assert [(e.path.endswith("/rulesets"), e.status) for e in creates if e.fault] == [
                (True, code)
            ]
            assert scene.emu.requests("PUT", f"/zones/{zone_id}/") == []
        row.did = " · ".join(short(_essence(m), 120) for m in seen)

    with REPORT.case(
        AREA,
        "Everything captured searched for both tokens (raw and base64)",
        "absent from the operator's log (--verbose: debug logs of every HTTP client, their "
        "tracebacks included), every Event of the namespace, the status of every "
        "TimeoutBudget and CloudflareZone, kubectl describe, /metrics",
    ) as row:
        operator_process.wait_cycles(scene.operator, 2)
        with urllib.request.urlopen(scene.operator.metrics_url, timeout=5) as response:
            metrics = response.read().decode()
        captured = {
            "operator log": scene.operator.output(),
            "Events": json.dumps(kube.get_json(scene.cp, "events", "-n", scene.ns)),
            "TimeoutBudgets": json.dumps(kube.get_json(scene.cp, "tb", "-n", scene.ns)),
            "CloudflareZones": json.dumps(
                kube.get_json(scene.cp, "cloudflarezone", "-n", scene.ns)
            ),
            "kubectl describe": scene.cp.kubectl(
                "describe", "tb,cloudflarezone", "-n", scene.ns
            ).stdout,
            "/metrics": metrics,
        }
        needles = []
        for token in (CF_TOKEN, PROM_TOKEN):
            needles += [token, base64.b64encode(token.encode()).decode()]
        leaks = [(where, n) for where, text in captured.items() for n in needles if n in text]
        assert not leaks, leaks
        sizes = ", ".join(f"{where} {len(text) // 1024} KiB" for where, text in captured.items())
        traces = captured["operator log"].count("Traceback")
        row.did = (
            f"no token anywhere in: {sizes} (the log holds {traces} debug tracebacks of the "
            "HTTP clients, none with a token)"
        )


def _essence(message: str) -> str:
    """The part of a failure message that says what went wrong."""
    message = message.replace("Prometheus is unavailable: ", "")
    return re.sub(
        r"^set the edge read timeout .*?: create the Cache Rules entry point of zone \w+: ",
        "",
        message,
    )


def _with_required(name: str, zone: str) -> dict[str, Any]:
    tb = budget(name, "secret")
    tb["spec"]["origin"]["deploymentName"] = "secret"
    tb["spec"]["budget"] = {"timeoutSeconds": 360, "requiredSeconds": 300}
    tb["spec"]["route"]["pathPrefix"] = f"/{name}"
    tb["spec"]["edge"] = {"zoneRef": {"name": zone}}
    return tb
