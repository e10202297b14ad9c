"""The timeout chain (``decide.chain``): each hop's verdict, ``ChainConsistent``, and the
edge rung that does not raise the edge above a hop that fires first."""

from __future__ import annotations

from types import SimpleNamespace

import pydantic
import pytest

from tests.support.ladder import T0, ZONE_HOP, make_observation, make_spec
from timeout_budget.decide import chain, status
from timeout_budget.decide.ladder import decide
from timeout_budget.edge import routes
from timeout_budget.model.actions import EdgeTimeout
from timeout_budget.model.chain import Hop, Verdict
from timeout_budget.model.conditions import ConditionStatus
from timeout_budget.model.memory import Memory
from timeout_budget.model.world import EdgeObservation

pytestmark = pytest.mark.unit

EDGE = Hop("cloudflare", "CloudflareZone example-com", 120, "idle", "zone", answers="524")


def nginx(timeout: float | None, tries: int = 3) -> Hop:
    return Hop("ingress-nginx", "Ingress shop/api", timeout, "idle", "annotation", tries, "504")


def app(timeout: float) -> Hop:
    return Hop("app", "gunicorn, spec.chain.appServer", timeout, "worker", "spec")


def gunicorn(timeout: int = 30) -> dict[str, object]:
    return {"appServer": {"name": "gunicorn", "requestTimeoutSeconds": timeout}}


@pytest.mark.parametrize(
    ("inner", "budget", "verdicts", "reason"),
    [
        pytest.param((app(300),), 120, ["Ok"], "Consistent", id="app-longer"),
        pytest.param((app(30),), 120, ["FiresFirst"], "InnerHopFiresFirst", id="app-shorter"),
        pytest.param((app(120),), 120, ["Ok"], "Consistent", id="app-equal-is-enough"),
        pytest.param(
            (nginx(60, tries=1), app(30)),
            120,
            ["Short", "FiresFirst"],
            "InnerHopFiresFirst",
            id="shortest-fires-first",
        ),
        pytest.param(
            (nginx(60), app(300)),
            100,
            ["RetriesPastEdge", "Ok"],
            "Consistent",
            id="nginx-3x60-past-the-edge",
        ),
        pytest.param(
            (nginx(60), app(300)), 200, ["FiresFirst", "Ok"], "InnerHopFiresFirst", id="3x60<200"
        ),
        pytest.param((nginx(None),), 120, ["Unknown"], "HopsUnknown", id="unknown-not-guessed"),
        pytest.param((), 120, [], "HopsUnknown", id="nothing-known"),
    ],
)
def test_verdicts(inner: tuple[Hop, ...], budget: int, verdicts: list[str], reason: str) -> None:
    judged = chain.judge(EDGE, inner, budget)
    assert judged.hops[0].verdict is Verdict.OK  # the edge is the reference
    assert [h.verdict.value for h in judged.hops[1:]] == verdicts
    assert judged.condition.reason == reason


def test_the_message_names_the_hop_what_a_visitor_gets_and_what_to_raise() -> None:
    judged = chain.judge(EDGE, (nginx(60, tries=1),), 120)
    assert judged.condition.status is ConditionStatus.FALSE
    assert judged.condition.message == (
        "ingress-nginx (Ingress shop/api) fires first: a visitor gets 504 after 60s, before "
        "Cloudflare's 120s and the 120s budget: raise its timeout to at least 121s"
    )
    retried = chain.judge(EDGE, (nginx(60),), 100).condition
    assert retried.status is ConditionStatus.TRUE
    assert "tries a timed-out request 3 times (60s each), past Cloudflare's 120s" in retried.message


def test_without_spec_chain_nothing_changes() -> None:
    decision = decide(make_spec(), make_observation(50.0), Memory(), T0)
    assert decision.chain == ()
    assert "ChainConsistent" not in {c.type for c in decision.conditions}
    built = status.build(decision, make_observation(50.0), previous=None, now=T0, generation=1)
    assert built["chain"] is None


def test_a_declared_app_server_shorter_than_the_budget_is_reported() -> None:
    spec = make_spec(chain=gunicorn(30))
    decision = decide(spec, make_observation(50.0), Memory(), T0)
    assert [(h.hop, h.verdict) for h in decision.chain] == [
        ("cloudflare", Verdict.OK),
        ("app", Verdict.FIRES_FIRST),
    ]
    (consistent,) = [c for c in decision.conditions if c.type == "ChainConsistent"]
    assert consistent.reason == "InnerHopFiresFirst"
    assert "App (gunicorn, spec.chain.appServer) fires first" in decision.message
    built = status.build(decision, make_observation(50.0), previous=None, now=T0, generation=1)
    assert built["chain"] == [
        ZONE_HOP,
        {
            "hop": "app",
            "object": "gunicorn, spec.chain.appServer",
            "timeoutSeconds": 30,
            "measures": "worker",
            "source": "spec",
            "verdict": "FiresFirst",
        },
    ]


def test_the_edge_is_not_raised_above_a_hop_that_fires_first() -> None:
    at_max = make_observation(100, replicas=6)
    without = decide(make_spec(reroute=None), at_max, Memory(at_risk=True), T0)
    assert any(isinstance(a, EdgeTimeout) and a.seconds == 121 for a in without.actions)
    spec = make_spec(reroute=None, chain=gunicorn(30))
    held = decide(spec, at_max, Memory(at_risk=True), T0)
    assert not any(isinstance(a, EdgeTimeout) and a.seconds for a in held.actions)
    assert "the edge read timeout is not raised: app" in held.message
    assert not held.memory.edge_raised
    longer = decide(make_spec(reroute=None, chain=gunicorn(600)), at_max, Memory(at_risk=True), T0)
    assert any(isinstance(a, EdgeTimeout) and a.seconds == 121 for a in longer.actions)


@pytest.mark.parametrize(
    "app_server",
    [
        {"requestTimeoutSeconds": 0},
        {"requestTimeoutSeconds": 86401},
        {},
        {"name": "Gunicorn 21", "requestTimeoutSeconds": 30},
    ],
)
def test_bad_app_server_is_refused(app_server: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        make_spec(chain={"appServer": app_server})


def test_a_server_closing_idle_connections_before_the_pool_in_front_is_a_warning() -> None:
    pool = nginx(300, tries=1)  # ingress-nginx keeps idle upstream connections 60 s
    pool = Hop(pool.hop, pool.object, 300, "idle", "annotation", keep_alive_seconds=60)
    uvicorn = Hop(
        "app", "uvicorn, spec.chain.appServer", 600, "worker", "spec", keep_alive_seconds=5
    )
    judged = chain.judge(EDGE, (pool, uvicorn), 120)
    assert judged.condition.status is ConditionStatus.TRUE  # a warning, not a failure
    assert (
        "app closes idle connections after 5s, while ingress-nginx keeps them 60s"
        in judged.condition.message
    )
    longer = Hop("app", "uvicorn", 600, "worker", "spec", keep_alive_seconds=75)
    assert "closes idle" not in chain.judge(EDGE, (pool, longer), 120).condition.message
    unknown = Hop("app", "uvicorn", 600, "worker", "spec")
    assert "closes idle" not in chain.judge(EDGE, (pool, unknown), 120).condition.message


def test_a_tunnel_behind_the_edge_is_a_hop_that_never_fires_first() -> None:
    """The route's host is a CNAME to a Cloudflare Tunnel (read from the zone's records):
    cloudflared has no read timeout, so it is shown, and judged Ok."""
    zone = SimpleNamespace(
        dns={"api.example.com": [{"type": "CNAME", "content": "0f1e.cfargotunnel.com"}]},
        chains={},
    )
    target = routes._tunnel(zone, "api.example.com")  # type: ignore[arg-type]
    assert target == "0f1e.cfargotunnel.com"
    assert routes._tunnel(zone, "www.example.com") is None  # type: ignore[arg-type]
    (tunnel,) = chain.tunnel_hops(EdgeObservation(120, editable=False, tunnel=target))
    judged = chain.judge(chain.edge_hop(make_spec(chain={}), None, 120), (tunnel,), 120)
    assert [(h.hop, h.verdict) for h in judged.hops] == [
        ("cloudflare", Verdict.OK),
        ("tunnel", Verdict.OK),
    ]
    assert "timeoutSeconds" not in tunnel.to_status()
    assert chain.tunnel_hops(EdgeObservation(120, editable=False, tunnel="")) == ()
