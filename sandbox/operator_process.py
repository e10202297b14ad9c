"""Run the real operator process (``python -m timeout_budget run``) against the sandbox.

The demo and the tests run the operator exactly as a user would, as its own process with
its settings in ``TBO_*`` variables, so what they show is what a deployment does. Its log
goes to a file; ``stop()`` sends SIGTERM to its process group (kopf then shuts down
cleanly) and SIGKILL only if it hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.controlplane import ControlPlane
from sandbox.procutil import free_port

REPO = Path(__file__).resolve().parents[1]
CREDENTIAL_ENV = ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CLOUDFLARE_API_TOKEN")
"""Set, the Cloudflare SDK would send these instead of the zone's token: never inherited."""


class OperatorProcess:
    def __init__(
        self,
        cp: ControlPlane,
        prometheus_url: str,
        namespaces: Sequence[str],
        log: Path,
        interval: float = 2.0,
        extra_env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        kubeconfig: Path | None = None,
    ) -> None:
        env = cp.env()
        if kubeconfig is not None:  # e.g. a ServiceAccount token's, to run with its RBAC only
            env["KUBECONFIG"] = str(kubeconfig)
        for var in CREDENTIAL_ENV:
            env.pop(var, None)
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        env.update(
            {
                "TBO_PROMETHEUS_URL": prometheus_url,
                "TBO_EVALUATION_INTERVAL_SECONDS": str(interval),
                "TBO_METRICS_ADDRESS": "127.0.0.1",
                "TBO_METRICS_PORT": str(self.metrics_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "operator"), env.get("PYTHONPATH", "")) if p
        )
        argv = [sys.executable, "-m", "timeout_budget", "run", "--verbose"]
        for ns in namespaces:
            argv += ["--namespace", ns]
        argv += list(extra_args)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
