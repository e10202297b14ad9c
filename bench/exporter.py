"""The bulk synthetic origin, in its own process: ``python -m bench.exporter --routes N``.

Serving 10,000 route histograms (310,000 series, ~30 MB per scrape) costs the exporter
about half a second of CPU per scrape; in its own process that work never holds the
harness' GIL while it times anything. Each route's model comes from ``bench.world.route_model``.
The port is printed on stdout once the server listens.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from bench.world import route_model
from sandbox.origin_exporter import OriginExporter


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, required=True)
    parser.add_argument("--rps", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    # Requests are drawn every 5 s (a scrape every 15 s sees them all): less CPU than every 1 s.
    exporter = OriginExporter(tick_seconds=5.0, port=args.port)
    for i in range(args.routes):
        model = route_model(i, args.rps)
        exporter.set_route(model.route, p95=model.p95, rps=model.rps, host=model.host)
    exporter.start()
    print(exporter.port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
