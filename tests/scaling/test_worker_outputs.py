"""Worker-output mode (``--outputs workers``): each worker writes its own file.

Each worker's rows are those of a single-process run over that worker's outputs (the
single-process combined vectors restricted to its features), files are published atomically
(renamed on success, deleted on failure), and bad input fails before anything starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from featurizer import (
    Feature,
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
    get_plugins,
)
from featurizer._runner import RunOptions
from featurizer._sinks import flatten_grouped
from featurizer.cli._main import main
from featurizer.scaling import (
    FeatureStreamWorkerGraph,
    ScalingError,
    WorkerError,
    WorkerOutputs,
    build_plan,
    run_scaled,
)
from featurizer.testing import CollectingSink, InMemoryEmitter
from tests.scaling.scaling_support import (
    Boom,
    Pairs,
    RunningMax,
    Sum2,
    canonical,
    memory_emitters,
    mid,
    tick,
    ticker,
)

A, B, C = ticker("A"), ticker("B"), ticker("C")


def _events(sources: Sequence[Feature], count: int = 40) -> list[tuple[Feature, dict[str, Any]]]:
    """Interleaved ticks with equal timestamps across sources (ties exercise the group order)."""
    events = []
    for i in range(count):
        for n, source in enumerate(sources):
            if (i + n) % 3 != 2:
                events.append((source, tick(i * 0.5, float((i * (n + 3)) % 11 + 1))))
    return events


def _by_source_features() -> list[Feature]:
    features: list[Feature] = []
    for source in (A, B, C):
        m = mid(source)
        features += [m, Feature.create(RunningMax, {}, {"mid": m})]
    features.append(Feature.create(Pairs, {}, {"mid": mid(B)}))
    return features


def _split_features() -> list[Feature]:
    ma, mb = mid(A), mid(B)
    return [
        ma,
        mb,
        Feature.create(RunningMax, {}, {"mid": ma}),
        Feature.create(Sum2, {}, {"a": ma, "b": mb}),
        Feature.create(Pairs, {}, {"mid": mb}),
    ]


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _as_json(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows as written and read back (tuples become lists; floats round-trip exactly)."""
    return [json.loads(json.dumps(row)) for row in rows]


def _single_process_rows(
    outputs: Sequence[Feature], events: Sequence[tuple[Feature, dict[str, Any]]], combine: bool
) -> list[dict[str, Any]]:
    """What ``featurizer run`` writes for ``outputs`` over ``events`` in one process."""
    sources = {s for f in outputs for s in f.data_sources()}
    rows: list[Any] = []
    graph = FeatureStreamGraph(
        list(outputs),
        combine_outputs=combine,
        combined_out_callback=lambda grouped: rows.append(flatten_grouped(grouped)),
    )
    if not combine:
        for feature in graph.get_outs():
            graph.set_callback(feature, lambda f, e: rows.append({"feature": f.name, **e}))
    for named in events:
        if named[0] in sources:
            graph.emit_named_data_event(named)
    return _as_json(rows)


def _run(
    features: list[Feature],
    strategy: str,
    workers: int,
    events: list[tuple[Feature, dict[str, Any]]],
    target: str,
    *,
    combine: bool = True,
    make_emitters: Any = None,
) -> tuple[Any, FeatureStreamWorkerGraph]:
    plan = build_plan(features, strategy, workers, get_plugins())
    driver_sink = CollectingSink()
    summary = run_scaled(
        features,
        RunOptions(combine_outputs=combine),
        driver_sink,
        workers=workers,
        strategy=strategy,
        make_emitters=make_emitters or memory_emitters(canonical(plan, events)),
        outputs=WorkerOutputs(target=target),
    )
    assert driver_sink.rows == []  # no row goes through the driver
    return summary, plan


@pytest.mark.parametrize("combine", [True, False], ids=["combined", "per-event"])
@pytest.mark.parametrize("workers", [2, 3])
def test_by_source_worker_files_equal_single_process_rows_per_worker(
    tmp_path: Path, workers: int, combine: bool
) -> None:
    features = _by_source_features()
    events = _events([A, B, C])
    summary, plan = _run(
        features, "by_source", workers, events, str(tmp_path / "out.jsonl"), combine=combine
    )
    reference = canonical(plan, events)
    total = 0
    for worker in plan.workers:
        path = tmp_path / f"out.worker-{worker.index}.jsonl"
        got = _read(path)
        mine = [f for f in plan.outputs if f in worker.outputs]
        expected = _single_process_rows(mine, reference, combine)
        assert got == expected
        assert expected  # the comparison is not vacuous
        assert summary.workers[worker.index]["rows_out"] == len(got)
        total += len(got)
    assert summary.outputs_out == total
    assert summary.output_files == tuple(
        str(tmp_path / f"out.worker-{i}.jsonl") for i in range(workers)
    )
    assert sorted(os.listdir(tmp_path)) == [f"out.worker-{i}.jsonl" for i in range(workers)]


def test_union_of_worker_rows_equals_single_process_rows_per_output_feature(
    tmp_path: Path,
) -> None:
    """Per output feature: the union of the workers' rows is the single-process output."""
    features = _by_source_features()
    events = _events([A, B, C])
    _, plan = _run(features, "by_source", 2, events, str(tmp_path), combine=False)
    got: dict[str, list[dict[str, Any]]] = {}
    for index in range(2):
        for row in _read(tmp_path / f"worker-{index}.jsonl"):
            got.setdefault(row["feature"], []).append(row)
    whole = _single_process_rows(plan.outputs, canonical(plan, events), combine=False)
    expected: dict[str, list[dict[str, Any]]] = {}
    for row in whole:
        expected.setdefault(row["feature"], []).append(row)
    assert got == expected
    assert set(got) == {f.name for f in features}


def test_split_worker_files_equal_single_process_rows_per_worker(tmp_path: Path) -> None:
    """``split``: a worker's outputs computed from features shipped by other workers are
    merged in event-time order, so the same per-worker equality holds."""
    features = _split_features()
    events = _events([A, B], 30)
    _, plan = _run(features, "split", 2, events, str(tmp_path))
    assert plan.edges  # something really crosses workers
    reference = canonical(plan, events)
    for worker in plan.workers:
        if not worker.outputs:
            continue
        mine = [f for f in plan.outputs if f in worker.outputs]
        got = _read(tmp_path / f"worker-{worker.index}.jsonl")
        assert got == _single_process_rows(mine, reference, combine=True)
        assert got


class _ListingEmitter(InMemoryEmitter):
    """After its last event, records what the output directory holds (mid-run)."""

    def __init__(self, events: Any, directory: Path, seen: list[list[str]]) -> None:
        super().__init__(events, validate=False)
        self.directory = directory
        self.seen = seen

    def run(self) -> None:
        super().run()
        self.seen.append(sorted(os.listdir(self.directory)))


def test_files_are_published_only_when_the_run_ends(tmp_path: Path) -> None:
    features = [mid(A), mid(B)]
    events = _events([A, B], 10)
    seen: list[list[str]] = []
    plan = build_plan(features, "by_source", 2, get_plugins())
    ordered = canonical(plan, events)

    def make(plan: FeatureStreamWorkerGraph, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        mine = [named for named in ordered if named[0] in sources]
        return {"memory": (_ListingEmitter(mine, tmp_path, seen), sources)}

    _run(features, "by_source", 2, events, str(tmp_path / "o.jsonl"), make_emitters=make)
    assert len(seen) == 2
    for listing in seen:  # while running: temporary names only
        assert not any(name in listing for name in ("o.worker-0.jsonl", "o.worker-1.jsonl"))
        assert sum(name.endswith(".partial") for name in listing) == 2
    assert sorted(os.listdir(tmp_path)) == ["o.worker-0.jsonl", "o.worker-1.jsonl"]


def test_a_failing_worker_publishes_no_file_of_any_worker(tmp_path: Path) -> None:
    boom = Feature.create(Boom, {}, {"ticker": B})
    features = [mid(A), boom]
    events = [(A, tick(float(i), 2.0)) for i in range(50)]
    events += [(B, tick(float(i), 13.0 if i == 30 else 3.0)) for i in range(50)]
    with pytest.raises(WorkerError, match="unlucky bid 13"):
        _run(features, "by_source", 2, events, str(tmp_path / "o.jsonl"))
    assert os.listdir(tmp_path) == []


def test_missing_directory_fails_before_anything_starts(tmp_path: Path) -> None:
    built: list[int] = []

    def make(plan: FeatureStreamWorkerGraph, index: int) -> dict[str, Any]:
        built.append(index)
        return {}

    target = str(tmp_path / "nowhere" / "out.jsonl")
    with pytest.raises(ScalingError, match=r"directory .*nowhere.* does not exist"):
        _run([mid(A), mid(B)], "by_source", 2, [], target, make_emitters=make)
    assert built == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory_fails_before_anything_starts(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ScalingError, match="is not writable"):
            _run([mid(A), mid(B)], "by_source", 2, [], str(locked))
    finally:
        locked.chmod(0o700)
    assert os.listdir(locked) == []


def test_a_file_in_place_of_the_directory_fails_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(ScalingError, match="is not a directory"):
        _run([mid(A), mid(B)], "by_source", 2, [], str(tmp_path / "plain" / "{worker}.jsonl"))
    assert os.listdir(tmp_path) == ["plain"]


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScalingError, match="cannot tell the output format"):
        WorkerOutputs(target=str(tmp_path / "out.csv")).check(get_plugins(), 2)
    with pytest.raises(ScalingError, match="unknown output format 'xml'"):
        WorkerOutputs(target=str(tmp_path), format_name="xml").check(get_plugins(), 2)


def test_target_forms() -> None:
    sinks = get_plugins().sinks()
    assert str(WorkerOutputs(target="d/", format_name="parquet").path_for(1, sinks)) == (
        "d/worker-1.parquet"
    )
    assert str(WorkerOutputs(target="x/out.parquet").path_for(0)) == "x/out.worker-0.parquet"
    assert str(WorkerOutputs(target="w{worker}/o.jsonl").path_for(2)) == "w2/o.jsonl"


CLI_CONFIG = {
    "feature_configs": [
        {
            "name": f"mid_{tag}",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "synthetic", "symbol": symbol}},
        }
        for tag, symbol in (("btc", "BTC-USDT"), ("eth", "ETH-USDT"))
    ]
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CLI_CONFIG))
    return path


def test_cli_refuses_worker_outputs_without_out(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", str(config_file), "--scaler", "local", "--workers", "2", "--outputs", "workers"]
    )
    assert code == 1
    assert "--outputs workers needs --out" in capsys.readouterr().err


def test_cli_refuses_worker_outputs_without_scaler(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(config_file), "--outputs", "workers", "--out", str(tmp_path)])
    assert code == 1
    assert "needs a scaled run" in capsys.readouterr().err


def test_cli_writes_one_file_per_worker(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [
            "run",
            str(config_file),
            "--scaler",
            "local",
            "--workers",
            "2",
            "--emitter",
            "synthetic",
            "--max-events",
            "300",
            "--outputs",
            "workers",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    files = sorted(os.listdir(out))
    assert files == ["worker-0.jsonl", "worker-1.jsonl"]
    rows = [_read(out / name) for name in files]
    assert all(rows)
    columns = [{c for r in rs for c in r} - {"timestamp"} for rs in rows]
    assert columns[0].isdisjoint(columns[1])  # each worker writes only its own outputs
    assert f"wrote {sum(map(len, rows)):,} rows to" in err


# -- real Ray ---------------------------------------------------------------------------------

RAY_CONFIG = {
    "feature_configs": [
        {
            "name": "mid_btc",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}},
        },
        {
            "name": "vol_btc",
            "feature_definition": "volatility",
            "params": {
                "window": "10s",
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
        {
            "name": "mid_eth",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "synthetic", "symbol": "ETH-USDT"}},
        },
        {
            "name": "tvi_eth",
            "feature_definition": "trade_volume_imbalance",
            "params": {
                "window": "5s",
                "data_source": {"exchange": "synthetic", "symbol": "ETH-USDT"},
            },
        },
    ]
}


def test_ray_by_source_worker_files_equal_single_process_rows(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from featurizer_synthetic import SyntheticEventEmitter

    config = FeaturizerConfig.from_dict(RAY_CONFIG)
    plugins = get_plugins()
    features = construct_features_from_configs(config, plugins)
    plan = build_plan(features, "by_source", 2, plugins)
    seed, max_events = 11, 1500
    summary = run_scaled(
        config,
        RunOptions(emitter="synthetic", seed=seed, max_events=max_events),
        None,
        scaler="ray",
        workers=2,
        strategy="by_source",
        outputs=WorkerOutputs(target=str(tmp_path / "ray-{worker}.jsonl")),
    )
    events: list[tuple[Feature, dict[str, Any]]] = []
    for worker in plan.workers:  # the input each worker's emitter produced
        emitter = SyntheticEventEmitter.from_options({"seed": seed, "max_events": max_events})
        for source in worker.sources:
            emitter.register_callback(source, lambda e, s=source: events.append((s, e)))
        emitter.run()
    reference = canonical(plan, events)
    total = 0
    for worker in plan.workers:
        got = _read(tmp_path / f"ray-{worker.index}.jsonl")
        mine = [f for f in plan.outputs if f in worker.outputs]
        assert got == _single_process_rows(mine, reference, combine=True)
        assert got
        total += len(got)
    assert summary.outputs_out == total
    assert sorted(os.listdir(tmp_path)) == ["ray-0.jsonl", "ray-1.jsonl"]
