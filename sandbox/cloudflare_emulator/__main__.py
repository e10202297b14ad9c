"""Run the Cloudflare API emulator as its own process (for the demo, or by hand).

The first line on stdout is the API base URL (``http://127.0.0.1:PORT/client/v4``), so a
parent process can read it and hand it to the SDK; the admin URL follows on stderr.
The process serves until SIGINT or SIGTERM.

    python -m sandbox.cloudflare_emulator --port 8787 --token t \\
        --zone 023e105f4ecef8ad9ca31a8372d0c353:enterprise --zone abc:pro:120
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sandbox.cloudflare_emulator.emulator import DEFAULT_TOKEN, CloudflareEmulator
from sandbox.cloudflare_emulator.ratelimit import DEFAULT_LIMIT, DEFAULT_WINDOW_SECONDS
from sandbox.cloudflare_emulator.state import Plan, ZoneSeed


def zone_arg(text: str) -> tuple[str, ZoneSeed]:
    """``ZONEID:PLAN[:PROXY_READ_TIMEOUT]`` -> (zone id, seed)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected ZONEID:PLAN[:TIMEOUT], got {text!r}")
    try:
        plan = Plan(parts[1].lower())
        seed = ZoneSeed(plan, float(parts[2])) if len(parts) == 3 else ZoneSeed(plan)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return parts[0], seed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sandbox.cloudflare_emulator",
        description="Local Cloudflare API emulator (127.0.0.1 only).",
    )
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    p.add_argument(
        "--token",
        action="append",
        help=f"accepted API token; repeatable (default: {DEFAULT_TOKEN})",
    )
    p.add_argument(
        "--zone",
        action="append",
        type=zone_arg,
        default=[],
        metavar="ZONEID:PLAN[:TIMEOUT]",
        help="a zone to serve, plan one of free|pro|business|enterprise; repeatable",
    )
    p.add_argument("--rate-limit", type=int, default=DEFAULT_LIMIT, help="requests per window")
    p.add_argument(
        "--rate-window", type=float, default=DEFAULT_WINDOW_SECONDS, help="window in seconds"
    )
    p.add_argument("--schemas", default=None, help="schema folder (default: openapi/ here)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    emulator = CloudflareEmulator(
        args.token or DEFAULT_TOKEN,
        zones=dict(args.zone),
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window,
        schema_dir=args.schemas,
        port=args.port,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with emulator.running():
        print(emulator.base_url, flush=True)
        print(f"admin: {emulator.admin_url}/  zones: {len(args.zone)}", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
