"""Command line entry point: ``timeout-budget`` (or ``python -m timeout_budget``)."""

from __future__ import annotations

import argparse
import sys

from timeout_budget import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="timeout-budget",
        description="Keeps every HTTP route inside its Cloudflare timeout budget.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the operator's version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
