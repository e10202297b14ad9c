"""kopf wiring only: every handler hands off to the engine or the actions in one line.

* An index keeps every TimeoutBudget as the watch last saw it.
* One evaluation loop (started at startup) evaluates all routes each interval with one
  batched Prometheus query, and wakes early when a route is created or changed.
* Create/update/resume handlers only validate and wake the loop; the finalizer restores
  what the operator changed (Service selector, HPA minReplicas) and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from timeout_budget import loop
from timeout_budget.model.spec import parse_timeout_budget

Logger = logging.Logger | logging.LoggerAdapter[Any]
GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "timeoutbudgets"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    loop.configure_kopf(settings)
    memo.wake = asyncio.Event()


@kopf.index(GROUP, VERSION, PLURAL)
def budgets(body: kopf.Body, **_: Any) -> dict[tuple[str, str], loop.RouteSnapshot]:
    return loop.snapshot_entry(body)


@kopf.on.startup()
async def start_loop(memo: kopf.Memo, **kwargs: Any) -> None:
    index = kwargs["budgets"]  # the index above, passed by name
    memo.loop_task = asyncio.create_task(loop.run_forever(index, memo.wake), name="evaluation")


@kopf.on.cleanup()
async def stop_loop(memo: kopf.Memo, **_: Any) -> None:
    await loop.stop(memo.get("loop_task"))


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
def validate(spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    try:
        parse_timeout_budget(dict(spec))
    except ValueError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    memo.wake.set()


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def finalize(body: kopf.Body, logger: Logger, **_: Any) -> None:
    await loop.finalize(body, logger)
