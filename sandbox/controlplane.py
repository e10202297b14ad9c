"""A real, local Kubernetes control plane for tests and the demo.

Starts etcd, kube-apiserver (RBAC on, a static admin token, service-account signing keys
so TokenRequest works), kube-controller-manager, kube-scheduler and KWOK with a few fake
nodes, all on free loopback ports. Every component logs to ``<workdir>/logs/<name>.log``;
a component that fails to start raises an error naming its log. ``stop()`` leaves no
process behind.

Usage::

    with ControlPlane.start() as cp:
        print(cp.kubeconfig)
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from sandbox import binaries as binaries_mod
from sandbox import procutil
from sandbox.procutil import free_port

ADMIN_USER = "sandbox-admin"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class ComponentFailed(RuntimeError):
    """A control-plane component exited or never became ready."""


class KubectlError(RuntimeError):
    """kubectl failed; the message carries its stderr."""

    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {code}: {stderr}")
        self.stderr = stderr


def progress(message: str) -> None:
    procutil.progress("sandbox", message)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise ComponentFailed(f"{self.name} exited with code {code}; log {self.log}:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost, and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=pki)
    _openssl(
        "req", "-x509", "-new", "-nodes", "-key", "ca.key", "-sha256", "-days", "30",
        "-subj", "/CN=timeout-budget-sandbox-ca", "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    _openssl("genrsa", "-out", "apiserver.key", "2048", cwd=pki)
    _openssl(
        "req", "-new", "-key", "apiserver.key", "-subj", "/CN=kube-apiserver",
        "-out", "apiserver.csr", cwd=pki,
    )  # fmt: skip
    (pki / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "apiserver.crt", "-days", "30", "-sha256",
        "-extfile", "san.ext", cwd=pki,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig_dict(server: str, ca_file: Path, token: str, user: str) -> dict[str, object]:
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {"server": server, "certificate-authority-data": ca_data},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user}}],
        "current-context": "sandbox",
    }


@dataclass
class ControlPlane:
    workdir: Path
    binaries: binaries_mod.Binaries
    nodes: int = 3
    processes: list[Process] = field(default_factory=list)
    apiserver_port: int = 0
    etcd_port: int = 0
    admin_token: str = ""
    _owns_workdir: bool = False

    # -- paths ------------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def start(cls, workdir: Path | None = None, nodes: int = 3, build: bool = True) -> ControlPlane:
        bins = binaries_mod.ensure(build=build)
        owns = workdir is None
        wd = Path(tempfile.mkdtemp(prefix="tbo-cp-")) if workdir is None else workdir
        wd.mkdir(parents=True, exist_ok=True)
        for stale in ("etcd-data", "pki", "logs"):  # a previous run's state is not reused
            shutil.rmtree(wd / stale, ignore_errors=True)
        cp = cls(workdir=wd, binaries=bins, nodes=nodes, _owns_workdir=owns)
        try:
            cp._start_all()
        except BaseException:
            cp.stop()
            raise
        return cp

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str]) -> Process:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.workdir,
        )
        handle.close()
        proc = Process(name=name, popen=popen, log=log)
        self.processes.append(proc)
        return proc

    def _start_all(self) -> None:
        t0 = time.monotonic()
        make_pki(self.pki)
        self.admin_token = secrets.token_hex(24)
        (self.workdir / "tokens.csv").write_text(
            f'{self.admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
        )
        self.start_etcd()
        self.start_apiserver()
        self._write_kubeconfigs()
        self._install_gateway_api()
        self._start_controllers()
        self._create_nodes()
        progress(
            f"control plane ready in {time.monotonic() - t0:.1f}s: {self.server} "
            f"(kubeconfig {self.kubeconfig}, logs {self.logs})"
        )

    def start_etcd(self) -> None:
        self.etcd_port = free_port()
        peer = free_port()
        data = self.workdir / "etcd-data"
        proc = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=sandbox",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=sandbox=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(proc, lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), 30)
        progress(f"etcd {self.binaries.versions['ETCD_VERSION']} up on :{self.etcd_port}")

    def start_apiserver(self) -> None:
        if not self.apiserver_port:
            self.apiserver_port = free_port()
        pki = self.pki
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                f"--service-account-issuer=https://127.0.0.1:{self.apiserver_port}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--api-audiences=https://kubernetes.default.svc",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait(proc, self._apiserver_ready, 90)
        progress(f"kube-apiserver {self.binaries.versions['K8S_VERSION']} ready on {self.server}")

    def _apiserver_ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        req = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _write_kubeconfigs(self) -> None:
        cfg = kubeconfig_dict(self.server, self.pki / "ca.crt", self.admin_token, ADMIN_USER)
        self.kubeconfig.write_text(yaml.safe_dump(cfg))
        self.kubeconfig.chmod(0o600)

    def _install_gateway_api(self) -> None:
        """The Gateway API CRDs (standard channel): every HTTPRoute written to the sandbox
        is checked by the real schema and CEL rules. No gateway data plane runs here: a
        test writes a GatewayClass's status the way an implementation would."""
        args = [a for crd in self.binaries.gateway_api_crds for a in ("-f", str(crd))]
        self.kubectl("apply", "--server-side", *args)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(
                f"crd/{p.name.split('_', 1)[1].removesuffix('.yaml')}.gateway.networking.k8s.io"
                for p in self.binaries.gateway_api_crds
            ),
        )
        progress(f"Gateway API {self.binaries.versions['GATEWAY_API_VERSION']} CRDs installed")

    def _start_controllers(self) -> None:
        kc = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--horizontal-pod-autoscaler-sync-period=15s",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        argv = [
            str(self.binaries.kwok),
            f"--kubeconfig={kc}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{free_port()}",
            "--node-ip=127.0.0.2",
        ]
        for stage in self.binaries.kwok_stages:
            argv.append(f"--config={stage}")
        self._spawn("kwok", argv)
        time.sleep(0.5)
        for proc in self.processes:
            proc.check_alive()
        progress("kube-controller-manager, kube-scheduler and kwok started")

    def _create_nodes(self) -> None:
        for i in range(self.nodes):
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": f"kwok-node-{i}",
                        "kubernetes.io/os": "linux",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                },
            }
            self.kubectl("apply", "-f", "-", input_text=json.dumps(node))
        self._wait(None, self._nodes_ready, 60)
        progress(f"{self.nodes} KWOK nodes Ready")

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        items = json.loads(out.stdout).get("items", [])
        ready = 0
        for node in items:
            for cond in node.get("status", {}).get("conditions", []):
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    ready += 1
        return ready >= self.nodes

    def _wait(self, proc: Process | None, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                proc.check_alive()
            for other in self.processes:
                other.check_alive()
            if ready():
                return
            time.sleep(0.25)
        where = proc.log if proc is not None else self.logs
        raise ComponentFailed(
            f"{proc.name if proc else 'control plane'} not ready after {timeout}s; see {where}"
        )

    def stop_apiserver(self) -> None:
        """Stop only kube-apiserver (etcd kept), e.g. to test watch resumption."""
        for proc in [p for p in self.processes if p.name == "kube-apiserver"]:
            proc.stop()
            self.processes.remove(proc)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self._owns_workdir and os.environ.get("TBO_KEEP_SANDBOX") != "1":
            # Keep logs of a failed run elsewhere? Logs are copied by the caller if needed.
            shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result.returncode, result.stderr.strip())
        return result

    def env(self) -> dict[str, str]:
        """Environment for a child process (kubectl, helm, the operator) to reach this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.binaries.kubectl.parent}:{self.binaries.helm.parent}:{env['PATH']}"
        return env


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running(workdir: Path | None = None, nodes: int = 3) -> Iterator[ControlPlane]:
    cp = ControlPlane.start(workdir=workdir, nodes=nodes)
    try:
        yield cp
    finally:
        cp.stop()
