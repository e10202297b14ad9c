"""``TBO_CLOUDFLARE_REQUEST_BUDGET`` (the chart's ``cloudflare.requestBudget``) caps every
Cloudflare token's request budget over the zones' own ``spec.apiRequestBudget``."""

from __future__ import annotations

import asyncio

import pytest

from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.edge.zones import Zones
from timeout_budget.model.spec import parse_cloudflare_zone
from timeout_budget.settings import OperatorSettings, SettingsError

pytestmark = pytest.mark.unit

URL = {"TBO_PROMETHEUS_URL": "http://prometheus:9090"}
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"


def test_the_setting_defaults_to_cloudflares_limit_and_is_checked() -> None:
    assert OperatorSettings.from_env(URL).cloudflare_request_budget == 1200
    assert (
        OperatorSettings.from_env(
            {**URL, "TBO_CLOUDFLARE_REQUEST_BUDGET": "300"}
        ).cloudflare_request_budget
        == 300
    )
    with pytest.raises(SettingsError, match="TBO_CLOUDFLARE_REQUEST_BUDGET must be between"):
        OperatorSettings.from_env({**URL, "TBO_CLOUDFLARE_REQUEST_BUDGET": "5000"})
    with pytest.raises(SettingsError, match="TBO_CLOUDFLARE_REQUEST_BUDGET must be a number"):
        OperatorSettings.from_env({**URL, "TBO_CLOUDFLARE_REQUEST_BUDGET": "lots"})


@pytest.mark.parametrize(("cap", "zone_budget", "limit"), [(300, 600, 300), (1200, 600, 600)])
def test_the_lower_of_the_cap_and_the_zones_budget_holds(
    cap: int, zone_budget: int, limit: int
) -> None:
    zones = Zones(base_url="http://127.0.0.1:9/client/v4", request_budget_cap=cap)
    spec = parse_cloudflare_zone(
        {
            "zoneId": ZONE,
            "apiTokenSecretRef": {"name": "cf"},
            "apiRequestBudget": zone_budget,
        }
    )

    async def register() -> int:
        zone = await zones.register(("ns", "zone"), spec, ApiToken("secret-token"))
        limit = zone.client.budget.limit
        await zones.aclose()
        return limit

    assert asyncio.run(register()) == limit
