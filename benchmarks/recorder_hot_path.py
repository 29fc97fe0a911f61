"""The recorder's hot path alone: what copying the stored events costs the run's own thread.

Runs the reference workload (see ``reference_workload.py``) or ``--config``'s on the synthetic
market without recording, and with the
recorder of every node ``featurizer record`` stores (data sources and outputs) attached to the
graph as ``record`` attaches it, but drained on the run's own thread every ``--drain`` stored
events: no WAL, no background threads, no blocks (the garbage collector's first threshold is
raised as the writer raises it when container fields are stored). Pairs are interleaved in
ABBA order; prints events/s and the median of the pairs' ratios. The difference to
``benchmarks/recording.py``'s ratio is what the background threads and the final publication
cost: the most a writer outside the run's process could give back.

Instruction counts do not depend on the machine's load: run it under valgrind with two sizes
and one repeat; the difference of the totals divided by the difference of the sizes is the
marginal cost of an input event::

    valgrind --tool=callgrind python benchmarks/recorder_hot_path.py --events 20000 \\
        --repeats 1 --only hot
    python benchmarks/recorder_hot_path.py --events 300000 --repeats 9
    python benchmarks/recorder_hot_path.py --config examples/quickstart.yaml --events 200000
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reference_workload import CONFIG

from featurizer import FeaturizerConfig, hookimpl
from featurizer._config import load_config
from featurizer._plugins import Plugins, make_plugin_manager
from featurizer._runner import RunOptions, run
from featurizer.storage import DiscardSink
from featurizer.storage._collector import raise_first_threshold
from featurizer.storage._select import select_features
from featurizer.storage._writer import _FLAT_KINDS, _Series, series_info_for


class _DrainedRecorders:
    """A plugin attaching one recorder per stored node, drained on the run's thread."""

    def __init__(self, config: FeaturizerConfig, drain: int) -> None:
        self.config = config
        self.drain = drain
        self.release_collector: Callable[[], None] | None = None

    @hookimpl
    def featurizer_before_run(self, context: Any) -> None:
        """Attach the recorders to the run's graph."""
        stored = {f.key for f in select_features(self.config, context.graph.get_outs(), None)}
        nodes = [f for f in context.graph.nodes() if f.key in stored]
        order = bytearray()
        series = [_Series(i, f, series_info_for(f), 0) for i, f in enumerate(nodes)]

        def drain() -> None:
            del order[:]
            for one in series:
                for buffer in one.buffer.buffers.values():
                    del buffer[:]

        for one in series:
            one.buffer.recorder(one.index, order, self.drain, drain, lambda error: None)
        context.graph.set_callbacks({one.feature: one.buffer.graph_recorder() for one in series})
        if any(kind not in _FLAT_KINDS for one in series for kind in one.info.schema.values()):
            self.release_collector = raise_first_threshold(50_000)

    @hookimpl
    def featurizer_after_run(self, context: Any, summary: Any) -> None:
        """Give the collector's threshold back, as the writer's ``stop()`` does."""
        if self.release_collector is not None:
            self.release_collector()
            self.release_collector = None


def _rate(config: FeaturizerConfig, events: int, plugins: Plugins) -> float:
    gc.collect()
    started = time.perf_counter()
    summary = run(
        config,
        RunOptions(emitter="synthetic", max_events=events, seed=7),
        DiscardSink(),
        plugins=plugins,
    )
    assert summary.events_in == events, summary
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="a config (default: the reference workload)")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--drain", type=int, default=30_000, help="stored events per drain")
    parser.add_argument("--only", choices=("plain", "hot"), help="run one side only")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else FeaturizerConfig.from_dict(CONFIG)
    plain_plugins = Plugins(make_plugin_manager())
    hot_plugins = Plugins(
        make_plugin_manager(extra_plugins=[_DrainedRecorders(config, args.drain)])
    )
    sides = {"plain": plain_plugins, "hot": hot_plugins}
    if args.only:
        sides = {args.only: sides[args.only]}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for attempt in range(args.repeats):
        names = list(sides) if attempt % 2 == 0 else list(reversed(sides))
        for name in names:
            rates[name].append(_rate(config, args.events, sides[name]))
    for name, values in rates.items():
        print(
            f"{name:5}: best {max(values):,.0f} median {statistics.median(values):,.0f} "
            "input events/s"
        )
    if len(rates) == 2:
        pairs = [h / p for h, p in zip(rates["hot"], rates["plain"], strict=True)]
        print(
            f"hot path drained on the run's thread / without recording: median of the pairs "
            f"{statistics.median(pairs):.3f} (pairs {[round(r, 3) for r in pairs]})"
        )


if __name__ == "__main__":
    main()
