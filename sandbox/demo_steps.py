"""How the demo's world comes up: waiting for a condition, and a start-up step in a thread.

A part that does not come up in time raises ``SetupFailed`` with what was awaited, so the
demo stops what it started and says which part failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SetupFailed(RuntimeError):
    """A part of the world did not come up; the message says which and where its log is."""


def wait_until(
    probe: Callable[[], bool], timeout: float, what: str, interval: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise SetupFailed(f"timed out after {timeout:.0f}s waiting for {what}")


class Background:
    """Run a start-up step in a thread; ``join()`` re-raises what it raised."""

    def __init__(self, step: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(step,), daemon=True)
        self._thread.start()

    def _run(self, step: Callable[[], None]) -> None:
        try:
            step()
        except BaseException as exc:  # handed to the joining thread
            self._error = exc

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
