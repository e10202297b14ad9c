"""The operator's process gives memory back after a cycle (glibc only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from timeout_budget import heap

pytestmark = pytest.mark.unit

OPERATOR = Path(__file__).resolve().parents[2] / "operator"

# A cycle's worth of freed answers below a few survivors: glibc keeps the pages until trimmed.
SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from timeout_budget import heap

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

heap.tune()
garbage, survivors = [], []
for i in range(200_000):
    garbage.append(bytes(1000))
    if i % 1000 == 0:
        survivors.append(bytes(1000))
del garbage
before = rss_mib()
heap.give_back()
print(before, rss_mib())
"""


@pytest.mark.skipif(heap._libc() is None, reason="glibc only")
def test_the_pages_of_a_freed_cycle_go_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(OPERATOR)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    before, after = (float(x) for x in out.split())
    assert before > 150  # the freed answers still count in RSS
    assert after < before - 150


def test_without_glibc_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_libc", lambda: None)
    assert heap.tune() is False
    assert heap.give_back() is False
