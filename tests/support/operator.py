"""Run the real operator process against the sandbox: the tests use the very same runner
as the demo (``sandbox.operator_process``), so what they check is what the demo shows."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sandbox.controlplane import ControlPlane
from sandbox.operator_process import OperatorProcess
from tests.support import kube

__all__ = [
    "OperatorProcess",
    "Restartable",
    "cycles",
    "logged_cycles",
    "running",
    "start",
    "wait_cycles",
]

CYCLES = "timeout_budget_evaluation_cycles_total"
CYCLE_LINE = re.compile(r"cycle: \d+ routes")


def start(
    cp: ControlPlane,
    prometheus_url: str,
    ns: str,
    name: str,
    *,
    interval: float = 1.0,
    cloudflare_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> OperatorProcess:
    """The operator serving namespace ``ns``, its log in ``logs/operator-<name>.log`` of the
    sandbox's workdir. With ``cloudflare_url`` it talks to Cloudflare there and reads the
    zones' Secrets in ``ns`` (``TBO_OPERATOR_NAMESPACE``); ``env`` adds further settings."""
    extra: dict[str, str] = {}
    if cloudflare_url is not None:
        extra = {"TBO_CLOUDFLARE_BASE_URL": cloudflare_url, "TBO_OPERATOR_NAMESPACE": ns}
    extra.update(env or {})
    log = cp.workdir / "logs" / f"operator-{name}.log"
    return OperatorProcess(cp, prometheus_url, [ns], log, interval, extra)


class Restartable:
    """The operator ``start(*args, **options)`` runs, started again with the very same
    settings by ``restart()`` (after a kill, say); ``proc`` is the latest process."""

    def __init__(self, *args: Any, **options: Any) -> None:
        self.args, self.options = args, options
        self.proc = start(*args, **options)

    def restart(self) -> OperatorProcess:
        self.proc = start(*self.args, **self.options)
        return self.proc

    def stop(self) -> None:
        self.proc.stop()

    def output(self) -> str:
        """The log of every start so far (they share one file)."""
        return self.proc.output()


def running(proc: OperatorProcess) -> Iterator[OperatorProcess]:
    """A fixture's body: ``proc`` (from ``start(...)``) for the tests, stopped after them."""
    try:
        yield proc
    finally:
        proc.stop()


def cycles(proc: OperatorProcess) -> int:
    """The evaluation cycles ``proc`` has finished, ok or failed (its /metrics counter)."""
    with urllib.request.urlopen(proc.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == CYCLES
        )
    )


def wait_cycles(proc: OperatorProcess, n: int, timeout: float = 60.0) -> int:
    """Wait until ``proc`` has finished ``n`` more evaluation cycles than when called, and
    return its count. A cycle under way when called counts, so ``n=2`` is at least one whole
    cycle after the call: what "wait for the next cycle" means."""
    start = cycles(proc)
    return kube.wait_for(
        lambda: (count := cycles(proc)) >= start + n and count,
        timeout,
        f"{n} more evaluation cycles of the operator (from {start})",
    )


def logged_cycles(log: Path) -> int:
    """The completed evaluation cycles an operator's log reports (``cycle: N routes ...``
    lines): also for a process whose /metrics endpoint is off."""
    return len(CYCLE_LINE.findall(log.read_text(errors="replace")))
