"""DNS records: list with filters and pages, read one, PATCH one (the grey-cloud switch).

Cloudflare's advice for requests that regularly outlive the Proxy Read Timeout is a
DNS-only hostname, so the operator finds a name's records (``name.exact`` and ``type``
filters, paginated) and flips ``proxied``. The emulator keeps the parts that bite: the
SDK's nested ``name={"exact": ...}`` arrives as ``name.exact``; paging goes on until an
empty page; only A, AAAA and CNAME can be proxied; a proxied record's TTL is automatic;
a comment holds at most 100 characters on Free and 500 on paid plans, without line
breaks. Grey-clouding a Tunnel CNAME is accepted, as Cloudflare does, and takes the name
down (``Store.reachable``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from sandbox.cloudflare_emulator.protocol import (
    ApiError,
    Code,
    ErrorItem,
    JsonObject,
    Reply,
    Request,
    ok,
)
from sandbox.cloudflare_emulator.state import PROXIABLE_TYPES, Store, now_iso
from sandbox.cloudflare_emulator.validation import Validators

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 5_000_000
EDITABLE_FIELDS = ("name", "content", "proxied", "ttl", "comment", "tags", "settings")
ORDER_FIELDS = ("type", "name", "content", "ttl", "proxied")

Predicate = Callable[[JsonObject], bool]


def _dns_error(message: str) -> ApiError:
    return ApiError(400, [ErrorItem(Code.DNS_VALIDATION, f"DNS Validation Error: {message}")])


def _positive_int(query: Mapping[str, Sequence[str]], name: str, default: int, top: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        number = float(values[-1])
    except ValueError:
        raise _dns_error(f"{name}: {values[-1]!r} is not a number") from None
    if number < 1 or number != int(number) or number > top:
        raise _dns_error(f"{name}: {values[-1]!r} must be a whole number from 1 to {top}")
    return int(number)


def _name(value: str) -> str:
    return value.rstrip(".").lower()


def _equal(have: str, want: str) -> bool:
    return have == want


def _contains(have: str, want: str) -> bool:
    return want in have


# Filters on the name (case-insensitive); ``name`` is an alias of ``name.exact``.
NAME_TESTS: dict[str, Callable[[str, str], bool]] = {
    "name": _equal,
    "name.exact": _equal,
    "name.contains": _contains,
    "name.startswith": str.startswith,
    "name.endswith": str.endswith,
}
FIELD_FILTERS = {"type": "type", "content": "content", "content.exact": "content"}


def _test(field: str, want: str, test: Callable[[str, str], bool]) -> Predicate:
    def predicate(record: JsonObject) -> bool:
        return test(str(record[field]).lower(), want)

    return predicate


def filters(query: Mapping[str, Sequence[str]]) -> list[Predicate]:
    """The record predicates a list query asks for (``match`` decides how they combine)."""
    preds: list[Predicate] = []
    for key, test in NAME_TESTS.items():
        if values := query.get(key):
            preds.append(_test("name", _name(values[-1]), test))
    for key, field in FIELD_FILTERS.items():
        if values := query.get(key):
            preds.append(_test(field, values[-1].lower(), _equal))
    if values := query.get("proxied"):
        preds.append(_test("proxied", str(values[-1].lower() == "true").lower(), _equal))
    return preds


def select(records: Iterable[JsonObject], query: Mapping[str, Sequence[str]]) -> list[JsonObject]:
    """Filter and order records as the list endpoint does (before paging)."""
    preds = filters(query)
    combine = any if (query.get("match") or ["all"])[-1] == "any" else all
    chosen = [r for r in records if not preds or combine(p(r) for p in preds)]
    order = (query.get("order") or ["type"])[-1]
    if order not in ORDER_FIELDS:
        raise _dns_error(f"order: {order!r} is not one of {list(ORDER_FIELDS)}")
    descending = (query.get("direction") or ["asc"])[-1] == "desc"
    return sorted(chosen, key=lambda r: (str(r[order]), r["name"]), reverse=descending)


def page(
    items: Sequence[JsonObject], number: int, size: int
) -> tuple[list[JsonObject], JsonObject]:
    """One page of results and its ``result_info``; past the end the page is empty."""
    start = (number - 1) * size
    chunk = [copy.deepcopy(r) for r in items[start : start + size]]
    info = {
        "page": number,
        "per_page": size,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": max(1, math.ceil(len(items) / size)),
    }
    return chunk, info


def list_records(store: Store, validators: Validators, req: Request) -> Reply:
    del validators
    zone = store.zone(req.params["zone_id"], "/dns_records")
    number = _positive_int(req.query, "page", 1, MAX_PER_PAGE)
    size = _positive_int(req.query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    chunk, info = page(select(zone.dns_records.values(), req.query), number, size)
    return ok(chunk, info)


def _record(store: Store, req: Request) -> JsonObject:
    zone = store.zone(req.params["zone_id"], "/dns_records")
    record = zone.dns_records.get(req.params["record_id"])
    if record is None:
        raise ApiError.one(404, Code.DNS_RECORD_NOT_FOUND, "Record does not exist.")
    return record


def get_record(store: Store, validators: Validators, req: Request) -> Reply:
    del validators
    return ok(copy.deepcopy(_record(store, req)))


def _check_comment(store: Store, req: Request) -> None:
    comment = req.body.get("comment") if isinstance(req.body, dict) else None
    if not isinstance(comment, str):
        return
    plan = store.zone(req.params["zone_id"]).plan
    if len(comment) > plan.comment_limit:
        raise _dns_error(
            f"comment: {len(comment)} characters, more than the {plan.comment_limit} "
            f"allowed on the {plan.value} plan"
        )
    if "\r" in comment or "\n" in comment:
        raise _dns_error("comment: must not contain line breaks")


def edit_record(store: Store, validators: Validators, req: Request) -> Reply:
    record = _record(store, req)
    _check_comment(store, req)
    violations = validators.dns_record_edit(req.body, record["type"])
    if violations:
        raise ApiError(
            400, [ErrorItem(Code.DNS_VALIDATION, f"DNS Validation Error: {v}") for v in violations]
        )
    body = req.body
    if "type" in body and body["type"] != record["type"]:
        raise _dns_error(
            f"/type: changing a record's type ({record['type']} to {body['type']}) "
            "is not supported by the emulator"
        )
    if body.get("proxied") is True and record["type"] not in PROXIABLE_TYPES:
        raise ApiError.one(400, Code.DNS_NOT_PROXIABLE, "This record type cannot be proxied.")
    for key in EDITABLE_FIELDS:
        if key in body:
            record[key] = _name(body[key]) if key == "name" else copy.deepcopy(body[key])
    if record["proxied"]:
        record["ttl"] = 1
    record["modified_on"] = now_iso()
    return ok(copy.deepcopy(record))
