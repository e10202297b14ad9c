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


def named(name: str, kind: str, content: str, *, proxied: bool) -> dict[str, Any]:
    return {"id": name + kind, "name": name, "type": kind, "content": content, "proxied": proxied}


@pytest.mark.parametrize(
    ("target", "kind", "why"),
    [
        pytest.param(
            "6ff42ae2-765d-4adf-8112-31c55c1551ef.cfargotunnel.com",
            "CNAME",
            "CNAME to Cloudflare Tunnel",
            id="tunnel",
        ),
        pytest.param("100::", "AAAA", "placeholder only Cloudflare's proxy", id="workers-100"),
    ],
)
def test_a_cloudflare_only_target_is_refused(target: str, kind: str, why: str) -> None:
    records = [named("export.example.com", kind, target, proxied=True)]

    with pytest.raises(DnsOnlyRefused, match=why) as refused:
        dns_only.switch_off(records, "export.example.com", KEY)

    assert "the hostname goes down" in str(refused.value)


def test_a_record_cloudflare_manages_is_refused() -> None:
    record = {**named("export.example.com", "CNAME", "x.example.net", proxied=True)}
    record["meta"] = {"managed_by_argo_tunnel": True}

    with pytest.raises(DnsOnlyRefused, match="Cloudflare manages the record"):
        dns_only.switch_off([record], "export.example.com", KEY)


def test_a_cname_to_a_proxied_name_of_the_zone_is_refused() -> None:
    records = [named("export.example.com", "CNAME", "lb.example.com", proxied=True)]
    chain = [
        named("lb.example.com", "CNAME", "pool.example.com", proxied=False),
        named("pool.example.com", "A", "192.0.2.7", proxied=True),
    ]

    with pytest.raises(DnsOnlyRefused) as refused:
        dns_only.switch_off(records, "export.example.com", KEY, chain=chain)
    grey_chain = [{**r, "proxied": False} for r in chain]
    edits = dns_only.switch_off(records, "export.example.com", KEY, chain=grey_chain)

    assert "is a CNAME to lb.example.com, and pool.example.com further down" in str(refused.value)
    assert "make pool.example.com DNS-only" in str(refused.value)
    assert [e.record_id for e in edits] == ["export.example.comCNAME"]


def test_not_in_force_while_a_name_down_the_chain_is_proxied() -> None:
    mine = {
        **named("export.example.com", "CNAME", "lb.example.com", proxied=False),
        "comment": dns_only.mark(None, KEY),
    }
    proxied = [named("lb.example.com", "A", "192.0.2.7", proxied=True)]

    assert dns_only.in_force([mine], KEY)
    assert not dns_only.in_force([mine], KEY, chain=proxied)
    assert dns_only.cname_target([mine]) == "lb.example.com"


MARK = dns_only.marker(KEY)


@pytest.mark.parametrize(
    ("comment", "restored"),
    [
        pytest.param(f"pool A {MARK} (ticket 42)", "pool A (ticket 42)", id="text-after"),
        pytest.param(f"see runbook; pool A {MARK}", "see runbook; pool A", id="text-before"),
        pytest.param(f"{MARK} ticket 42", "ticket 42", id="marker-first"),
    ],
)
def test_the_marker_survives_a_person_editing_the_comment(comment: str, restored: str) -> None:
    record = {"comment": comment, "type": "A", "proxied": False}

    assert dns_only.is_marked_by(record, KEY)
    assert dns_only.in_force([record], KEY)
    assert dns_only.unmark(comment) == restored
    assert [e.comment for e in dns_only.switch_back([{**record, **ID}], KEY)] == [restored]


ID = {"id": "a", "name": "export.example.com", "ttl": 300}


def test_marking_twice_keeps_one_marker() -> None:
    once = dns_only.mark("pool A", KEY)
    assert dns_only.mark(once, KEY) == once


def test_the_comment_limit_follows_the_plan() -> None:
    long_comment = "x" * 200
    records = [record("a", comment=long_comment)]

    with pytest.raises(dns_only.CommentTooLong) as free:
        dns_only.switch_off(records, "export.example.com", KEY)
    paid = dns_only.switch_off(
        records, "export.example.com", KEY, comment_limit=dns_only.comment_limit("pro")
    )

    assert free.value.limit == 100
    assert "shorten it to 57 characters" in str(free.value)
    assert paid[0].comment == f"{long_comment} {dns_only.marker(KEY)}"
    assert [dns_only.comment_limit(p) for p in ("free", None, "business", "enterprise")] == [
        100,
        100,
        500,
        500,
    ]
