"""Rows the driver builds from parts its workers made — JSON Lines text joined, or named
columns merged for other sinks — are, byte for byte (JSON Lines) or value for value, the rows
a single process writes: any values, any grouping of sub-DAGs, ties between them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamz import Stream

from featurizer import DataDefinition, Event, Feature, FeatureDefinition, Schema
from featurizer._runner import RunOptions
from featurizer._sinks import JsonLinesSink, ParquetSink, encode_json, flatten_grouped
from featurizer.scaling import ScalingError, _driver, build_plan, run_scaled
from featurizer.scaling._outputs import JsonColumns, RowColumns, join_json_row, merge_row
from featurizer.testing import CollectingSink, ExampleMid, ExampleTicker
from tests.scaling.scaling_support import (
    Pairs,
    RunningMax,
    Sum2,
    canonical,
    memory_emitters,
    mid,
    ticker,
)

_scalars = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.booleans()
    | st.none()
    | st.text(max_size=6)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner),
    max_leaves=5,
)
_stamps = st.floats(min_value=0.0, max_value=2e9) | st.integers(min_value=0, max_value=2**40)


@st.composite
def _grouped(draw: st.DrawFn) -> list[tuple[Feature, Event]]:
    names = draw(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True))
    grouped = []
    for i, name in enumerate(names):
        feature = Feature.create(ExampleTicker, {"exchange": "x", "symbol": f"S{i}"}, name=name)
        fields = draw(
            st.dictionaries(
                st.text(max_size=4).filter(lambda f: f not in ("timestamp", "receipt_timestamp")),
                _values,
                max_size=4,
            )
        )
        event: Event = {"timestamp": draw(_stamps), **fields}
        if draw(st.booleans()):
            event["receipt_timestamp"] = draw(_stamps)
        grouped.append((feature, event))
    return grouped


@settings(max_examples=300, deadline=None)
@given(_grouped())
def test_a_joined_row_is_the_encoded_flat_row(grouped: list[tuple[Feature, Event]]) -> None:
    """Any values (NaN, infinities, big ints, text, lists, tuples, nothing but timestamps),
    any feature names: the joined text is what the JSON Lines sink writes for the flat row."""
    flat = flatten_grouped(tuple(grouped))
    keys = [f"{feature.name}.{field}" for feature, event in grouped for field in event]
    if len(set(keys)) != len(keys):  # two features' columns named alike: one column
        return
    parts = [(feature, JsonColumns(feature)(event)) for feature, event in grouped]
    assert join_json_row(parts) == encode_json(flat)


@settings(max_examples=300, deadline=None)
@given(_grouped())
def test_a_merged_row_is_the_flat_row(grouped: list[tuple[Feature, Event]]) -> None:
    """Same keys in the same order (columns named alike included), same values."""
    flat = flatten_grouped(tuple(grouped))
    merged = merge_row([(feature, RowColumns(feature)(event)) for feature, event in grouped])
    assert list(merged.items()) == list(flat.items()) or _nan_equal(merged, flat)


def _nan_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return list(a) == list(b) and encode_json(a) == encode_json(b)


@pytest.mark.parametrize("make", [JsonColumns, RowColumns])
def test_an_event_without_timestamp_names_its_feature(make: Any) -> None:
    feature = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"}, name="t")
    with pytest.raises(Exception, match="t") as caught:
        make(feature)({"bid": 1.0})
    assert "timestamp" in str(caught.value)


_SYMBOLS = ("A", "B", "C", "D")
_TICKERS = {symbol: ticker(symbol) for symbol in _SYMBOLS}
_MIDS = {symbol: mid(t) for symbol, t in _TICKERS.items()}
_OUTPUTS = [
    _MIDS["A"],
    Feature.create(RunningMax, {}, {"mid": _MIDS["A"]}),
    _MIDS["B"],
    Feature.create(Pairs, {}, {"mid": _MIDS["B"]}),
    Feature.create(Sum2, {}, {"a": _MIDS["C"], "b": _MIDS["D"]}),
    _MIDS["C"],
]


@st.composite
def _script(draw: st.DrawFn) -> list[tuple[Feature, Event]]:
    """Quote updates of the four symbols, often several at one timestamp (ties between
    sub-DAGs), with awkward prices."""
    script = []
    ts = 1_700_000_000.0
    for _ in range(draw(st.integers(min_value=1, max_value=40))):
        ts += draw(st.sampled_from([0.0, 0.0, 0.001, 0.25]))
        for symbol in draw(st.lists(st.sampled_from(_SYMBOLS), min_size=1, max_size=3)):
            bid = draw(st.floats(min_value=-1e6, max_value=1e6) | st.integers(-5, 5))
            ask = draw(st.floats(min_value=-1e6, max_value=1e6))
            event = {"timestamp": ts, "receipt_timestamp": ts, "bid": bid, "ask": ask}
            script.append((_TICKERS[symbol], event))
    return script


@pytest.fixture
def joins() -> Iterator[list[int]]:
    """Counts the rows the driver joined (so that the tests below exercise that path)."""
    calls = [0]
    original = _driver.join_json_row

    def counting(parts: Sequence[Any]) -> str:
        calls[0] += 1
        return original(parts)

    _driver.join_json_row = counting  # type: ignore[assignment]
    try:
        yield calls
    finally:
        _driver.join_json_row = original


def _expected_text(rows: Sequence[Any]) -> bytes:
    return "".join(encode_json(row) + "\n" for row in rows).encode()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=_script(),
    layout=st.sampled_from([("single", 1), ("by_source", 2), ("by_source", 3), ("split", 2)]),
)
def test_driver_joined_jsonl_is_single_process_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory,
    joins: list[int],
    script: list[tuple[Feature, Event]],
    layout: tuple[str, int],
) -> None:
    strategy, workers = layout
    plan = build_plan(_OUTPUTS, "single", 1, _driver.get_plugins())
    ordered = canonical(plan, script)
    reference = _reference_rows(ordered)
    out = tmp_path_factory.mktemp("joined") / "rows.jsonl"
    before = joins[0]
    summary = run_scaled(
        _OUTPUTS,
        RunOptions(),
        JsonLinesSink(out),
        workers=workers,
        strategy=strategy,
        make_emitters=memory_emitters(ordered),
    )
    assert joins[0] - before == summary.outputs_out == len(reference)
    assert out.read_bytes() == _expected_text(reference)


def _reference_rows(ordered: Sequence[tuple[Feature, Event]]) -> list[dict[str, Any]]:
    """What one process writes: the graph's combined outputs, flattened."""
    from featurizer import FeatureStreamGraph

    rows: list[dict[str, Any]] = []
    graph = FeatureStreamGraph(
        _OUTPUTS,
        combine_outputs=True,
        combined_out_callback=lambda grouped: rows.append(flatten_grouped(grouped)),
    )
    for named in ordered:
        graph.emit_named_data_event(named)
    return rows


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=_script(),
    layout=st.sampled_from([("single", 1), ("by_source", 2), ("by_source", 3), ("split", 2)]),
)
def test_driver_merged_rows_are_single_process_rows(
    monkeypatch: pytest.MonkeyPatch, script: list[tuple[Feature, Event]], layout: tuple[str, int]
) -> None:
    """A sink of row mappings gets, from rows merged of the workers' named columns, the rows
    of one process (same keys in the same order, same values)."""
    merged = [0]
    original = _driver.merge_row

    def counting(parts: Sequence[Any]) -> dict[str, Any]:
        merged[0] += 1
        return original(parts)

    monkeypatch.setattr(_driver, "merge_row", counting)
    strategy, workers = layout
    ordered = canonical(build_plan(_OUTPUTS, "single", 1, _driver.get_plugins()), script)
    sink = CollectingSink()
    summary = run_scaled(
        _OUTPUTS,
        RunOptions(),
        sink,
        workers=workers,
        strategy=strategy,
        make_emitters=memory_emitters(ordered),
    )
    expected = _reference_rows(ordered)
    assert merged[0] == summary.outputs_out == len(expected)
    assert [list(row.items()) for row in sink.rows] == [list(row.items()) for row in expected]


def test_parquet_from_the_driver_equals_single_process(tmp_path: Path) -> None:
    """Parquet from rows the driver merged: the table one process writes, for every layout."""
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    script = [
        (_TICKERS[s], {"timestamp": 1.0 + i // 3, "receipt_timestamp": 1.0, "bid": i, "ask": 2.5})
        for i, s in enumerate(_SYMBOLS * 20)
    ]
    plan = build_plan(_OUTPUTS, "single", 1, _driver.get_plugins())
    ordered = canonical(plan, script)
    single = ParquetSink(tmp_path / "one-process.parquet")
    for row in _reference_rows(ordered):
        single.write_row(row)
    single.close()
    tables = [pyarrow_parquet.read_table(tmp_path / "one-process.parquet")]
    for strategy, workers in (("single", 1), ("by_source", 2), ("split", 2)):
        path = tmp_path / f"{strategy}.parquet"
        run_scaled(
            _OUTPUTS,
            RunOptions(),
            ParquetSink(path),
            workers=workers,
            strategy=strategy,
            make_emitters=memory_emitters(ordered),
        )
        tables.append(pyarrow_parquet.read_table(path))
    assert tables[0].num_rows > 0
    for table in tables[1:]:
        assert table.equals(tables[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_worker_files_joined_are_single_process_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """``--outputs workers`` to JSON Lines: each worker joins its rows from encoded columns;
    its file is, byte for byte, what one process writes for that worker's outputs."""
    from featurizer import FeatureStreamGraph
    from featurizer.scaling import WorkerOutputs, _worker

    joined = [0]
    original = _worker.join_json_row

    def counting(parts: Sequence[Any]) -> str:
        joined[0] += 1
        return original(parts)

    monkeypatch.setattr(_worker, "join_json_row", counting)
    script = _fixed_script(seed)
    plan = build_plan(_OUTPUTS, "by_source", 2, _driver.get_plugins())
    ordered = canonical(plan, script)
    summary = run_scaled(
        _OUTPUTS,
        RunOptions(),
        None,
        workers=2,
        strategy="by_source",
        make_emitters=memory_emitters(ordered),
        outputs=WorkerOutputs(target=str(tmp_path / "w-{worker}.jsonl")),
    )
    assert joined[0] == summary.outputs_out > 0
    for worker in plan.workers:
        mine = [f for f in plan.outputs if f in worker.outputs]
        sources = {s for f in mine for s in f.data_sources()}
        rows: list[Any] = []
        graph = FeatureStreamGraph(
            mine,
            combine_outputs=True,
            combined_out_callback=lambda grouped, rows=rows: rows.append(flatten_grouped(grouped)),
        )
        for named in ordered:
            if named[0] in sources:
                graph.emit_named_data_event(named)
        assert rows
        assert (tmp_path / f"w-{worker.index}.jsonl").read_bytes() == _expected_text(rows)


def _fixed_script(seed: int) -> list[tuple[Feature, Event]]:
    """Ties between sub-DAGs and awkward floats, from a seed."""
    import random

    rng = random.Random(seed)
    script = []
    ts = 1_700_000_000.0
    for _ in range(200):
        ts += rng.choice([0.0, 0.0, 0.001, 0.25])
        for symbol in rng.sample(_SYMBOLS, rng.randint(1, 3)):
            bid = rng.uniform(-1e6, 1e6) if rng.random() < 0.8 else rng.randint(-5, 5)
            event = {"timestamp": ts, "receipt_timestamp": ts, "bid": bid, "ask": rng.random()}
            script.append((_TICKERS[symbol], event))
    return script


class _NoStamp(FeatureDefinition):
    """Outputs events without timestamps (a broken feature)."""

    name = "joined_no_stamp"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"x": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"ticker": ExampleTicker}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        return upstreams["ticker"].map(lambda e: {"x": e["bid"]})


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_an_output_without_timestamp_fails_the_run_naming_it(tmp_path: Path, policy: str) -> None:
    """The worker encoding the row part names the feature; the run fails (under either error
    policy, as when the driver built the row) and publishes nothing."""
    broken = Feature.create(_NoStamp, {}, {"ticker": _TICKERS["A"]})
    events = [(_TICKERS["A"], {"timestamp": 1.0, "receipt_timestamp": 1.0, "bid": 1.0, "ask": 2.0})]
    out = tmp_path / "rows.jsonl"
    with pytest.raises(ScalingError, match=r"joined_no_stamp.*without field 'timestamp'"):
        run_scaled(
            [broken],
            RunOptions(error_policy=policy),
            JsonLinesSink(out),
            make_emitters=memory_emitters(events),
        )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("worker_files", [False, True], ids=["driver", "workers"])
def test_names_that_could_share_a_column_are_merged_not_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_files: bool
) -> None:
    """Outputs ``m`` and ``m.x`` could both write a column ``m.x.<field>``: a row mapping holds
    it once, joined text would hold it twice; such rows are merged (then encoded) instead of
    joined, and the file is still one process's, byte for byte."""
    from featurizer import FeatureStreamGraph
    from featurizer.scaling import WorkerOutputs, _worker

    def refuse(parts: Sequence[Any]) -> str:
        raise AssertionError("rows of clashing names must not be joined as text")

    monkeypatch.setattr(_driver, "join_json_row", refuse)
    monkeypatch.setattr(_worker, "join_json_row", refuse)
    outputs = [
        Feature.create(ExampleMid, {}, {"ticker": _TICKERS["A"]}, name="m"),
        Feature.create(ExampleMid, {}, {"ticker": _TICKERS["B"]}, name="m.x"),
    ]
    script = [(t, e) for t, e in _fixed_script(3) if t in (_TICKERS["A"], _TICKERS["B"])]
    ordered = canonical(build_plan(outputs, "single", 1, _driver.get_plugins()), script)
    rows: list[Any] = []
    graph = FeatureStreamGraph(
        outputs,
        combine_outputs=True,
        combined_out_callback=lambda g: rows.append(flatten_grouped(g)),
    )
    for named in ordered:
        graph.emit_named_data_event(named)
    assert rows
    out = tmp_path / "rows.jsonl"
    run_scaled(
        outputs,
        RunOptions(),
        None if worker_files else JsonLinesSink(out),
        workers=1,
        strategy="single",
        make_emitters=memory_emitters(ordered),
        outputs=WorkerOutputs(target=str(out)) if worker_files else None,
    )
    written = tmp_path / "rows.worker-0.jsonl" if worker_files else out
    assert written.read_bytes() == _expected_text(rows)
