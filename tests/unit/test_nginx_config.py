"""ingress-nginx's defaults from its controller ConfigMap (``observe.nginx_config``), as
the timeout chain counts them for an Ingress without annotations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.ladder import make_spec
from timeout_budget.clients.kube import KubeError
from timeout_budget.observe.chain import ingress_hops
from timeout_budget.observe.nginx_config import (
    DOCUMENTED,
    NginxConfigReader,
    from_configmap,
)
from timeout_budget.settings import OperatorSettings, SettingsError

pytestmark = pytest.mark.unit

WHERE = "ingress-nginx/ingress-nginx-controller"
INGRESS = {
    "metadata": {"name": "api", "namespace": "shop", "annotations": {}},
    "spec": {
        "ingressClassName": "nginx",
        "rules": [{"host": "api.example.com", "http": {"paths": [{"path": "/"}]}}],
    },
}


@pytest.mark.parametrize(
    ("data", "timeout", "tries", "keepalive", "source"),
    [
        ({}, 60, 3, 60, "default"),
        ({"proxy-read-timeout": "150"}, 150, 3, 60, f"configMap {WHERE}"),
        (
            {"proxy-next-upstream-tries": "1", "upstream-keepalive-timeout": "30"},
            60,
            1,
            30,
            "default",
        ),
        ({"proxy-read-timeout": "2m"}, None, 3, 60, f"configMap {WHERE} (not a number: '2m')"),
        ({"proxy-next-upstream-tries": "lots"}, 60, 3, 60, "default"),
    ],
)
def test_from_configmap(
    data: dict[str, str], timeout: float | None, tries: int, keepalive: float, source: str
) -> None:
    found = from_configmap(data, WHERE)
    assert (found.read_timeout, found.tries, found.keepalive, found.source) == (
        timeout,
        tries,
        keepalive,
        source,
    )


def test_an_ingress_without_annotations_gets_the_configmaps_defaults() -> None:
    spec = make_spec(route={"host": "api.example.com", "pathPrefix": "/export"}, chain={})
    defaults = from_configmap({"proxy-read-timeout": "150", "proxy-next-upstream": "off"}, WHERE)
    (hop,) = ingress_hops(spec, [INGRESS], "shop/api", defaults)
    assert (hop.timeout_seconds, hop.source, hop.tries) == (150, f"configMap {WHERE}", 1)
    (documented,) = ingress_hops(spec, [INGRESS], "shop/api")
    assert (documented.timeout_seconds, documented.source, documented.tries) == (60, "default", 3)


class Kube:
    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def configmap(version: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "data": data}


def test_the_reader_keeps_one_object_per_version_and_says_when_it_cannot_read() -> None:
    reader = NginxConfigReader(
        Kube(
            configmap("1", **{"proxy-read-timeout": "150"}),
            configmap("1", **{"proxy-read-timeout": "150"}),
            KubeError("forbidden", 403),
            configmap("2"),
        ),
        "ingress-nginx",
        "ingress-nginx-controller",
    )
    first = asyncio.run(reader.read())
    assert asyncio.run(reader.read()) is first  # routes reading it can stay quiet
    denied = asyncio.run(reader.read())
    assert denied.read_timeout is None
    assert "not read: forbidden" in denied.source
    assert asyncio.run(reader.read()) == DOCUMENTED


@pytest.mark.parametrize("bad", ["ingress-nginx", "/name", "Ingress/Upper", "a/b/c"])
def test_the_setting_must_name_a_configmap(bad: str) -> None:
    env = {"TBO_PROMETHEUS_URL": "http://prometheus:9090"}
    with pytest.raises(SettingsError, match="namespace/name of a ConfigMap"):
        OperatorSettings.from_env({**env, "TBO_INGRESS_NGINX_CONFIGMAP": bad})
    ok = OperatorSettings.from_env({**env, "TBO_INGRESS_NGINX_CONFIGMAP": WHERE})
    assert ok.ingress_nginx_configmap == ("ingress-nginx", "ingress-nginx-controller")
