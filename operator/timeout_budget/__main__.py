"""Command line entry point: ``timeout-budget`` (or ``python -m timeout_budget``)."""

from __future__ import annotations

import argparse
import secrets
import sys

from timeout_budget import __version__


def _run(args: argparse.Namespace) -> int:
    import kopf

    from timeout_budget import handlers, heap, settings

    del handlers  # imported for its kopf registrations
    namespaces = list(args.namespace or [])
    try:
        # Read once; the origin watches serve the same namespaces as kopf.
        config = settings.OperatorSettings.from_env(served_namespaces=namespaces or None)
    except ValueError as exc:
        print(f"timeout-budget: configuration error: {exc}", file=sys.stderr)
        return 2
    if config.shards and args.peering is not None:
        print(
            "timeout-budget: configuration error: TBO_SHARDS shards the routes over every "
            "replica, while --peering keeps all but one paused: use one or the other",
            file=sys.stderr,
        )
        return 2
    if namespaces and config.operator_namespace not in namespaces:
        namespaces.append(config.operator_namespace)  # the loop's ConfigMap lives there
    heap.tune()
    heap.collect_less()
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    kopf_settings = kopf.OperatorSettings()
    # Namespaced: skip kopf's cluster-wide scans of namespaces and CRDs, which a namespaced
    # Role forbids (kopf would retry them for about a minute before falling back).
    kopf_settings.scanning.disabled = bool(namespaces)
    kopf.run(
        settings=kopf_settings,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=_priority(args),
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(settings=config),  # handlers.configure takes them from here
    )
    return 0


def _priority(args: argparse.Namespace) -> int | None:
    if args.peering is None:
        return None
    if args.priority is not None:
        return int(args.priority)
    # Replicas of one Deployment share their arguments; equal priorities would pause them
    # all (kopf's rule), so each process draws its own and the highest one acts.
    return secrets.randbelow(1_000_000) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="timeout-budget",
        description="Keeps every HTTP route inside its Cloudflare timeout budget.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the operator's version")
    run = sub.add_parser(
        "run",
        help="run the operator (settings from TBO_* environment variables)",
        description="Run the operator. Prometheus: TBO_PROMETHEUS_URL (required), "
        "TBO_PROMETHEUS_BEARER_TOKEN_FILE, TBO_PROMETHEUS_CA_FILE; cycle: "
        "TBO_EVALUATION_INTERVAL_SECONDS (default 15).",
    )
    run.add_argument(
        "-n", "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    run.add_argument("--peering", help="kopf peering name (several replicas, one active)")
    run.add_argument(
        "--priority",
        type=int,
        help="peering priority (highest acts; default: random per process, ties impossible)",
    )
    run.add_argument("--liveness", help="health endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--log-format", default="plain", choices=["plain", "full", "json"])
    run.add_argument("-v", "--verbose", action="store_true")
    explain = sub.add_parser(
        "explain",
        help="one route's story: state, conditions, the timeout chain, edge coverage, advice",
    )
    explain.add_argument("route", nargs="?", help="NAMESPACE/NAME of the TimeoutBudget")
    explain.add_argument("--host", help="find the route by host (with --path)")
    explain.add_argument("--path", default="/", help="request path (default /)")
    explain.add_argument(
        "--zone",
        help="NAMESPACE/NAME of a CloudflareZone: its slow paths without a TimeoutBudget, "
        "with one to apply for each",
    )
    explain.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    args = parser.parse_args(argv)
    if args.command == "explain":
        if sum(map(bool, (args.route, args.host, args.zone))) != 1:
            parser.error("explain: give NAMESPACE/NAME, --host (and --path), or --zone")
        from timeout_budget import explain as explaining

        return explaining.main(args)
    if args.command == "version":
        print(__version__)
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
