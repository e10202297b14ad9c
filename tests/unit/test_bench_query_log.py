"""The benchmark reads Prometheus' query log to tell Prometheus' time from the operator's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.measure import QueryLog

pytestmark = pytest.mark.unit

BATCH = ("histogram_quantile(0.95, a)", "histogram_quantile(0.95, b)")


def entry(query: str, finished: str, seconds: float) -> str:
    """One line as Prometheus writes it (``global.query_log_file``), trimmed."""
    return json.dumps(
        {
            "params": {"query": query, "step": 0},
            "stats": {"timings": {"execTotalTime": seconds, "evalTotalTime": seconds}},
            "ts": finished,
        }
    )


def test_a_span_runs_from_the_first_query_begun_to_the_last_finished(tmp_path: Path) -> None:
    log = tmp_path / "queries.jsonl"
    log.write_text(
        "\n".join(
            [
                entry(BATCH[0], "2026-12-07T18:00:01.000Z", 0.5),  # began at 00.500
                entry("group by (le) (x)", "2026-12-07T18:00:01.900Z", 1.8),  # another query
                entry(BATCH[1], "2026-12-07T18:00:01.700Z", 1.0),  # began at 00.700
                entry(BATCH[0], "2026-12-07T18:00:20.000Z", 0.2),  # a later cycle's
            ]
        )
        + "\n"
    )
    at = 1796666400.0  # 2026-12-07T18:00:00Z
    span = QueryLog(log).span(BATCH, at, at + 5)
    assert span == pytest.approx(1.2)  # 00.500 to 01.700
    assert QueryLog(log).span(BATCH, at + 10, at + 25) == pytest.approx(0.2)
    assert QueryLog(log).span(BATCH, at + 30, at + 40) is None


def test_a_line_still_being_written_is_read_once_it_is_whole(tmp_path: Path) -> None:
    log = tmp_path / "queries.jsonl"
    line = entry(BATCH[0], "2026-12-07T18:00:01.000Z", 0.5)
    log.write_text(line[:40])
    queries = QueryLog(log)
    at = 1796666400.0
    assert queries.span(BATCH, at, at + 5) is None
    log.write_text(line + "\n")
    assert queries.span(BATCH, at, at + 5) == pytest.approx(0.5)


def test_no_log_yet_is_no_span(tmp_path: Path) -> None:
    assert QueryLog(tmp_path / "absent.jsonl").span(BATCH, 0.0, 1e10) is None
