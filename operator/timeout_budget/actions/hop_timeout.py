"""Keeping an Ingress's read timeout in line with the budget (``spec.chain.sync``).

The raise is a server-side apply of three annotations under the operator's own field
manager (``timeout-budget-operator``): the ``proxy-read-timeout`` itself, the value it
replaced and the route that holds it. ``managedFields`` then names the operator on exactly
those fields, so GitOps tools can be told to ignore them (README, "The timeout chain").
The original is recorded on the Ingress itself before anything else, read afresh, and
kept across raises; giving back writes it again (or removes the annotation where there
was none) and takes the bookkeeping off, in one merge patch. An Ingress held for another
route is refused.
"""

from __future__ import annotations

from timeout_budget.actions.target import ClusterTarget, RestoreTarget
from timeout_budget.clients.kube import Kube
from timeout_budget.model import ownership
from timeout_budget.model.actions import HopTimeout
from timeout_budget.model.chain import INGRESS_NGINX_READ_TIMEOUT as READ_TIMEOUT
from timeout_budget.model.spec import RouteKey


class HopHeld(RuntimeError):
    """The Ingress's timeout is held for another route: not this route's to change."""


async def execute(target: ClusterTarget, action: HopTimeout) -> None:
    kube, ns, key = target.kube, target.namespace, target.key
    notes = _annotations(await kube.get_ingress(ns, action.ingress))
    holder = notes.get(ownership.OWNER)
    held = ownership.ORIGINAL_READ_TIMEOUT in notes
    if held and holder != key:
        raise HopHeld(f"Ingress {action.ingress} is held for TimeoutBudget {holder}")
    if action.seconds is None:
        if held:
            await give_back(kube, ns, action.ingress, notes)
        return
    original = (
        notes[ownership.ORIGINAL_READ_TIMEOUT] if held else notes.get(READ_TIMEOUT, ownership.UNSET)
    )
    await kube.apply_ingress_annotations(
        ns,
        action.ingress,
        {
            READ_TIMEOUT: str(action.seconds),
            ownership.ORIGINAL_READ_TIMEOUT: original,
            ownership.OWNER: key,
        },
        ownership.FIELD_MANAGER,
    )


async def give_back(kube: Kube, ns: str, name: str, notes: dict[str, str]) -> str:
    original = notes[ownership.ORIGINAL_READ_TIMEOUT]
    await kube.patch_ingress_annotations(
        ns,
        name,
        {
            READ_TIMEOUT: None if original == ownership.UNSET else original,
            ownership.ORIGINAL_READ_TIMEOUT: None,
            ownership.OWNER: None,
        },
        ownership.FIELD_MANAGER,
    )
    shown = "no annotation (nginx's default)" if original == ownership.UNSET else original
    return f"gave back the proxy-read-timeout of Ingress {ns}/{name}: {shown}"


async def restore(target: RestoreTarget) -> list[str]:
    """The finalizer's undo: every Ingress of the namespace held for this route."""
    return await restore_held(target.kube, target.namespace, target.key)


async def restore_held(kube: Kube, ns: str, key: RouteKey) -> list[str]:
    done: list[str] = []
    for ingress in await kube.list_ingresses(ns):
        notes = _annotations(ingress)
        if notes.get(ownership.OWNER) == key and ownership.ORIGINAL_READ_TIMEOUT in notes:
            done.append(await give_back(kube, ns, ingress["metadata"]["name"], notes))
    return done


def _annotations(obj: dict[str, object]) -> dict[str, str]:
    meta = obj.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}
