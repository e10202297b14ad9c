"""The live table: every route's P95 against its budget, state, replicas and last action.

A person watching the demo needs one glance to see where each route stands, and the
operator's actions as they happen. On a terminal the table is redrawn in place every
cycle (plain ANSI cursor movement, no curses), with actions and phase changes scrolling
above it. Without a terminal (CI logs, ``| tee``) redrawing would leave escape codes and
hundreds of copies, so the table is printed again only when something in it changed or
every ``every`` seconds, and the actions are plain lines in between.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TextIO

from sandbox.demo_timeline import RouteSample

WIDTH = 170
EDGE = 28
CHAIN = 26
HEADER = (
    f"{'route':<7} {'P95':>7} {'budget':>6} {'ratio':>5}  {'state':<9} "
    f"{'replicas':<24} {'edge (per method: by what)':<{EDGE}}  {'chain':<{CHAIN}}  last action"
)


def seconds(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}s"


def replicas(sample: RouteSample) -> str:
    text = f"{sample.replicas}/{sample.max_replicas}"
    if sample.spec_replicas != sample.replicas:
        text = f"{sample.replicas}→{sample.spec_replicas}/{sample.max_replicas}"
    if sample.hpa_min_replicas is not None:
        text += f" hpa-min {sample.hpa_min_replicas}"
    if sample.serving_pool != "main":
        text += f" ⇒ {sample.serving_pool} {sample.serving_ready}"
    if sample.long_share:
        text += f" ⇒ {sample.long_share}% long"
    return text


def row(sample: RouteSample) -> str:
    ratio = "—" if sample.ratio is None else f"{sample.ratio:.2f}"
    budget = "—" if sample.budget is None else f"{sample.budget:.0f}s"
    edge = sample.edge_coverage or (
        "—" if sample.edge_timeout is None else f"{sample.edge_timeout}s"
    )
    line = (
        f"{sample.route:<7} {seconds(sample.p95):>7} {budget:>6} {ratio:>5}  "
        f"{sample.state:<9} {replicas(sample):<24} {edge:<{EDGE}}  {sample.chain or '—':<{CHAIN}}  "
        f"{sample.last_action or '—'}"
    )
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def block(t: float, phase: str, samples: Sequence[RouteSample], prometheus_up: bool) -> list[str]:
    prom = "" if prometheus_up else "   [Prometheus DOWN]"
    return [
        f"── t={t:5.0f}s  phase: {phase}{prom} " + "─" * max(0, 60 - len(phase) - len(prom)),
        HEADER,
        *(row(s) for s in samples),
    ]


class LiveTable:
    def __init__(
        self, stream: TextIO | None = None, tty: bool | None = None, every: float = 5.0
    ) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        # A table line that wraps would break the in-place redraw: cut at the terminal's width.
        self.width = shutil.get_terminal_size().columns - 1 if self.tty else 10_000
        self._drawn: list[str] = []
        self._last_print = -1e9
        self._last_signature: tuple[object, ...] | None = None

    def _erase(self) -> None:
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{len(self._drawn)}F\x1b[J")

    def _draw(self) -> None:
        self.stream.write("\n".join(self._drawn) + "\n")
        self.stream.flush()

    def log(self, line: str) -> None:
        """A line that stays (an action, a phase change), printed above the table."""
        self._erase()
        self.stream.write(line + "\n")
        if self.tty and self._drawn:
            self._draw()
        self.stream.flush()

    def update(
        self, t: float, phase: str, samples: Sequence[RouteSample], prometheus_up: bool
    ) -> None:
        lines = [line[: self.width] for line in block(t, phase, samples, prometheus_up)]
        if self.tty:
            self._erase()
            self._drawn = lines
            self._draw()
            return
        signature = tuple(
            (
                s.route,
                s.state,
                s.replicas,
                s.spec_replicas,
                s.serving_pool,
                s.long_share,
                s.last_action,
            )
            for s in samples
        )
        if signature != self._last_signature or t - self._last_print >= self.every:
            self._last_signature = signature
            self._last_print = t
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Leave the last table on screen; later output goes below it."""
        self._drawn = []
