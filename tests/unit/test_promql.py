"""Query building: validation, escaping, batching and mapping results back (table-driven)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

import pytest

from tests.support.hostile import LABEL_VALUES
from timeout_budget.model.spec import Latency, Matcher, RouteKey
from timeout_budget.observe.promql.answers import (
    ResultError,
    map_override,
    max_finite_le,
    parse_vector,
)
from timeout_budget.observe.promql.literals import (
    SelectorError,
    check_label_name,
    check_metric_name,
    check_window,
    format_quantile,
    promql_string,
    quote_meta,
)
from timeout_budget.observe.promql.planning import BatchQuery, plan_queries
from timeout_budget.observe.promql.re2 import check_re2
from timeout_budget.observe.promql.selection import render_override, route_selector

pytestmark = pytest.mark.unit

M = "http_request_duration_seconds"

HOSTILE: list[str] = [
    *LABEL_VALUES,
    "",
    "{{window}}",
    "nul\x00ctl\x01del\x7f",
    "line\u2028separator",
    "`backtick` 'single'",
    "\\n is not a newline",
    "]) or absent(up",
]


def lat(selector: Mapping[str, str] | None = None, **kw: Any) -> Latency:
    kw.setdefault("metric", M)
    if "query" in kw:
        kw.pop("metric")
    return Latency.model_validate({"selector": dict(selector or {}), **kw})


def unchecked(**fields: Any) -> Latency:
    """A Latency the model refuses (it refuses what the CRD refuses), made without
    validation: the query planner keeps its own guards all the same."""
    return lat().model_copy(update=fields)


# ---------------------------------------------------------------- a reference PromQL lexer

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def unquote(literal: str) -> str:
    """Decode a PromQL double-quoted string as Go's strconv.Unquote does."""
    assert literal[0] == literal[-1] == '"'
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        assert ch not in '\n"', f"raw {ch!r} inside a string literal"
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif esc == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise AssertionError(f"escape \\{esc} not expected")
    return "".join(out)


def structure(query: str) -> tuple[str, list[str]]:
    """The query with every string literal replaced by ``S``, and the decoded literals."""
    skeleton, literals, i = [], [], 0
    while i < len(query):
        if query[i] == '"':
            j = i + 1
            while query[j] != '"':
                j += 2 if query[j] == "\\" else 1
            literals.append(unquote(query[i : j + 1]))
            skeleton.append("S")
            i = j + 1
        else:
            skeleton.append(query[i])
            i += 1
    return "".join(skeleton), literals


# ---------------------------------------------------------------- escaping


@pytest.mark.parametrize("value", HOSTILE)
def test_promql_string_round_trips_and_stays_one_literal(value: str) -> None:
    literal = promql_string(value)
    assert unquote(literal) == value
    assert "\n" not in literal
    assert "\r" not in literal
    skeleton, literals = structure(literal)
    assert skeleton == "S"
    assert literals == [value]


def test_promql_string_known_encodings() -> None:
    assert promql_string('a"b') == r'"a\"b"'
    assert promql_string("a\\b") == r'"a\\b"'
    assert promql_string("a\nb") == r'"a\nb"'
    assert promql_string("\x00") == r'"\x00"'
    assert promql_string("日本") == '"日本"'


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(SelectorError, match="surrogate"):
        promql_string("bad\ud800")
    with pytest.raises(SelectorError, match="surrogate"):
        route_selector(unchecked(selector={"route": "bad\udfff"}))


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_cannot_change_the_query(value: str) -> None:
    benign_single = plan_queries({RouteKey("n/a"): lat({"route": "benign"})}).batches[0]
    single = plan_queries({RouteKey("n/a"): lat({"route": value})}).batches[0]
    assert structure(single.promql)[0] == structure(benign_single.promql)[0]
    assert structure(single.promql)[1] == [value]
    assert structure(single.coverage_promql)[0] == structure(benign_single.coverage_promql)[0]

    routes = {RouteKey("n/a"): lat({"route": value}), RouteKey("n/b"): lat({"route": "zzz"})}
    benign = {RouteKey("n/a"): lat({"route": "aaa"}), RouteKey("n/b"): lat({"route": "zzz"})}
    batch, benign_batch = plan_queries(routes).batches[0], plan_queries(benign).batches[0]
    assert structure(batch.promql)[0] == structure(benign_batch.promql)[0]
    (alternation,) = structure(batch.promql)[1]
    regex = re.compile(f"^(?:{alternation})$", re.DOTALL)
    assert regex.match(value)
    assert regex.match("zzz")


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_meta_matches_only_the_literal(value: str) -> None:
    pattern = re.compile(f"^(?:{quote_meta(value)})$", re.DOTALL)
    assert pattern.match(value)
    for decoy in ("a", "b", "x", "ab", "anything", "", "quote", "line1"):
        if decoy != value:
            assert not pattern.match(decoy), (value, decoy)


def test_quote_meta_follows_go() -> None:
    # Go: regexp.QuoteMeta(`Escaping symbols like: .+*?()|[]{}^$`)
    assert quote_meta("Escaping symbols like: .+*?()|[]{}^$") == (
        r"Escaping symbols like: \.\+\*\?\(\)\|\[\]\{\}\^\$"
    )
    assert quote_meta("a\\b") == r"a\\b"
    assert quote_meta("日本-#&~ ") == "日本-#&~ "  # RE2 needs no escape for these


# ---------------------------------------------------------------- validation tables


@pytest.mark.parametrize("name", ["route", "_x", "a1", "Host_Name", "x" * 128])
def test_label_name_accepted(name: str) -> None:
    check_label_name(name, "label")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "not a Prometheus label name"),
        ("1a", "not a Prometheus label name"),
        ("a-b", "not a Prometheus label name"),
        ("a b", "not a Prometheus label name"),
        ('x"', "not a Prometheus label name"),
        ("ü", "not a Prometheus label name"),
        ("__name__", "not a Prometheus label name"),
        ("__meta", "not a Prometheus label name"),
        ("le", "bucket label"),
    ],
)
def test_label_name_refused(name: str, reason: str) -> None:
    with pytest.raises(SelectorError, match=reason):
        check_label_name(name, "latency.selector key")


METRIC_NAMES = [
    (M, True),
    ("ns:latency_seconds", True),
    ("_x", True),
    ("bad-name", False),
    ("x_bucket", False),
    ("", False),
    ("1x", False),
    ('x{a="b"}', False),
    ("x or vector(1)", False),
]
WINDOWS = [
    ("30s", True),
    ("5m", True),
    ("1h", True),
    ("1d", True),
    ("0s", False),
    ("5", False),
    ("5m30s", False),
    ("-5m", False),
    ("5m] or vector(1) #", False),
    ("", False),
]


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [("metric", name, ok) for name, ok in METRIC_NAMES]
    + [("window", window, ok) for window, ok in WINDOWS],
)
def test_metric_names_and_windows(field: str, value: str, ok: bool) -> None:
    """A metric name or window is taken as it is, or refused naming its field."""
    check = {"metric": check_metric_name, "window": check_window}[field]
    if ok:
        check(value)
    else:
        with pytest.raises(SelectorError, match=rf"latency\.{field}"):
            check(value)


@pytest.mark.parametrize(
    ("q", "text"), [(0.95, "0.95"), (0.5, "0.5"), (0.999, "0.999"), (1e-05, "1e-05")]
)
def test_quantile_formatting_round_trips(q: float, text: str) -> None:
    assert format_quantile(q) == text
    assert float(text) == q


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, math.nan, math.inf])
def test_quantile_out_of_range(q: float) -> None:
    with pytest.raises(SelectorError, match="quantile"):
        format_quantile(q)


@pytest.mark.parametrize(
    "pattern",
    [
        "a.*",
        "(?i)api|web",
        "[[:alpha:]]+",
        r"\pL+",
        r"\p{Greek}",
        r"end\z",
        r"\Qa.b\E",
        "a{2,1000}",
        "[]a]",
        "[^]a]",
        "a+?",
        r"\d{3}-\w+",
        "(?P<name>x)",
        r"/api/v[0-9]+/.*",
        "",
    ],
)
def test_re2_compatible_regex_accepted(pattern: str) -> None:
    check_re2(pattern)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=x)", "lookahead"),
        ("(?!x)", "negative lookahead"),
        ("(?<=x)", "lookbehind"),
        ("(?<!x)", "negative lookbehind"),
        ("(?>x)", "atomic"),
        (r"(a)\1", "backreference"),
        ("(?P=n)", "backreference"),
        ("a++", "possessive"),
        ("a{1001}", "more than 1000"),
        ("(", "not a valid regular expression"),
        ("[a", "not a valid regular expression"),
        ("*a", "not a valid regular expression"),
        (r"\Z", r"\\Z"),
        ("a\\", "lone backslash"),
        ("(?<name>x)", "not a valid regular expression"),
    ],
)
def test_regex_refused_with_reason(pattern: str, reason: str) -> None:
    with pytest.raises(SelectorError, match=reason):
        check_re2(pattern, "regex")


# ---------------------------------------------------------------- selectors


def test_selector_and_equality_matchers_merge() -> None:
    sel = route_selector(
        lat(
            {"route": "a", "host": "h"},
            matchers=[
                {"label": "route", "operator": "=", "value": "a"},
                {"label": "zone", "value": "eu"},
                {"label": "path", "operator": "=~", "value": "/api/.*"},
                {"label": "code", "operator": "!=", "value": "500"},
                {"label": "path", "operator": "=~", "value": "/api/.*"},
            ],
        )
    )
    assert sel.equal == (("host", "h"), ("route", "a"), ("zone", "eu"))
    assert [(m.label, m.operator) for m in sel.extra] == [("code", "!="), ("path", "=~")]


@pytest.mark.parametrize(
    ("latency", "reason"),
    [
        (lat({"route": "a"}, matchers=[{"label": "route", "value": "b"}]), "can never match"),
        (unchecked(selector={"bad-key": "a"}), "latency.selector key 'bad-key'"),
        (
            unchecked(matchers=(Matcher.model_construct(label="__name__", value="x"),)),
            "latency.matchers label",
        ),
        (lat(matchers=[{"label": "p", "operator": "=~", "value": "(?=x)"}]), "lookahead"),
        (lat({"le": "10"}), "bucket label"),
        (unchecked(metric="x_bucket"), "without '_bucket'"),
        (unchecked(window="5m]"), "latency.window"),
    ],
)
def test_invalid_specs_become_messages(latency: Latency, reason: str) -> None:
    plan = plan_queries({RouteKey("n/r"): latency})
    assert plan.batches == ()
    assert reason in plan.invalid[RouteKey("n/r")]


# ---------------------------------------------------------------- planning


def test_batch_query_text() -> None:
    plan = plan_queries(
        {RouteKey("n/a"): lat({"route": "a"}), RouteKey("n/b"): lat({"route": "b"})}
    )
    (batch,) = plan.batches
    assert batch.promql == (
        f'histogram_quantile(0.95, sum by (le, route) (rate({M}_bucket{{route=~"a|b"}}[5m])))'
    )
    assert batch.coverage_promql == (
        f'group by (le, route) (last_over_time({M}_bucket{{route=~"a|b"}}[5m]))'
    )


@pytest.mark.parametrize(
    ("routes", "selector"),
    [
        ({"a": lat({"route": "a"})}, f'{M}_bucket{{route="a"}}'),
        ({"a": lat()}, f"{M}_bucket"),
        (
            {"a": lat({"route": "a", "host": "h"}), "b": lat({"route": "b", "host": "h"})},
            f'{M}_bucket{{host="h", route=~"a|b"}}',
        ),
        (
            {"a": lat({"route": "a.b"}), "b": lat({"route": "c|d"})},
            f'{M}_bucket{{route=~"a\\\\.b|c\\\\|d"}}',
        ),
        (
            {
                "a": lat(
                    {"route": "a"}, matchers=[{"label": "code", "operator": "!=", "value": "5"}]
                )
            },
            f'{M}_bucket{{route="a", code!="5"}}',
        ),
        (
            {"a": lat({"route": 'x"y'}), "b": lat({"route": "x\\y"})},
            f'{M}_bucket{{route=~"x\\"y|x\\\\\\\\y"}}',
        ),
    ],
)
def test_batch_selectors(routes: Mapping[str, Latency], selector: str) -> None:
    plan = plan_queries({RouteKey(k): v for k, v in routes.items()})
    (batch,) = plan.batches
    assert batch.selector == selector


def test_grouping_by_metric_quantile_window_labels_and_extra_matchers() -> None:
    regex = [{"label": "path", "operator": "=~", "value": "/api/.*"}]
    routes = {
        RouteKey("n/a"): lat({"route": "a"}),
        RouteKey("n/b"): lat({"route": "b"}),
        RouteKey("n/c"): lat({"route": "c"}, window="1m"),
        RouteKey("n/d"): lat({"route": "d"}, quantile=0.99),
        RouteKey("n/e"): lat({"route": "e"}, metric="other_seconds"),
        RouteKey("n/f"): lat({"route": "f", "host": "h"}),
        RouteKey("n/g"): lat({"route": "g"}, matchers=regex),
        RouteKey("n/h"): lat({"route": "h"}, matchers=regex),  # same extra matchers as g
        RouteKey("n/i"): lat(
            {"route": "i"}, matchers=[{"label": "p", "operator": "=~", "value": "x"}]
        ),
        RouteKey("n/j"): lat(query="max(x[{{window}}])"),
        RouteKey("n/k"): lat({"route": "a"}),  # same selector as a: shares its series
    }
    plan = plan_queries(routes)
    groups = sorted(sorted(str(r) for r in b.route_keys) for b in plan.batches)
    assert groups == [
        ["n/a", "n/b", "n/k"],
        ["n/c"],
        ["n/d"],
        ["n/e"],
        ["n/f"],
        ["n/g", "n/h"],
        ["n/i"],
    ]
    assert [o.route for o in plan.overrides] == [RouteKey("n/j")]
    assert plan.overrides[0].promql == "max(x[5m])"
    assert plan.invalid == {}


@pytest.mark.parametrize("limit", [300, 1000, 4000])
def test_large_groups_are_chunked_under_the_url_limit(limit: int) -> None:
    routes = {RouteKey(f"n/r{i:04d}"): lat({"route": f"route-{i:04d}.x|y"}) for i in range(500)}
    plan = plan_queries(routes, max_query_length=limit)
    assert len(plan.batches) > 1
    seen: list[RouteKey] = []
    for batch in plan.batches:
        assert len(quote_plus(batch.promql)) <= limit
        assert len(quote_plus(batch.coverage_promql)) <= limit
        seen.extend(batch.route_keys)
    assert sorted(seen) == sorted(routes)
    assert plan_queries(routes, max_query_length=limit) == plan  # deterministic


def test_a_single_oversized_member_still_gets_its_query() -> None:
    plan = plan_queries({RouteKey("n/a"): lat({"route": "x" * 1024})}, max_query_length=10)
    assert len(plan.batches) == 1


def test_split_halves_members() -> None:
    plan = plan_queries({RouteKey(f"n/{i}"): lat({"route": str(i)}) for i in range(5)})
    left, right = plan.batches[0].split()
    assert len(left.members) + len(right.members) == 5
    assert set(left.route_keys).isdisjoint(right.route_keys)
    assert 'route=~"0|1"' in left.promql


# ---------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("histogram_quantile({{quantile}}, x[{{window}}])", "histogram_quantile(0.9, x[2m])"),
        ("max(y[{{ window }}]) * {{ quantile }}", "max(y[2m]) * 0.9"),
        ('z{a="{{window}}"}', 'z{a="2m"}'),
    ],
)
def test_override_placeholders(query: str, expected: str) -> None:
    assert render_override(query, 0.9, "2m") == expected


@pytest.mark.parametrize(
    ("query", "window", "reason"),
    [
        ("x[{{windw}}]", "5m", "unknown placeholder '{{windw}}'"),
        ("   ", "5m", "empty"),
        ("x[{{window}}]", "5m) or vector(1", "latency.window"),
    ],
)
def test_override_refused(query: str, window: str, reason: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(reason)):
        render_override(query, 0.95, window)


# ---------------------------------------------------------------- results


def vec(*series: tuple[dict[str, str], str]) -> list[dict[str, Any]]:
    return [{"metric": labels, "value": [1700000000.0, v]} for labels, v in series]


def test_quantiles_map_back_by_exact_label_values() -> None:
    routes = {
        RouteKey("n/a"): lat({"host": "h1", "route": "r1"}),
        RouteKey("n/b"): lat({"host": "h2", "route": "r2"}),
        RouteKey("n/c"): lat({"host": "h1", "route": "r3"}),
        RouteKey("n/d"): lat({"host": "h2", "route": "r2"}),  # same series as b
        RouteKey("n/e"): lat({"host": "h1", "route": ""}),  # series without a route label
        RouteKey("n/f"): lat({"host": "h3", "route": "r1"}),
    }
    (batch,) = plan_queries(routes).batches
    result = vec(
        ({"host": "h1", "route": "r1"}, "1.5"),
        ({"host": "h2", "route": "r2"}, "NaN"),
        ({"host": "h2", "route": "r1"}, "99"),  # cross-product decoy: nobody asked
        ({"host": "h1"}, "7"),
        ({"host": "h3", "route": "r1"}, "+Inf"),
    )
    got = batch.map_quantiles(result)
    assert got[RouteKey("n/a")] == 1.5
    assert math.isnan(got[RouteKey("n/b")] or 0.0)
    assert math.isnan(got[RouteKey("n/d")] or 0.0)
    assert got[RouteKey("n/c")] is None
    assert got[RouteKey("n/e")] == 7.0
    assert got[RouteKey("n/f")] == math.inf
    assert 99.0 not in got.values()


def test_coverage_maps_the_largest_finite_bound_per_route() -> None:
    routes = {RouteKey("n/a"): lat({"route": "a"}), RouteKey("n/b"): lat({"route": "b"})}
    (batch,) = plan_queries(routes).batches
    result = vec(
        *[({"route": "a", "le": le}, "1") for le in ["0.1", "1e+01", "6000", "+Inf"]],
        *[({"route": "b", "le": le}, "1") for le in ["0.005", "10.0", "+Inf"]],
        ({"route": "z", "le": "9999"}, "1"),
    )
    assert batch.map_coverage(result) == {RouteKey("n/a"): 6000.0, RouteKey("n/b"): 10.0}
    assert batch.map_coverage([]) == {RouteKey("n/a"): None, RouteKey("n/b"): None}


@pytest.mark.parametrize(
    ("values", "top"),
    [(["1", "2.5", "+Inf"], 2.5), (["+Inf"], None), ([], None), (["x", "NaN", "3"], 3.0)],
)
def test_max_finite_le(values: list[str], top: float | None) -> None:
    assert max_finite_le(values) == top


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ([1700000000.5, "2.5"], 2.5),  # scalar
        (vec(({}, "3")), 3.0),
        ([], None),
    ],
)
def test_override_results(result: object, expected: float | None) -> None:
    assert map_override(result) == expected


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (vec(({"a": "1"}, "1"), ({"a": "2"}, "2")), "one series but returned 2"),
        ([{"metric": {}, "values": [[1, "1"]]}], "range vector"),
        ([1700000000.5, "not-a-number"], "not a number"),
        ("nonsense", "instant vector"),
    ],
)
def test_override_results_refused(result: object, reason: str) -> None:
    with pytest.raises(ResultError, match=reason):
        map_override(result)


def test_parse_vector_rejects_malformed_samples() -> None:
    with pytest.raises(ResultError):
        parse_vector([{"metric": {}, "value": [1]}])
    with pytest.raises(ResultError):
        parse_vector([{"metric": {}, "value": [1, 2.0]}])


def test_batch_query_is_a_value_object() -> None:
    plan = plan_queries({RouteKey("n/a"): lat({"route": "a"})})
    batch = plan.batches[0]
    assert BatchQuery(batch.key, batch.members) == batch
    assert batch.by_clause == "le, route"


def test_long_groups_are_cut_for_parallel_queries_small_ones_stay_one() -> None:
    many = {RouteKey(f"ns/r{i}"): lat({"route": f"checkout-route-{i:05d}"}) for i in range(4000)}
    one = plan_queries(many, 128_000)
    spread = plan_queries(many, 128_000, min_batches=4)
    assert len(one.batches) == 1  # 4,000 short names fit one body
    assert len(spread.batches) >= 4
    sizes = [len(quote_plus(b.promql)) for b in spread.batches]
    assert max(sizes) <= 128_000
    assert sum(len(b.route_keys) for b in spread.batches) == 4000
    few = {RouteKey(f"ns/r{i}"): lat({"route": f"r{i}"}) for i in range(40)}
    assert len(plan_queries(few, 128_000, min_batches=4).batches) == 1
