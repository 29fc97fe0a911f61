"""Parallel backfills: the rows of one process whatever the parts; a failed part is one line."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from featurizer import FeaturizerConfig
from featurizer._plugins import reset_plugins
from featurizer.batch import Backfill, BackfillPartError, ParallelBackfill, backfill
from featurizer.batch._executor import BatchExecutor
from featurizer.batch._parts import plan_parts
from featurizer.cli import main
from featurizer.storage import Storage
from tests.batch.batch_support import (
    REFERENCE,
    SYMBOL,
    WINDOWED,
    features_of,
    reference_events,
    store_events,
)
from tests.batch.parallel_support import SEEN_BY_CALLER

PART = re.compile(
    r"^part (\d) of (\d) \((the first stored event|\S+) to (the last stored event|\S+)\): "
)


def quiet(workers: str) -> list[str]:
    return ["--workers", workers, "--no-progress"]


WORKERS_2 = quiet("2")


def _stored_span(root: Path) -> tuple[float, float]:
    with Storage.open(root, readonly=True) as storage:
        stats = storage.catalog.series_stats().values()
        return min(s[3] for s in stats if s[3] is not None), max(
            s[4] for s in stats if s[4] is not None
        )


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    workers=st.integers(2, 3),
    lo=st.floats(0.0, 0.6),
    length=st.floats(0.05, 1.0),
    chunk_rows=st.sampled_from([997, 8_192, 65_536]),
    per=st.sampled_from(["event", "timestamp"]),
    on_event=st.booleans(),
)
def test_parallel_equals_one_process_over_any_range(
    windowed: tuple[Path, FeaturizerConfig],
    workers: int,
    lo: float,
    length: float,
    chunk_rows: int,
    per: str,
    on_event: bool,
) -> None:
    root, cfg = windowed
    first, last = _stored_span(root)
    start = first + (last - first) * lo
    if on_event:  # exactly an event's timestamp (no microsecond datetime holds most of them)
        stamps = _row_stamps(root)
        start = stamps[min(int(lo * len(stamps)), len(stamps) - 1)]
    end = min(last + 1.0, start + (last - first) * length)
    options: dict[str, Any] = {"start": start, "end": end, "chunk_rows": chunk_rows, "per": per}
    options["holes"] = "ignore"  # a range may reach past the stored data
    with Backfill(cfg, root, **options) as job:
        one = job.table()
    parts = backfill(cfg, root, workers=workers, **options)
    assert parts.equals(one)


_STAMPS: dict[Path, list[float]] = {}


def _row_stamps(root: Path) -> list[float]:
    if root not in _STAMPS:
        _STAMPS[root] = backfill(WINDOWED, root).column("timestamp").to_pylist()
    return _STAMPS[root]


def _skewed(tmp_path: Path) -> Path:
    """Reference events whose first 80% are squeezed into the first 10% of the time."""
    features = features_of(REFERENCE)
    events = reference_events(features, 30_000, seed=11)
    t0, t1 = events[0][1]["timestamp"], events[-1][1]["timestamp"]
    knee = events[int(len(events) * 0.8)][1]["timestamp"]

    def squeeze(ts: float) -> float:
        if ts <= knee:
            return t0 + (ts - t0) * 0.1 * (t1 - t0) / (knee - t0)
        return t0 + 0.1 * (t1 - t0) + (ts - knee) * 0.9 * (t1 - t0) / (t1 - knee)

    for _, event in events:
        event["timestamp"] = squeeze(event["timestamp"])
        event["receipt_timestamp"] = event["timestamp"] + 0.001
    root = tmp_path / "skewed"
    store_events(root, events, block_bytes=100_000)
    return root


def test_parts_hold_equal_events_on_skewed_data(tmp_path: Path) -> None:
    root = _skewed(tmp_path)
    with Storage.open(root, readonly=True) as storage:
        parts = plan_parts(REFERENCE, storage, 2)
    sizes = []
    for part in parts:
        with Backfill(part.config, root, warmup=0.0) as job:
            sizes.append(sum(t.num_rows for t in job))
    # by time, the first part would hold 80% of the events; by rows, about half
    assert abs(sizes[0] - sizes[1]) < 0.1 * sum(sizes), sizes
    assert backfill(REFERENCE, root, workers=2).equals(backfill(REFERENCE, root))


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tripwire plugin registered through ``FEATURIZER_PLUGINS`` (workers see it too)."""
    monkeypatch.setenv("FEATURIZER_PLUGINS", "tests.batch.parallel_support")
    reset_plugins(None)
    yield
    monkeypatch.delenv("FEATURIZER_PLUGINS")
    reset_plugins(None)


def _tripwire_config(at: float, **params: Any) -> FeaturizerConfig:
    return FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "name": "mid",
                    "feature_definition": "mid_price",
                    "params": {"data_source": SYMBOL},
                },
                {
                    "name": "trip",
                    "feature_definition": "tripwire",
                    "params": {"at": at, **params, "data_source": SYMBOL},
                },
            ]
        }
    )


def _point(root: Path, share: float) -> float:
    first, last = _stored_span(root)
    return first + (last - first) * share


def _one_line_part_error(error: BackfillPartError, part: int, count: int) -> re.Match[str]:
    message = str(error)
    assert "\n" not in message
    match = PART.match(message)
    assert match is not None, message
    assert (int(match[1]), int(match[2])) == (part, count) and error.part == part - 1
    return match


@pytest.mark.usefixtures("tripwire")
def test_a_worker_whose_feature_raises_ends_the_backfill(
    windowed: tuple[Path, FeaturizerConfig], tmp_path: Path
) -> None:
    root, _ = windowed
    cfg = _tripwire_config(_point(root, 0.9))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BackfillPartError) as caught:
        ParallelBackfill(cfg, root, workers=2, directory=work).table()
    match = _one_line_part_error(caught.value, 2, 2)
    assert match[4] == "the last stored event"
    assert "tripped at" in str(caught.value) and "'trip'" in str(caught.value)
    assert list(work.iterdir()) == []  # the worker's rows are removed
    assert multiprocessing.active_children() == []


@pytest.mark.usefixtures("tripwire")
def test_a_worker_that_dies_ends_the_backfill(
    windowed: tuple[Path, FeaturizerConfig], tmp_path: Path
) -> None:
    root, _ = windowed
    cfg = _tripwire_config(_point(root, 0.9), action="die")
    with pytest.raises(BackfillPartError) as caught:
        ParallelBackfill(cfg, root, workers=2).table()
    _one_line_part_error(caught.value, 2, 2)
    assert "its worker process died (killed by SIGKILL)" in str(caught.value)


@pytest.mark.usefixtures("tripwire")
def test_a_failed_worker_stops_the_callers_part_early(
    windowed: tuple[Path, FeaturizerConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller holds in the middle of its own part until the worker has exited, then
    computes the rest of that chunk and no other: it notices the failure at its next chunk."""
    root, _ = windowed
    marker = tmp_path / "dead.pid"
    hold = _point(root, 0.25)
    cfg = _tripwire_config(_point(root, 0.6), action="die", marker=str(marker), hold_at=hold)
    SEEN_BY_CALLER.clear()
    chunk_starts: list[int] = []  # in the caller: events it had seen when a chunk began
    process = BatchExecutor.process

    def spy(self: BatchExecutor, sources: Any) -> Any:
        chunk_starts.append(len(SEEN_BY_CALLER))
        return process(self, sources)

    monkeypatch.setattr(BatchExecutor, "process", spy)
    job = ParallelBackfill(cfg, root, workers=2, chunk_rows=500)
    with pytest.raises(BackfillPartError) as caught:
        job.table()
    _one_line_part_error(caught.value, 2, 2)
    assert "its worker process died (killed by SIGKILL)" in str(caught.value)
    held = next(i for i, ts in enumerate(SEEN_BY_CALLER) if ts >= hold)
    # the last chunk the caller began is the one it held in: the check after it saw the failure
    assert chunk_starts[-1] <= held, (chunk_starts, held)


@pytest.mark.usefixtures("tripwire")
def test_the_callers_own_part_failing_names_it_and_stops_the_workers(
    windowed: tuple[Path, FeaturizerConfig],
) -> None:
    root, _ = windowed
    cfg = _tripwire_config(_point(root, 0.1))
    with pytest.raises(BackfillPartError) as caught:
        backfill(cfg, root, workers=3)
    match = _one_line_part_error(caught.value, 1, 3)
    assert match[3] == "the first stored event" and "tripped at" in str(caught.value)
    assert multiprocessing.active_children() == []


@pytest.mark.usefixtures("tripwire")
def test_command_reports_a_failed_part_in_one_line_and_publishes_nothing(
    windowed: tuple[Path, FeaturizerConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = windowed
    config = tmp_path / "trip.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "feature_configs": [
                    {
                        "name": "trip",
                        "feature_definition": "tripwire",
                        "params": {"at": _point(root, 0.9), "data_source": SYMBOL},
                    }
                ]
            }
        )
    )
    out = tmp_path / "features.parquet"
    code = main(["backfill", str(config), "--storage", str(root), "--out", str(out), *WORKERS_2])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert re.match(r"featurizer: error: part 2 of 2 \(\S+ to the last stored event\): ", err)
    assert "tripped at" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trip.yaml"]


def test_command_with_workers_writes_what_one_process_writes(
    windowed: tuple[Path, FeaturizerConfig], tmp_path: Path
) -> None:
    root, cfg = windowed
    config = tmp_path / "w.yaml"
    config.write_text(yaml.safe_dump(_dict_of(cfg)))
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.parquet"
        assert (
            main(
                [
                    "backfill",
                    str(config),
                    "--storage",
                    str(root),
                    "--out",
                    str(out),
                    *quiet(workers),
                ]
            )
            == 0
        )
        outs.append(pq.read_table(out))
    assert outs[0].num_rows > 10_000 and outs[1].equals(outs[0])


def _dict_of(cfg: FeaturizerConfig) -> dict[str, Any]:
    from tests.batch.batch_support import WINDOWED_DICT

    assert cfg == FeaturizerConfig.from_dict(WINDOWED_DICT)
    return WINDOWED_DICT


@pytest.mark.usefixtures("tripwire")
def test_spawned_workers_when_fork_is_unsafe(
    windowed: tuple[Path, FeaturizerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller with other threads cannot fork safely: its workers are spawned, with the same
    rows and the same one-line errors."""
    import featurizer.batch._parallel as parallel

    monkeypatch.setattr(parallel, "fork_available", lambda: False)
    root, cfg = windowed
    assert backfill(cfg, root, workers=2).equals(backfill(cfg, root))
    with pytest.raises(BackfillPartError) as caught:
        backfill(_tripwire_config(_point(root, 0.9)), root, workers=2)
    _one_line_part_error(caught.value, 2, 2)
    assert "tripped at" in str(caught.value)


@pytest.mark.usefixtures("tripwire")
def test_a_failed_ray_part_is_one_line(
    windowed: tuple[Path, FeaturizerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Ray, a part whose feature raises and a part whose worker dies end the backfill
    with one line each (on a Ray this test starts on loopback and shuts down)."""
    ray = pytest.importorskip("ray")
    root, _ = windowed
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    assert not ray.is_initialized()
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=80 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        with pytest.raises(BackfillPartError) as raised:
            backfill(_tripwire_config(_point(root, 0.9)), root, workers=2, scaler="ray")
        _one_line_part_error(raised.value, 2, 2)
        assert "tripped at" in str(raised.value)
        with pytest.raises(BackfillPartError) as died:
            backfill(
                _tripwire_config(_point(root, 0.9), action="die"), root, workers=2, scaler="ray"
            )
        _one_line_part_error(died.value, 2, 2)
        assert "its Ray worker died before finishing the part" in str(died.value)
    finally:
        ray.shutdown()


def test_parts_do_not_start_over_for_a_late_output(
    windowed: tuple[Path, FeaturizerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the warm-up margin, no part reads its range twice because an output was last
    updated just before the part's start (without it, this range's parts do)."""
    import featurizer.batch._parts as parts_module

    root, cfg = windowed
    one = backfill(cfg, root)
    restarts = {}
    for margin in (0.0, parts_module.WARMUP_MARGIN):
        monkeypatch.setattr(parts_module, "WARMUP_MARGIN", margin)
        job = ParallelBackfill(cfg, root, workers=3)
        assert job.table().equals(one)
        restarts[margin] = job.restarts
    assert restarts[0.0] > 0 and restarts[0.1] == 0, restarts


def test_parts_across_a_hole_longer_than_the_warm_up(tmp_path: Path) -> None:
    """After a 10,000 s hole, one process's first rows carry values from before the hole (the
    trade volume imbalance of the last trades); a part starting in or after the hole reads back
    across it for them, and never before the whole backfill's own start."""
    events = reference_events(features_of(REFERENCE), 6_000, seed=1)
    for _, event in events[3_000:]:
        event["timestamp"] += 10_000.0
        event["receipt_timestamp"] += 10_000.0
    root = tmp_path / "holey"
    store_events(root, events, block_bytes=30_000)
    after = events[3_000][1]["timestamp"]
    for options in ({}, {"start": events[1_000][1]["timestamp"]}, {"start": after - 5_000.0}):
        one = backfill(REFERENCE, root, holes="ignore", **options)
        assert one.num_rows > 1_000
        for workers in (2, 3, 5):
            assert backfill(REFERENCE, root, workers=workers, holes="ignore", **options).equals(
                one
            ), (options, workers)


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_quickstart_with_its_book_equals_one_process(
    quickstart: tuple[Path, FeaturizerConfig], workers: int
) -> None:
    """The quickstart's DAG, book kernels included: a later part's book is rebuilt from the
    last full-state message before its start, as one process has it there."""
    root, cfg = quickstart
    one = backfill(cfg, root)
    assert one.num_rows > 1_000 and "book_btc.bids" in one.column_names
    assert backfill(cfg, root, workers=workers).equals(one)
