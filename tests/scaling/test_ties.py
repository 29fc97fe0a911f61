"""One canonical order for events sharing a timestamp: a plain single-process run gives the
same combined rows as every scaler, whatever order one emitter interleaves tied sub-DAGs in."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import (
    DataSourceEventEmitter,
    EmitterSpec,
    Event,
    EventCallback,
    Feature,
    FeatureStreamGraph,
    FeaturizerConfig,
    Plugins,
    construct_features_from_configs,
    get_plugins,
    hookimpl,
    make_plugin_manager,
)
from featurizer._plugins import reset_plugins
from featurizer._runner import RunOptions, run
from featurizer._sinks import flatten_grouped
from featurizer._ties import TieOrder
from featurizer.scaling import build_plan, run_scaled
from featurizer.testing import CollectingSink, run_graph
from tests.scaling.scaling_support import canonical, mid, ticker

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
CONFIG = FeaturizerConfig.from_dict(
    {
        "feature_configs": [
            {
                "name": f"mid_{symbol[:3].lower()}",
                "feature_definition": "mid_price",
                "params": {"data_source": {"exchange": "TIES", "symbol": symbol}},
            }
            for symbol in SYMBOLS
        ]
        + [
            {
                "name": "vol_btc",
                "feature_definition": "volatility",
                "params": {
                    "window": "1s",
                    "data_source": {"exchange": "TIES", "symbol": "BTC-USDT"},
                },
            }
        ]
    }
)


def _script(seed: int) -> list[tuple[str, Event]]:
    """Quote updates: several symbols often tick at exactly the same timestamp, in a random
    order (as one emitter interleaves them)."""
    rng = random.Random(seed)
    script: ClassVar[list[tuple[str, Event]]] = []
    ts = 1_700_000_000.0
    for _ in range(400):
        ts += rng.choice([0.0, 0.001, 0.25])
        for symbol in rng.sample(SYMBOLS, rng.randint(1, 3)):
            bid = 100.0 + rng.randint(0, 20) * 0.5
            event = {"timestamp": ts, "receipt_timestamp": ts, "bid": bid, "ask": bid + 0.5}
            script.append((symbol, event))
    return script


class TiedEmitter(DataSourceEventEmitter):
    """Emits :attr:`script` for the tickers registered with it, on its own thread."""

    script: ClassVar[list[tuple[str, Event]]] = []

    def __init__(self) -> None:
        self._callbacks: dict[str, EventCallback] = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        self._callbacks[str(feature.params["symbol"])] = callback

    def _run(self) -> None:
        try:
            for symbol, event in type(self).script:
                callback = self._callbacks.get(symbol)
                if callback is not None:
                    callback(dict(event))
        finally:
            self._done.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tied-emitter")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class Hooks:
    @hookimpl
    def featurizer_register_emitters(self) -> list[EmitterSpec]:
        return [
            EmitterSpec(
                name="tied",
                emitter_class=TiedEmitter,
                data_sources=("ticker",),
                exchanges=("TIES",),
                description="emits tied quote updates",
            )
        ]


@pytest.fixture
def tied_plugins() -> Iterator[None]:
    reset_plugins(Plugins(make_plugin_manager(extra_plugins=[Hooks()])))
    try:
        yield
    finally:
        reset_plugins(None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_plain_run_gives_the_rows_of_every_scaled_run(tied_plugins: None, seed: int) -> None:
    TiedEmitter.script = _script(seed)
    plain = CollectingSink()
    summary = run(CONFIG, RunOptions(), plain)
    assert summary.events_in == len(TiedEmitter.script)
    assert plain.rows
    for strategy, workers in (("single", 1), ("by_source", 2), ("by_source", 3), ("split", 2)):
        scaled = CollectingSink()
        run_scaled(CONFIG, RunOptions(), scaled, workers=workers, strategy=strategy)
        assert scaled.rows == plain.rows, (strategy, workers)


def test_ties_matter_here(tied_plugins: None) -> None:
    """The emitter's own order of tied symbols gives other combined rows (so the test above
    fails unless the plain run applies the canonical order), and the plain run's rows are
    those of the script sorted by (timestamp, sub-DAG rank)."""
    TiedEmitter.script = _script(0)
    plain = CollectingSink()
    run(CONFIG, RunOptions(), plain)
    features = construct_features_from_configs(CONFIG)
    by_symbol = {str(f.params["symbol"]): f for f in FeatureStreamGraph(features).get_ins()}
    named = [(by_symbol[symbol], event) for symbol, event in TiedEmitter.script]
    as_emitted = [flatten_grouped(g) for g in run_graph(features, named).combined]
    assert as_emitted != plain.rows
    plan = build_plan(features, "single", 1, get_plugins())
    in_order = canonical(plan, named)
    assert [flatten_grouped(g) for g in run_graph(features, in_order).combined] == plain.rows


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.5, 1.0]), st.integers(0, 2)), max_size=60)
)
def test_tie_order_is_the_stable_sort_by_time_then_sub_dag_rank(
    steps: list[tuple[float, int]],
) -> None:
    """Whatever the interleaving of tied events, TieOrder dispatches them as the driver of a
    scaled run merges them: by (timestamp, rank), each sub-DAG in its own order."""
    sources = [ticker(symbol) for symbol in ("A", "B", "C")]
    outputs = [mid(source) for source in sources]
    plan = build_plan(outputs, "single", 1, get_plugins())
    ties = TieOrder(outputs, max_hold=60.0)  # only arrivals and close() dispatch here
    seen: list[tuple[Feature, float, int]] = []
    callbacks = [
        ties.wrap(s, lambda e, s=s: seen.append((s, e["timestamp"], e["n"]))) for s in sources
    ]
    sent = []
    ts = 0.0
    for n, (step, index) in enumerate(steps):
        ts += step
        callbacks[index]({"timestamp": ts, "n": n})
        sent.append((sources[index], ts, n))
    ties.close()
    assert seen == sorted(sent, key=lambda item: (item[1], plan.group_of(item[0])))
