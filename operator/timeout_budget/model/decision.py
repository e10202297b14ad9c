"""The outcome of one evaluation of one route: what the I/O layer applies and reports.

A ``Decision`` is complete on its own: the state for the State column, the desired actions
(each with its reason), what could not be done and why, the advice when nothing more can be
done, the memory to store for the next evaluation, a one-paragraph message and the
condition inputs. The apply step passes ``actions`` through the diff first; in a dry run it
applies nothing and reports the diff's result as planned.
"""

from __future__ import annotations

from dataclasses import dataclass

from timeout_budget.model.actions import Action, Refusal
from timeout_budget.model.chain import Hop
from timeout_budget.model.conditions import ConditionInput
from timeout_budget.model.coverage import Coverage
from timeout_budget.model.memory import Memory
from timeout_budget.model.state import State

CLOUDFLARE_ADVICE = (
    "Cloudflare's advice for requests that regularly take longer than the Proxy Read "
    "Timeout: implement status polling for long HTTP processes (answer at once, e.g. "
    "202 Accepted with a status URL, and let the client poll for the result), or serve "
    "them from a DNS-only (grey-cloud) hostname that does not go through the proxy."
)


@dataclass(frozen=True)
class Decision:
    state: State
    budget_seconds: int
    p95_seconds: float | None
    """The reading decided on; ``None`` without usable data."""
    actions: tuple[Action, ...]
    """Desired values, with reasons; the diff drops those already true."""
    refusals: tuple[Refusal, ...]
    advice: str | None
    """Cloudflare's advice, when nothing more can be done or a declared need cannot be met."""
    memory: Memory
    message: str
    conditions: tuple[ConditionInput, ...]
    desired_replicas: int
    """What the operator asks for: the HPA's minReplicas, else the Deployment's replicas."""
    dry_run: bool = False
    """Plan only: apply nothing, report the diffed actions as planned."""
    counts_down: bool = False
    """The message shows the time left on a window: it changes with the time alone."""
    edge_coverage: tuple[Coverage, ...] = ()
    """Per method group, what gives the route its edge read timeout; empty without a zone."""
    chain: tuple[Hop, ...] = ()
    """The timeout chain, judged (``decide.chain``); empty unless the spec declares one."""

    @property
    def ratio(self) -> float | None:
        if self.p95_seconds is None:
            return None
        return self.p95_seconds / self.budget_seconds
