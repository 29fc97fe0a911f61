"""Replays that start after a book snapshot start from the last snapshot before the range
(or refuse): never silently fewer rows than asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurizer import Feature
from featurizer._runner import RunOptions
from featurizer.offline import OfflineFeatureStreamGenerator, split
from featurizer.storage import NoDataError, Storage, record
from tests.storage.storage_support import config, entry

featurizer_features = pytest.importorskip("featurizer_features")
pytest.importorskip("featurizer_synthetic")

BOOK = [entry("book", "l2_snapshot", "BTC-USDT", depth=3)]
BOOK_AND_TRADES = [*BOOK, entry("tvi", "trade_volume_imbalance", "BTC-USDT", window="5s")]


def _recorded(tmp_path: Path, entries: list) -> tuple[Storage, object]:
    cfg = config(entries, storage={"block_size": "64KiB"})
    storage = Storage(tmp_path / "root")
    record(cfg, RunOptions(emitter="synthetic", max_events=12_000, seed=4), storage)
    return storage, cfg


def test_split_in_two_gives_every_row(tmp_path: Path) -> None:
    storage, cfg = _recorded(tmp_path, BOOK_AND_TRADES)
    with storage:
        whole = list(OfflineFeatureStreamGenerator(cfg, storage).rows())
        parts = split(cfg, 2, storage=storage)
        pieces = [list(OfflineFeatureStreamGenerator(p, storage).rows()) for p in parts]
    assert len(whole) > 10_000
    assert pieces[0] + pieces[1] == whole


def test_a_replay_starting_late_starts_from_the_last_snapshot(tmp_path: Path) -> None:
    storage, cfg = _recorded(tmp_path, BOOK)
    with storage:
        whole = list(OfflineFeatureStreamGenerator(cfg, storage).rows())
        start = whole[len(whole) // 2]["timestamp"]
        late = list(OfflineFeatureStreamGenerator(cfg, storage, start=start, warmup=0).rows())
    assert late and late == [row for row in whole if row["timestamp"] >= start]


def test_no_snapshot_before_the_start_is_refused(tmp_path: Path) -> None:
    book = Feature.create(featurizer_features.L2BookSource, {"exchange": "x", "symbol": "S"})
    with Storage(tmp_path / "root") as storage:
        with storage.writer([book]) as writer:
            append = writer.event_callback(book)
            for i in range(10):
                append(
                    {
                        "timestamp": float(i),
                        "receipt_timestamp": float(i),
                        "bids": ((1.0, float(i)),),
                        "asks": ((2.0, 1.0),),
                        "sequence": i + 1,
                        "is_snapshot": False,
                        "gap": False,
                    }
                )
        with pytest.raises(NoDataError, match="none is stored before"):
            storage.replay([book], start=5.0)
        assert len(list(storage.replay([book], start=0.0).events())) == 10


def test_stored_snapshots_let_a_late_replay_start_late(tmp_path: Path) -> None:
    cfg = config(BOOK_AND_TRADES, storage={"block_size": "16KiB"})
    with Storage(tmp_path / "root") as storage:
        record(
            cfg,
            RunOptions(emitter="synthetic", max_events=12_000, seed=4),
            storage,
            writer_options={"snapshot_interval": 1.0},
        )
        companions = [s for s in storage.series() if s.kind == "snapshots"]
        assert [s.name for s in companions] == ["l2_book.synthetic.BTC-USDT#snapshots"]
        snapshots = storage.read_events(companions[0])
        assert len(snapshots) > 5 and all(e["is_snapshot"] for e in snapshots)
        assert storage.verify().ok
        whole = list(OfflineFeatureStreamGenerator(cfg, storage).rows())
        start = whole[3 * len(whole) // 4]["timestamp"]
        late = OfflineFeatureStreamGenerator(cfg, storage, start=start)
        rows = list(late.rows())
        (book,) = [i for i, s in enumerate(late.replay.sources) if s.definition_name == "l2_book"]
        resumed = late.replay.resume[book]
        assert resumed is not None and resumed[0] > snapshots[0]["timestamp"]
        assert start - resumed[0] <= 1.0 + 20.0  # the last snapshot before the warm-up
        assert rows == [row for row in whole if row["timestamp"] >= start]
        parts = split(cfg, 3, storage=storage)
        pieces = [r for p in parts for r in OfflineFeatureStreamGenerator(p, storage).rows()]
        assert pieces == whole
