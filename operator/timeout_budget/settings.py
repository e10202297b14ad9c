"""The operator process's settings, read once from the environment the Helm chart sets.

``timeout-budget run`` reads them once (``OperatorSettings.from_env``) and hands them to the
kopf handlers in kopf's memo; every part gets its own section from there. No other module
reads the environment.

TBO_PROMETHEUS_URL ...          see observe.settings.PrometheusSettings
TBO_METRICS_PORT, _ADDRESS      see report.endpoint.MetricsSettings
TBO_CLOUDFLARE_BASE_URL         Cloudflare's API (default); the sandbox's emulator in tests
TBO_EVALUATION_INTERVAL_SECONDS the cycle length (default 15)
TBO_FAST_LANE_SECONDS           how often routes near their line are read between cycles
                                (default 5; 0: off)
TBO_READING_REFRESH_SECONDS     a change of a route's P95 alone (nothing decided differently)
                                is written to its status at most this often (default 60;
                                0: at once); any other change is written at once
TBO_SHARDS                      shard the routes by Cloudflare zone over the replicas, each
                                evaluating the shards whose Lease it holds (default 0: off,
                                one active replica by peering and the leader Lease)
TBO_LABEL_SWEEP_SECONDS         sharded: how long a replica's start may spend labeling the
                                routes not labeled yet before kopf watches them (default 90;
                                0: kopf labels them all, see ``label_sweep``)
TBO_DRY_RUN                     plan every route, change nothing (default false)
TBO_ORIGIN_READS                watch (default): Deployments, HPAs and Services from watches;
                                list: listed per namespace every cycle
TBO_SERVED_NAMESPACES           the watches' scope when not given by ``run -n NS ...``
                                (comma-separated; empty: the whole cluster)
TBO_INGRESS_NGINX_CONFIGMAP     ``namespace/name`` of ingress-nginx's controller ConfigMap:
                                its defaults count in the timeout chain (empty: nginx's
                                documented defaults)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from timeout_budget.clients.cloudflare import DEFAULT_BASE_URL
from timeout_budget.model.errors import SettingsError
from timeout_budget.observe.settings import PrometheusSettings
from timeout_budget.report.endpoint import MetricsSettings

T = TypeVar("T")


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class OperatorSettings:
    prometheus: PrometheusSettings
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    cloudflare_base_url: str = DEFAULT_BASE_URL
    interval_seconds: float = 15.0
    fast_lane_seconds: float = 5.0
    """Routes at or over their recover line are read this often between cycles (0: off)."""
    reading_refresh_seconds: float = 60.0
    """A change of a route's reading alone is written to its status at most this often."""
    shards: int = 0
    """Shards of the routes (``timeout_budget.shards``); 0: not sharded."""
    label_sweep_seconds: float = 90.0
    """Sharded: the start's label sweep may take this long (``label_sweep``); 0: none."""
    dry_run: bool = False
    operator_namespace: str = "default"
    loop_configmap: str = "timeout-budget-operator-loop"
    peering_lifetime_seconds: int = 30
    peering_settle_seconds: float = 5.0
    leader_lease_seconds: float = 15.0
    cloudflare_request_budget: int = 1200
    """Cap on every Cloudflare token's requests per 5 minutes, over the zones' own
    ``spec.apiRequestBudget`` (the lower one holds)."""
    cloudflare_analytics_budget: int = 150
    """GraphQL Analytics dataset nodes per 5 minutes, all zones together (Cloudflare allows
    300 per user, shared with the dashboard's analytics)."""
    origin_reads: str = "watch"
    """``watch``: origins' objects from list-then-watch copies; ``list``: listed each cycle."""
    served_namespaces: tuple[str, ...] = ()
    """The namespaces kopf serves (``-n``); empty: the whole cluster."""
    ingress_nginx_configmap: tuple[str, str] | None = None
    """``(namespace, name)`` of ingress-nginx's controller ConfigMap, if given."""
    """With peering: how long a dead holder's leader Lease blocks the next replica."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, served_namespaces: Sequence[str] | None = None
    ) -> OperatorSettings:
        """``served_namespaces``: the namespaces kopf serves (``run -n``), over the env's."""
        env = os.environ if env is None else env
        raw = env.get("TBO_EVALUATION_INTERVAL_SECONDS", "15")
        try:
            interval = float(raw)
        except ValueError as exc:
            raise SettingsError(
                f"TBO_EVALUATION_INTERVAL_SECONDS must be a number of seconds, not {raw!r}"
            ) from exc
        if not 1 <= interval <= 3600:
            raise SettingsError("TBO_EVALUATION_INTERVAL_SECONDS must be between 1 and 3600")
        if served_namespaces is None:
            served_namespaces = env.get("TBO_SERVED_NAMESPACES", "").split(",")
        return cls(
            prometheus=PrometheusSettings.from_env(env),
            metrics=MetricsSettings.from_env(env),
            cloudflare_base_url=env.get("TBO_CLOUDFLARE_BASE_URL") or DEFAULT_BASE_URL,
            interval_seconds=interval,
            fast_lane_seconds=_fast_lane(env, interval),
            reading_refresh_seconds=_reading_refresh(env),
            shards=_shards(env),
            label_sweep_seconds=_label_sweep(env),
            dry_run=_bool(env.get("TBO_DRY_RUN")),
            operator_namespace=env.get("TBO_OPERATOR_NAMESPACE", "default"),
            loop_configmap=env.get("TBO_LOOP_CONFIGMAP", "timeout-budget-operator-loop"),
            peering_lifetime_seconds=_number(env, "TBO_PEERING_LIFETIME_SECONDS", int, "30"),
            peering_settle_seconds=_number(env, "TBO_PEERING_SETTLE_SECONDS", float, "5"),
            leader_lease_seconds=_lease_seconds(env),
            cloudflare_request_budget=_request_budget(env),
            cloudflare_analytics_budget=_analytics_budget(env),
            origin_reads=_origin_reads(env),
            served_namespaces=tuple(ns.strip() for ns in served_namespaces if ns.strip()),
            ingress_nginx_configmap=_configmap_ref(env),
        )


def _configmap_ref(env: Mapping[str, str]) -> tuple[str, str] | None:
    value = env.get("TBO_INGRESS_NGINX_CONFIGMAP", "").strip()
    if not value:
        return None
    namespace, _, name = value.partition("/")
    if not (_K8S_NAME.match(namespace) and _K8S_NAME.match(name)):
        raise SettingsError(
            "TBO_INGRESS_NGINX_CONFIGMAP must be namespace/name of a ConfigMap, e.g. "
            f"ingress-nginx/ingress-nginx-controller, not {value!r}"
        )
    return namespace, name


_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _fast_lane(env: Mapping[str, str], interval: float) -> float:
    """5 s by default, off when the cycle itself is that short (a sandbox's 1 s cycle)."""
    if not env.get("TBO_FAST_LANE_SECONDS", "").strip():
        return 5.0 if interval > 5.0 else 0.0
    value = _number(env, "TBO_FAST_LANE_SECONDS", float, "5")
    if value != 0 and not 1 <= value < interval:
        raise SettingsError(
            f"TBO_FAST_LANE_SECONDS must be 0 (off) or at least 1 and shorter than the "
            f"evaluation interval ({interval:g} s), not {value:g}"
        )
    return value


def _reading_refresh(env: Mapping[str, str]) -> float:
    value = _number(env, "TBO_READING_REFRESH_SECONDS", float, "60")
    if not 0 <= value <= 3600:
        raise SettingsError(
            f"TBO_READING_REFRESH_SECONDS must be between 0 (every change at once) and 3600, "
            f"not {value:g}"
        )
    return value


def _shards(env: Mapping[str, str]) -> int:
    value = _number(env, "TBO_SHARDS", int, "0")
    if value not in (0, 1) and not 2 <= value <= 256:
        raise SettingsError(f"TBO_SHARDS must be 0 (not sharded) or 2..256, not {value}")
    return 0 if value == 1 else value


def _label_sweep(env: Mapping[str, str]) -> float:
    value = _number(env, "TBO_LABEL_SWEEP_SECONDS", float, "90")
    if not 0 <= value <= 3600:
        raise SettingsError(
            "TBO_LABEL_SWEEP_SECONDS must be between 0 (kopf labels every route) and 3600 "
            f"seconds (keep it inside the startup probe), not {value:g}"
        )
    return value


def _origin_reads(env: Mapping[str, str]) -> str:
    value = env.get("TBO_ORIGIN_READS", "watch").strip().lower()
    if value not in ("watch", "list"):
        raise SettingsError(
            f"TBO_ORIGIN_READS must be 'watch' (a watch-fed copy) or 'list' (list every "
            f"cycle), not {value!r}"
        )
    return value


def _request_budget(env: Mapping[str, str]) -> int:
    value = _number(env, "TBO_CLOUDFLARE_REQUEST_BUDGET", int, "1200")
    if not 10 <= value <= 1200:
        raise SettingsError(
            "TBO_CLOUDFLARE_REQUEST_BUDGET must be between 10 and 1200 requests per 5 minutes "
            "(Cloudflare allows 1200 per user, shared with the dashboard)"
        )
    return value


def _analytics_budget(env: Mapping[str, str]) -> int:
    value = _number(env, "TBO_CLOUDFLARE_ANALYTICS_BUDGET", int, "150")
    if not 2 <= value <= 300:
        raise SettingsError(
            "TBO_CLOUDFLARE_ANALYTICS_BUDGET must be between 2 and 300 GraphQL dataset nodes "
            "per 5 minutes (Cloudflare allows 300 per user, shared with the dashboard)"
        )
    return value


def _lease_seconds(env: Mapping[str, str]) -> float:
    value = _number(env, "TBO_LEADER_LEASE_SECONDS", float, "15")
    if not 3 <= value <= 600:
        raise SettingsError("TBO_LEADER_LEASE_SECONDS must be between 3 and 600")
    return value


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], T], default: str) -> T:
    raw = env.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
