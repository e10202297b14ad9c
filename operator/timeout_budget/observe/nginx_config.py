"""ingress-nginx's cluster-wide defaults, from its controller's ConfigMap.

An Ingress without a ``proxy-read-timeout`` annotation gets the controller's default: the
ConfigMap's ``proxy-read-timeout`` (60 s when it has none), and likewise the retries
(``proxy-next-upstream``, ``proxy-next-upstream-tries``) and the idle upstream pool
(``upstream-keepalive-timeout``, ConfigMap only). The operator reads that ConfigMap when it
is told where it is (``TBO_INGRESS_NGINX_CONFIGMAP``, chart value
``chain.ingressNginxConfigMap``); otherwise the documented defaults stand, with source
``default``. A ConfigMap that is named but cannot be read makes the defaults unknown: a
team that changed them would otherwise be shown nginx's 60 s as fact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from timeout_budget.clients.kube import KubeError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NginxDefaults:
    read_timeout: float | None = 60.0
    """``proxy-read-timeout``; ``None``: not known."""
    next_upstream: str = "error timeout"
    tries: int = 3
    keepalive: float | None = 60.0
    """``upstream-keepalive-timeout``: how long idle upstream connections are kept."""
    source: str = "default"
    """Where ``read_timeout`` comes from, for ``status.chain``."""


DOCUMENTED = NginxDefaults()


def seconds(raw: str) -> float | None:
    """ingress-nginx reads these as whole seconds, unitless."""
    text = raw.strip()
    if not text.isdigit() or len(text) > 6:
        return None
    return float(int(text))


def from_configmap(data: Mapping[str, str], where: str) -> NginxDefaults:
    """The defaults a ConfigMap's ``data`` sets (the documented ones for keys it lacks)."""
    raw = data.get("proxy-read-timeout")
    read_timeout = DOCUMENTED.read_timeout if raw is None else seconds(raw)
    if raw is None:
        source = "default"
    elif read_timeout is None:
        source = f"configMap {where} (not a number: {raw[:40]!r})"
    else:
        source = f"configMap {where}"
    tries_raw = data.get("proxy-next-upstream-tries", "").strip()
    tries = int(tries_raw) if tries_raw.isdigit() and 0 < int(tries_raw) < 100 else DOCUMENTED.tries
    keepalive_raw = data.get("upstream-keepalive-timeout")
    return NginxDefaults(
        read_timeout=read_timeout,
        next_upstream=data.get("proxy-next-upstream", DOCUMENTED.next_upstream),
        tries=tries,
        keepalive=DOCUMENTED.keepalive if keepalive_raw is None else seconds(keepalive_raw),
        source=source,
    )


def unreadable(where: str, why: str) -> NginxDefaults:
    return NginxDefaults(
        read_timeout=None, keepalive=None, source=f"unknown (ConfigMap {where} not read: {why})"
    )


class ConfigMapReads(Protocol):
    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]: ...


class NginxConfigReader:
    """Reads the controller's ConfigMap once per cycle; the same ``NginxDefaults`` object
    while its ``resourceVersion`` is unchanged, so routes that read it can stay quiet."""

    def __init__(self, kube: ConfigMapReads, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self._version: str | None = None
        self._last = DOCUMENTED

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def read(self) -> NginxDefaults:
        try:
            found = await self.kube.get_configmap(self.namespace, self.name)
        except KubeError as exc:
            log.warning("ingress-nginx ConfigMap %s not read: %s", self.where, exc)
            self._version = None
            self._last = unreadable(self.where, str(exc)[:120])
            return self._last
        version = str(found.get("metadata", {}).get("resourceVersion", ""))
        if version and version == self._version:
            return self._last
        data = {str(k): str(v) for k, v in (found.get("data") or {}).items()}
        self._version, self._last = version, from_configmap(data, self.where)
        return self._last
