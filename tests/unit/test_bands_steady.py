"""The P95 a status shows keeps still under noise, and moves when it means something.

``bands.steady`` picks what the status shows: the reading already shown while the new one
stays near it, in the same band and equally saturated. Budget 120 s, at-risk line 96 s,
recover line 72 s, top bucket 150 s throughout."""

from __future__ import annotations

import pytest

from timeout_budget.decide.bands import Lines, steady
from timeout_budget.model.spec import Budget

pytestmark = pytest.mark.unit

LINES = Lines.of(120, Budget(timeoutSeconds=120, atRiskRatio=0.8, recoverRatio=0.6))
TOP = 150.0


@pytest.mark.parametrize(
    ("reading", "shown", "expected", "why"),
    [
        (30.0, None, 30.0, "nothing shown yet: the reading"),
        (30.0, 0.0, 30.0, "a zero shown is no anchor"),
        # Below the recover line: 10 % of the budget (12 s) or 10 % of the shown reading.
        (41.0, 30.0, 30.0, "11 s off, below the recover line: held"),
        (43.0, 30.0, 43.0, "13 s off: shown"),
        (65.0, 60.0, 60.0, "5 s off 60 s: held"),
        (3.0, 14.0, 14.0, "11 s down from 14 s: held"),
        (2.0, 14.0, 14.0, "12 s down: held (not more than 12 s)"),
        (1.9, 14.0, 1.9, "12.1 s down: shown"),
        (71.0, 70.0, 70.0, "close, both below the line: held"),
        (73.0, 70.0, 73.0, "crosses the recover line: shown at once"),
        # Between the lines and above: 10 % of the shown reading or 2.5 % of the budget (3 s).
        (85.0, 78.0, 78.0, "7 s off 78 s (under 10 %) between the lines: held"),
        (87.0, 78.0, 87.0, "9 s off 78 s (over 10 %) between the lines: shown"),
        (95.0, 90.0, 90.0, "5 s off 90 s, under the at-risk line: held"),
        (97.0, 95.0, 97.0, "crosses the at-risk line: shown"),
        (105.0, 100.0, 100.0, "5 s off 100 s at risk: held"),
        (112.0, 100.0, 112.0, "12 s off 100 s at risk: shown"),
        (121.0, 119.0, 121.0, "crosses the budget: shown"),
        (150.0, 140.0, 150.0, "saturated (the top bucket) while the shown one was not"),
    ],
)
def test_what_the_status_shows(
    reading: float, shown: float | None, expected: float, why: str
) -> None:
    assert steady(reading, shown, LINES, TOP) == expected, why


def test_the_recovered_band_allows_more_drift_than_the_hold_band() -> None:
    """The same 8 s drift of a 40 s reading: held below the recover line; the same drift
    of an 80 s reading between the lines (10 % of 80 s = 8 s, so 9 s) is shown."""
    assert steady(48.0, 40.0, LINES, TOP) == 40.0
    assert steady(89.0, 80.0, LINES, TOP) == 89.0
