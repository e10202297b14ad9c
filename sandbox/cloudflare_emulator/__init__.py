"""A local Cloudflare API emulator for the endpoints the operator uses.

The real Cloudflare API cannot be reached from tests, yet the operator must be tested
through the real ``cloudflare`` SDK, exactly as in production. This package serves, on
127.0.0.1, the zone setting ``proxy_read_timeout``, the Cache Rules entry point and its
single-rule endpoints, and DNS records, with Cloudflare's envelope and error codes. It
validates every request body against the official schemas in ``openapi/`` (shipped here),
models plans (``editable``, rule quotas), the per-token rate limit with 429 and
``Retry-After``, injected faults and a request log, and can be steered from the test
process (``CloudflareEmulator``) or over HTTP (``/__emulator/...``, see ``admin``).

Standalone: ``python -m sandbox.cloudflare_emulator --port 8787 --zone ZONEID:enterprise``.
"""

from sandbox.cloudflare_emulator.emulator import DEFAULT_TOKEN, CloudflareEmulator
from sandbox.cloudflare_emulator.faults import Fault
from sandbox.cloudflare_emulator.protocol import Code
from sandbox.cloudflare_emulator.ratelimit import ManualClock
from sandbox.cloudflare_emulator.requestlog import Entry
from sandbox.cloudflare_emulator.state import Plan, ZoneSeed

__all__ = [
    "DEFAULT_TOKEN",
    "CloudflareEmulator",
    "Code",
    "Entry",
    "Fault",
    "ManualClock",
    "Plan",
    "ZoneSeed",
]
