"""The weighted reroute's arithmetic and bookkeeping on an HTTPRoute rule
(``model.httproute``): exact shares, other backends' relative weights kept, the rule that
carries the route, what counts as changed by someone else, and the exact restore."""

from __future__ import annotations

from typing import Any

import pytest

from timeout_budget.model.httproute import (
    Record,
    find_rule,
    raised_timeouts,
    share,
    shifted,
)

pytestmark = pytest.mark.unit

LONG = ("api-long", 8080)


@pytest.mark.parametrize(
    ("refs", "percent", "weights"),
    [
        ([{"name": "api", "port": 80}], 25, [3, 1]),
        ([{"name": "api", "port": 80}], 50, [1, 1]),
        ([{"name": "api", "port": 80}], 100, [0, 1]),
        ([{"name": "api", "port": 80}], 33, [67, 33]),
        (
            [{"name": "a", "port": 80, "weight": 3}, {"name": "b", "port": 80, "weight": 1}],
            20,
            [3, 1, 1],
        ),
        (
            [{"name": "a", "port": 80, "weight": 2}, {"name": "b", "port": 80, "weight": 0}],
            50,
            [1, 0, 1],
        ),
    ],
)
def test_the_share_is_exact_and_the_others_keep_their_relative_weights(
    refs: list[dict[str, Any]], percent: int, weights: list[int]
) -> None:
    out = shifted(refs, *LONG, percent)
    assert not isinstance(out, str)
    assert [r["weight"] for r in out] == weights
    assert out[-1] == {"name": "api-long", "port": 8080, "weight": weights[-1]}
    assert share(out, *LONG) == percent


def test_a_long_running_backend_already_listed_is_reused_in_place_with_its_filters() -> None:
    refs = [
        {"name": "api-long", "port": 8080, "weight": 0, "filters": [{"type": "X"}]},
        {"name": "api", "port": 80, "filters": [{"type": "Y"}]},
    ]
    out = shifted(refs, *LONG, 25)
    assert out == [
        {"name": "api-long", "port": 8080, "weight": 1, "filters": [{"type": "X"}]},
        {"name": "api", "port": 80, "weight": 3, "filters": [{"type": "Y"}]},
    ]


@pytest.mark.parametrize(
    ("refs", "says"),
    [
        ([], "no other backend"),
        ([{"name": "api-long", "port": 8080}], "no other backend"),
        ([{"name": "api", "port": 80, "weight": 0}], "carry no traffic"),
        (
            [
                {"name": "api", "port": 80, "weight": 999_999},
                {"name": "b", "port": 80, "weight": 999_998},
            ],
            "too large",
        ),
    ],
)
def test_what_cannot_be_split_is_refused(refs: list[dict[str, Any]], says: str) -> None:
    out = shifted(refs, *LONG, 25)
    assert isinstance(out, str)
    assert says in out


def test_a_backend_in_another_namespace_or_port_is_not_the_long_running_one() -> None:
    refs = [
        {"name": "api-long", "port": 9090},
        {"name": "api-long", "port": 8080, "namespace": "x"},
    ]
    out = shifted(refs, *LONG, 50)
    assert not isinstance(out, str)
    assert len(out) == 3


def route(*rules: dict[str, Any], hostnames: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": list(rules)}
    if hostnames is not None:
        spec["hostnames"] = hostnames
    return {"metadata": {"name": "api", "namespace": "shop"}, "spec": spec}


def prefix(path: str, **extra: Any) -> dict[str, Any]:
    return {"matches": [{"path": {"type": "PathPrefix", "value": path}}], **extra}


def test_the_rule_is_found_by_name_or_by_the_best_match_of_the_routes_path() -> None:
    httproute = route(prefix("/"), prefix("/export", name="slow"), prefix("/exp"))
    assert find_rule(httproute, "slow", "api.example.com", "/", ["GET"]) == 1
    assert find_rule(httproute, None, "api.example.com", "/export/csv", ["GET"]) == 1
    assert find_rule(httproute, None, "api.example.com", "/cart", ["GET"]) == 0


@pytest.mark.parametrize(
    ("httproute", "rule_name", "says"),
    [
        (route(prefix("/")), "slow", "has no rule named slow"),
        (route(prefix("/"), hostnames=["www.example.com"]), None, "does not serve the host"),
        (route(prefix("/cart")), None, "no rule of HTTPRoute api serves /export"),
        (
            route(prefix("/export"), prefix("/export", filters=[])),
            None,
            "rules 0, 1 of HTTPRoute api serve /export alike: name the rule",
        ),
    ],
)
def test_no_rule_or_two_alike_is_refused(
    httproute: dict[str, Any], rule_name: str | None, says: str
) -> None:
    found = find_rule(httproute, rule_name, "api.example.com", "/export", ["GET"])
    assert isinstance(found, str)
    assert says in found


def test_only_what_the_operator_wrote_counts_as_changed_and_the_restore_is_exact() -> None:
    original = {"backendRefs": [{"name": "api", "port": 80}]}
    written = {
        "backendRefs": [
            {"name": "api", "port": 80, "weight": 3},
            {"name": "api-long", "port": 8080, "weight": 1},
        ]
    }
    record = Record("shop/api", "0", 25, original, written)
    rule = {"matches": [{"path": {"value": "/"}}], **written, "timeouts": {"request": "30s"}}
    assert record.changed_by_others(rule) is None  # timeouts are not the shift's here
    edited = {**rule, "backendRefs": original["backendRefs"]}
    assert record.changed_by_others(edited) == "backendRefs changed"
    # The API server's defaults on what the operator wrote are no change.
    kept = [{"group": "", "kind": "Service", **r} for r in written["backendRefs"]]
    assert record.changed_by_others({**rule, "backendRefs": kept}) is None
    assert record.restored(rule) == {**rule, "backendRefs": original["backendRefs"]}
    assert Record.from_json(record.to_json()) == record
    assert Record.from_json("{not json") is None
    assert Record.from_json('{"owner": 1}') is None


def test_timeouts_written_where_the_rule_had_none_are_taken_out_again() -> None:
    record = Record(
        "shop/api",
        "0",
        25,
        {"backendRefs": []},
        {"backendRefs": [], "timeouts": {"request": "121s"}},
    )
    assert record.restored({"backendRefs": [], "timeouts": {"request": "121s"}}) == {
        "backendRefs": []
    }


@pytest.mark.parametrize(
    ("timeouts", "raised"),
    [
        ({}, {"request": "121s"}),
        ({"request": "30s"}, {"request": "121s"}),
        ({"request": "10m"}, {"request": "10m"}),
        ({"request": "0s"}, {"request": "0s"}),
        (
            {"request": "30s", "backendRequest": "10s"},
            {"request": "121s", "backendRequest": "121s"},
        ),
    ],
)
def test_rule_timeouts_are_only_ever_raised(
    timeouts: dict[str, str], raised: dict[str, str]
) -> None:
    assert raised_timeouts(timeouts, 121) == raised
