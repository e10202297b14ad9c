"""Sharded evaluation on the real API server: three operator replicas with ``TBO_SHARDS``,
routes in three Cloudflare zones (each its own shard) synced through the emulator.

What a user of the fleet relies on:

* every zone's Cloudflare writes come from exactly one replica (the emulator's request
  log shows the token's fingerprint and the ``X-Timeout-Budget-Replica`` header of each
  request);
* at any moment each shard Lease has one holder, and every replica evaluates only its own;
* a SIGKILLed replica's shards are taken over within the lease time, with nothing lost
  (the route's memory is in its status) and no second scale-up inside the cooldown;
* a replica added later gets shards.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.cloudflare_emulator.requestlog import token_fingerprint
from sandbox.controlplane import ControlPlane, KubectlError
from sandbox.operator_process import OperatorProcess
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.objects import apply, budget, deployment, secret, spec_replicas, zone
from timeout_budget.model.shards import ROLE_LABEL, ROUTE_SHARD_LABEL, assign, shard_of, zone_key
from timeout_budget.route_watch import KOPF_FINALIZER

pytestmark = pytest.mark.integration

NS_PREFIX = "shards"
TOKEN = "cf-token-shards-5b1e0c77a2"
SHARDS = 4
LEASE_SECONDS = 6
LOOP = "timeout-budget-operator-loop"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
COOLDOWN = 40
LAST_HANDLED = "kopf.timeoutbudget.io/last-handled-configuration"
"""kopf's record of the spec it last handled (``app.configure_kopf``)."""


def zones_on_distinct_shards(ns: str) -> dict[str, str]:
    """Three CloudflareZone names (by domain) whose shards all differ in namespace ``ns``."""
    chosen: dict[str, str] = {}
    used: set[int] = set()
    for i in range(200):
        name = f"zone-{i}"
        shard = shard_of(zone_key(ns, name), SHARDS)
        if shard not in used:
            used.add(shard)
            chosen[name] = f"example{i}.com"
        if len(chosen) == 3:
            return chosen
    raise AssertionError("no three zones on distinct shards")


def edge_budget(name: str, zone_name: str, domain: str) -> dict[str, Any]:
    """A route on ``api.<domain>/<name>`` that needs 300 s (a 301 s Cache Rule)."""
    tb = budget(name, name)
    tb["spec"]["route"]["host"] = f"api.{domain}"
    tb["spec"]["budget"] = {"timeoutSeconds": 360, "requiredSeconds": 300}
    tb["spec"]["edge"] = {"zoneRef": {"name": zone_name}}
    return tb


@pytest.fixture
def emulator() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(token=TOKEN).running() as emu:
        yield emu


class Fleet:
    def __init__(
        self, cp: ControlPlane, prometheus: PrometheusServer, ns: str, cf: CloudflareEmulator
    ) -> None:
        self.cp, self.prometheus, self.ns, self.cf = cp, prometheus, ns, cf
        self.replicas: dict[str, OperatorProcess] = {}

    def start(self, name: str) -> OperatorProcess:
        env = {
            "TBO_SHARDS": str(SHARDS),
            "TBO_LEADER_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        proc = operator_process.start(
            self.cp,
            self.prometheus.url,
            self.ns,
            f"shards-{name}",
            cloudflare_url=self.cf.base_url,
            env=env,
        )
        self.replicas[name] = proc
        return proc

    def name_of(self, identity: str | None) -> str:
        """The replica whose identity (``host-pid-suffix``) this is."""
        for name, proc in self.replicas.items():
            if identity and f"-{proc.proc.pid}-" in identity:
                return name
        return f"unknown({identity})"

    def holders(self) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for shard in range(SHARDS):
            try:
                lease = kube.get_json(self.cp, "lease", f"{LOOP}-shard-{shard}", "-n", self.ns)
            except KubectlError:  # not created yet
                lease = {}
            holder = lease.get("spec", {}).get("holderIdentity")
            out[shard] = self.name_of(holder) if holder else None
        return out

    def planned(self) -> dict[int, str] | None:
        """The split every replica's plan agrees on (``model.shards.assign`` over the live
        members' identities), by replica name; None until every replica is a member."""
        leases = kube.get_json(self.cp, "lease", "-n", self.ns, "-l", f"{ROLE_LABEL}=member").get(
            "items", []
        )
        members = [lease.get("spec", {}).get("holderIdentity") or "" for lease in leases]
        named = {self.name_of(m): m for m in members if m}
        if set(named) != set(self.replicas):
            return None
        return {shard: self.name_of(m) for shard, m in assign(SHARDS, named.values()).items()}

    def writers(self, zone_id: str, since: float = 0.0) -> set[str]:
        return {
            self.name_of(e.replica)
            for e in self.cf.requests(path_contains=f"/zones/{zone_id}/")
            if e.method in WRITES and e.started_at >= since
        }

    def kill(self, name: str) -> float:
        proc = self.replicas[name]
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(timeout=10)
        return time.monotonic()

    def stop(self) -> None:
        for proc in self.replicas.values():
            proc.stop()


def edge_synced(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    conditions = kube.get_json(cp, "tb", name, "-n", ns).get("status", {}).get("conditions", [])
    found = [c for c in conditions if c.get("type") == "EdgeSynced"]
    assert len(found) == 1, conditions
    return {k: found[0].get(k) for k in ("status", "reason", "lastTransitionTime")}


def test_zones_have_one_writer_and_a_killed_replicas_shards_move_without_a_double_action(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    ns: str,
    emulator: CloudflareEmulator,
) -> None:
    cp = control_plane
    zones = zones_on_distinct_shards(ns)
    zone_ids = {name: emulator.add_zone(plan="enterprise", name=d) for name, d in zones.items()}
    fleet = Fleet(cp, prometheus, ns, emulator)
    try:
        for name in ("a", "b", "c"):
            fleet.start(name)
        # The three split the shards as planned before the routes come (the first replica
        # up holds every shard until the others join, and would rightly write every zone
        # then; a shard the plan moves is handed over between passes, so a balanced split
        # can still be a moment before the planned one).
        holders = kube.wait_for(
            lambda: h if (h := fleet.holders()) == fleet.planned() else None,
            90,
            "the shards split over a, b and c as planned",
        )
        apply(cp, ns, secret("cf", TOKEN))
        for name, domain in zones.items():
            route = f"r-{name}"
            origin.set_route(route, p95=40.0, rps=20, host=f"api.{domain}")
            apply(
                cp,
                ns,
                zone(name, zone_ids[name], analytics={"enabled": False}),
                deployment(route, 1),
                edge_budget(route, name, domain),
            )

        # Every zone gets its route's Cache Rule, written by one replica only.
        for name, zone_id in zone_ids.items():
            kube.wait_for(lambda z=zone_id: len(emulator.rules(z)) == 1, 120, f"{name}'s rule")
        assert fleet.holders() == holders  # nobody joined or left: the split stood
        for name, zone_id in zone_ids.items():
            writers = fleet.writers(zone_id)
            expected = holders[shard_of(zone_key(ns, name), SHARDS)]
            assert writers == {expected}, (name, writers, holders)
        tokens = {e.token for e in emulator.requests() if e.method in WRITES}
        assert tokens == {token_fingerprint(TOKEN)}

        # A scaling route in one zone's shard: scaled once by its holder, then that holder
        # is SIGKILLed right after. The taker reads the scale time from status: no second
        # step inside the cooldown.
        target_zone = next(iter(zones))
        victim = holders[shard_of(zone_key(ns, target_zone), SHARDS)]
        assert victim is not None
        hot = budget("hot", "hot")
        hot["spec"]["route"]["host"] = f"api.{zones[target_zone]}"
        hot["spec"]["edge"] = {"zoneRef": {"name": target_zone}, "sync": False}
        hot["spec"]["origin"]["scaleUpCooldownSeconds"] = COOLDOWN
        hot["spec"]["origin"]["maxReplicas"] = 3
        origin.set_route("hot", p95=110.0, rps=40, host=f"api.{zones[target_zone]}")
        apply(cp, ns, deployment("hot", 1), hot)
        kube.wait_for(lambda: spec_replicas(cp, ns, "hot") == 2, 90, "the first scale-up")
        scaled_at = time.monotonic()
        moved = f"r-{target_zone}"
        synced_before = edge_synced(cp, ns, moved)
        assert synced_before["status"] == "True", synced_before
        killed_at = fleet.kill(victim)
        lost = [s for s, h in holders.items() if h == victim]

        def taken() -> dict[int, str | None] | None:
            now = fleet.holders()
            return now if all(now[s] not in (None, victim) for s in lost) else None

        after = kube.wait_for(taken, 60, "the dead replica's shards taken over")
        takeover = time.monotonic() - killed_at
        print(f"shards {lost} of {victim} taken over {takeover:.1f}s after SIGKILL")
        assert takeover <= LEASE_SECONDS + 15
        # No second step before the cooldown (counted from the first scale) is over ...
        kube.hold(
            lambda: spec_replicas(cp, ns, "hot") == 2,
            max(0.0, scaled_at + COOLDOWN - 5 - time.monotonic()),
            "2 replicas inside the cooldown",
            interval=1,
        )
        # ... and the next one after it, by the new holder.
        kube.wait_for(lambda: spec_replicas(cp, ns, "hot") == 3, 60, "the next scale-up")
        # The moved zone's route kept its EdgeSynced through the takeover: the new holder
        # evaluated it before its first read of the zone, and did not flip it to
        # ZoneNotReady and back (the transition time would have moved).
        assert edge_synced(cp, ns, moved) == synced_before

        # The moved zone's writes now come from its new holder only.
        since = time.time()
        new_holder = after[shard_of(zone_key(ns, target_zone), SHARDS)]
        tb = edge_budget(f"r-{target_zone}", target_zone, zones[target_zone])
        tb["spec"]["budget"]["requiredSeconds"] = 400
        tb["spec"]["budget"]["timeoutSeconds"] = 460
        apply(cp, ns, tb)
        zone_id = zone_ids[target_zone]
        kube.wait_for(
            lambda: emulator.rules(zone_id)[0]["action_parameters"].get("read_timeout") == 401,
            90,
            "the rule moved to 401 s by the new holder",
        )
        assert fleet.writers(zone_id, since) == {new_holder}

        # kopf watches only unlabeled routes: every route was labeled with its shard and
        # got kopf's finalizer. One created with its label already set (kopf never sees
        # it) gets the finalizer from its shard's holder.
        for name in zones:
            meta = kube.get_json(cp, "tb", f"r-{name}", "-n", ns)["metadata"]
            want = str(shard_of(zone_key(ns, name), SHARDS))
            assert meta["labels"][ROUTE_SHARD_LABEL] == want
            assert KOPF_FINALIZER in meta["finalizers"]
        # ... and kopf did not handle the moved route's spec change (400 s, above): what it
        # last handled is still the spec it labeled.
        meta = kube.get_json(cp, "tb", f"r-{target_zone}", "-n", ns)["metadata"]
        handled = json.loads(meta["annotations"][LAST_HANDLED])
        assert handled["spec"]["budget"]["requiredSeconds"] == 300
        labeled = budget("labeled", "labeled")
        labeled["metadata"]["labels"] = {
            ROUTE_SHARD_LABEL: str(shard_of(zone_key(ns, target_zone), SHARDS))
        }
        labeled["spec"]["edge"] = {"zoneRef": {"name": target_zone}, "sync": False}
        apply(cp, ns, labeled)
        kube.wait_for(
            lambda: (
                KOPF_FINALIZER
                in kube.get_json(cp, "tb", "labeled", "-n", ns)["metadata"].get("finalizers", [])
            ),
            30,
            "kopf's finalizer on a route created labeled",
        )

        # A labeled route deleted: its holder removes its Cache Rule, then the finalizer.
        since = time.time()
        cp.kubectl("delete", "tb", f"r-{target_zone}", "-n", ns, "--timeout=60s")
        assert emulator.rules(zone_id) == []
        assert fleet.writers(zone_id, since) == {new_holder}

        # A replica added later gets shards; still one holder per shard.
        fleet.start("d")
        # A handed-over shard is free for a moment between its release and its taking.
        final = kube.wait_for(
            lambda: h if all((h := fleet.holders()).values()) and "d" in h.values() else None,
            90,
            "every shard held again, d among the holders",
        )
        assert victim not in final.values()
    finally:
        fleet.stop()


def test_peering_and_shards_together_are_refused(
    control_plane: ControlPlane, prometheus: PrometheusServer, ns: str
) -> None:
    log = control_plane.workdir / "logs" / "operator-shards-peering.log"
    proc = OperatorProcess(
        control_plane,
        prometheus.url,
        [ns],
        log,
        1.0,
        {"TBO_SHARDS": "2"},
        extra_args=["--peering", "tbo"],
    )
    try:
        assert proc.proc.wait(timeout=60) == 2
        assert "TBO_SHARDS shards the routes over every replica" in proc.output()
    finally:
        proc.stop()
