"""The evaluation cycle: observe, decide, diff, act, report, for every route.

Read ``route.py`` first: what happens to one route in one cycle, step by step. Then
``engine.py``: how every route's steps run in one cycle (batched reads, urgency order,
the zone's batched write at the end). The other modules are the steps' parts:

* ``snapshot``: a TimeoutBudget as the watch saw it (the cycle's input);
* ``ports``: what the cycle needs from the world (latency, Cloudflare, Events, clock);
* ``quiet``: routes whose inputs did not change are not decided again;
* ``act``: step 4, the changes (through ``actions.kinds``), with one conflict retry;
* ``report``: step 5, status, Events and metrics.
"""

from timeout_budget.cycle.engine import Engine
from timeout_budget.cycle.report import CycleReport
from timeout_budget.cycle.snapshot import RouteSnapshot

__all__ = ["CycleReport", "Engine", "RouteSnapshot"]
