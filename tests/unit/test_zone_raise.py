"""The zone-wide ``proxy_read_timeout`` (``decide.zone_raise``): raised for what the zone's
routes need where the CloudflareZone opts in, given back afterwards, never lowered below
someone else's value, and the spec's fixed value enforced as before."""

from __future__ import annotations

from typing import Any

import pytest

from timeout_budget.decide.zone_raise import Need, ZoneRaise, ZoneTimeoutPlan, plan
from timeout_budget.model.spec import CloudflareZoneSpec, parse_cloudflare_zone

pytestmark = pytest.mark.unit

ZONE_ID = "0" * 32
API = Need(301, ("shop/api",))


def spec(ceiling: int | None = 600, enabled: bool = True, **fields: Any) -> CloudflareZoneSpec:
    body: dict[str, Any] = {"zoneId": ZONE_ID, "apiTokenSecretRef": {"name": "cf"}, **fields}
    if ceiling is not None:
        body["raiseProxyReadTimeout"] = {"enabled": enabled, "ceilingSeconds": ceiling}
    return parse_cloudflare_zone(body)


# (case, spec, current, editable, need, memory) -> (send, memory)
CASES: list[tuple[str, CloudflareZoneSpec, int, bool, Need | None, ZoneRaise | None, Any]] = [
    ("raise for the need", spec(), 120, True, API, None, (301, ZoneRaise(120, 301))),
    ("hold while needed", spec(), 301, True, API, ZoneRaise(120, 301), (None, ZoneRaise(120, 301))),
    ("give back once not needed", spec(), 301, True, None, ZoneRaise(120, 301), (120, None)),
    ("need within the zone", spec(), 120, True, Need(100, ("shop/a",)), None, (None, None)),
    ("capped at the ceiling", spec(200), 120, True, API, None, (200, ZoneRaise(120, 200))),
    ("ceiling below the zone", spec(100), 120, True, API, None, (None, None)),
    ("opt-in off", spec(enabled=False), 120, True, API, None, (None, None)),
    ("no opt-in", spec(None), 120, True, API, None, (None, None)),
    ("someone else's higher value stays", spec(), 900, True, API, None, (None, None)),
    ("someone else's value stays, needed or not", spec(), 900, True, None, None, (None, None)),
    ("not editable: nothing sent", spec(), 120, False, API, None, (None, None)),
    (
        "changed by someone else while raised: left, forgotten",
        spec(),
        500,
        True,
        None,
        ZoneRaise(120, 301),
        (None, None),
    ),
    (
        "changed by someone else, still needed, theirs is lower: raised again from it",
        spec(),
        200,
        True,
        API,
        ZoneRaise(120, 301),
        (301, ZoneRaise(200, 301)),
    ),
    (
        "need drops but stays above: lowered to the need, not below",
        spec(),
        301,
        True,
        Need(181, ("shop/b",)),
        ZoneRaise(120, 301),
        (181, ZoneRaise(120, 181)),
    ),
    (
        "need grows: raised further from the same origin",
        spec(),
        181,
        True,
        API,
        ZoneRaise(120, 181),
        (301, ZoneRaise(120, 301)),
    ),
    (
        "fixed value enforced",
        spec(None, proxyReadTimeoutSeconds=300),
        100,
        True,
        None,
        None,
        (300, None),
    ),
    (
        "fixed value, raise above it",
        spec(proxyReadTimeoutSeconds=150),
        150,
        True,
        API,
        None,
        (301, ZoneRaise(150, 301)),
    ),
    (
        "fixed value, given back to it",
        spec(proxyReadTimeoutSeconds=150),
        301,
        True,
        None,
        ZoneRaise(150, 301),
        (150, None),
    ),
    (
        "fixed value covers the need",
        spec(proxyReadTimeoutSeconds=400),
        400,
        True,
        API,
        None,
        (None, None),
    ),
    (
        "plan's maximum below the need",
        spec(6000),
        120,
        True,
        Need(7000, ("shop/a",)),
        None,
        (6000, ZoneRaise(120, 6000)),
    ),
]


@pytest.mark.parametrize(
    ("spec_", "current", "editable", "need", "memory", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan(
    spec_: CloudflareZoneSpec,
    current: int,
    editable: bool,
    need: Need | None,
    memory: ZoneRaise | None,
    expected: tuple[int | None, ZoneRaise | None],
) -> None:
    found = plan(spec_, current, editable, need, memory)
    assert (found.send, found.memory) == expected


@pytest.mark.parametrize(
    ("spec_", "current", "editable", "need", "memory"),
    [case[1:-1] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_applying_the_plan_reaches_a_fixed_point(
    spec_: CloudflareZoneSpec,
    current: int,
    editable: bool,
    need: Need | None,
    memory: ZoneRaise | None,
) -> None:
    """Whatever the start, sending what the plan says and planning again sends nothing:
    the zone setting cannot flap between two cycles with the same need."""
    first = plan(spec_, current, editable, need, memory)
    after = first.send if first.send is not None else current
    again = plan(spec_, after, editable, need, first.memory)
    assert again == ZoneTimeoutPlan(None, first.memory, again.note), (spec_, current, need)


def test_notes_say_why_the_need_is_not_met() -> None:
    assert "raiseProxyReadTimeout is off" in (plan(spec(None), 120, True, API, None).note or "")
    assert "ceiling of 200s" in (plan(spec(200), 120, True, API, None).note or "")
    assert "Enterprise only" in (plan(spec(), 120, False, API, None).note or "")
    foreign = plan(spec(), 500, True, None, ZoneRaise(120, 301)).note or ""
    assert "changed by someone else" in foreign
    assert "not given back" in foreign
    assert plan(spec(), 120, True, API, None).note is None


def test_the_ceiling_is_required_and_bounded() -> None:
    with pytest.raises(ValueError, match=r"ceilingSeconds|ceiling_seconds"):
        parse_cloudflare_zone(
            {
                "zoneId": ZONE_ID,
                "apiTokenSecretRef": {"name": "cf"},
                "raiseProxyReadTimeout": {"enabled": True},
            }
        )
    with pytest.raises(ValueError, match="less than or equal to 6000"):
        spec(6001)
