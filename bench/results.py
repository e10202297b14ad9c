"""Benchmark results: the machine's description, the JSON files, the README table.

``python -m bench.results`` regenerates the table in ``bench/README.md`` (between the
``<!-- results -->`` markers) from every ``bench/results/*.json``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def machine(versions: Mapping[str, str]) -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        **versions,
    }


def write(result: Mapping[str, Any], label: str | None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    date = str(result["date"])
    name = f"{date}-{result['routes']}" + (f"-{label}" if label else "") + ".json"
    path = RESULTS / name
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


def _fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _floor(r: Mapping[str, Any]) -> str:
    """The floor the ratio uses; since the phase-matched floor, the one right after the
    cycle too (the only one measured before it, so older runs show that one alone)."""
    floor = r["floor"]
    text = f"{_fmt(floor['seconds']['median'])} s"
    after = (floor.get("after_cycle_seconds") or {}).get("median")
    return text if after is None else f"{text} (after: {_fmt(after)} s)"


def rows(results: Sequence[Mapping[str, Any]]) -> list[str]:
    header = (
        "| run | routes | cycles | cycle median / p95 | floor query | cycle / floor "
        "| Prometheus queries / cycle | kube reads / cycle | kube writes / cycle "
        "| status-changed routes / cycle | writes / changed | Cloudflare req / cycle "
        "| RSS (max) | CPU s / cycle | per-object: queries, time (x batched) "
        "| reaction median / max (interval) | load avg |"
    )
    out = [header, header_rule(header)]
    for r in results:
        c = r["cycles"]
        poll = r.get("per_object_polling") or {}
        react = r.get("reaction") or {}
        loads = r.get("load_average", {})
        out.append(
            "| "
            + " | ".join(
                [
                    f"{r['date']} {r.get('label') or ''}".strip(),
                    f"{r['routes']:,}",
                    str(c.get("count")),
                    f"{_fmt(c['wall_seconds']['median'])} / {_fmt(c['wall_seconds']['p95'])} s",
                    _floor(r),
                    _fmt(r["ratios"].get("cycle_over_floor"), 2, "x"),
                    _fmt(c.get("prometheus_queries_median"), 0),
                    _fmt(c.get("kube_reads_median"), 0),
                    _fmt(c.get("kube_writes_median"), 0),
                    _fmt(c.get("changed_routes_median"), 0),
                    _fmt(r["ratios"].get("writes_over_changed"), 2),
                    _fmt(c.get("cloudflare_requests_median"), 0),
                    f"{_fmt(c.get('rss_mib_max'), 0)} MiB",
                    _fmt(c.get("cpu_seconds_median"), 2),
                    (
                        f"{_fmt(poll.get('queries_per_cycle'), 0)} "
                        f"(x{_fmt(r['ratios'].get('poll_queries_over_batched'), 0)}), "
                        f"{_fmt(poll.get('seconds_per_cycle'), 1)} s "
                        f"(x{_fmt(r['ratios'].get('poll_time_over_batched'), 1)})"
                    )
                    if poll
                    else "—",
                    f"{_fmt(react.get('median_seconds'), 1)} / "
                    f"{_fmt(react.get('max_seconds'), 1)} s "
                    f"({_fmt(r.get('interval_seconds'), 0)} s)",
                    f"{_fmt(loads.get('start', [None])[0], 1)} → "
                    f"{_fmt(loads.get('end', [None])[0], 1)}",
                ]
            )
            + " |"
        )
    return out


def header_rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def regenerate(readme: Path = README, results_dir: Path = RESULTS) -> str:
    found = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    found.sort(key=lambda r: (r["routes"], r["date"], r.get("started_at", 0)))
    machines = sorted(
        {
            f"{r['machine']['cores']} cores ({r['machine']['cpu']}), "
            f"{r['machine']['memory_gib']} GiB, Python {r['machine']['python']}, "
            f"Kubernetes {r['machine'].get('kubernetes')}, "
            f"Prometheus {r['machine'].get('prometheus')}, "
            f"kopf {r['machine'].get('kopf')}"
            for r in found
        }
    )
    table = "\n".join(
        [
            *rows(found),
            "",
            *(f"Machine: {m}." for m in machines),
        ]
    )
    text = readme.read_text() if readme.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")
    return table


if __name__ == "__main__":
    print(regenerate())
