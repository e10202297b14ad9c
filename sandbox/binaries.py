"""Where the sandbox's Go-built binaries live, and building them when they are missing.

The binaries are cached outside the repository (``$TBO_CACHE``, default
``~/.cache/timeout-budget-operator``), keyed by the versions in ``versions.env``, so a
fresh clone (CI) finds them without rebuilding.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


class BinariesUnavailable(RuntimeError):
    """The control-plane binaries are missing and could not be built."""


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def cache_dir() -> Path:
    env = os.environ.get("TBO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "timeout-budget-operator"


GATEWAY_API_KINDS = (
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "referencegrants",
    "backendtlspolicies",
    "listenersets",
    "tcproutes",
    "tlsroutes",
    "udproutes",
)
"""The standard channel's CRDs in v1.6 (plural names)."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwok_stages: tuple[Path, ...]
    helm: Path
    thanos: Path
    """Thanos (query, sidecar): ``sandbox.thanos``'s distributed backend."""
    gateway_api_crds: tuple[Path, ...]
    """The Gateway API's standard-channel CRDs (``gateway.networking.k8s.io``)."""
    versions: dict[str, str]

    def all_paths(self) -> list[Path]:
        return [
            self.kube_apiserver,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kubectl,
            self.etcd,
            self.kwok,
            self.helm,
            self.thanos,
            *self.kwok_stages,
            *self.gateway_api_crds,
        ]


def locate() -> Binaries:
    v = versions()
    bin_dir = cache_dir() / "bin"
    k8s = bin_dir / f"kubernetes-{v['K8S_VERSION']}"
    kwok = bin_dir / f"kwok-{v['KWOK_VERSION']}"
    stages = kwok / "stages"
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        etcd=bin_dir / f"etcd-{v['ETCD_VERSION']}" / "etcd",
        kwok=kwok / "kwok",
        kwok_stages=tuple(
            stages / name
            for name in (
                "node-initialize.yaml",
                "node-heartbeat.yaml",
                "pod-ready.yaml",
                "pod-complete.yaml",
                "pod-delete.yaml",
            )
        ),
        helm=bin_dir / f"helm-{v['HELM_VERSION']}" / "helm",
        thanos=bin_dir / f"thanos-{v['THANOS_VERSION']}" / "thanos",
        gateway_api_crds=tuple(
            bin_dir
            / f"gateway-api-{v['GATEWAY_API_VERSION']}"
            / f"gateway.networking.k8s.io_{kind}.yaml"
            for kind in GATEWAY_API_KINDS
        ),
        versions=v,
    )


def missing(binaries: Binaries) -> list[Path]:
    return [p for p in binaries.all_paths() if not p.exists()]


def ensure(build: bool = True) -> Binaries:
    """Return the binaries, building the missing ones first (progress on stderr)."""
    binaries = locate()
    if missing(binaries) and build:
        result = subprocess.run(["bash", str(HERE / "build-binaries.sh"), "all"], check=False)
        if result.returncode != 0:
            raise BinariesUnavailable(
                f"sandbox/build-binaries.sh failed with exit code {result.returncode}"
            )
        binaries = locate()
    gone = missing(binaries)
    if gone:
        raise BinariesUnavailable(
            "missing sandbox binaries: "
            + ", ".join(str(p) for p in gone)
            + " (run `make binaries`)"
        )
    return binaries


def ensure_thanos(build: bool = True) -> Path:
    """The Thanos binary, built first (that component alone) when missing and ``build``."""
    path = locate().thanos
    if not path.exists() and build:
        result = subprocess.run(["bash", str(HERE / "build-binaries.sh"), "thanos"], check=False)
        if result.returncode != 0:
            raise BinariesUnavailable(
                f"sandbox/build-binaries.sh thanos failed with exit code {result.returncode}"
            )
    if not path.exists():
        raise BinariesUnavailable(f"missing sandbox binary: {path} (run `make binaries`)")
    return path
