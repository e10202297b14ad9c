"""Why an edge change was not made, besides what Cloudflare itself answered.

    EdgeError
    ├── ZoneNotReady   the route's CloudflareZone is missing, not read yet, or its token
    │                  was rejected: nothing can be sent until it is synced
    └── EdgeRefused    the change would touch what the operator does not own, or the plan
                       cannot do it: the message says what to change

Cloudflare's own answers arrive as ``clients.cloudflare.CloudflareError``.
"""

from __future__ import annotations


class EdgeError(Exception):
    pass


class ZoneNotReady(EdgeError):
    pass


class EdgeRefused(EdgeError):
    pass
