"""What Cloudflare's edge does with one visitor request under a zone's Cache Rules.

Tests ask the emulator what read timeout a request would get, so a rule that looks right
in the API but does not hold the timeout at the edge fails a test. The model, with where
each part comes from (EDGE-FACTS):

- Every enabled rule whose expression matches contributes its ``action_parameters``; for
  a setting two rules both set, the later rule wins (DOCS ``cache-rules/order.mdx``).
- The request path is matched *normalized*: ``\\`` to ``/``, ``//`` merged, percent-encoded
  unreserved characters decoded (other escapes upper-cased), dot segments removed (DOCS
  ``rules/normalization``).
- A ``read_timeout`` applies only to a request eligible for cache (the 524 page). Only GET
  and HEAD are ever cached (DOCS ``default-cache-behavior``): any other method gets the
  zone's ``proxy_read_timeout`` (NOT CONFIRMED live; no document says otherwise).
- Eligible means the winning ``cache`` setting is ``true``. Cloudflare's default caching
  by file extension is not modelled: without ``cache: true`` there is no read timeout
  (strict).
- ``edge_ttl: bypass_by_default`` stores a response only when its Cache-Control allows it.
  Whether the read timeout still applies to a response that is then *not* stored is NOT
  CONFIRMED: strict by default (it does not: the zone's timeout), so a client that claims
  it does is caught; ``bypass_by_default_keeps_read_timeout=True`` models the other answer.
- Expressions are read by a small evaluator of the Rules language (fields ``http.host``,
  ``http.request.uri.path``, ``http.request.method``, ``http.request.uri.query``; ``eq``,
  ``ne``, ``in``, ``contains``, ``matches``, ``starts_with``, ``ends_with``, ``lower``;
  ``and``/``or``/``xor``/``not``). Anything else makes the rule count as matching every
  request (strict: a foreign rule the emulator cannot read is assumed to apply).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]")


@dataclass(frozen=True)
class EdgeRequest:
    method: str
    host: str
    path: str
    query: str = ""
    origin_cache_control: str | None = None
    """The origin's Cache-Control answer (``None``: none sent)."""


@dataclass(frozen=True)
class Verdict:
    read_timeout: float
    """Seconds the edge waits for the origin on this request."""
    cacheable: bool
    matched: tuple[str, ...]
    """Refs (or ids) of the rules that matched, in order."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The merged settings (the later rule wins each one)."""
    why: str = ""


def normalize_path(path: str) -> str:
    path = path.replace("\\", "/")
    path = re.sub(
        r"%([0-9A-Fa-f]{2})",
        lambda m: (
            chr(int(m.group(1), 16))
            if _UNRESERVED.fullmatch(chr(int(m.group(1), 16)))
            else "%" + m.group(1).upper()
        ),
        path,
    )
    path = re.sub(r"/{2,}", "/", path)
    out: list[str] = []
    parts = path.split("/")[1:]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part in (".", ".."):
            if part == ".." and out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(part)
    return "/" + "/".join(out)


def evaluate(
    rules: Sequence[Mapping[str, Any]],
    zone_timeout: float,
    request: EdgeRequest,
    *,
    bypass_by_default_keeps_read_timeout: bool = False,
) -> Verdict:
    normalized = EdgeRequest(
        request.method.upper(),
        request.host.lower(),
        normalize_path(request.path),
        request.query,
        request.origin_cache_control,
    )
    settings: dict[str, Any] = {}
    matched: list[str] = []
    for rule in rules:
        if rule.get("enabled", True) is False or not matches(str(rule["expression"]), normalized):
            continue
        matched.append(str(rule.get("ref") or rule.get("id")))
        settings.update(rule.get("action_parameters") or {})
    verdict = _Verdict(zone_timeout, tuple(matched), settings)
    if normalized.method not in CACHEABLE_METHODS:
        return verdict(False, f"{normalized.method} is never cached: the zone's timeout")
    if settings.get("cache") is not True:
        return verdict(False, "not eligible for cache (no winning cache: true)")
    timeout = settings.get("read_timeout")
    if timeout is None:
        return verdict(True, "eligible for cache, no read_timeout: the zone's timeout")
    mode = (settings.get("edge_ttl") or {}).get("mode")
    stored = _storable(normalized.origin_cache_control)
    if mode == "bypass_by_default" and not stored and not bypass_by_default_keeps_read_timeout:
        return verdict(
            True,
            "bypass_by_default and a response that is not stored: whether read_timeout "
            "applies is NOT CONFIRMED, so the emulator (strict) gives the zone's timeout",
        )
    return Verdict(float(timeout), True, tuple(matched), settings, "read_timeout of the rules")


@dataclass(frozen=True)
class _Verdict:
    zone_timeout: float
    matched: tuple[str, ...]
    settings: dict[str, Any]

    def __call__(self, cacheable: bool, why: str) -> Verdict:
        return Verdict(self.zone_timeout, cacheable, self.matched, self.settings, why)


def _storable(cache_control: str | None) -> bool:
    if not cache_control:
        return False
    directives = {}
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        directives[name] = value.strip('"')
    if {"no-store", "private", "no-cache"} & directives.keys():
        return False
    for name in ("s-maxage", "max-age"):
        if name in directives:
            return directives[name].isdigit() and int(directives[name]) > 0
    return "public" in directives


# -- the Rules language, as far as the emulator evaluates it -----------------------------

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)'
    r"|(?P<op>==|!=|&&|\|\||\^\^|[(){},!~]))"
)
_NOT_READ = object()


class _Unsupported(Exception):
    pass


def matches(expression: str, request: EdgeRequest) -> bool:
    """Whether the expression holds for the request (unreadable: it holds, strictly)."""
    try:
        tokens = _tokens(expression)
        reader = _Eval(tokens, request)
        result = reader.disjunction()
        if reader.pos != len(tokens):
            raise _Unsupported
        return bool(result)
    except _Unsupported:
        return True


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Unsupported
        out.append(m.group(m.lastgroup or "op"))
        pos = m.end()
    return out


_BINARY: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "!=": lambda a, b: a != b,
    "contains": lambda a, b: b in a,
    "matches": lambda a, b: re.search(b, a) is not None,
    "~": lambda a, b: re.search(b, a) is not None,
}


class _Eval:
    def __init__(self, tokens: list[str], request: EdgeRequest) -> None:
        self.tokens, self.pos, self.request = tokens, 0, request

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise _Unsupported
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expect(self, token: str) -> None:
        if self.take() != token:
            raise _Unsupported

    def disjunction(self) -> bool:
        result = self.exclusive()
        while self.peek() in ("or", "||"):
            self.take()
            right = self.exclusive()
            result = result or right
        return result

    def exclusive(self) -> bool:
        result = self.conjunction()
        while self.peek() in ("xor", "^^"):
            self.take()
            result = result != self.conjunction()
        return result

    def conjunction(self) -> bool:
        result = self.negation()
        while self.peek() in ("and", "&&"):
            self.take()
            right = self.negation()
            result = result and right
        return result

    def negation(self) -> bool:
        if self.peek() in ("not", "!"):
            self.take()
            return not self.negation()
        return self.atom()

    def atom(self) -> bool:
        if self.peek() == "(":
            self.take()
            result = self.disjunction()
            self.expect(")")
            return result
        left = self.value()
        op = self.peek()
        if op == "in":
            self.take()
            return left in self.set_literal()
        if op in _BINARY:
            self.take()
            return _BINARY[op](left, self.value())
        if isinstance(left, bool):
            return left
        raise _Unsupported

    def set_literal(self) -> set[str]:
        self.expect("{")
        values = set()
        while self.peek() != "}":
            values.add(self.value())
        self.take()
        return values

    def value(self) -> Any:
        word = self.take()
        if word.startswith('"'):
            return re.sub(r"\\(.)", r"\1", word[1:-1])
        if word in ("true", "false"):
            return word == "true"
        if self.peek() == "(":
            return self.call(word)
        fields = {
            "http.host": self.request.host,
            "http.request.uri.path": self.request.path,
            "http.request.method": self.request.method,
            "http.request.uri.query": self.request.query,
        }
        if word not in fields:
            raise _Unsupported
        return fields[word]

    def call(self, name: str) -> Any:
        self.expect("(")
        args = [self.value()]
        while self.peek() == ",":
            self.take()
            args.append(self.value())
        self.expect(")")
        if name == "starts_with" and len(args) == 2:
            return str(args[0]).startswith(str(args[1]))
        if name == "ends_with" and len(args) == 2:
            return str(args[0]).endswith(str(args[1]))
        if name == "lower" and len(args) == 1:
            return str(args[0]).lower()
        raise _Unsupported
