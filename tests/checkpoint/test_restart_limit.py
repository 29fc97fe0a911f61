"""``--max-restarts N`` bounds the worker restarts without a checkpoint committed in between,
counted across driver processes (kept in the checkpoint directory): a worker that fails before
every commit ends the run even when the driver is started again; progress starts the count
again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurizer.checkpoint._restarts import RESTARTS_FILE, RestartHistory
from tests.checkpoint.checkpoint_support import assert_ok, featurizer, write_config

pytest.importorskip("featurizer_synthetic")

ALWAYS = "worker-event-always:1000@0"
"""Worker 0 dies at its 1,000th event in every incarnation, well before the first periodic
checkpoint (every 10 s): none can ever commit."""


def _run(tmp: Path, *extra: str, fault: str | None = None) -> Any:
    config = tmp / "config.yaml"
    if not config.exists():
        write_config(tmp)
    return featurizer(
        "run",
        str(config),
        "--scaler",
        "local",
        "--workers",
        "2",
        "--max-events",
        "3000",
        "--checkpoint",
        str(tmp / "ck"),
        "--checkpoint-every",
        "10s",
        "--out",
        str(tmp / "out.jsonl"),
        "--max-restarts",
        "2",
        *extra,
        fault=fault,
    )


def test_the_limit_holds_across_driver_processes_and_progress_resets_it(tmp_path: Path) -> None:
    first = _run(tmp_path, fault=ALWAYS)
    assert first.returncode == 1, first.stderr[-2000:]
    assert "restart 2 of at most 2" in first.stderr
    assert (
        "already restarted 2 time(s) without a checkpoint committed in between"
        in (first.stderr.strip().splitlines()[-1])
    )
    # the driver started again (systemd, a crash loop): no third restart
    second = _run(tmp_path, fault=ALWAYS)
    assert second.returncode == 1, second.stderr[-2000:]
    assert "restart 1 of at most" not in second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("featurizer: error: worker 0 failed and the run was already restarted")
    assert "2 time(s) without a checkpoint committed in between" in last
    info = featurizer("checkpoint", "info", str(tmp_path / "ck"))
    assert_ok(info)
    assert "worker restarts since the last commit: 2" in info.stdout
    assert "UTC  worker 0: " in info.stdout  # the failures, newest first
    # fixed: the run commits checkpoints again, which ends the streak
    resumed = _run(tmp_path)
    assert_ok(resumed)
    assert RestartHistory(tmp_path / "ck").streak == 0
    info = featurizer("checkpoint", "info", str(tmp_path / "ck"))
    assert "worker restarts since the last commit: 0" in info.stdout


def test_fresh_forgets_the_restarts(tmp_path: Path) -> None:
    assert _run(tmp_path, fault=ALWAYS).returncode == 1
    assert RestartHistory(tmp_path / "ck").streak == 2
    assert_ok(_run(tmp_path, "--fresh"))
    assert not (tmp_path / "ck" / RESTARTS_FILE).exists()


@given(
    steps=st.lists(st.sampled_from(["fail", "commit", "reopen"]), max_size=30),
)
def test_the_streak_counts_failures_since_the_last_commit_across_processes(
    steps: list[str],
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as name:
        history = RestartHistory(Path(name))
        expected = 0
        for step in steps:
            if step == "fail":
                expected += 1
                assert history.record(1, "died") == expected
            elif step == "commit":
                history.committed()
                expected = 0
            else:  # another driver process reads the directory
                history = RestartHistory(Path(name))
            assert history.streak == expected
        assert len(RestartHistory(Path(name)).failures) == min(5, steps.count("fail"))


def test_a_damaged_history_is_one_clear_error(tmp_path: Path) -> None:
    from featurizer.checkpoint import CheckpointError

    (tmp_path / RESTARTS_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="delete it to count the worker restarts from 0"):
        RestartHistory(tmp_path)
