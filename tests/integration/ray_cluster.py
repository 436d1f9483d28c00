"""A real local Ray cluster as separate processes: a head and one worker node.

``ray start --head --block`` and ``ray start --address HEAD --block`` run in their own
sessions with bounded CPUs and object store, no dashboard, every port chosen free (other
clusters may run on this machine) and a temporary directory of their own. ``stop`` ends
them by their process groups (SIGTERM, then SIGKILL). ``ray stop`` is not used: it kills
every Ray process of the machine, including other people's clusters.

Used by the Ray engine's integration test and, from the command line, to measure::

    python -m tests.integration.ray_cluster up STATE_DIR   # prints the address
    python -m tests.integration.ray_cluster down STATE_DIR
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

RAY: Final = Path(sys.executable).parent / "ray"
HOST: Final = "127.0.0.1"
CPUS_PER_NODE: Final = 1
OBJECT_STORE_BYTES: Final = 200_000_000  # per node (Ray's minimum is 75 MB)
STATE_FILE: Final = "cluster.json"


class ClusterError(RuntimeError):
    """The cluster did not come up."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _node_ports() -> list[str]:
    """Every port a node opens, free now (Ray's defaults are fixed, shared by clusters)."""
    low = random.randrange(20_000, 29_000)  # worker processes take ports from this range
    ports = [
        "--node-manager-port", _free_port(), "--object-manager-port", _free_port(),
        "--metrics-export-port", _free_port(), "--dashboard-agent-listen-port", _free_port(),
        "--dashboard-agent-grpc-port", _free_port(), "--runtime-env-agent-port", _free_port(),
        "--min-worker-port", low, "--max-worker-port", low + 400,
    ]  # fmt: skip
    return [str(p) for p in ports]


@dataclass
class LocalRayCluster:
    """A head and ``workers`` worker nodes on this machine, started by :meth:`start`."""

    workers: int = 1
    cpus_per_node: int = CPUS_PER_NODE
    object_store_bytes: int = OBJECT_STORE_BYTES
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rr-ray-")))
    port: int = field(default_factory=_free_port)
    pids: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def _spawn(self, name: str, argv: list[str]) -> int:
        log = (self.temp_dir / f"{name}.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        process = subprocess.Popen(
            [str(RAY), "start", "--block", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=self.temp_dir,
        )
        self.pids.append(process.pid)
        return process.pid

    def _common(self) -> list[str]:
        return [
            "--node-ip-address", HOST, "--num-cpus", str(self.cpus_per_node),
            "--object-store-memory", str(self.object_store_bytes), "--disable-usage-stats",
            *_node_ports(),
        ]  # fmt: skip

    def start(self, timeout_s: float = 120.0) -> LocalRayCluster:
        """Start the head, then the workers; return once every node is alive."""
        self._spawn(
            "head",
            [
                "--head", "--port", str(self.port), "--include-dashboard", "false",
                "--temp-dir", str(self.temp_dir), "--ray-client-server-port", str(_free_port()),
                *self._common(),
            ],
        )  # fmt: skip
        self.wait_for_nodes(1, timeout_s)
        for i in range(self.workers):
            self._spawn(f"worker-{i}", ["--address", self.address, *self._common()])
        self.wait_for_nodes(1 + self.workers, timeout_s)
        return self

    def alive_nodes(self) -> int:
        """Nodes the head reports active (0 when it does not answer)."""
        try:
            done = subprocess.run(
                [str(RAY), "status", "--address", self.address],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return 0
        if done.returncode != 0:
            return 0
        active = done.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return active.count("node_")

    def wait_for_nodes(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(not _group_alive(pid) for pid in self.pids):
                raise ClusterError(f"a Ray node exited while starting:\n{self.logs()}")
            if self.alive_nodes() >= count:
                return
            time.sleep(1.0)
        raise ClusterError(f"{count} Ray node(s) not alive within {timeout_s:.0f}s:\n{self.logs()}")

    def logs(self, lines: int = 30) -> str:
        texts = []
        for path in sorted(self.temp_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            texts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(texts)

    def stop(self, grace_s: float = 15.0) -> list[int]:
        """End every node by its process group; returns the pids still alive (none)."""
        for pid in reversed(self.pids):
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_group_alive(p) for p in self.pids):
            time.sleep(0.3)
        for pid in self.pids:
            if _group_alive(pid):
                _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_group_alive(p) for p in self.pids):
            time.sleep(0.2)
        alive = [pid for pid in self.pids if _group_alive(pid)]
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return alive


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap the leader if it is our child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _main(argv: list[str]) -> int:
    command, state_dir = argv[0], Path(argv[1])
    state = state_dir / STATE_FILE
    if command == "up":
        state_dir.mkdir(parents=True, exist_ok=True)
        cluster = LocalRayCluster()
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        state.write_text(
            json.dumps({"pids": cluster.pids, "temp_dir": str(cluster.temp_dir),
                        "port": cluster.port})
        )  # fmt: skip
        print(cluster.address)
        return 0
    data = json.loads(state.read_text())
    cluster = LocalRayCluster(temp_dir=Path(data["temp_dir"]), port=data["port"], pids=data["pids"])
    alive = cluster.stop()
    state.unlink()
    print(f"stopped; alive: {alive}")
    return 0 if not alive else 1


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
