"""One PNG per route: the story of the run at a glance.

Top: the P95 the operator read from Prometheus against the route's budget, at-risk and
recover lines, with the origin's true P95 faint behind it (the reading lags it by the rate
window), the ready replicas on a second axis, a marker per action, the Prometheus outage
shaded and the time rerouted tinted. Bottom: the requests per second and which pool
served them, so a reroute shows as load leaving the main pool; for a route rerouted by the
weights of its HTTPRoute, also the share on the long-running backend (a step line, right
axis), so each step shows with the P95 answering it above.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sandbox import demo_edge
from sandbox.demo_timeline import ActionKind, DemoResult, RouteSample, Span

MARKERS: dict[ActionKind, tuple[str, str, str]] = {
    ActionKind.SCALE_UP: ("^", "#1f5fbf", "scale up"),
    ActionKind.SCALE_DOWN: ("v", "#1f5fbf", "scale down"),
    ActionKind.REROUTE: ("D", "#c0392b", "reroute"),
    ActionKind.UNDO: ("D", "#27ae60", "undo reroute"),
    ActionKind.EDGE: ("s", "#8e44ad", "edge read timeout"),
}
P95_COLOR = "#222222"
REPLICAS_COLOR = "#1f5fbf"
LONG_RUNNING_COLOR = "#b07cc6"
TIMEOUT_COLOR = "#d62728"
SHARE_COLOR = "#6c2a86"


def _rerouted(s: RouteSample) -> bool:
    return s.serving_pool != "main" or bool(s.long_share)


def _long_rps(s: RouteSample) -> float:
    """The requests per second the long-running pool served (all, or the weighted share)."""
    if s.serving_pool != "main":
        return s.rps
    return s.rps * (s.long_share or 0) / 100


def _series(samples: list[RouteSample], attr: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for s in samples:
        value = getattr(s, attr)
        xs.append(s.t)
        ys.append(math.nan if value is None else float(value))
    return xs, ys


def _spans(samples: list[RouteSample], inside: str) -> list[Span]:
    """Time spans where the route was served (in part) by a pool other than its own."""
    spans: list[Span] = []
    start: float | None = None
    for s in samples:
        if _rerouted(s) and start is None:
            start = s.t
        elif not _rerouted(s) and start is not None:
            spans.append(Span(inside, start, s.t))
            start = None
    if start is not None:
        spans.append(Span(inside, start, samples[-1].t))
    return spans


def _lines(ax: Axes, last: RouteSample) -> None:
    for value, label, style, color in (
        (last.budget, "budget", "-", "#c0392b"),
        (last.at_risk_line, "at risk", "--", "#e67e22"),
        (last.recover_line, "recover below", ":", "#27ae60"),
    ):
        if value is None:
            continue
        ax.axhline(value, linestyle=style, color=color, linewidth=1.4, zorder=2)
        ax.annotate(
            f"{label} {value:.0f}s",
            xy=(0.995, value),
            xycoords=("axes fraction", "data"),
            xytext=(0, -3),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=8,
            color=color,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            zorder=7,
        )


def _edge_labels(ax: Axes, samples: list[RouteSample], budget: float) -> None:
    """Name each read timeout the edge had, once, where it first appears (the line may
    sit on the budget line: 121 s against 120 s)."""
    seen: set[int] = set()
    for s in samples:
        if s.edge_timeout is not None and s.edge_timeout not in seen:
            seen.add(s.edge_timeout)
            ax.annotate(
                f"Cloudflare read timeout {s.edge_timeout}s",
                xy=(s.t, s.edge_timeout),
                xytext=(3, -10 if len(seen) == 1 else 3),  # the first below, changes above
                textcoords="offset points",
                fontsize=7.5,
                color="#8e44ad",
                zorder=7,
            )


def _phases(ax: Axes, result: DemoResult) -> None:
    for phase in result.phases:
        ax.axvline(phase.start, color="#999999", linewidth=0.6, zorder=1)
        ax.annotate(
            phase.name,
            xy=((phase.start + phase.end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color="#555555",
        )


def plot_route(result: DemoResult, route: str, path: Path, title: str) -> Path:
    samples = result.route_samples(route)
    if not samples:
        raise ValueError(f"no samples for route {route}")
    last = samples[-1]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for outage in result.outages:
        for ax in (top, bottom):
            ax.axvspan(outage.start, outage.end, color="#bbbbbb", alpha=0.45, zorder=0)
        top.annotate(
            "Prometheus down:\nno data, all held",
            xy=((outage.start + outage.end) / 2, 0.04),
            xycoords=("data", "axes fraction"),
            ha="center",
            fontsize=8,
            color="#444444",
        )
    rerouted = _spans(samples, "rerouted")
    for span in rerouted:
        for ax in (top, bottom):
            ax.axvspan(span.start, span.end, color=LONG_RUNNING_COLOR, alpha=0.18, zorder=0)
    xs, model = _series(samples, "model_p95")
    top.plot(xs, model, color="#999999", linewidth=1, linestyle="-", alpha=0.6, zorder=3)
    xs, p95 = _series(samples, "p95")
    top.plot(xs, p95, color=P95_COLOR, linewidth=2.2, zorder=5)
    xs, edge = _series(samples, "edge_timeout")
    budget = last.budget or 120.0
    if any(not math.isnan(e) for e in edge):
        top.step(xs, edge, where="post", color="#8e44ad", linewidth=1.2, linestyle="-.", zorder=4)
        _edge_labels(top, samples, budget)
    _lines(top, last)
    worst = max((v for v in p95 if not math.isnan(v)), default=budget)
    ceiling = max(budget * 1.2, min(worst * 1.1, budget * 2.0))
    top.set_ylim(0, ceiling)
    top.set_ylabel("P95 latency (s)")
    _phases(top, result)
    for action in result.route_actions(route):
        if action.kind not in MARKERS:
            continue
        marker, color, _ = MARKERS[action.kind]
        if action.kind is ActionKind.EDGE:  # on the Cloudflare line it moved
            y = float(_edge_at(samples, action.t + 1.5) or budget)
        else:
            y = _value_at(samples, action.t, action.message)
        y = min(y if not math.isnan(y) else budget * 0.5, ceiling * 0.97)
        top.plot([action.t], [y], marker=marker, color=color, markersize=9, zorder=6,
                 markeredgecolor="white", linestyle="none")  # fmt: skip
    right = top.twinx()
    xs, ready = _series(samples, "replicas")
    right.step(xs, ready, where="post", color=REPLICAS_COLOR, linewidth=1.6, alpha=0.8)
    xs, hpa = _series(samples, "hpa_min_replicas")
    if any(not math.isnan(h) for h in hpa):
        right.step(xs, hpa, where="post", color=REPLICAS_COLOR, linewidth=1, linestyle="--")
    right.set_ylim(0, max(last.max_replicas, max(ready, default=1)) * 1.6 + 1)
    right.set_ylabel("ready replicas", color=REPLICAS_COLOR)
    right.tick_params(axis="y", colors=REPLICAS_COLOR)
    right.yaxis.get_major_locator().set_params(integer=True)
    _load(bottom, samples, _timeouts(result, route, samples[0].t))
    top.set_title(title, fontsize=12, pad=18, loc="left")
    bottom.set_xlabel("seconds since the scenario started")
    first = min(0.0, samples[0].t)
    bottom.set_xlim(first, max(samples[-1].t, result.phases[-1].end if result.phases else 0))
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _legend(fig, result, route, bool(rerouted), any(not math.isnan(h) for h in hpa))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _edge_at(samples: list[RouteSample], t: float) -> int | None:
    return min(samples, key=lambda s: abs(s.t - t)).edge_timeout


_READING = re.compile(r"P95 (\d+(?:\.\d+)?)s")


def _value_at(samples: list[RouteSample], t: float, message: str) -> float:
    """Where to put an action's marker: the reading it names, else the reading then."""
    named = _READING.search(message)
    if named:
        return float(named.group(1))
    best = min(samples, key=lambda s: abs(s.t - t))
    return math.nan if best.p95 is None else best.p95


def _timeouts(result: DemoResult, route: str, first: float) -> list[tuple[float, int]]:
    """The route's 524s at the edge per second, from the first sample on (empty: the edge
    saw none of its requests)."""
    seconds = demo_edge.per_second(result, route)
    return [(t, c[demo_edge.TIMEOUT_STATUS]) for t, c in sorted(seconds.items()) if t >= first - 1]


def _load(ax: Axes, samples: list[RouteSample], timeouts: list[tuple[float, int]]) -> None:
    xs = [s.t for s in samples]
    other = [_long_rps(s) for s in samples]
    main = [s.rps - o for s, o in zip(samples, other, strict=True)]
    ax.stackplot(xs, main, other, colors=[REPLICAS_COLOR, LONG_RUNNING_COLOR], alpha=0.55,
                 step="post")  # fmt: skip
    ax.set_ylabel("requests/s")
    ax.set_ylim(0, max((s.rps for s in samples), default=1) * 1.2)
    handles: list[Patch | Line2D] = [
        Patch(color=REPLICAS_COLOR, alpha=0.55, label="served by the route's own pool")
    ]
    if any(other):
        handles.append(Patch(color=LONG_RUNNING_COLOR, alpha=0.55, label="long-running pool"))
    if any(s.long_share is not None for s in samples):
        handles.append(_share(ax, samples))
    if timeouts:
        shared = any(s.long_share is not None for s in samples)
        handles.append(_timeout_bars(ax, timeouts, offset=shared))
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)


def _timeout_bars(ax: Axes, timeouts: list[tuple[float, int]], offset: bool) -> Patch:
    """The 524s at the edge in each second, as bars on their own right axis (moved out
    when the share's axis is there)."""
    right = ax.twinx()
    if offset:
        right.spines["right"].set_position(("axes", 1.07))
    right.bar([t for t, _ in timeouts], [n for _, n in timeouts], width=1.0, align="edge",
              color=TIMEOUT_COLOR, alpha=0.85, zorder=4)  # fmt: skip
    right.set_ylim(0, max(3, max(n for _, n in timeouts)) * 1.25)
    right.yaxis.get_major_locator().set_params(integer=True)
    right.set_ylabel("524s/s", color=TIMEOUT_COLOR, fontsize=8)
    right.tick_params(axis="y", colors=TIMEOUT_COLOR, labelsize=7)
    label = f"524s at the Cloudflare edge per second (right; {sum(n for _, n in timeouts)} shown)"
    return Patch(color=TIMEOUT_COLOR, alpha=0.85, label=label)


def _share(ax: Axes, samples: list[RouteSample]) -> Line2D:
    """The HTTPRoute rule's share on the long-running backend, on a right axis in %."""
    right = ax.twinx()
    xs, share = _series(samples, "long_share")
    right.step(xs, share, where="post", color=SHARE_COLOR, linewidth=1.8)
    right.set_ylim(0, 105)
    right.set_yticks([0, 20, 40, 60, 80, 100])
    right.set_ylabel("% on long-running", color=SHARE_COLOR, fontsize=8)
    right.tick_params(axis="y", colors=SHARE_COLOR, labelsize=7)
    return Line2D([], [], color=SHARE_COLOR, linewidth=1.8,
                  label="HTTPRoute weight on the long-running backend (right, %)")  # fmt: skip


def _legend(fig: Figure, result: DemoResult, route: str, rerouted: bool, hpa: bool) -> None:
    handles: list[Line2D | Patch] = [
        Line2D([], [], color=P95_COLOR, linewidth=2.2, label="P95 read by the operator"),
        Line2D([], [], color="#999999", linewidth=1, label="origin's true P95 (model)"),
        Line2D([], [], color=REPLICAS_COLOR, linewidth=1.6, label="ready replicas (right)"),
    ]
    if hpa:
        handles.append(
            Line2D([], [], color=REPLICAS_COLOR, linestyle="--", label="HPA minReplicas")
        )
    handles.append(Line2D([], [], color="#8e44ad", linestyle="-.", label="Cloudflare read timeout"))
    kinds = {a.kind for a in result.route_actions(route)}
    for kind, (marker, color, label) in MARKERS.items():
        if kind in kinds:
            handles.append(Line2D([], [], marker=marker, color=color, linestyle="none",
                                  markersize=8, label=label))  # fmt: skip
    if rerouted:
        handles.append(Patch(color=LONG_RUNNING_COLOR, alpha=0.25, label="rerouted"))
    if result.outages:
        handles.append(Patch(color="#bbbbbb", alpha=0.45, label="Prometheus down"))
    fig.legend(handles=handles, loc="lower center", fontsize=8.5, ncol=6, frameon=False)


def plot_all(result: DemoResult, out_dir: Path, titles: dict[str, str]) -> dict[str, Path]:
    return {
        route: plot_route(result, route, out_dir / f"{route}.png", titles.get(route, route))
        for route in result.routes()
    }
