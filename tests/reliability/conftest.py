"""The reliability suite: faults survived, hostile input refused, secrets kept.

Every test here runs on the real sandbox and records what it tried in
``tests.support.reliability.REPORT``. At the end of a session in which *every* test of this
directory ran (none deselected, no file left out), the report is written to
``docs/reliability.md``; a partial run leaves the file alone and says so
(``TBO_RELIABILITY_REPORT=/some/file.md`` writes a partial run's rows there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from tests.reliability.fixtures import module_fixture
from tests.reliability.helpers import Scene
from tests.support.reliability import DOC, REPORT

HERE = Path(__file__).resolve().parent
_ran: set[str] = set()
_selected: set[str] = set()
_deselected: list[str] = []
_outcome: list[str] = []
_seconds: list[float] = []


def _ours(nodeid: str) -> bool:
    return nodeid.startswith("tests/reliability/")


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(i.nodeid for i in items if _ours(i.nodeid))


def pytest_collection_finish(session: pytest.Session) -> None:
    _selected.update(i.nodeid for i in session.items if _ours(i.nodeid))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ours(report.nodeid):
        return
    _seconds.append(report.duration)
    if report.when == "call" or report.skipped or report.failed:
        _ran.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not REPORT.rows:
        return
    extra = os.environ.get("TBO_RELIABILITY_REPORT")
    if extra:  # a partial run's rows, somewhere else, e.g. while working on one scenario
        Path(extra).write_text(REPORT.render(sum(_seconds)))
        _outcome.append(f"reliability rows of this run written to {extra}")
    files = {p.name for p in HERE.glob("test_*.py")}
    selected_files = {n.split("::")[0].rsplit("/", 1)[-1] for n in _selected}
    if _deselected or files - selected_files or _selected - _ran:
        missing = sorted(files - selected_files) or sorted(_selected - _ran)[:3]
        _outcome.append(
            f"{DOC.relative_to(DOC.parents[1])} not regenerated: only part of the "
            f"reliability suite ran (not run: {', '.join(missing) or 'deselected tests'})"
        )
        return
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(REPORT.render(sum(_seconds)))
    _outcome.append(f"reliability report written to {DOC.relative_to(DOC.parents[1])}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _outcome:
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _sandbox_facts(request: pytest.FixtureRequest, control_plane: ControlPlane) -> None:
    """Versions for the report's header, taken once from the running sandbox."""
    if "Kubernetes" not in REPORT.facts:
        versions = control_plane.binaries.versions
        REPORT.facts["Kubernetes"] = f"{versions.get('K8S_VERSION', '?')} (sandbox build)"
        out = control_plane.kubectl("version", "-o", "json", check=False).stdout
        if out:
            server = json.loads(out).get("serverVersion", {}).get("gitVersion")
            REPORT.facts["Kubernetes"] = f"{server} (kube-apiserver built from source)"
    REPORT.modules.add(request.module.__name__)


@pytest.fixture
def scene(
    request: pytest.FixtureRequest, control_plane: ControlPlane, ns: str, origin: OriginExporter
) -> Scene:
    """The module's parts for one scenario: its ``operator`` and ``AREA``, and its
    ``emulator`` and ``foreign`` fixtures where it defines them."""

    operator, area = request.getfixturevalue("operator"), request.module.AREA
    emu, foreign = module_fixture(request, "emulator"), module_fixture(request, "foreign")
    return Scene(control_plane, ns, origin, operator, area, emu, foreign)
