"""A real multi-node Ray cluster on this machine (two raylets on 127.0.0.1): ``--address``,
workers placed on different nodes, each binding its ZeroMQ inbox on its node's address, and
the output equal to a single process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from featurizer import FeaturizerConfig
from featurizer._runner import RunOptions
from featurizer.scaling import run_scaled
from featurizer.testing import CollectingSink
from tests.scaling.test_ray import CONFIG, _reference


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Any]:
    """A head node and a second node, one CPU each, loopback only; shut down after."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    node = {
        "num_cpus": 1,
        "object_store_memory": 80 * 1024 * 1024,
        "node_ip_address": "127.0.0.1",
    }
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def test_workers_on_two_nodes_give_the_single_process_output(two_nodes: Any) -> None:
    import ray

    config = FeaturizerConfig.from_dict(CONFIG)
    got: list[Any] = []
    summary = run_scaled(
        config,
        RunOptions(max_events=2000, seed=11),
        CollectingSink(),
        scaler="ray",
        workers=2,
        strategy="by_source",
        scaler_options={"address": two_nodes.address},  # --address: connect, don't start
        transport_options={"batch_size": 128},
        on_combined=got.append,
    )
    assert not ray.is_initialized(), "the scaler disconnects from a cluster it connected to"
    nodes = {index: metrics["node"] for index, metrics in summary.workers.items()}
    assert len(set(nodes.values())) == 2, f"both workers on one node: {nodes}"
    expected = _reference(config, "by_source", 2, 11, 2000)
    assert len(expected) > 100
    assert got == expected
