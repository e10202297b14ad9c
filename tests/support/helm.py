"""Running the sandbox's Helm on the operator's chart, and reading what it renders."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "timeout-budget-operator"
CI_VALUES = CHART / "ci"
KUBE_VERSION = "1.37.2"
"""Helm built from source defaults to Kubernetes 1.20, below the chart's kubeVersion."""


class HelmError(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"helm {' '.join(argv)} exited {code}: {stderr}")
        self.stderr = stderr


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: Mapping[str, str] | None = None

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(self.env) if self.env is not None else dict(os.environ)
        env.setdefault("HELM_CACHE_HOME", str(REPO / ".sandbox" / "helm" / "cache"))
        env.setdefault("HELM_CONFIG_HOME", str(REPO / ".sandbox" / "helm" / "config"))
        env.setdefault("HELM_DATA_HOME", str(REPO / ".sandbox" / "helm" / "data"))
        result = subprocess.run(
            [str(self.binary), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )
        if check and result.returncode != 0:
            raise HelmError(argv, result.returncode, result.stderr.strip())
        return result

    def template(
        self,
        *values: Path,
        sets: Sequence[str] = (),
        namespace: str = "tbo-system",
        release: str = "tbo",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["template", release, str(CHART), "--namespace", namespace]
        argv += ["--kube-version", KUBE_VERSION]
        for path in values:
            argv += ["--values", str(path)]
        for item in sets:
            argv += ["--set", item]
        return self.run(*argv, check=check)

    def render(self, *values: Path, **kwargs: Any) -> list[dict[str, Any]]:
        return documents(self.template(*values, **kwargs).stdout)


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return doc
    raise AssertionError(f"no {kind} {name or ''} in the rendered chart")


def kinds(docs: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)
