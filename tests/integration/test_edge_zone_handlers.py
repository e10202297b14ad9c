"""The CloudflareZone handler on real parts: its Secret in the sandbox's API server, the
Cloudflare emulator, and the status it produces written through the CRD's schema.

The handler function is called the way kopf calls it (keyword arguments, a ``Patch`` to
fill); the status it patches is then applied to a real CloudflareZone, so the API server
validates it against the CRD. What a user sees: ``kubectl get cfz`` with the zone's
timeout, and a condition naming the missing Secret instead of a crash.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import kopf
import pytest

from sandbox.controlplane import ControlPlane
from tests.integration.edge_fixtures import TOKEN, edge_world
from tests.support import kube
from timeout_budget import zone_handlers
from timeout_budget.clients.kube import load_api_client
from timeout_budget.clients.secrets import SecretReader

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]


def zone_object(zone_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "timeoutbudget.io/v1alpha1",
        "kind": "CloudflareZone",
        "metadata": {"name": "edge"},
        "spec": {
            "zoneId": zone_id,
            "apiTokenSecretRef": {"name": "cloudflare", "key": "token"},
            "proxyReadTimeoutSeconds": 300,
        },
    }


def secret(key: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cloudflare"},
        "data": {key: base64.b64encode(value.encode()).decode()},
    }


def test_zone_handler_reports_a_missing_secret_then_syncs_and_patches_a_valid_status(
    control_plane: ControlPlane, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cp = control_plane
    with edge_world() as edge:
        zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=100)
        obj = zone_object(zone_id)
        cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(obj))
        created = kube.get_json(cp, "cloudflarezone", "edge", "-n", namespace)
        memo = kopf.Memo()
        memo.zones = edge.registry
        memo.zone_secrets = SecretReader(load_api_client(str(cp.kubeconfig)))
        logger = logging.getLogger("test.zone")

        def write_status(patch: kopf.Patch) -> dict[str, Any]:
            body = json.dumps({"status": dict(patch)["status"]})
            cp.kubectl(
                "patch", "cloudflarezone", "edge", "-n", namespace,
                "--subresource=status", "--type=merge", "-p", body,
            )  # fmt: skip
            return dict(kube.get_json(cp, "cloudflarezone", "edge", "-n", namespace)["status"])

        async def handle(status: dict[str, Any]) -> kopf.Patch:
            patch = kopf.Patch()
            await zone_handlers.sync(
                body=kopf.Body(created),
                spec=created["spec"],
                status=status,
                meta=created["metadata"],
                patch=patch,
                memo=memo,
                logger=logger,
            )
            return patch

        async def scenario() -> list[dict[str, Any]]:
            missing = write_status(await handle({}))
            wrong_key = secret("api-token", TOKEN)
            cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(wrong_key))
            no_key = write_status(await handle(missing))
            cp.kubectl(
                "apply", "-n", namespace, "-f", "-", input_text=json.dumps(secret("token", TOKEN))
            )
            synced = write_status(await handle(no_key))
            again = await handle(synced)  # nothing new: nothing to patch
            return [missing, no_key, synced, dict(again)]

        try:
            missing, no_key, synced, again = edge.run(scenario)
        finally:
            printed = cp.kubectl("get", "cfz", "edge", "-n", namespace).stdout

    def edge_synced(status: dict[str, Any]) -> tuple[str, str, str]:
        found = next(c for c in status["conditions"] if c["type"] == "EdgeSynced")
        return found["status"], found["reason"], found["message"]

    assert edge_synced(missing)[:2] == ("False", "SecretNotFound")
    assert f"Secret {namespace}/cloudflare not found" in edge_synced(missing)[2]
    assert edge_synced(no_key)[:2] == ("False", "SecretKeyMissing")
    assert "has no key token (keys: api-token)" in edge_synced(no_key)[2]
    assert edge_synced(synced)[:2] == ("True", "Synced")
    assert (synced["effectiveProxyReadTimeoutSeconds"], synced["editable"]) == (300, True)
    assert synced["observedGeneration"] == created["metadata"]["generation"]
    assert "rateLimitedUntil" not in synced
    assert set(again.get("status", {})) <= {"requestsRemaining", "lastSyncTime"}
    assert "300" in printed
    assert TOKEN not in caplog.text + json.dumps([missing, no_key, synced])
