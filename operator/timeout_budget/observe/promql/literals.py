"""PromQL literals: escaping values and validating names, windows and quantiles (pure).

Every piece of user text that reaches a query passes through here: values become PromQL
double-quoted strings (or RE2 patterns matching them literally), and names, windows and
quantiles are checked against what Prometheus parses. ``SelectorError`` carries a message
a user can act on; nothing is sent.
"""

from __future__ import annotations

import math
import re

BUCKET_LABEL = "le"
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
WINDOW_RE = re.compile(r"^[1-9][0-9]*(s|m|h|d)$")


class SelectorError(ValueError):
    """A route's latency spec cannot be turned into a safe query; the message is for users."""


_STRING_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)},
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
# Go's regexp.QuoteMeta escapes exactly these; RE2 treats "\" + punctuation as a literal.
_QUOTE_META = {ord(ch): "\\" + ch for ch in "\\.+*?()|[]{}^$"}
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
