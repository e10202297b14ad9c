"""A clone of this repository works alone: no project file refers to a path outside it.

A user clones the repository and nothing beside it. Three ways a file could still reach
out of the clone, each checked over every file git tracks (caches such as
``~/.cache/timeout-budget-operator`` are named through ``$HOME`` or ``$TBO_CACHE`` and
are allowed):

* a relative path with ``..`` steps that climb above the repository root, resolved from
  the folder of the file that holds it (``$here/../crds`` in ``charts/`` stays inside);
* ``Path(__file__)`` climbing past the root: ``parents[N]`` or ``.parent`` chains deeper
  than the file sits, or the root's own ``.parent``;
* an absolute path into the workplace around the clone (``/work/``) or a sibling folder
  the project was once written next to (``shared/``).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {
    ".py", ".sh", ".md", ".toml", ".yaml", ".yml", ".json", ".env", ".txt", ".cfg", ".tpl",
    ".ini", "",
}  # fmt: skip
DOTDOT = re.compile(r"(?:\.\./)+[A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.-]+)*")
PARENTS_INDEX = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"Path\(__file__\)\.resolve\(\)((?:\.parent)+)")
ROOT_PARENT = re.compile(r"\b(?:REPO|ROOT|REPO_ROOT)\.parent\b")
PROBES = ("../../kube-system", "../../etc/passwd")
"""Path traversals the hostile-input tests send to the API server on purpose, to see them
refused (and the reliability report quotes): values, not paths the project reads."""
OUTSIDE = re.compile(r"/work/|(?<![\w.-])shared/(?:cloudflare-api|DESIGN|EDGE-FACTS|CHAIN-FACTS)")


@dataclass(frozen=True)
class Reach:
    path: str
    line: int
    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.why}: {self.text.strip()}"


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    files = [REPO / n for n in names if n and Path(n).suffix in TEXT_SUFFIXES]
    return [f for f in files if f.is_file() and f != Path(__file__).resolve()]


def escapes(base: Path, relative: str) -> bool:
    """Whether ``relative``, read from folder ``base``, climbs out of the repository."""
    depth = len(base.relative_to(REPO).parts)
    for part in relative.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def reaches(path: Path, text: str) -> list[Reach]:
    rel = str(path.relative_to(REPO))
    depth = len(path.relative_to(REPO).parts) - 1  # folders between the root and the file
    found: list[Reach] = []
    for number, line in enumerate(text.splitlines(), start=1):

        def note(why: str, line: str = line, number: int = number) -> None:
            found.append(Reach(rel, number, line, why))

        for match in DOTDOT.finditer(line):
            if escapes(path.parent, match.group(0)) and not match.group(0).startswith(PROBES):
                note(f"{match.group(0)!r} climbs out of the repository")
        if path.suffix == ".py":
            for match in PARENTS_INDEX.finditer(line):
                if int(match.group(1)) > depth:
                    note(f"parents[{match.group(1)}] is above the repository root")
            for match in PARENT_CHAIN.finditer(line):
                if match.group(1).count(".parent") > depth + 1:
                    note("the .parent chain goes above the repository root")
            if ROOT_PARENT.search(line):
                note("the repository root's parent")
        if OUTSIDE.search(line):
            note("names a folder outside the clone")
    return found


def test_no_project_file_reaches_outside_the_repository() -> None:
    files = tracked_text_files()
    assert len(files) > 100, "git ls-files found too few files: is this the repository?"
    found = [r for f in files for r in reaches(f, f.read_text(encoding="utf-8", errors="replace"))]
    assert not found, "files that reach outside the clone:\n" + "\n".join(map(str, found))


SHARED = "sha" + "red"
"""Built from parts: the negative examples below must not read as real references."""


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("sandbox/cloudflare_emulator/schemas.py", "DIR = REPO_ROOT.parent / 'x'"),
        ("sandbox/cloudflare_emulator/schemas.py", "X = Path(__file__).resolve().parents[3]"),
        ("sandbox/demo.py", "X = Path(__file__).resolve().parent.parent.parent"),
        ("sandbox/demo.py", "see ../../" + SHARED + "/cloudflare-api"),
        ("docs/x.md", "[design](../../DESIGN.md)"),
        ("docs/x.md", "see ../../etc/shadow"),
        ("Makefile", "SCHEMAS ?= ../" + SHARED + "/cloudflare-api"),
        ("tests/unit/x.py", "open('/work/" + SHARED + "/EDGE-FACTS.md')"),
    ],
)
def test_each_kind_of_reach_is_caught(where: str, line: str) -> None:
    assert reaches(REPO / where, line)


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("charts/sync-crds.sh", 'src="$here/../crds"'),
        ("sandbox/demo.py", "REPO = Path(__file__).resolve().parents[1]"),
        ("tests/unit/x.py", "REPO = Path(__file__).resolve().parents[2]"),
        ("docs/reliability.md", '| 42 | spec.origin.deploymentName = "../../kube-system/coredns"'),
        ("tests/integration/x.py", 'name("../../etc/passwd")'),
        ("docs/reliability.md", '| 32 | spec.edge.zoneRef.name = "../../etc/passwd" |'),
        ("Makefile", "export TBO_CACHE ?= $(HOME)/.cache/timeout-budget-operator"),
    ],
)
def test_paths_inside_the_repository_pass(where: str, line: str) -> None:
    assert not reaches(REPO / where, line)
