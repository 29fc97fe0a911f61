"""``featurizer run --emitter offline`` from a start after a book snapshot: the book is rebuilt
from the last snapshot before the start (warm-up events reach the graph), but no row with an
input before the start reaches the sink, and warm-up events do not count toward
``--max-events``. The rows equal ``featurizer replay``'s from the same start."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import FeaturizerConfig
from featurizer._runner import RunOptions, run
from featurizer.cli import main
from featurizer.offline import OfflineFeatureStreamGenerator
from featurizer.storage import Storage
from featurizer.testing import CollectingSink

pytest.importorskip("featurizer_synthetic")
pytest.importorskip("featurizer_offline")

_QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, Path]:
    """The quickstart recorded for 8,000 events; a start halfway through the rows of the
    quickstart without its one-minute bar (silent over so little data), well after the book's
    snapshot (the synthetic emitter sends one, then deltas)."""
    tmp = tmp_path_factory.mktemp("quickstart")
    root = tmp / "root"
    args = ["record", str(_QUICKSTART), "--storage", str(root), "--max-events", "8000"]
    assert main([*args, "--quiet"]) == 0
    config = yaml.safe_load(_QUICKSTART.read_text(encoding="utf-8"))
    config["feature_configs"] = [
        entry for entry in config["feature_configs"] if entry["name"] != "ohlcv_btc"
    ]
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    everything = tmp / "everything.jsonl"
    command = ["replay", str(path), "--storage", str(root), "--out", str(everything)]
    assert main([*command, "--no-progress"]) == 0
    rows = _rows(everything)
    start = rows[len(rows) // 2]["timestamp"]
    assert rows[0]["timestamp"] < start
    return root, start, path


def _replay(root: Path, start: float, out: Path, config: Path) -> list[dict]:
    args = ["replay", str(config), "--storage", str(root), "--start", repr(start)]
    assert main([*args, "--warmup", "0", "--out", str(out), "--no-progress"]) == 0
    return _rows(out)


def _run(root: Path, config: Path, out: Path, *extra: str) -> list[dict]:
    args = ["run", str(config), "--emitter", "offline", "--storage", str(root)]
    assert main([*args, "--out", str(out), "-q", *extra]) == 0
    return _rows(out)


@pytest.mark.parametrize("book_only", [False, True], ids=["quickstart", "book-only"])
def test_a_run_from_a_start_writes_exactly_the_replays_rows(
    recorded: tuple[Path, float, Path], tmp_path: Path, book_only: bool
) -> None:
    """A book-only config has a combined row for every book event, warm-up ones included."""
    root, start, config = recorded
    if book_only:
        books = yaml.safe_load(config.read_text(encoding="utf-8"))
        books["feature_configs"] = [
            entry for entry in books["feature_configs"] if entry["name"] in ("book_btc", "obi_btc")
        ]
        config = tmp_path / "books.yaml"
        config.write_text(yaml.safe_dump(books), encoding="utf-8")
    replayed = _replay(root, start, tmp_path / "replay.jsonl", config)
    ran = _run(root, config, tmp_path / "run.jsonl", "--emitter-option", f"start={start!r}")
    assert replayed and min(row["timestamp"] for row in replayed) >= start
    assert min(row["timestamp"] for row in ran) >= start
    assert ran == replayed


def test_the_configs_start_date_is_honoured_the_same_way(
    recorded: tuple[Path, float, Path], tmp_path: Path
) -> None:
    root, start, config = recorded
    dated = yaml.safe_load(config.read_text(encoding="utf-8"))
    dated["start_date"] = dt.datetime.fromtimestamp(start, dt.UTC).isoformat()
    path = tmp_path / "dated.yaml"
    path.write_text(yaml.safe_dump(dated), encoding="utf-8")
    replayed = _replay(root, start, tmp_path / "replay.jsonl", path)
    ran = _run(root, path, tmp_path / "run.jsonl")
    assert ran and ran == replayed


def test_per_feature_rows_start_at_the_start(
    recorded: tuple[Path, float, Path], tmp_path: Path
) -> None:
    root, start, config = recorded
    option = f"start={start!r}"
    ran = _run(root, config, tmp_path / "run.jsonl", "--emitter-option", option, "--no-combine")
    assert ran and min(row["timestamp"] for row in ran) >= start
    late = {"mid_btc", "book_btc", "obi_btc", "spread_btc"}
    assert late <= {row["feature"] for row in ran}


def test_warm_up_events_do_not_count_toward_max_events(
    recorded: tuple[Path, float, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warm-up (every book event since the snapshot) is far more than 50 events: counted,
    it would leave no event to output."""
    root, start, config = recorded
    replayed = _replay(root, start, tmp_path / "replay.jsonl", config)
    capsys.readouterr()
    args = ("--emitter-option", f"start={start!r}", "--max-events", "400")
    out = tmp_path / "run.jsonl"
    command = ["run", str(config), "--emitter", "offline", "--storage", str(root)]
    assert main([*command, "--out", str(out), *args]) == 0
    assert "events in: 400 " in capsys.readouterr().err
    ran = _rows(out)
    assert ran and ran == replayed[: len(ran)]
    assert len(ran) <= 400


def test_a_checkpointed_run_from_a_start_is_refused_in_one_line(
    recorded: tuple[Path, float, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warm-up events are neither logged nor cut, so a resumed run could not rebuild the book:
    refused, naming the source, nothing published."""
    root, start, config = recorded
    out = tmp_path / "run.jsonl"
    command = ["run", str(config), "--emitter", "offline", "--storage", str(root)]
    options = ["--emitter-option", f"start={start!r}", "--checkpoint", str(tmp_path / "ck")]
    assert main([*command, "--out", str(out), *options]) != 0
    err = capsys.readouterr().err
    assert "l2_book.synthetic.BTC-USDT" in err and "checkpointed run" in err
    assert "Traceback" not in err
    assert not out.exists() or not out.read_text(encoding="utf-8")


def test_a_scaled_run_from_a_start_is_refused_not_wrong(
    recorded: tuple[Path, float, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scaled-out workers do not suppress the rows of warm-up events (yet): refused, naming the
    source, nothing published, instead of rows before the start."""
    root, start, config = recorded
    out = tmp_path / "run.jsonl"
    command = ["run", str(config), "--emitter", "offline", "--storage", str(root)]
    options = ["--emitter-option", f"start={start!r}", "--scaler", "local"]
    assert main([*command, "--out", str(out), *options]) != 0
    err = capsys.readouterr().err
    assert "l2_book.synthetic.BTC-USDT" in err and "a scaled-out run cannot take" in err
    assert not out.exists()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fraction=st.floats(min_value=0.05, max_value=0.95),
    max_events=st.one_of(st.none(), st.integers(min_value=1, max_value=3_000)),
    book_only=st.booleans(),
)
def test_any_start_and_bound_give_the_replays_rows(
    recorded: tuple[Path, float, Path], fraction: float, max_events: int | None, book_only: bool
) -> None:
    """For any start in the recording, with or without a bound: exactly the replay's rows from
    that start (the first ones, under a bound), each on or after the start, and exactly
    ``max_events`` events counted when the bound ends the run."""
    root, _, path = recorded
    config = FeaturizerConfig.from_yaml(path)
    if book_only:
        kept = [c for c in config.feature_configs if c.name in ("book_btc", "obi_btc")]
        config = attrs.evolve(config, feature_configs=tuple(kept))
    with Storage.open(root) as storage:
        times = [row["timestamp"] for row in OfflineFeatureStreamGenerator(config, storage).rows()]
        start = times[int(fraction * (len(times) - 1))]
        expected = list(
            OfflineFeatureStreamGenerator(config, storage, start=start, warmup=0).rows()
        )
    sink = CollectingSink()
    options = RunOptions(
        emitter="offline",
        max_events=max_events,
        emitter_options={"storage": str(root), "start": start},
    )
    summary = run(config, options, sink)
    assert all(row["timestamp"] >= start for row in sink.rows)
    if max_events is None:
        assert sink.rows == expected
    else:
        assert sink.rows == expected[: len(sink.rows)]
        assert summary.events_in <= max_events
        if summary.stopped_by == "max_events":
            assert summary.events_in == max_events
