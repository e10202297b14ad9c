"""Small helpers every sandbox component shares: free loopback ports and progress lines."""

from __future__ import annotations

import socket
import sys
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def progress(component: str, message: str) -> None:
    """One progress line on stderr, e.g. ``[sandbox 12:00:01] etcd up``."""
    print(f"[{component} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
