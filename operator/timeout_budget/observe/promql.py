"""Safe, batched PromQL for every route's latency quantile (pure: no I/O).

The problem: thousands of ``TimeoutBudget`` resources each name a histogram and a label
selector written by users. Sending one query per route would cost thousands of round trips
per cycle, and pasting user text into PromQL would let a label value such as
``"} or vector(1) #`` rewrite the query. This module

* validates label names, metric names, windows and regexes, and escapes every value for a
  PromQL double-quoted string, so a route's text can only ever be a literal
  (``SelectorError`` carries a message a user can act on; nothing is sent);
* plans as few queries as possible: routes sharing (metric, quantile, window, selector label
  names, extra matchers) form one group, queried as
  ``histogram_quantile(q, sum by (le, <labels>) (rate(<metric>_bucket{<matchers>}[w])))``
  where each label matches the group's values through an RE2 alternation of literally
  quoted values (Go's ``regexp.QuoteMeta``), split into chunks that keep the URL short;
* maps result series back to routes by the *exact* values of the grouping labels, so the
  selection being a superset (a cross product of several labels' values) is harmless;
* builds the matching coverage query (which finite ``le`` bounds each route's histogram
  has) and the per-route ``query`` override with its ``{{window}}`` / ``{{quantile}}``
  placeholders.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

from timeout_budget.model.spec import Latency, RouteKey

BUCKET_LABEL = "le"
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
WINDOW_RE = re.compile(r"^[1-9][0-9]*(s|m|h|d)$")
PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PLACEHOLDERS = ("window", "quantile")
DEFAULT_MAX_QUERY_LENGTH = 8000
"""URL-encoded characters per query: stays under the 8 KiB request line that common reverse
proxies in front of Prometheus accept (nginx ``large_client_header_buffers``)."""

RE2_MAX_REPEAT = 1000
# Go's regexp.QuoteMeta escapes exactly these; RE2 treats "\" + punctuation as a literal.
_QUOTE_META = {ord(ch): "\\" + ch for ch in "\\.+*?()|[]{}^$"}


class SelectorError(ValueError):
    """A route's latency spec cannot be turned into a safe query; the message is for users."""


class ResultError(ValueError):
    """Prometheus answered with something this module cannot map back to routes."""


# --------------------------------------------------------------------------- escaping


_STRING_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)},
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def promql_string(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal that decodes back to ``value``.

    Escapes backslash, double quote and every control character (a raw newline would end the
    string in PromQL's lexer); other Unicode passes through as UTF-8. Lone surrogates cannot
    be encoded as UTF-8, so they are refused rather than mangled.
    """
    if _SURROGATE_RE.search(value):
        raise SelectorError(f"value {value!r} contains a lone UTF-16 surrogate")
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def quote_meta(value: str) -> str:
    """RE2 pattern matching ``value`` literally: Go's ``regexp.QuoteMeta`` semantics."""
    return value.translate(_QUOTE_META)


def check_label_name(name: str, where: str) -> None:
    if not LABEL_NAME_RE.match(name) or name.startswith("__"):
        raise SelectorError(
            f"{where} {name!r} is not a Prometheus label name "
            "(letters, digits and '_', not starting with a digit or '__')"
        )
    if name == BUCKET_LABEL:
        raise SelectorError(
            f"{where} 'le' is the histogram's bucket label; a route cannot select on it"
        )


def check_metric_name(name: str) -> None:
    if not METRIC_NAME_RE.match(name):
        raise SelectorError(
            f"latency.metric {name!r} is not a Prometheus metric name (letters, digits, '_', ':')"
        )
    if name.endswith("_bucket"):
        raise SelectorError(
            f"latency.metric {name!r} must be the histogram's base name, without '_bucket'"
        )


def check_window(window: str) -> None:
    if not WINDOW_RE.match(window):
        raise SelectorError(
            f"latency.window {window!r} must be a duration like 30s, 5m or 1h "
            "(a whole number followed by s, m, h or d)"
        )


def format_quantile(q: float) -> str:
    if not (math.isfinite(q) and 0 < q < 1):
        raise SelectorError(f"latency.quantile {q!r} must be strictly between 0 and 1")
    # repr is the shortest text that round-trips the float64, and PromQL parses it exactly.
    return repr(float(q))


def check_re2(pattern: str, where: str = "regex") -> None:
    """Refuse regexes Prometheus (Go RE2) would reject or interpret differently.

    RE2 has no backreferences, lookaround, atomic groups, conditionals or possessive
    quantifiers, and caps repeat counts at 1000; those are named explicitly. The rest is a
    sanity compile with Python's ``re`` after mapping RE2-only escapes (``\\z``, ``\\pL``,
    ``\\C``, ``\\Q..\\E``) to equivalents. Prometheus stays the final judge: a regex it still
    refuses comes back as a rejected query for this route only.
    """
    for ch in pattern:
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise SelectorError(f"{where} {pattern!r} contains a lone UTF-16 surrogate")
    python_pattern = _re2_to_python(pattern, where)
    try:
        with warnings.catch_warnings():
            # Python warns about "[[" (POSIX classes are valid RE2); the compile is a sanity check.
            warnings.simplefilter("ignore")
            re.compile(python_pattern)
    except re.error as exc:
        raise SelectorError(
            f"{where} {pattern!r} is not a valid regular expression: {exc}"
        ) from exc


_UNSUPPORTED_GROUPS = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?>", "atomic groups"),
    ("(?(", "conditionals"),
    ("(?#", "comments"),
    ("(?P=", "backreferences"),
)
_REPEAT_RE = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _re2_to_python(pattern: str, where: str) -> str:
    """Scan ``pattern`` as RE2 does, refusing what RE2 lacks; return a Python equivalent."""

    def unsupported(what: str) -> SelectorError:
        return SelectorError(
            f"{where} {pattern!r} uses {what}, which Prometheus' RE2 regex engine does not support"
        )

    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    prev_quantifier = False
    while i < n:
        ch = pattern[i]
        quantifier = False
        if ch == "\\":
            if i + 1 >= n:
                raise SelectorError(f"{where} {pattern!r} ends with a lone backslash")
            nxt = pattern[i + 1]
            if nxt.isdigit() and nxt != "0" and not in_class:
                raise unsupported("a backreference")
            if nxt in "kg" and not in_class:
                raise unsupported("a backreference")
            if nxt in "ZG":
                raise unsupported(f"\\{nxt}")
            if nxt == "z":
                out.append("\\Z")
            elif nxt == "C":
                out.append(".")
            elif nxt in "pP":
                # \pL or \p{Greek}: any single character is close enough for a sanity compile.
                if i + 2 < n and pattern[i + 2] == "{":
                    end = pattern.find("}", i + 2)
                    if end < 0:
                        raise SelectorError(f"{where} {pattern!r} has an unterminated \\p{{...}}")
                    i = end + 1
                else:
                    i += 3
                out.append("a" if in_class else ".")
                prev_quantifier = False
                continue
            elif nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                prev_quantifier = False
                continue
            else:
                out.append(pattern[i : i + 2])
            i += 2
            prev_quantifier = False
            continue
        if in_class:
            if ch == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end > 0:
                    out.append("a")  # a POSIX class such as [:alpha:]
                    i = end + 2
                    continue
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A ']' right after '[' or '[^' is a literal member, not the end of the class.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if ch == "(":
            for prefix, what in _UNSUPPORTED_GROUPS:
                if pattern.startswith(prefix, i):
                    raise unsupported(what)
        if ch in "*+?":
            if prev_quantifier and ch == "+":
                raise unsupported("a possessive quantifier")
            if prev_quantifier and ch == "?":
                out.append(ch)  # lazy modifier
                i += 1
                prev_quantifier = False
                continue
            quantifier = True
        if ch == "{":
            m = _REPEAT_RE.match(pattern, i)
            if m:
                for num in m.groups():
                    if num and int(num) > RE2_MAX_REPEAT:
                        raise SelectorError(
                            f"{where} {pattern!r} repeats more than {RE2_MAX_REPEAT} times, "
                            "the most RE2 allows"
                        )
                out.append(m.group(0))
                i = m.end()
                prev_quantifier = True
                continue
        out.append(ch)
        i += 1
        prev_quantifier = quantifier
    return "".join(out)


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True, order=True)
class LabelMatcher:
    label: str
    operator: str
    value: str

    def render(self) -> str:
        return f"{self.label}{self.operator}{promql_string(self.value)}"


@dataclass(frozen=True)
class RouteSelector:
    """One route's validated histogram selection."""

    metric: str
    quantile: float
    window: str
    equal: tuple[tuple[str, str], ...]
    """Sorted ``(label, value)`` equality pairs: the route's identity inside its group."""
    extra: tuple[LabelMatcher, ...]
    """Sorted ``!=``, ``=~``, ``!~`` matchers; routes share a query only if these are equal."""

    @property
    def group_key(self) -> GroupKey:
        return GroupKey(
            metric=self.metric,
            quantile=self.quantile,
            window=self.window,
            labels=tuple(label for label, _ in self.equal),
            extra=self.extra,
        )

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.equal)


def route_selector(latency: Latency) -> RouteSelector:
    """Validate a ``metric``-based latency spec into a selector; ``SelectorError`` if unsafe."""
    if latency.metric is None:
        raise SelectorError("latency.metric is required unless latency.query is set")
    check_metric_name(latency.metric)
    check_window(latency.window)
    format_quantile(latency.quantile)
    equal: dict[str, str] = {}
    for label, value in latency.selector.items():
        check_label_name(label, "latency.selector key")
        promql_string(value)
        equal[label] = value
    extra: set[LabelMatcher] = set()
    for m in latency.matchers:
        check_label_name(m.label, "latency.matchers label")
        promql_string(m.value)
        if m.operator == "=":
            if m.label in equal and equal[m.label] != m.value:
                raise SelectorError(
                    f"label {m.label!r} must equal both {equal[m.label]!r} and {m.value!r}: "
                    "the selector can never match"
                )
            equal[m.label] = m.value
            continue
        if m.operator in ("=~", "!~"):
            check_re2(m.value, f"latency.matchers regex for {m.label!r}")
        extra.add(LabelMatcher(m.label, m.operator, m.value))
    return RouteSelector(
        metric=latency.metric,
        quantile=float(latency.quantile),
        window=latency.window,
        equal=tuple(sorted(equal.items())),
        extra=tuple(sorted(extra)),
    )


def render_override(query: str, quantile: float, window: str) -> str:
    """The ``query`` override with ``{{window}}`` and ``{{quantile}}`` substituted.

    Placeholders may carry inner spaces (``{{ window }}``); any other ``{{name}}`` is refused
    so a typo does not reach Prometheus as a confusing parse error.
    """
    check_window(window)
    q = format_quantile(quantile)
    if not query.strip():
        raise SelectorError("latency.query is empty")
    for m in PLACEHOLDER_RE.finditer(query):
        if m.group(1) not in PLACEHOLDERS:
            raise SelectorError(
                f"latency.query has an unknown placeholder {m.group(0)!r}; "
                "only {{window}} and {{quantile}} are substituted"
            )
    values = {"window": window, "quantile": q}
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], query)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class GroupKey:
    metric: str
    quantile: float
    window: str
    labels: tuple[str, ...]
    extra: tuple[LabelMatcher, ...]


@dataclass(frozen=True)
class BatchQuery:
    """One query answering for many routes; ``members`` maps label values to routes."""

    key: GroupKey
    members: tuple[tuple[tuple[str, ...], tuple[RouteKey, ...]], ...]

    @property
    def route_keys(self) -> tuple[RouteKey, ...]:
        return tuple(r for _, routes in self.members for r in routes)

    @property
    def selector(self) -> str:
        """``<metric>_bucket{...}`` selecting every member's series (possibly more)."""
        parts: list[str] = []
        for index, label in enumerate(self.key.labels):
            values = sorted({vals[index] for vals, _ in self.members})
            if len(values) == 1:
                parts.append(f"{label}={promql_string(values[0])}")
            else:
                alternation = "|".join(quote_meta(v) for v in values)
                parts.append(f"{label}=~{promql_string(alternation)}")
        parts.extend(m.render() for m in self.key.extra)
        name = f"{self.key.metric}_bucket"
        return f"{name}{{{', '.join(parts)}}}" if parts else name

    @property
    def by_clause(self) -> str:
        return ", ".join((BUCKET_LABEL, *self.key.labels))

    @property
    def promql(self) -> str:
        return (
            f"histogram_quantile({format_quantile(self.key.quantile)}, "
            f"sum by ({self.by_clause}) (rate({self.selector}[{self.key.window}])))"
        )

    @property
    def coverage_promql(self) -> str:
        """Which ``le`` bounds exist per route over the window (one series per bound)."""
        return f"group by ({self.by_clause}) (last_over_time({self.selector}[{self.key.window}]))"

    def split(self) -> tuple[BatchQuery, BatchQuery]:
        """Two halves, to isolate a member that makes Prometheus refuse the whole batch."""
        half = len(self.members) // 2
        return (
            BatchQuery(self.key, self.members[:half]),
            BatchQuery(self.key, self.members[half:]),
        )

    def map_quantiles(self, result: object) -> dict[RouteKey, float | None]:
        """Route → value (NaN kept) or ``None`` when no series came back for it."""
        out: dict[RouteKey, float | None] = dict.fromkeys(self.route_keys)
        index = dict(self.members)
        for labels, value in parse_vector(result):
            key = tuple(labels.get(label, "") for label in self.key.labels)
            for route in index.get(key, ()):
                out[route] = value
        return out

    def map_coverage(self, result: object) -> dict[RouteKey, float | None]:
        """Route → largest finite ``le`` among its series, ``None`` when it has none."""
        per_key: dict[tuple[str, ...], list[str]] = {}
        for labels, _ in parse_vector(result):
            key = tuple(labels.get(label, "") for label in self.key.labels)
            per_key.setdefault(key, []).append(labels.get(BUCKET_LABEL, ""))
        out: dict[RouteKey, float | None] = {}
        for key, routes in self.members:
            top = max_finite_le(per_key.get(key, ()))
            for route in routes:
                out[route] = top
        return out


@dataclass(frozen=True)
class OverrideQuery:
    route: RouteKey
    promql: str


@dataclass(frozen=True)
class QueryPlan:
    batches: tuple[BatchQuery, ...]
    overrides: tuple[OverrideQuery, ...]
    invalid: Mapping[RouteKey, str]
    selectors: Mapping[RouteKey, RouteSelector]


def plan_queries(
    routes: Mapping[RouteKey, Latency], max_query_length: int = DEFAULT_MAX_QUERY_LENGTH
) -> QueryPlan:
    """Turn every route's latency spec into the fewest safe queries.

    Routes that cannot be built land in ``invalid`` with a user-facing message; routes with a
    ``query`` override get one query each; all others are grouped by ``GroupKey`` and each
    group is cut into chunks whose URL-encoded query stays within ``max_query_length``.
    """
    invalid: dict[RouteKey, str] = {}
    overrides: list[OverrideQuery] = []
    selectors: dict[RouteKey, RouteSelector] = {}
    groups: dict[GroupKey, dict[tuple[str, ...], list[RouteKey]]] = {}
    for route in sorted(routes):
        latency = routes[route]
        try:
            if latency.query is not None:
                promql = render_override(latency.query, latency.quantile, latency.window)
                overrides.append(OverrideQuery(route, promql))
                continue
            sel = route_selector(latency)
        except SelectorError as exc:
            invalid[route] = str(exc)
            continue
        selectors[route] = sel
        groups.setdefault(sel.group_key, {}).setdefault(sel.values, []).append(route)
    batches: list[BatchQuery] = []
    for key in sorted(groups, key=_group_sort_key):
        members = [(vals, tuple(rs)) for vals, rs in sorted(groups[key].items())]
        batches.extend(_chunk(key, members, max_query_length))
    return QueryPlan(tuple(batches), tuple(overrides), invalid, selectors)


def _group_sort_key(key: GroupKey) -> tuple[str, float, str, tuple[str, ...], str]:
    return (key.metric, key.quantile, key.window, key.labels, repr(key.extra))


def _chunk(
    key: GroupKey,
    members: Sequence[tuple[tuple[str, ...], tuple[RouteKey, ...]]],
    max_query_length: int,
) -> Iterable[BatchQuery]:
    """Greedy chunks: each value costs its URL-encoded, regex- and string-escaped length."""
    first = BatchQuery(key, (members[0],))
    # The fixed part of the longer of the two queries (over-counts one member: conservative).
    base = max(len(quote_plus(first.promql)), len(quote_plus(first.coverage_promql)))
    budget = max(max_query_length - base, 1)
    chunk: list[tuple[tuple[str, ...], tuple[RouteKey, ...]]] = []
    seen: list[set[str]] = [set() for _ in key.labels]
    used = 0
    for vals, routes in members:
        cost = sum(
            len(quote_plus(promql_string(quote_meta(v)))) + 3
            for index, v in enumerate(vals)
            if v not in seen[index]
        )
        if chunk and used + cost > budget:
            yield BatchQuery(key, tuple(chunk))
            chunk, used = [], 0
            seen = [set() for _ in key.labels]
            cost = sum(len(quote_plus(promql_string(quote_meta(v)))) + 3 for v in vals)
        chunk.append((vals, routes))
        for index, v in enumerate(vals):
            seen[index].add(v)
        used += cost
    if chunk:
        yield BatchQuery(key, tuple(chunk))


# --------------------------------------------------------------------------- results


def parse_sample_value(raw: object) -> float:
    """Prometheus sends sample values as strings ("1.5", "NaN", "+Inf")."""
    if not isinstance(raw, str):
        raise ResultError(f"sample value {raw!r} is not a string")
    try:
        return float(raw)
    except ValueError as exc:
        raise ResultError(f"sample value {raw!r} is not a number") from exc


def parse_vector(result: object) -> list[tuple[dict[str, str], float]]:
    """``data.result`` of an instant vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
    if not isinstance(result, list):
        raise ResultError(f"expected an instant vector, got {type(result).__name__}")
    out: list[tuple[dict[str, str], float]] = []
    for item in result:
        if not isinstance(item, dict) or "value" not in item:
            raise ResultError("expected an instant vector (a range vector came back?)")
        metric = item.get("metric") or {}
        value = item["value"]
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            raise ResultError(f"malformed sample {item!r:.200}")
        out.append(({str(k): str(v) for k, v in metric.items()}, parse_sample_value(value[1])))
    return out


def map_override(result: object) -> float | None:
    """The one number a ``query`` override returns: ``None`` if empty; many series refused."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], int | float):
        return parse_sample_value(result[1])  # a scalar result: [t, "v"]
    series = parse_vector(result)
    if not series:
        return None
    if len(series) > 1:
        shown = ", ".join(_format_labels(labels) for labels, _ in series[:3])
        raise ResultError(
            f"latency.query must return one series but returned {len(series)} ({shown}"
            f"{', ...' if len(series) > 3 else ''}); aggregate it, e.g. max(...)"
        )
    return series[0][1]


def max_finite_le(le_values: Iterable[str]) -> float | None:
    """The largest finite bucket bound among ``le`` label values, ``None`` if none."""
    top: float | None = None
    for raw in le_values:
        try:
            bound = float(raw)
        except ValueError:
            continue
        if math.isfinite(bound) and (top is None or bound > top):
            top = bound
    return top


def _format_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={promql_string(v)}" for k, v in sorted(labels.items())) + "}"
