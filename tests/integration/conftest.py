"""Fixtures of the integration tier (the servers it shares with the reliability suite are in
``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from tests.integration.edge_fixtures import CREDENTIAL_ENV


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Cloudflare credentials from the environment: with ``CLOUDFLARE_EMAIL`` or
    ``CLOUDFLARE_API_KEY`` set the SDK sends those, not the token. A module that talks to
    the emulator through the SDK in its own process asks for it in ``pytestmark``."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
