"""A checkpointed scaled run on a simulated multi-node Ray cluster (three raylets on
127.0.0.1): the node running a worker is removed mid-run; the driver detects it, replaces the
workers from the last checkpoint on the nodes left, and the output is that of an
uninterrupted run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaling.test_ray_checkpoint import _Run, reference, wait_for, worker_pids

__all__ = ["reference"]  # the module fixture, shared


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[Any]:
    """A head node and two more, one CPU each, loopback only, node deaths noticed fast."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **node,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    try:
        nodes = [cluster.add_node(**node), cluster.add_node(**node)]
        cluster.wait_for_nodes()
        yield cluster, nodes
    finally:
        cluster.shutdown()


def _ancestors(pid: int) -> set[int]:
    found = set()
    for _ in range(64):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rpartition(")")[2].split()[1])
        found.add(pid)
        if pid <= 1:
            break
    return found


def _raylet_pid(node: Any) -> int:
    return int(node.all_processes["raylet"][0].process.pid)


def test_a_node_removed_mid_run_is_replaced_from_the_last_checkpoint(
    three_nodes: Any, tmp_path: Path, reference: bytes
) -> None:
    import ray

    cluster, nodes = three_nodes
    run = _Run(tmp_path, scaler_options={"address": cluster.address}, heartbeat_timeout=5.0)
    run.start()
    wait_for(run.committed, "the first checkpoint", timeout=120.0)
    pids = wait_for(lambda: worker_pids() if len(worker_pids()) == 2 else None, "2 workers")
    victims = [n for n in nodes if any(_raylet_pid(n) in _ancestors(p) for p in pids)]
    assert victims, "no worker on a removable node (the head has one CPU: impossible)"
    removed_at = time.time()
    cluster.remove_node(victims[0], allow_graceful=False)
    run.join()
    metrics = run.checkpointer.metrics
    assert metrics.restarts == 1, "the node was removed after the end of the run"
    assert metrics.last_failure_at is not None
    detection = metrics.last_failure_at - removed_at
    print(
        f"node loss detected {detection:.2f} s after the removal, workers replaced in {metrics.recovery_seconds:.2f} s"
    )
    assert detection < 30.0
    assert run.out.read_bytes() == reference
    assert not ray.is_initialized(), "the scaler disconnects from the cluster it connected to"
    assert {n.node_ip_address for n in cluster.list_all_nodes()} == {"127.0.0.1"}
    survivors = {w["node"] for w in run.summary.workers.values()}
    assert victims[0].unique_id not in survivors
