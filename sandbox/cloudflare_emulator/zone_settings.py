"""The zone-wide Proxy Read Timeout: ``GET/PATCH /zones/{zone_id}/settings/proxy_read_timeout``.

Only Enterprise zones may change it. Cloudflare says so in the setting itself
(``editable: false``) and refuses a PATCH on other plans; the operator is expected to
read first and never blind-PATCH, and the emulator lets tests prove that it does.
Other settings are not emulated and answer as unrecognized.
"""

from __future__ import annotations

from sandbox.cloudflare_emulator.protocol import ApiError, Code, ErrorItem, Reply, Request, ok
from sandbox.cloudflare_emulator.state import PROXY_READ_TIMEOUT, Store, now_iso
from sandbox.cloudflare_emulator.validation import Validators


def _setting_id(req: Request) -> str:
    setting_id = req.params["setting_id"]
    if setting_id != PROXY_READ_TIMEOUT:
        raise ApiError.one(
            400,
            Code.UNKNOWN_ZONE_SETTING,
            f"Unrecognized zone setting name: {setting_id} "
            f"(the emulator implements only {PROXY_READ_TIMEOUT})",
        )
    return setting_id


def get_setting(store: Store, validators: Validators, req: Request) -> Reply:
    del validators
    setting_id = _setting_id(req)
    zone = store.zone(req.params["zone_id"], f"/settings/{setting_id}")
    return ok(zone.setting_json())


def edit_setting(store: Store, validators: Validators, req: Request) -> Reply:
    setting_id = _setting_id(req)
    zone = store.zone(req.params["zone_id"], f"/settings/{setting_id}")
    violations = validators.zone_setting_edit(setting_id, req.body)
    if violations:
        raise ApiError(
            400,
            [
                ErrorItem(
                    Code.INVALID_ZONE_SETTING_VALUE,
                    f"Invalid value for zone setting {setting_id}: {v}",
                )
                for v in violations
            ],
        )
    if not zone.plan.can_raise_timeouts:
        raise ApiError.one(
            400,
            Code.ZONE_SETTING_NOT_EDITABLE,
            f"{setting_id} cannot be modified for this zone "
            f"(plan {zone.plan.value}: the setting is not editable)",
        )
    zone.proxy_read_timeout = req.body["value"]
    zone.proxy_read_timeout_modified_on = now_iso()
    return ok(zone.setting_json())
