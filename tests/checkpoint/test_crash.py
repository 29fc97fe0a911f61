"""A checkpointed ``featurizer run`` SIGKILLed at any phase, restarted (twice in a row for
some), publishes exactly the output of an uninterrupted run: same bytes, so same rows, order
and floats, no duplicate, no missing row.

The synthetic emitter replays its input, so these runs keep no input log unless their config
says ``log_input: true``: the phase and hypothesis tests attack both ways, the recovery and
rotation tests need the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer.checkpoint import inspect_directory, verify_directory
from tests.checkpoint.checkpoint_support import (
    EVENTS,
    EVERY,
    LOGGED,
    assert_killed,
    assert_ok,
    checkpointed_run,
    featurizer,
    write_config,
)

pytest.importorskip("featurizer_synthetic")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The config, and the output of an uninterrupted run without checkpoints."""
    directory = tmp_path_factory.mktemp("reference")
    config = write_config(directory)
    out = directory / "plain.jsonl"
    result = featurizer("run", str(config), "--max-events", str(EVENTS), "--out", str(out))
    assert_ok(result)
    data = out.read_bytes()
    assert data.count(b"\n") > EVENTS // 2
    return config, data


@pytest.fixture(scope="module")
def logged(reference: tuple[Path, bytes]) -> Path:
    """The same config with ``log_input: true``."""
    return write_config(reference[0].parent, LOGGED, "logged.yaml")


def _config(log_input: str, reference: tuple[Path, bytes], logged: Path) -> Path:
    return logged if log_input == "always" else reference[0]


def _assert_logging(directory: Path, log_input: str) -> None:
    """The newest checkpoint says whether the input was logged, and the log is there or not."""
    from featurizer.checkpoint._log import log_roots

    latest = inspect_directory(directory).latest
    assert latest is not None
    assert latest.input_logged is (log_input == "always")
    assert bool(log_roots(directory / "log")) is (log_input == "always")


def _published(out: Path) -> bytes:
    return out.read_bytes() if out.exists() else b""


def _assert_prefix(out: Path, expected: bytes, directory: Path | None = None) -> None:
    """What a killed run left published is a prefix of the final output, holding every row
    of the newest checkpoint; it ends at a row, unless the kill interrupted a publish (then
    the rest of that checkpoint's rows is completed when the run resumes)."""
    published = _published(out)
    assert expected.startswith(published)
    latest = None if directory is None else inspect_directory(directory).latest
    if latest is not None:
        assert len(published) >= latest.output_bytes - latest.segment_bytes
        assert expected[: latest.output_bytes].endswith(b"\n")
        if len(published) < latest.output_bytes:
            return  # a publish was interrupted
    assert not published or published.endswith(b"\n")


@pytest.mark.parametrize(
    "fault",
    [
        "event:2500",  # between two events, after 2 checkpoints
        "event:300",  # before the first checkpoint: recovered from the log alone
        "dispatch:3700",  # logged, not yet computed
        "snapshot:3",  # state taken and segment written, checkpoint not written
        "checkpoint-commit:2",  # checkpoint fsynced under its temporary name, not renamed
        "publish:4",  # committed, segment half appended to the output
    ],
)
@pytest.mark.parametrize("log_input", ["automatic", "always"])
def test_killed_at_a_phase_then_restarted_publishes_the_uninterrupted_output(
    fault: str, log_input: str, reference: tuple[Path, bytes], logged: Path, tmp_path: Path
) -> None:
    _, expected = reference
    config = _config(log_input, reference, logged)
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    assert_killed(checkpointed_run(config, directory, out, fault=fault))
    _assert_prefix(out, expected, directory)
    assert verify_directory(directory).ok
    resumed = checkpointed_run(config, directory, out)
    assert_ok(resumed)
    assert "restarts: 1" in resumed.stderr
    assert _published(out) == expected
    assert inspect_directory(directory).checkpoints[-1].final
    _assert_logging(directory, log_input)


def test_killed_twice_in_a_row_and_during_recovery(
    reference: tuple[Path, bytes], logged: Path, tmp_path: Path
) -> None:
    _, expected = reference
    config = logged
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    assert_killed(checkpointed_run(config, directory, out, fault="event:2700"))
    # Resumed from the cut at 2,000; its second checkpoint (at 4,000) dies before its commit,
    # with the log synced: 1,000 acknowledged events follow the last committed cut.
    assert_killed(checkpointed_run(config, directory, out, fault="checkpoint-commit:2"))
    _assert_prefix(out, expected, directory)
    assert inspect_directory(directory).checkpoints[-1].events_in == 3 * EVERY
    # The next process dies while replaying them, the one after replays them all.
    assert_killed(checkpointed_run(config, directory, out, fault="recovery:50"))
    _assert_prefix(out, expected, directory)
    resumed = checkpointed_run(config, directory, out)
    assert_ok(resumed)
    assert f"replayed: {EVERY:,} events" in resumed.stderr
    assert "restarts: 3" in resumed.stderr
    assert _published(out) == expected


def test_a_finished_run_resumed_changes_nothing(
    reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    config, expected = reference
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    assert_ok(checkpointed_run(config, directory, out))
    assert _published(out) == expected
    again = checkpointed_run(config, directory, out)
    assert_ok(again)
    assert _published(out) == expected
    assert "replayed: 0 events" in again.stderr


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kills=st.lists(
        st.tuples(
            st.sampled_from(["event", "dispatch", "snapshot", "publish"]),
            st.integers(1, EVENTS - 1),
        ),
        min_size=1,
        max_size=2,
    ),
    every=st.sampled_from([EVERY, 1_700]),
)
@pytest.mark.parametrize("log_input", ["automatic", "always"])
def test_hypothesis_chosen_kill_points(
    log_input: str,
    kills: list[tuple[str, int]],
    every: int,
    reference: tuple[Path, bytes],
    logged: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _, expected = reference
    config = _config(log_input, reference, logged)
    tmp = tmp_path_factory.mktemp("kills")
    out, directory = tmp / "out.jsonl", tmp / "ck"
    for point, drawn in kills:
        # per-event points count events; the others count this process's checkpoints
        n = 1 + drawn % (EVENTS // every) if point in ("snapshot", "publish") else drawn
        result = checkpointed_run(config, directory, out, fault=f"{point}:{n}", every=every)
        if result.returncode == 0:  # the point was never reached: the run finished
            break
        assert_killed(result)
        _assert_prefix(out, expected, directory)
    assert_ok(checkpointed_run(config, directory, out, every=every))
    assert _published(out) == expected
    _assert_logging(directory, log_input)


def test_the_log_rotates_and_consumed_roots_are_deleted_across_crashes(
    reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    import yaml

    from featurizer.checkpoint._log import log_roots, read_pruned
    from tests.checkpoint.checkpoint_support import CONFIG

    _, expected = reference
    config = tmp_path / "rotating.yaml"
    section = {"dir": "ignored", "every": EVERY, "log_rotate": 1_500, "log_input": True}
    config.write_text(yaml.safe_dump({**CONFIG, "checkpoint": section}), encoding="utf-8")
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    assert_killed(checkpointed_run(config, directory, out, fault="event:3500"))
    _assert_prefix(out, expected, directory)
    assert_killed(checkpointed_run(config, directory, out, fault="dispatch:1200"))
    assert verify_directory(directory).ok
    resumed = checkpointed_run(config, directory, out)
    assert_ok(resumed)
    assert _published(out) == expected
    pruned, counts = read_pruned(directory / "log")
    assert pruned and sum(counts.values()) >= 2 * 1_500
    assert len(log_roots(directory / "log")) <= 3
    assert not any((directory / "log" / name).exists() for name in pruned)
    assert verify_directory(directory).ok


def test_a_synthetic_run_keeps_no_input_log_and_says_so(
    reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    config, expected = reference
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    assert_ok(checkpointed_run(config, directory, out))
    assert _published(out) == expected
    assert not (directory / "log").exists()
    assert not any(p.suffix == ".parquet" for p in directory.rglob("*"))
    assert not inspect_directory(directory).latest.input_logged  # type: ignore[union-attr]
    report = verify_directory(directory)
    assert report.ok and "the run keeps no input log" in report.describe()
    info = featurizer("checkpoint", "info", str(directory))
    assert_ok(info)
    assert "input log: no (every emitter replays its input" in info.stdout


def test_switching_log_input_between_restarts_keeps_the_output(
    reference: tuple[Path, bytes], logged: Path, tmp_path: Path
) -> None:
    """A logged run resumed without a log, then with one again (the log then starts at the
    resumed cut), then killed while replaying that log, still publishes the same output."""
    config, expected = reference
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    assert_killed(checkpointed_run(logged, directory, out, fault="event:1500"))
    assert (directory / "log").is_dir()
    assert_killed(checkpointed_run(config, directory, out, fault="event:2500"))
    assert not (directory / "log").exists()
    assert_killed(checkpointed_run(logged, directory, out, fault="checkpoint-commit:2"))
    assert verify_directory(directory).ok
    assert_killed(checkpointed_run(logged, directory, out, fault="recovery:10"))
    resumed = checkpointed_run(logged, directory, out)
    assert_ok(resumed)
    assert f"replayed: {EVERY:,} events" in resumed.stderr
    assert _published(out) == expected
    assert verify_directory(directory).ok
