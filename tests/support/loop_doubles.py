"""Stand-ins for what kopf and the route watch hand the evaluation loop (``loop.run``)."""

from __future__ import annotations

import asyncio
from typing import Any


class Stopped:
    """kopf's ``DaemonStopped``: false until ``event`` is set."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.event.wait(), timeout)


class Routes:
    """The watched routes (``route_watch.RouteWatch``), empty: listed once ``listed``."""

    def __init__(self, listed: bool = True) -> None:
        self.listed = listed

    def follow(self, shards: Any) -> None:
        pass

    def ready(self) -> frozenset[int | None]:
        return frozenset({None}) if self.listed else frozenset()

    def snapshots(self, shards: Any = None) -> list[Any]:
        return []
