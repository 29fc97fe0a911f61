"""Helpers shared by the standard feature tests: building features, running graphs, comparing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hypothesis import HealthCheck, settings

from featurizer import DataDefinition, Event, Feature
from featurizer.testing import run_graph

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Deterministic hypothesis settings for the property tests."""

FEW = settings(PROPERTY, max_examples=60)
"""Fewer examples, for tests that run several features per example."""

SOURCE_PARAMS = {"exchange": "test", "symbol": "BTC-USDT"}


def source(definition: type[DataDefinition]) -> Feature:
    """A data-source feature of ``definition`` for the test instrument."""
    return Feature.create(definition, SOURCE_PARAMS)


def feature(
    definition: type[DataDefinition], params: Mapping[str, Any] | None = None, **children: Feature
) -> Feature:
    """A feature with ``params`` completed by the definition's defaults."""
    given = dict(params or {})
    resolved = {
        name: param.normalise(given.get(name, param.default))
        for name, param in definition.params.items()
    }
    return Feature.create(definition, resolved, children)


def run(
    outputs: Sequence[Feature], src: Feature, events: Iterable[Event]
) -> dict[Feature, list[Event]]:
    """Run ``events`` of ``src`` through a real graph over ``outputs``; every node's events."""
    sink = run_graph(outputs, [(src, event) for event in events], combine_outputs=False)
    return {node: sink.events.get(node, []) for node in {*outputs, *sink.events}}


def exact(value: Any) -> Any:
    """``value`` with every float replaced by its hex form, so ``==`` compares bit for bit."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, Mapping):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [exact(item) for item in value])
    return value


def assert_same(got: Sequence[Event], expected: Sequence[Event]) -> None:
    """Assert two event lists are equal, floats bit for bit, with a readable first difference."""
    for index, (a, b) in enumerate(zip(got, expected, strict=False)):
        assert exact(a) == exact(b), f"event {index} differs:\n got      {a!r}\n expected {b!r}"
    assert len(got) == len(expected), f"{len(got)} events, expected {len(expected)}"
