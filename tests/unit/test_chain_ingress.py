"""The Ingress in front of a route (``observe.chain.ingress_hops``): which one serves it,
what ingress-nginx's annotations say, and what stays unknown."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.ladder import make_spec
from timeout_budget.model.chain import Hop
from timeout_budget.observe.chain import ingress_hops

pytestmark = pytest.mark.unit

HOST = "api.example.com"


def ingress(
    name: str = "api",
    *,
    host: str = HOST,
    path: str = "/",
    path_type: str = "Prefix",
    cls: str | None = "nginx",
    **annotations: str,
) -> dict[str, Any]:
    notes = {
        f"nginx.ingress.kubernetes.io/{k.replace('_', '-')}": v for k, v in annotations.items()
    }
    spec: dict[str, Any] = {
        "rules": [{"host": host, "http": {"paths": [{"path": path, "pathType": path_type}]}}]
    }
    if cls is not None:
        spec["ingressClassName"] = cls
    return {"metadata": {"name": name, "namespace": "shop", "annotations": notes}, "spec": spec}


def hops(
    *ingresses: dict[str, Any], path: str = "/export", methods: list[str] | None = None
) -> tuple[Hop, ...]:
    route: dict[str, Any] = {"host": HOST, "pathPrefix": path}
    if methods is not None:
        route["methods"] = methods
    return ingress_hops(make_spec(route=route, chain={}), ingresses)


def test_annotation_default_and_tries() -> None:
    (hop,) = hops(ingress(proxy_read_timeout="300"))
    assert (hop.hop, hop.object, hop.timeout_seconds, hop.source, hop.tries) == (
        "ingress-nginx",
        "Ingress shop/api",
        300,
        "annotation",
        3,
    )
    (default,) = hops(ingress())
    assert (default.timeout_seconds, default.source) == (60, "default")


@pytest.mark.parametrize(
    ("annotations", "methods", "tries"),
    [
        ({}, None, 3),
        ({"proxy_next_upstream_tries": "5"}, None, 5),
        ({"proxy_next_upstream": "error"}, None, 1),  # timeouts are not retried
        ({"proxy_next_upstream": "off"}, None, 1),
        ({"proxy_next_upstream_tries": "lots"}, None, 3),
        ({}, ["POST"], 1),  # nginx does not retry a non-idempotent request
        ({}, ["POST", "GET"], 3),
    ],
)
def test_tries(annotations: dict[str, str], methods: list[str] | None, tries: int) -> None:
    (hop,) = hops(ingress(**annotations), methods=methods)
    assert hop.tries == tries


@pytest.mark.parametrize("junk", ["60s", "-1", "", "1e3", "9" * 40, "sixty"])
def test_junk_annotations_are_unknown_not_guessed(junk: str) -> None:
    (hop,) = hops(ingress(proxy_read_timeout=junk))
    assert hop.timeout_seconds is None
    assert hop.source.startswith("annotation (not a number")


def test_which_ingress_serves_the_route() -> None:
    assert hops(ingress(host="other.example.com")) == ()
    assert hops(ingress(path="/exports")) == ()  # a whole segment, as the controllers match
    assert hops(ingress(path="/export", path_type="Exact"), path="/export/1") == ()
    (longest,) = hops(ingress("root", proxy_read_timeout="30"), ingress("export", path="/export"))
    assert longest.object == "Ingress shop/export"
    (deeper,) = hops(ingress(path="/export/"), path="/export/big")
    assert deeper.object == "Ingress shop/api"


def test_two_ingresses_claiming_the_route_are_unknown() -> None:
    (hop,) = hops(ingress("a"), ingress("b"))
    assert hop.timeout_seconds is None
    assert hop.object == f"Ingresses shop/a, shop/b (all claim {HOST}/export)"


def test_another_class_is_shown_unknown() -> None:
    (hop,) = hops(ingress(cls="traefik"))
    assert (hop.hop, hop.timeout_seconds) == ("ingress", None)
    assert "class traefik" in hop.object
    (by_annotation,) = hops(ingress(cls=None, proxy_read_timeout="90"))
    assert by_annotation.timeout_seconds == 90  # nginx by its annotations


def test_many_rules_and_odd_shapes_do_not_crash() -> None:
    odd = {
        "metadata": {"name": "odd"},
        "spec": {"rules": [None, {"host": HOST}, {"host": HOST, "http": {"paths": [None, {}]}}]},
    }
    many = ingress("many")
    many["spec"]["rules"] = [
        {"host": f"h{i}.example.com", "http": {"paths": [{"path": "/"}]}} for i in range(500)
    ]
    (hop,) = hops(odd, many)  # the odd one's empty path is "/": it serves the route
    assert hop.object == "Ingress ?/odd (class no class: its timeouts are not read)"
    assert hop.timeout_seconds is None
