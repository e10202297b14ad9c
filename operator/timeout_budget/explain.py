"""``timeout-budget explain``: one route's story for a person staring at a 504 or a 524.

It prints, from the TimeoutBudget as the API server has it (the operator's last status):
the route and its reading against the budget, the conditions, the timeout chain (which hop
fires first), what covers each method group at the edge, the last action, and the
operator's message with its advice. A route can be named (``NAMESPACE/NAME``) or found by
host and path (the TimeoutBudget whose host is the one given and whose path prefix is the
longest that covers the path). ``render`` and ``find`` are pure; ``main`` reads the
cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "timeoutbudgets"


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
