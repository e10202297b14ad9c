"""The hops in front of a route that the cluster can tell: the Ingress that serves it.

An Ingress (networking.k8s.io/v1) serves the route when one of its rules has the route's
host and a path that covers the route's path prefix (the longest such path wins, as in
the controllers). For ingress-nginx (``ingressClassName: nginx``, the
``kubernetes.io/ingress.class`` annotation, or any ``nginx.ingress.kubernetes.io/``
annotation) its timeout is read from the Ingress's annotations, else the controller's
default: the controller's ConfigMap (``observe.nginx_config``, when the operator is told
where it is), else nginx's documented default (source ``default``):

* ``nginx.ingress.kubernetes.io/proxy-read-timeout``: seconds, unitless (default 60),
  idle between two reads;
* ``proxy-next-upstream`` (default ``error timeout``) and ``proxy-next-upstream-tries``
  (default 3): a timed-out request is tried again on the next endpoint, but only an
  idempotent one (nginx does not retry POST, PUT, PATCH by default), so the tries count
  only for routes serving GET, HEAD, DELETE or OPTIONS.

A value that is not a number, an Ingress of another class, or two Ingresses claiming the
same host and path give a hop whose timeout is unknown, never guessed. Pure: objects in,
hops out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from timeout_budget.model import ownership
from timeout_budget.model.chain import INGRESS_NGINX_READ_TIMEOUT, Hop
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.observe.nginx_config import DOCUMENTED, NginxDefaults, seconds

NGINX = "nginx.ingress.kubernetes.io/"
READ_TIMEOUT = INGRESS_NGINX_READ_TIMEOUT
NEXT_UPSTREAM = NGINX + "proxy-next-upstream"
NEXT_UPSTREAM_TRIES = NGINX + "proxy-next-upstream-tries"
ANNOTATIONS_READ = (NGINX, "kubernetes.io/ingress.class")
"""Annotation prefixes this module reads (the watch-fed copies keep only those)."""
RETRIED_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
"""Idempotent methods nginx retries (``non_idempotent`` is off by default)."""


def ingress_hops(
    spec: TimeoutBudgetSpec,
    ingresses: Sequence[Mapping[str, Any]],
    key: str = "",
    defaults: NginxDefaults = DOCUMENTED,
) -> tuple[Hop, ...]:
    """The Ingress hop in front of the route (none when no Ingress serves it); ``key``, the
    route's, tells whether the operator holds the Ingress's timeout for it (``chain.sync``)."""
    route = spec.route
    found: list[tuple[int, Mapping[str, Any]]] = []
    for ingress in ingresses:
        length = _serves(ingress, route.host, route.path_prefix)
        if length is not None:
            found.append((length, ingress))
    if not found:
        return ()
    longest = max(length for length, _ in found)
    claiming = sorted(_name(i) for length, i in found if length == longest)
    if len(claiming) > 1:
        return (
            Hop(
                "ingress",
                f"Ingresses {', '.join(claiming)} (all claim {route.host}{route.path_prefix})",
                None,
                "idle",
                "unknown",
            ),
        )
    ingress = next(i for length, i in found if length == longest)
    return (_hop(spec, ingress, key, defaults),)


def held_hops(ingresses: Sequence[Mapping[str, Any]], key: str) -> tuple[Hop, ...]:
    """The Ingresses held for route ``key``, as hops, whatever they serve now: what a route
    without ``spec.chain`` still has to give back."""
    hops = []
    for ingress in ingresses:
        notes = _annotations(ingress)
        name = str(ingress.get("metadata", {}).get("name", ""))
        timeout = seconds(notes.get(READ_TIMEOUT, ""))
        hop = Hop("ingress-nginx", f"Ingress {_name(ingress)}", timeout, "idle", "annotation")
        hops.append(replace(hop, writable=name, **_held(notes, key)))
    return tuple(hops)


def _hop(
    spec: TimeoutBudgetSpec, ingress: Mapping[str, Any], key: str, defaults: NginxDefaults
) -> Hop:
    notes = _annotations(ingress)
    name = f"Ingress {_name(ingress)}"
    if not _is_nginx(ingress, notes):
        cls = ingress.get("spec", {}).get("ingressClassName") or notes.get(
            "kubernetes.io/ingress.class", "no class"
        )
        return Hop(
            "ingress", f"{name} (class {cls}: its timeouts are not read)", None, "idle", "unknown"
        )
    raw = notes.get(READ_TIMEOUT)
    if raw is None:
        timeout, source = defaults.read_timeout, defaults.source
    else:
        timeout = seconds(raw)
        source = "annotation" if timeout is not None else f"annotation (not a number: {raw[:40]!r})"
    return Hop(
        "ingress-nginx",
        name,
        timeout,
        "idle",
        source,
        _tries(spec, notes, defaults),
        "504",
        keep_alive_seconds=defaults.keepalive,
        writable=str(ingress.get("metadata", {}).get("name", "")) or None,
        **_held(notes, key, defaults),
    )


def _held(
    notes: Mapping[str, str], key: str, defaults: NginxDefaults = DOCUMENTED
) -> dict[str, Any]:
    """Whether the operator holds the read timeout for route ``key``, and what it replaced."""
    original = notes.get(ownership.ORIGINAL_READ_TIMEOUT)
    if not key or original is None or notes.get(ownership.OWNER) != key:
        return {}
    if original == ownership.UNSET:
        return {"held": True, "original_seconds": defaults.read_timeout}
    return {"held": True, "original_seconds": seconds(original)}


def _tries(spec: TimeoutBudgetSpec, notes: Mapping[str, str], defaults: NginxDefaults) -> int:
    if not RETRIED_METHODS.intersection(spec.route.methods):
        return 1
    policy = notes.get(NEXT_UPSTREAM, defaults.next_upstream).split()
    if "off" in policy or "timeout" not in policy:
        return 1
    raw = notes.get(NEXT_UPSTREAM_TRIES)
    if raw is None:
        return defaults.tries
    try:
        tries = int(raw.strip())
    except ValueError:
        return defaults.tries
    return tries if tries > 0 else defaults.tries  # 0: nginx's "no limit" (kept at the default)


def _serves(ingress: Mapping[str, Any], host: str, prefix: str) -> int | None:
    """The length of the longest path of the Ingress that serves ``host`` + ``prefix``."""
    best: int | None = None
    for rule in ingress.get("spec", {}).get("rules") or ():
        if not isinstance(rule, Mapping) or rule.get("host") != host:
            continue
        for path in (rule.get("http") or {}).get("paths") or ():
            if not isinstance(path, Mapping):
                continue
            value = str(path.get("path") or "/")
            if _covers(value, str(path.get("pathType", "Prefix")), prefix):
                best = max(best or 0, len(value))
    return best


def _covers(path: str, kind: str, prefix: str) -> bool:
    if kind == "Exact":
        return path == prefix
    if path == "/":
        return True
    base = path.rstrip("/")
    return prefix == base or prefix.startswith(base + "/")


def _is_nginx(ingress: Mapping[str, Any], notes: Mapping[str, str]) -> bool:
    cls = ingress.get("spec", {}).get("ingressClassName") or notes.get(
        "kubernetes.io/ingress.class"
    )
    if cls is not None:
        return "nginx" in str(cls)
    return any(key.startswith(NGINX) for key in notes)


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (obj.get("metadata", {}).get("annotations") or {}).items()}


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
