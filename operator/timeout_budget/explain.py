"""``timeout-budget explain``: one route's story for a person staring at a 504 or a 524.

It prints, from the TimeoutBudget as the API server has it (the operator's last status):
the route and its reading against the budget, the conditions, the timeout chain (which hop
fires first), what covers each method group at the edge, the last action, and the
operator's message with its advice. A route can be named (``NAMESPACE/NAME``) or found by
host and path (the TimeoutBudget whose host is the one given and whose path prefix is the
longest that covers the path).

With ``--zone NAMESPACE/NAME`` it prints a CloudflareZone's slow paths that no TimeoutBudget
covers (``status.edgeView.unbudgetedPaths``, from Cloudflare's analytics), each with a
TimeoutBudget ready to apply: its latency and origin copied from a TimeoutBudget of the
same host (check them), its budget twice the path's edge P95.

``render``, ``find`` and ``suggest`` are pure; ``main`` reads the cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from timeout_budget.decide.edge_view import suggested_budget_seconds

GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "timeoutbudgets"
ZONES = "cloudflarezones"


def render(budget: Mapping[str, Any]) -> str:
    meta, spec = budget.get("metadata", {}), budget.get("spec", {})
    status: Mapping[str, Any] = budget.get("status") or {}
    route = spec.get("route", {})
    lines = [
        f"TimeoutBudget {meta.get('namespace')}/{meta.get('name')}: "
        f"{route.get('host')}{route.get('pathPrefix', '/')} "
        f"({', '.join(route.get('methods', ['GET', 'HEAD']))})",
        f"State: {status.get('state', 'not evaluated yet')}; {_reading(status)}",
    ]
    conditions = status.get("conditions") or []
    if conditions:
        lines += ["", "Conditions:"]
        lines += _table(
            [[c.get("type", ""), c.get("status", ""), c.get("reason", "")] for c in conditions]
        )
    chain = status.get("chain") or []
    if chain:
        lines += ["", "Timeout chain (outermost first):"]
        rows = [["HOP", "WHERE", "TIMEOUT", "MEASURES", "SOURCE", "VERDICT"]]
        rows += [
            [
                h.get("hop", ""),
                h.get("object", ""),
                _timeout(h),
                h.get("measures", ""),
                h.get("source", ""),
                h.get("verdict", ""),
            ]
            for h in chain
        ]
        lines += _table(rows)
    elif "chain" not in spec:
        lines += ["", "Timeout chain: not checked (set spec.chain to have it checked)"]
    coverage = status.get("edgeCoverage") or []
    if coverage:
        lines += ["", "At the edge:"]
        lines += [
            f"  {','.join(c.get('methods', []))}: {c.get('by')}"
            + (f" ({c['timeoutSeconds']}s)" if "timeoutSeconds" in c else "")
            for c in coverage
        ]
    edge = status.get("edge")
    if isinstance(edge, Mapping):
        lines += [
            "",
            f"At Cloudflare ({edge.get('windowStart')} to {edge.get('windowEnd')}, its "
            "analytics: sampled, minutes late):",
            f"  {edge.get('requests')} requests, {edge.get('errors524')} 524s, "
            f"{edge.get('errors5xx')} 5xx; origin P95 {edge.get('originP95Seconds')}s at the "
            f"edge, {edge.get('prometheusP95Seconds')}s in Prometheus",
        ]
    if status.get("lastAction"):
        lines += [
            "",
            f"Last action: {status['lastAction']} ({status.get('lastActionTime', '?')})",
            f"  because: {status.get('lastActionReason', '')}",
        ]
    if status.get("message"):
        lines += ["", "Message:", f"  {status['message']}"]
    return "\n".join(lines)


def find(budgets: Sequence[Mapping[str, Any]], host: str, path: str) -> Mapping[str, Any] | None:
    """The TimeoutBudget of ``host`` whose path prefix is the longest covering ``path``."""
    best: tuple[int, Mapping[str, Any]] | None = None
    for budget in budgets:
        route = budget.get("spec", {}).get("route", {})
        prefix = str(route.get("pathPrefix", "/"))
        if route.get("host") != host or not _covers(prefix, path):
            continue
        if best is None or len(prefix) > best[0]:
            best = (len(prefix), budget)
    return best[1] if best else None


def suggest(zone: Mapping[str, Any], budgets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A TimeoutBudget for each of the zone's unbudgeted paths. Latency and origin come
    from the zone's TimeoutBudget of the same host (sharing the longest path prefix);
    without one, placeholders to fill in."""
    meta, status = zone.get("metadata", {}), zone.get("status") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    timeout = status.get("effectiveProxyReadTimeoutSeconds")
    timeout = timeout if isinstance(timeout, int) else 120
    view = status.get("edgeView") or {}
    mine = [
        b
        for b in budgets
        if b.get("metadata", {}).get("namespace") == namespace
        and (b.get("spec", {}).get("edge") or {}).get("zoneRef", {}).get("name") == name
    ]
    out = []
    for path in view.get("unbudgetedPaths") or []:
        host, where = str(path.get("host")), str(path.get("path"))
        sibling = _sibling(mine, host, where)
        spec = sibling.get("spec", {}) if sibling is not None else {}
        latency = dict(spec.get("latency") or {"metric": "FILL_IN_your_latency_histogram"})
        out.append(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TimeoutBudget",
                "metadata": {"name": _name(host, where), "namespace": namespace},
                "spec": {
                    "route": {"host": host, "pathPrefix": where},
                    "budget": {
                        "timeoutSeconds": suggested_budget_seconds(
                            path.get("originP95Seconds"), timeout
                        )
                    },
                    "latency": latency,
                    "origin": dict(spec.get("origin") or {"deploymentName": "FILL_IN"}),
                    "edge": {"zoneRef": {"name": name}},
                },
            }
        )
    return out


def _sibling(
    budgets: Sequence[Mapping[str, Any]], host: str, path: str
) -> Mapping[str, Any] | None:
    same = [b for b in budgets if b.get("spec", {}).get("route", {}).get("host") == host]

    def shared(b: Mapping[str, Any]) -> int:
        prefix = str(b.get("spec", {}).get("route", {}).get("pathPrefix", "/"))
        n = 0
        while n < min(len(prefix), len(path)) and prefix[n] == path[n]:
            n += 1
        return n

    return max(same, key=shared) if same else None


def _name(host: str, path: str) -> str:
    words = [w for w in "".join(c if c.isalnum() else "-" for c in path.lower()).split("-") if w]
    name = "-".join([host.split(".")[0], *words])[:63].strip("-")
    return name or "route"


def render_zone(zone: Mapping[str, Any], suggestions: Sequence[Mapping[str, Any]]) -> str:
    meta, status = zone.get("metadata", {}), zone.get("status") or {}
    view = status.get("edgeView") or {}
    lines = [f"CloudflareZone {meta.get('namespace')}/{meta.get('name')}"]
    lines.append(f"Cloudflare's analytics: {view.get('message', 'not read yet')}")
    paths = view.get("unbudgetedPaths") or []
    if not paths:
        lines.append("No slow path without a TimeoutBudget in the last window read.")
        return "\n".join(lines)
    lines += ["", "Slow paths no TimeoutBudget covers:"]
    rows = [["HOST", "PATH", "REQUESTS", "524s", "EDGE P95"]]
    rows += [
        [
            str(p.get("host")),
            str(p.get("path")),
            str(p.get("requests")),
            str(p.get("errors524")),
            f"{p.get('originP95Seconds')}s",
        ]
        for p in paths
    ]
    lines += _table(rows)
    lines += ["", "# TimeoutBudgets to apply (kubectl apply -f -); check latency and origin:"]
    lines.append(yaml.safe_dump_all(list(suggestions), sort_keys=False).rstrip())
    return "\n".join(lines)


def _covers(prefix: str, path: str) -> bool:
    base = prefix.rstrip("/")
    return not base or path == base or path.startswith(base + "/")


def _reading(status: Mapping[str, Any]) -> str:
    p95, budget = status.get("p95Seconds"), status.get("budgetSeconds")
    if budget is None:
        return "no budget known yet"
    if p95 is None:
        return f"no latency reading; budget {budget}s"
    return f"P95 {p95}s of the {budget}s budget ({p95 / budget:.0%})"


def _timeout(hop: Mapping[str, Any]) -> str:
    if "timeoutSeconds" not in hop:
        return "unknown"
    tries = hop.get("tries", 1)
    return f"{hop['timeoutSeconds']}s" + (f" x{tries}" if tries > 1 else "")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def main(args: argparse.Namespace) -> int:
    import kubernetes

    from timeout_budget.clients.kube import load_api_client

    api = kubernetes.client.CustomObjectsApi(load_api_client(args.kubeconfig))
    try:
        if getattr(args, "zone", None):
            namespace, _, name = args.zone.partition("/")
            if not name:
                print("timeout-budget explain: name the zone as NAMESPACE/NAME")
                return 2
            got = api.get_namespaced_custom_object(GROUP, VERSION, namespace, ZONES, name)
            zone: Mapping[str, Any] = got if isinstance(got, Mapping) else {}
            listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            items = listed.get("items", []) if isinstance(listed, Mapping) else []
            print(render_zone(zone, suggest(zone, items)))
            return 0
        if args.route:
            namespace, _, name = args.route.partition("/")
            if not name:
                print("timeout-budget explain: name the route as NAMESPACE/NAME")
                return 2
            got = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            budget = got if isinstance(got, Mapping) else None
        else:
            listed = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            items = listed.get("items", []) if isinstance(listed, Mapping) else []
            budget = find(items, args.host, args.path)
        if budget is None:
            print(f"no TimeoutBudget covers {args.host}{args.path}")
            return 1
    except kubernetes.client.ApiException as exc:
        print(f"timeout-budget explain: the API server answered {exc.status}: {exc.reason}")
        return 1
    print(render(budget))
    return 0
