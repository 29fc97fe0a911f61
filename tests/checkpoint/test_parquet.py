"""Checkpointed Parquet outputs are exactly once: a run killed at any phase (publishing a part,
assembling the file, twice in a row), single-process or scaled, ends with the file an
uninterrupted run writes; while it runs, its committed rows are a Parquet dataset."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer.checkpoint import CheckpointError, inspect_directory, verify_directory
from tests.checkpoint.checkpoint_support import (
    EVENTS,
    assert_killed,
    assert_ok,
    checkpointed_run,
    featurizer,
    write_config,
)

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("featurizer_synthetic")

SCALED = ("--scaler", "local", "--workers", "2", "-q")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The config, and the Parquet file of an uninterrupted run without checkpoints."""
    directory = tmp_path_factory.mktemp("reference")
    config = write_config(directory)
    out = directory / "plain.parquet"
    assert_ok(featurizer("run", str(config), "--max-events", str(EVENTS), "--out", str(out)))
    assert pq.ParquetFile(out).metadata.num_rows > EVENTS // 2
    return config, out.read_bytes()


def _parts(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _bits(table: Any) -> list[tuple[Any, ...]]:
    """Rows with every float as its bit pattern (NaN and -0.0 compared exactly)."""

    def exact(value: Any) -> Any:
        return struct.pack("<d", value) if isinstance(value, float) else value

    return [tuple(exact(v) for v in row.values()) for row in table.to_pylist()]


def _assert_published_prefix(out: Path, expected: bytes, tmp: Path) -> None:
    """What a killed run published (the file, then the parts as one dataset) is the first
    rows of the uninterrupted output, with its schema."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    reference = tmp / "expected.parquet"
    reference.write_bytes(expected)
    whole = pq.read_table(reference)
    tables = [pq.read_table(out)] if out.exists() else []
    if _parts(out).is_dir() and any(_parts(out).glob("[0-9]*.parquet")):
        tables.append(ds.dataset(_parts(out), format="parquet").to_table())
    published = pa.concat_tables(tables) if tables else whole.slice(0, 0)
    assert published.schema.equals(whole.schema)
    assert _bits(published) == _bits(whole.slice(0, published.num_rows))


@pytest.mark.parametrize(
    "faults",
    [
        ("event:2500",),  # between two events, after 2 checkpoints
        ("snapshot:3",),  # part closed, checkpoint not written (as at checkpoint-commit)
        ("publish:4",),  # committed, part not yet renamed into the dataset
        ("assemble:1",),  # the file assembled under its temporary name
        ("assemble:2",),  # the parts moved aside, the file not yet renamed
        ("assemble:3",),  # the file in place, its parts not yet deleted
        ("publish:2", "assemble:1"),
        ("assemble:2", "assemble:2"),
    ],
    ids="+".join,
)
def test_killed_at_a_phase_then_restarted_writes_the_uninterrupted_parquet_file(
    faults: tuple[str, ...], reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    config, expected = reference
    out, directory = tmp_path / "out.parquet", tmp_path / "ck"
    for fault in faults:
        assert_killed(checkpointed_run(config, directory, out, fault=fault))
        _assert_published_prefix(out, expected, tmp_path)
        assert verify_directory(directory).ok
    resumed = checkpointed_run(config, directory, out)
    assert_ok(resumed)
    assert f"restarts: {len(faults)}" in resumed.stderr
    assert out.read_bytes() == expected
    assert not _parts(out).exists()
    latest = inspect_directory(directory).latest
    assert latest is not None and latest.final
    assert latest.rows == pq.ParquetFile(out).metadata.num_rows
    assert verify_directory(directory).ok


def test_a_finished_run_continued_further_appends_to_its_file(
    reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    """A run that ended, started again with more events, keeps its rows and adds the rest:
    the first file is the assembled base of the second assembly."""
    config, expected = reference
    out, directory = tmp_path / "out.parquet", tmp_path / "ck"
    assert_ok(checkpointed_run(config, directory, out, events=EVENTS // 2))
    assert_killed(checkpointed_run(config, directory, out, fault="assemble:1"))
    assert_ok(checkpointed_run(config, directory, out))
    assert out.read_bytes() == expected


def test_verify_and_resume_refuse_a_removed_part(
    reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    config, _ = reference
    out, directory = tmp_path / "out.parquet", tmp_path / "ck"
    assert_killed(checkpointed_run(config, directory, out, fault="event:4500"))
    first = sorted(_parts(out).glob("[0-9]*.parquet"))[0]
    first.unlink()
    report = verify_directory(directory)
    assert not report.ok and "the published output was changed or removed" in report.problems[0]
    verified = featurizer("checkpoint", "verify", str(directory))
    assert verified.returncode == 1 and "DAMAGED" in verified.stderr + verified.stdout
    resumed = checkpointed_run(config, directory, out)
    assert resumed.returncode == 1
    (line,) = resumed.stderr.strip().splitlines()[-1:]
    assert "hold" in line and "Restore them, or start over with --fresh" in line


def test_checkpoint_info_and_verify_read_a_parquet_run(
    reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    config, _ = reference
    out, directory = tmp_path / "out.parquet", tmp_path / "ck"
    assert_killed(checkpointed_run(config, directory, out, fault="publish:3"))
    verified = featurizer("checkpoint", "verify", str(directory))
    assert verified.returncode == 0, verified.stderr
    assert "at checkpoint 3 was interrupted; resuming ends it" in verified.stdout
    info = featurizer("checkpoint", "info", str(directory))
    assert info.returncode == 0 and str(out) in info.stdout


# -- scaled runs: the driver's file and the workers' files -----------------------------------


@pytest.fixture(scope="module")
def scaled_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files of uninterrupted scaled runs without checkpoints: the driver's
    ``plain.parquet``, and the workers' ``plain/worker-N.parquet``."""
    directory = tmp_path_factory.mktemp("scaled-plain")
    config = write_config(directory)
    run = ("run", str(config), *SCALED, "--max-events", str(EVENTS))
    assert_ok(featurizer(*run, "--out", str(directory / "plain.parquet")))
    (directory / "plain").mkdir()
    workers = ("--outputs", "workers", "--format", "parquet", "--out", f"{directory}/plain/")
    assert_ok(featurizer(*run, *workers))
    return directory


def _scaled_checkpointed(tmp: Path, *out: str, fault: str | None = None) -> Any:
    config = tmp / "config.yaml"
    if not config.exists():
        write_config(tmp)
    return featurizer(
        "run",
        str(config),
        *SCALED,
        "--max-events",
        str(EVENTS),
        "--checkpoint",
        str(tmp / "ck"),
        "--checkpoint-every",
        "0.05s",
        *out,
        fault=fault,
    )


@pytest.mark.parametrize("faults", [("publish:2",), ("assemble:2", "assemble:3")], ids=str)
def test_a_scaled_driver_killed_then_restarted_writes_the_uninterrupted_parquet_file(
    tmp_path: Path, scaled_plain: Path, faults: tuple[str, ...]
) -> None:
    out = ("--out", str(tmp_path / "out.parquet"))
    for fault in faults:
        assert_killed(_scaled_checkpointed(tmp_path, *out, fault=fault))
    assert_ok(_scaled_checkpointed(tmp_path, *out))
    assert (tmp_path / "out.parquet").read_bytes() == (scaled_plain / "plain.parquet").read_bytes()
    assert verify_directory(tmp_path / "ck").ok


@pytest.mark.parametrize("fault", ["checkpoint-commit:2", "assemble:2"])
def test_scaled_parquet_worker_outputs_killed_then_restarted(
    tmp_path: Path, scaled_plain: Path, fault: str
) -> None:
    (tmp_path / "out").mkdir()
    out = ("--outputs", "workers", "--out", f"{tmp_path}/out/part-{{worker}}.parquet")
    assert_killed(_scaled_checkpointed(tmp_path, *out, fault=fault))
    assert_ok(_scaled_checkpointed(tmp_path, *out))
    for index in (0, 1):
        written = (tmp_path / "out" / f"part-{index}.parquet").read_bytes()
        assert written == (scaled_plain / "plain" / f"worker-{index}.parquet").read_bytes(), index
    assert verify_directory(tmp_path / "ck").ok


# -- the sink itself: any sequence of cuts, commits and crashes ----------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(st.floats(width=64), st.integers(-(2**62), 2**62)), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
    crash=st.sampled_from(["none", "before-commit", "before-publish"]),
)
def test_any_cuts_and_a_crash_assemble_the_plain_file(
    tmp_path_factory: pytest.TempPathFactory, rows: list[Any], cuts: list[int], crash: str
) -> None:
    """Rows cut into checkpoints at any points, the process lost at the last cut (before its
    commit, or after it but before the publish), recovered and finished: the assembled file
    equals :class:`~featurizer._sinks.ParquetSink`'s of the same rows, byte for byte."""
    from featurizer._sinks import ParquetSink
    from featurizer.checkpoint._parquet_sink import SegmentedParquetSink

    tmp = tmp_path_factory.mktemp("sink")
    table = [{"timestamp": float(i), "a": a, "b": b} for i, (a, b) in enumerate(rows)]
    plain = ParquetSink(tmp / "plain.parquet", batch_rows=7)
    for row in table:
        plain.write_row(row)
    plain.close()

    sink = SegmentedParquetSink(tmp / "out.parquet", batch_rows=7)
    sink.start_fresh()
    committed = (0, 0)  # (checkpoint id, rows) of the last commit
    bounds = [*sorted({min(c, len(table)) for c in cuts}), len(table)]
    written = 0
    for number, bound in enumerate(bounds, start=1):
        for row in table[written:bound]:
            sink.write_row(row)
        written = bound
        sink.cut(number)
        last = number == len(bounds)
        if last and crash == "before-commit":
            break
        committed = (number, sink.rows)
        if last and crash == "before-publish":
            break
        sink.publish(number, 0)
    else:
        sink.close(ok=True)
        assert (tmp / "out.parquet").read_bytes() == (tmp / "plain.parquet").read_bytes()
        return
    # the process is lost: a new one resumes from the last committed checkpoint
    resumed = SegmentedParquetSink(tmp / "out.parquet", batch_rows=7)
    resumed.rows = committed[1]
    if committed[0]:
        resumed.reconcile(committed[0], 0, 0)
    else:
        resumed.start_fresh()
    for row in table[committed[1] :]:
        resumed.write_row(row)
    resumed.cut(committed[0] + 1)
    resumed.publish(committed[0] + 1, 0)
    resumed.close(ok=True)
    assert (tmp / "out.parquet").read_bytes() == (tmp / "plain.parquet").read_bytes()
    assert not (tmp / "out.parquet.parts").exists()


def test_assembling_with_a_part_missing_is_refused(tmp_path: Path) -> None:
    from featurizer.checkpoint._parquet_sink import SegmentedParquetSink

    sink = SegmentedParquetSink(tmp_path / "out.parquet")
    sink.start_fresh()
    for number in (1, 2):
        sink.write_row({"timestamp": float(number)})
        sink.cut(number)
        sink.publish(number, 0)
    (tmp_path / "out.parquet.parts" / "00000001.parquet").unlink()
    with pytest.raises(
        CheckpointError, match=r"its parts hold 1 rows, the checkpoints published 2"
    ):
        sink.close(ok=True)
    assert not (tmp_path / "out.parquet").exists()
