"""Which records a DNS-only reroute switches, and that the undo finds exactly those."""

from __future__ import annotations

from typing import Any

import pytest

from timeout_budget.decide import dns_only
from timeout_budget.decide.dns_only import DnsOnlyRefused

pytestmark = pytest.mark.unit

KEY = "shop/api-export"


def record(
    rid: str, kind: str = "A", *, proxied: bool = True, comment: str | None = None
) -> dict[str, Any]:
    return {
        "id": rid,
        "name": "export.example.com",
        "type": kind,
        "proxied": proxied,
        "ttl": 1 if proxied else 300,
        "comment": comment,
    }


def test_switch_off_changes_every_proxied_record_and_marks_it() -> None:
    records = [record("a"), record("b", "AAAA", comment="ipv6 origin"), record("t", "TXT")]

    edits = dns_only.switch_off(records, "export.example.com", KEY)

    assert [(e.record_id, e.type, e.proxied, e.ttl) for e in edits] == [
        ("a", "A", False, 1),
        ("b", "AAAA", False, 1),
    ]
    assert edits[0].comment == "[DNS-only: timeout-budget shop/api-export]"
    assert edits[1].comment == "ipv6 origin [DNS-only: timeout-budget shop/api-export]"


def test_a_record_already_dns_only_by_choice_is_left_alone() -> None:
    records = [record("a"), record("kept", proxied=False, comment="grey on purpose")]

    edits = dns_only.switch_off(records, "export.example.com", KEY)
    switched = [{**records[0], "proxied": False, "comment": edits[0].comment}, records[1]]
    undo = dns_only.switch_back(switched, KEY)

    assert [e.record_id for e in edits] == ["a"]
    assert [(e.record_id, e.proxied, e.comment) for e in undo] == [("a", True, "")]


def test_undo_restores_the_comment_exactly() -> None:
    original = "managed by external-dns: heritage=external-dns"
    marked = dns_only.mark(original, KEY)

    assert dns_only.unmark(marked) == original
    assert dns_only.is_marked_by({"comment": marked}, KEY)
    assert not dns_only.is_marked_by({"comment": marked}, "shop/other")


def test_in_force_only_when_marked_and_nothing_proxied() -> None:
    marked = dns_only.mark(None, KEY)

    assert dns_only.in_force([record("a", proxied=False, comment=marked)], KEY)
    assert not dns_only.in_force(
        [record("a", proxied=False, comment=marked), record("b", proxied=True)], KEY
    )
    assert not dns_only.in_force([record("a", proxied=False)], KEY)  # not the operator's doing


@pytest.mark.parametrize(
    ("records", "message"),
    [
        pytest.param([], "no A, AAAA or CNAME record named", id="no-records"),
        pytest.param([record("t", "TXT")], "no A, AAAA or CNAME record", id="only-txt"),
        pytest.param(
            [record("a", proxied=False)], "did not make it so", id="already-grey-by-someone"
        ),
        pytest.param(
            [record("a", proxied=False, comment=dns_only.mark(None, "shop/other"))],
            "already DNS-only for TimeoutBudget shop/other",
            id="owned-by-another-route",
        ),
        pytest.param([record("a", comment="x" * 80)], "too long to carry", id="comment-too-long"),
    ],
)
def test_switch_off_refuses_with_a_reason(records: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(DnsOnlyRefused, match=message):
        dns_only.switch_off(records, "export.example.com", KEY)


def test_switch_off_again_is_a_no_op_for_the_owner() -> None:
    marked = dns_only.mark(None, KEY)
    assert dns_only.switch_off([record("a", proxied=False, comment=marked)], "h", KEY) == []


def test_a_very_long_key_is_named_by_digest_within_the_comment_limit() -> None:
    key = "namespace-" + "n" * 50 + "/" + "x" * 200
    text = dns_only.mark(None, key)

    assert len(text) <= dns_only.COMMENT_LIMIT
    assert dns_only.is_marked_by({"comment": text}, key)
    assert not dns_only.is_marked_by({"comment": text}, key + "y")
