"""A route's path prefix as Cloudflare's ``http.request.uri.path`` can match it.

Cloudflare matches rules against the *normalized* path (DOCS ``rules/normalization``):
``\\`` becomes ``/``, runs of ``/`` are merged, percent-encoded unreserved characters
(``A-Z a-z 0-9 - . _ ~``) are decoded, other percent-encodings are upper-cased, and dot
segments are removed. A prefix written any other way (``/a//export``, ``/%65xport``)
would never match a request, so it is normalized the same way here; a prefix no request
path can ever hold (``?``, ``#``, whitespace, raw non-ASCII, a broken ``%`` escape) is
refused with the reason, so admission (or the status) can say so.

A prefix is a *segment* prefix: ``/export`` covers ``/export`` and ``/export/...`` but not
``/exports`` or ``/export-admin``; a prefix ending in ``/`` (``/export/``) covers only
what lies below it. Pure: no I/O.
"""

from __future__ import annotations

import re

_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_REFUSED = re.compile(r"[?#\s\x00-\x1f\x7f]")


class UnmatchablePrefix(ValueError):
    """The prefix can never match a request path as Cloudflare sees it."""


def normalize(prefix: str) -> str:
    """``prefix`` as it appears in a normalized ``http.request.uri.path``."""
    if not prefix.startswith("/"):
        raise UnmatchablePrefix(f"path prefix {prefix!r} must start with '/'")
    bad = _REFUSED.search(prefix)
    if bad:
        raise UnmatchablePrefix(
            f"path prefix {prefix!r} holds {bad.group()!r}, which a request path never holds"
        )
    if not prefix.isascii():
        raise UnmatchablePrefix(
            f"path prefix {prefix!r} holds non-ASCII characters: clients send them "
            "percent-encoded, so write them that way (e.g. %C3%A9 for é)"
        )
    if re.search(r"%(?![0-9A-Fa-f]{2})", prefix):
        raise UnmatchablePrefix(f"path prefix {prefix!r} holds a '%' that is not an escape")
    path = _ESCAPE.sub(_decode_unreserved, prefix.replace("\\", "/"))
    path = re.sub(r"/{2,}", "/", path)
    return _remove_dot_segments(path)


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if _UNRESERVED.fullmatch(char) else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path, keeping a trailing ``/``."""
    out: list[str] = []
    parts = path.split("/")[1:]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == ".":
            if last:
                out.append("")
        elif part == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(part)
    return "/" + "/".join(out)


def covers(prefix: str, path: str) -> bool:
    """Whether a normalized request ``path`` lies under the normalized ``prefix``."""
    if prefix == "/" or prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def overlaps(a: str, b: str) -> bool:
    """Whether some path starts with both ``a`` and ``b`` (plain string prefixes)."""
    return a.startswith(b) or b.startswith(a)
