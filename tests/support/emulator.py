"""The Cloudflare emulator as the operator-process tests start it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sandbox.cloudflare_emulator import CloudflareEmulator


@contextmanager
def enterprise_zone(token: str | Iterable[str], zone_id: str) -> Iterator[CloudflareEmulator]:
    """The emulator running, knowing ``token`` (one or several), with one Enterprise zone
    ``zone_id`` named example.com whose ``proxy_read_timeout`` is 120 s."""
    with CloudflareEmulator(token=token).running() as emu:
        emu.add_zone(zone_id, "enterprise", name="example.com", proxy_read_timeout=120)
        yield emu
