"""``spec.chain`` of a TimeoutBudget: the hops behind Cloudflare the operator checks against
the budget (``decide.chain``), what the cluster cannot tell about them, and whether it keeps
them in line (``decide.chain_sync``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from timeout_budget.model.rules import Check, Text
from timeout_budget.model.spec_base import SpecModel, object_name_rule


class AppServer(SpecModel):
    """The app server's own timeouts, which the cluster cannot tell (gunicorn ``--timeout``
    30 s, kills the worker; uvicorn: none; Node.js ``server.requestTimeout`` 300 s)."""

    name: Annotated[
        str,
        Field(max_length=63),
        Text(
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "chain.appServer.name must be a short lowercase name such as gunicorn or uvicorn "
            "(letters, digits and '-')",
        ),
    ] = "app-server"
    request_timeout_seconds: int = Field(ge=1, le=86400)
    keep_alive_seconds: int | None = Field(default=None, ge=0, le=86400)


class ChainSync(SpecModel):
    """Keep the inner hops in line (opt-in): the operator writes only the objects named here."""

    ingress_name: (
        Annotated[
            str, Field(max_length=253), object_name_rule("chain.sync.ingressName", "an Ingress")
        ]
        | None
    ) = None
    """The ingress-nginx Ingress (in the route's namespace) whose ``proxy-read-timeout``
    annotation the operator raises to the budget, and gives back when sync ends."""
    http_route_name: (
        Annotated[
            str,
            Field(max_length=253),
            object_name_rule("chain.sync.httpRouteName", "an HTTPRoute"),
        ]
        | None
    ) = None
    """The HTTPRoute (same namespace) whose rule serving the route gets ``timeouts`` that
    allow the budget, where its GatewayClass honours them."""

    checks: ClassVar[tuple[Check[ChainSync], ...]] = (
        Check(
            "has(self.ingressName) || has(self.httpRouteName)",
            "chain.sync names what to keep in line: ingressName or httpRouteName",
            lambda s: s.ingress_name is not None or s.http_route_name is not None,
        ),
    )


class Chain(SpecModel):
    """The hops behind the edge the operator checks against the budget."""

    app_server: AppServer | None = None
    sync: ChainSync | None = None
