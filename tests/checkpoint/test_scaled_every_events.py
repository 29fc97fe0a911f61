"""A scaled run checkpoints about every N input events (``--checkpoint-every N``): the
workers report their consumed counts with their batches and heartbeats, the driver asks for a
barrier when the total crosses the next multiple of N. The output is still exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurizer import FeaturizerConfig, RunOptions
from featurizer._sinks import JsonLinesSink
from featurizer.checkpoint import CheckpointSettings, make_scaled_checkpointer
from featurizer.scaling import run_scaled
from tests.checkpoint.checkpoint_support import (
    CONFIG,
    assert_killed,
    assert_ok,
    featurizer,
    write_config,
)

pytest.importorskip("featurizer_synthetic")

EVENTS = 6_000
EVERY = 3_000
PACE = 20.0
"""The synthetic market replayed at 20 times its event-time speed: a run of a few seconds,
long enough for the driver to see the counts cross several multiples while the input goes."""


def _options(pace: float | str) -> RunOptions:
    return RunOptions(max_events=EVENTS, seed=3, pace=pace)


def test_checkpoints_come_after_every_multiple_of_the_interval(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    plain = tmp_path / "plain.jsonl"
    run_scaled(config, _options("max"), JsonLinesSink(plain), workers=2)
    settings = CheckpointSettings.from_every(tmp_path / "ck", str(EVERY))
    out = tmp_path / "out.jsonl"
    checkpointer = make_scaled_checkpointer(settings, out, _options(PACE))
    committed: list[int] = []
    commit = checkpointer.commit

    def recording(*args: object, **kwargs: object) -> object:
        info = commit(*args, **kwargs)  # type: ignore[arg-type]
        committed.append(info.events_in)
        return info

    checkpointer.commit = recording  # type: ignore[method-assign]
    run_scaled(config, _options(PACE), checkpointer.sink, workers=2, checkpoint=checkpointer)
    assert out.read_bytes() == plain.read_bytes()
    periodic, final = committed[:-1], committed[-1]
    assert final == 2 * EVENTS
    # the k-th periodic checkpoint is asked for once the total crossed k * EVERY
    assert len(periodic) >= 2, committed
    for k, events in enumerate(periodic, start=1):
        assert events >= k * EVERY, committed
    assert periodic == sorted(periodic)


def test_killed_at_an_event_counted_checkpoint_then_restarted(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    scaled = ("--scaler", "local", "--workers", "2", "--max-events", str(EVENTS), "--seed", "3")
    plain = tmp_path / "plain.jsonl"
    assert_ok(featurizer("run", str(config), *scaled, "-q", "--out", str(plain)))
    command = (
        "run",
        str(config),
        *scaled,
        "-q",
        "--pace",
        str(PACE),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--checkpoint",
        str(tmp_path / "ck"),
        "--checkpoint-every",
        str(EVERY),
    )
    assert_killed(featurizer(*command, fault="checkpoint-commit:2"))
    assert_ok(featurizer(*command))
    assert (tmp_path / "out.jsonl").read_bytes() == plain.read_bytes()
