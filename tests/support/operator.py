"""Run the real operator process against the sandbox: the tests use the very same runner
as the demo (``sandbox.operator_process``), so what they check is what the demo shows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sandbox.controlplane import ControlPlane
from sandbox.operator_process import OperatorProcess

__all__ = ["OperatorProcess", "running", "start"]


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


def running(
    cp: ControlPlane,
    prometheus_url: str,
    ns: str,
    name: str,
    *,
    interval: float = 1.0,
    cloudflare_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """A fixture's body: ``start(...)``, stopped after the tests."""
    proc = start(
        cp, prometheus_url, ns, name, interval=interval, cloudflare_url=cloudflare_url, env=env
    )
    try:
        yield proc
    finally:
        proc.stop()
