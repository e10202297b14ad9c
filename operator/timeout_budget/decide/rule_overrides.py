"""Which other Cache Rules can take a route's read timeout away.

For conflicting Cache Rule settings "the last matching rule wins" (DOCS
``cache/how-to/cache-rules/order.mdx``), and a ``read_timeout`` only applies to a request
that is eligible for cache. The operator puts its rules *before* everyone else's, so a
user's own rule still wins; the price is that a later user rule that bypasses the cache
(``cache: false``) or sets its own ``read_timeout`` for the route's requests leaves the
operator's rule without effect. Such a rule must be reported, never hidden.

Whether a foreign rule can match the route is read from its expression, conservatively:
a small reader of the Rules language understands ``http.host`` and
``http.request.uri.path`` compared with ``eq``/``ne``/``in``/``starts_with``, combined
with ``and``/``or``/``not`` and parentheses; everything else (another field, a function,
a regex, an expression it cannot read) counts as "may match". So the operator may report
a rule that in fact never matches the route, but never claims a read timeout that such
a rule overrides. Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from timeout_budget.decide.rule_paths import covers

HOST, PATH = "http.host", "http.request.uri.path"


class Match(enum.Enum):
    NEVER = "never"
    MAYBE = "maybe"
    ALWAYS = "always"


@dataclass(frozen=True)
class Override:
    """A foreign rule after the route's own one that can take its read timeout away."""

    rule: str
    """How a person finds it: its ref (or id) and description."""
    effect: str
    """What it does to the route's requests."""

    def __str__(self) -> str:
        return f"Cache Rule {self.rule} {self.effect}"


def name(rule: Mapping[str, Any]) -> str:
    label = str(rule.get("ref") or rule.get("id") or "(no ref)")
    text = rule.get("description")
    return f"{label} ({text})" if isinstance(text, str) and text else label


def effect(rule: Mapping[str, Any], ours: int) -> str | None:
    """What a matching rule does to an earlier rule's read timeout of ``ours`` seconds, if
    it takes it away. A later read timeout at least as long takes nothing away: the
    requests it matches still wait that long (another route's rule for a longer path,
    ``/export`` at 301 s after ``/`` at 121 s, is the common case)."""
    params = rule.get("action_parameters")
    if not isinstance(params, Mapping):
        return None
    if params.get("cache") is False:
        return "bypasses the cache for these requests, so no read timeout of a rule applies"
    seconds = params.get("read_timeout")
    if seconds is None:
        return None
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= ours:
        return None
    return f"sets its own read timeout ({seconds}s) for these requests"


def may_match(rule: Mapping[str, Any], host: str, prefix: str) -> bool:
    """Whether an enabled rule can match some request of the route (host, prefix)."""
    if rule.get("enabled", True) is False:
        return False
    text = rule.get("expression")
    if not isinstance(text, str):
        return True
    return evaluate(text, host.lower(), prefix) is not Match.NEVER


def overrides(
    rules: Sequence[Mapping[str, Any]], index: int, host: str, prefix: str, seconds: int
) -> list[Override]:
    """Rules after position ``index`` (the route's own rule, reading ``seconds``) that
    take its read timeout away from some of the route's requests."""
    found = []
    for rule in rules[index + 1 :]:
        what = effect(rule, seconds)
        if what is not None and may_match(rule, host, prefix):
            found.append(Override(name(rule), what))
    return found


# -- a conservative reader of the Rules language ----------------------------------------

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)'
    r"|(?P<op>==|!=|&&|\|\||[(){},!]))"
)


class _Unreadable(Exception):
    pass


def evaluate(text: str, host: str, prefix: str) -> Match:
    """Whether ``text`` can hold for requests to ``host`` under ``prefix``."""
    try:
        tokens = _tokens(text)
        reader = _Reader(tokens, host, prefix)
        result = reader.disjunction()
        if reader.pos != len(tokens):
            return Match.MAYBE
        return result
    except _Unreadable:
        return Match.MAYBE


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise _Unreadable
        out.append(m.group(m.lastgroup or "op"))
        pos = m.end()
    return out


def _literal(token: str) -> str:
    if not token.startswith('"'):
        raise _Unreadable
    return re.sub(r"\\(.)", r"\1", token[1:-1])


class _Reader:
    def __init__(self, tokens: list[str], host: str, prefix: str) -> None:
        self.tokens, self.pos, self.host, self.prefix = tokens, 0, host, prefix

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise _Unreadable
        self.pos += 1
        return token

    def disjunction(self) -> Match:
        result = self.conjunction()
        while self.peek() in ("or", "||"):
            self.take()
            result = _or(result, self.conjunction())
        if self.peek() in ("xor", "^^"):
            raise _Unreadable
        return result

    def conjunction(self) -> Match:
        result = self.negation()
        while self.peek() in ("and", "&&"):
            self.take()
            result = _and(result, self.negation())
        return result

    def negation(self) -> Match:
        if self.peek() in ("not", "!"):
            self.take()
            return _not(self.negation())
        return self.atom()

    def atom(self) -> Match:
        word = self.take()
        if word == "(":
            result = self.disjunction()
            if self.take() != ")":
                raise _Unreadable
            return result
        if word == "starts_with" and self.peek() == "(":
            self.take()
            field = self.take()
            if self.take() != ",":
                raise _Unreadable
            value = _literal(self.take())
            if self.take() != ")":
                raise _Unreadable
            return self._starts_with(field, value)
        return self.comparison(word)

    def comparison(self, field: str) -> Match:
        op = self.take()
        if op == "in":
            values = self._set()
            return _or_all([self._equals(field, v) for v in values])
        if op not in ("eq", "==", "ne", "!="):
            raise _Unreadable
        result = self._equals(field, _literal(self.take()))
        return _not(result) if op in ("ne", "!=") else result

    def _set(self) -> list[str]:
        if self.take() != "{":
            raise _Unreadable
        values = []
        while self.peek() != "}":
            values.append(_literal(self.take()))
        self.take()
        return values

    def _equals(self, field: str, value: str) -> Match:
        if field == HOST:
            return Match.ALWAYS if value.lower() == self.host else Match.NEVER
        if field == PATH:
            return Match.MAYBE if covers(self.prefix, value) else Match.NEVER
        if field.startswith(("http.", "ip.", "cf.", "ssl", "raw.")):
            return Match.MAYBE
        raise _Unreadable

    def _starts_with(self, field: str, value: str) -> Match:
        if field != PATH:
            return Match.MAYBE
        p = self.prefix
        if p.startswith(value):
            return Match.ALWAYS  # every path of the route starts with p
        inside = p if p.endswith("/") else p + "/"
        if value.startswith(inside):
            return Match.MAYBE  # some paths below the prefix
        return Match.NEVER


def _and(a: Match, b: Match) -> Match:
    if Match.NEVER in (a, b):
        return Match.NEVER
    return Match.ALWAYS if a is b is Match.ALWAYS else Match.MAYBE


def _or(a: Match, b: Match) -> Match:
    if Match.ALWAYS in (a, b):
        return Match.ALWAYS
    return Match.NEVER if a is b is Match.NEVER else Match.MAYBE


def _or_all(items: list[Match]) -> Match:
    result = Match.NEVER
    for item in items:
        result = _or(result, item)
    return result


def _not(a: Match) -> Match:
    return {Match.NEVER: Match.ALWAYS, Match.ALWAYS: Match.NEVER}.get(a, Match.MAYBE)
