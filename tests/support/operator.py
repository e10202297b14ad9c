"""Run the real operator process (``timeout-budget run``) against the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.controlplane import ControlPlane
from sandbox.procutil import free_port

REPO = Path(__file__).resolve().parents[2]


class OperatorProcess:
    def __init__(
        self,
        cp: ControlPlane,
        prometheus_url: str,
        namespaces: list[str],
        log: Path,
        interval: float = 2.0,
        extra_env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        kubeconfig: Path | None = None,
    ) -> None:
        env = cp.env()
        if kubeconfig is not None:  # e.g. a ServiceAccount token's, to run with its RBAC only
            env["KUBECONFIG"] = str(kubeconfig)
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        for var in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY"):
            env.pop(var, None)
        env.update(
            {
                "TBO_PROMETHEUS_URL": prometheus_url,
                "TBO_EVALUATION_INTERVAL_SECONDS": str(interval),
                "PYTHONUNBUFFERED": "1",
                "TBO_METRICS_ADDRESS": "127.0.0.1",
                "TBO_METRICS_PORT": str(self.metrics_port),
            }
        )
        env.update(extra_env or {})
        argv = [sys.executable, "-m", "timeout_budget", "run", "--verbose"]
        for ns in namespaces:
            argv += ["--namespace", ns]
        argv += list(extra_args)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "operator"), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
