"""`make demo`: bring the local sandbox up, apply the sample resources, show them, tear down.

The sandbox is a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, KWOK nodes) built from source. The demo applies the sample
CloudflareZone and TimeoutBudgets plus their origin Deployments, Services and HPA, then
shows what a user would look at with kubectl. ``--keep`` leaves everything running and
prints the kubeconfig; otherwise it tears down cleanly, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from sandbox.controlplane import ControlPlane, progress

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "crds" / "samples"
MANIFESTS = Path(__file__).resolve().parent / "manifests"


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def show(cp: ControlPlane, title: str, *args: str) -> None:
    print(f"\n$ kubectl {' '.join(args)}    # {title}", flush=True)
    print(cp.kubectl(*args, check=False).stdout.rstrip(), flush=True)


def wait_pods_running(cp: ControlPlane, namespace: str, want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cp.kubectl(
            "get", "pods", "-n", namespace, "--no-headers",
            "--field-selector=status.phase=Running", check=False,
        ).stdout  # fmt: skip
        running = len([line for line in out.splitlines() if line.strip()])
        if running >= want:
            progress(f"{running} pods Running on KWOK nodes")
            return
        time.sleep(0.5)
    progress(f"warning: fewer than {want} pods Running after {timeout:.0f}s")


def run(keep: bool) -> int:
    workdir = REPO / ".sandbox" / "demo"
    progress("starting the sandbox (first run builds the control plane: see progress above)")
    cp = ControlPlane.start(workdir=workdir, nodes=3)
    try:
        progress("installing CRDs")
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        for crd in ("timeoutbudgets.timeoutbudget.io", "cloudflarezones.timeoutbudget.io"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        cp.kubectl("create", "namespace", "demo")
        progress("applying origins (Deployments, Services, HPA) and sample resources")
        cp.kubectl("apply", "-n", "demo", "-f", str(MANIFESTS / "origins.yaml"))
        cp.kubectl("apply", "-n", "demo", "-f", str(SAMPLES))
        wait_pods_running(cp, "demo", want=5, timeout=60)
        show(cp, "the routes", "get", "timeoutbudgets", "-n", "demo")
        show(cp, "the zone", "get", "cloudflarezones", "-n", "demo")
        show(cp, "KWOK nodes", "get", "nodes", "-o", "wide")
        show(cp, "origin pods", "get", "pods", "-n", "demo", "-o", "wide")
        show(cp, "HPA", "get", "hpa", "-n", "demo")
        if keep:
            print(f"\nSandbox kept running. Explore with:\n  export KUBECONFIG={cp.kubeconfig}")
            print(f"  {cp.binaries.kubectl} get tb -A\nPress Ctrl-C to tear down.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        progress("interrupted")
    finally:
        progress("tearing down")
        cp.stop()
        progress("sandbox stopped; no process left behind")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    parser.add_argument("--fast", action="store_true", help="shortest scenario (for tests)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    return run(keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
