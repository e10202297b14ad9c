"""RE2 regexes: refusing what Prometheus' regex engine would reject or read differently (pure)."""

from __future__ import annotations

import re
import warnings

from timeout_budget.observe.promql.literals import SelectorError

RE2_MAX_REPEAT = 1000


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
