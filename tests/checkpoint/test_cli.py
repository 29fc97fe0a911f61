"""The user surface: resuming only into the same run (errors naming what changed), --fresh,
options that cannot be checkpointed, ``featurizer checkpoint ls|info|verify``, damaged
checkpoints, and the same from Python."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from featurizer import FeaturizerConfig
from featurizer._runner import RunOptions
from featurizer.checkpoint import (
    CheckpointMismatchError,
    CheckpointSettings,
    CorruptCheckpointError,
    read_checkpoint,
    run_checkpointed,
    verify_directory,
)
from featurizer.checkpoint._format import checkpoint_paths
from featurizer.cli import main
from tests.checkpoint.checkpoint_support import CONFIG, LOGGED, entry, write_config

pytest.importorskip("featurizer_synthetic")

EVENTS = "3000"


def _run(
    capsys: pytest.CaptureFixture[str], config: Path, *extra: str, events: str = EVENTS
) -> tuple[int, str]:
    code = main(["run", str(config), "--max-events", events, *extra])
    return code, capsys.readouterr().err


def _checkpointed(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--out",
        str(tmp_path / "out.jsonl"),
        "--checkpoint",
        str(tmp_path / "ck"),
        "--checkpoint-every",
        "1000",
        *extra,
    ]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def test_a_checkpointed_run_publishes_what_a_plain_run_writes(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, config, "--out", str(tmp_path / "plain.jsonl"))[0] == 0
    code, err = _run(capsys, config, *_checkpointed(tmp_path))
    assert code == 0
    assert "checkpoints: 4 committed" in err and "restarts: 0" in err
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("add", "features added: 'extra'"),
        ("remove", "features removed: 'l2_snapshot(l2_book.synthetic.ETH-USDT)', 'obi'"),
        ("params", "features added: 'vol'; features removed: 'vol'"),
        ("seed", "option seed was 0, now 7"),
    ],
)
def test_resuming_into_a_changed_run_is_refused_naming_the_change(
    change: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_config(tmp_path)
    assert _run(capsys, first, *_checkpointed(tmp_path))[0] == 0
    changed = copy.deepcopy(CONFIG)
    extra: tuple[str, ...] = ()
    if change == "add":
        changed["feature_configs"].append(entry("extra", "mid_price", "ETH-USDT"))
    elif change == "remove":
        changed["feature_configs"].pop()
    elif change == "params":
        changed["feature_configs"][1]["params"]["window"] = "4s"
    else:
        extra = ("--seed", "7")
    other = tmp_path / "other"
    other.mkdir()
    code, err = _run(capsys, write_config(other, changed), *_checkpointed(tmp_path), *extra)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("featurizer: error: checkpoint directory") and message in line
    assert "--fresh" in line


def test_fresh_starts_over(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, config, *_checkpointed(tmp_path))[0] == 0
    assert _run(capsys, config, "--seed", "7", "--out", str(tmp_path / "plain.jsonl"))[0] == 0
    code, err = _run(capsys, config, *_checkpointed(tmp_path, "--seed", "7", "--fresh"))
    assert code == 0 and "restarts: 0" in err
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--checkpoint", "ck"), "standard output cannot take a row back"),
        (("--checkpoint", "ck", "--out", "x.csv"), "'x.csv' is csv; use a .jsonl or .parquet"),
        (
            ("--checkpoint", "ck", "--scaler", "local", "--workers", "2"),
            "received stdout, which cannot take a row back",
        ),
        (("--fresh",), "--fresh needs --checkpoint DIR"),
        (("--checkpoint-every", "5s"), "--checkpoint-every needs --checkpoint DIR"),
    ],
)
def test_options_that_cannot_be_checkpointed_are_one_line_errors(
    arguments: tuple[str, ...],
    message: str,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, config, *arguments)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert message in line, line
    assert not (tmp_path / "ck").exists()


def test_a_bad_interval_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(config), "--checkpoint", "ck", "--checkpoint-every", "soon"])
    assert exit_info.value.code == 2
    assert "expected a duration such as '10s' or a number of input events" in (
        capsys.readouterr().err
    )


def test_the_config_section_checkpoints_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {**CONFIG, "checkpoint": {"dir": "state", "every": 1000}})
    code, err = _run(capsys, config, "--out", str(tmp_path / "out.jsonl"))
    assert code == 0 and "checkpoints: 4 committed" in err
    assert checkpoint_paths(tmp_path / "state")


def test_checkpoint_commands(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, config, *_checkpointed(tmp_path))[0] == 0
    directory = str(tmp_path / "ck")
    assert main(["checkpoint", "ls", directory]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].endswith("ck: 2 checkpoint(s)")
    assert "events        3,000" in listing[-1] and listing[-1].endswith("final")
    assert main(["checkpoint", "info", directory]) == 0
    info = capsys.readouterr().out
    assert "checkpoint 4 (final)" in info and "events in: 3,000" in info
    assert "ticker.synthetic.BTC-USDT" in info and "    obi (" in info
    assert main(["checkpoint", "verify", directory]) == 0
    assert "ok: 2 checkpoint(s), resumes from checkpoint 4; 0 problem(s)" in capsys.readouterr().out
    assert main(["checkpoint", "info", directory, "--id", "9"]) == 1
    assert "has no checkpoint 9 (checkpoints: 3, 4)" in capsys.readouterr().err
    assert main(["checkpoint", "ls", str(tmp_path / "nowhere")]) == 1
    assert "is not a checkpoint directory" in capsys.readouterr().err


@pytest.mark.parametrize("log_input", [None, True])
def test_damaged_checkpoints_are_found_and_skipped_when_resuming(
    log_input: bool | None,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _run(capsys, config, "--out", str(tmp_path / "plain.jsonl"))[0] == 0
    if log_input:  # the older cut's tail comes from the log, else from the emitter again
        config = write_config(tmp_path, LOGGED, "logged.yaml")
    assert _run(capsys, config, *_checkpointed(tmp_path), events="2500")[0] == 0
    _older, newest = checkpoint_paths(tmp_path / "ck")
    data = bytearray(newest.read_bytes())
    data[-10] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="state checksum mismatch"):
        read_checkpoint(newest)
    report = verify_directory(tmp_path / "ck")
    assert not report.ok and str(newest) in report.problems[0]
    assert main(["checkpoint", "verify", str(tmp_path / "ck")]) == 1
    assert "DAMAGED" in capsys.readouterr().out
    # Resuming skips it (with an error in the log) and continues from the older cut.
    code, err = _run(capsys, config, *_checkpointed(tmp_path))
    assert code == 0 and f"replayed: {500 if log_input else 0} events" in err
    assert f"skipping a damaged checkpoint: checkpoint '{newest}'" in caplog.text
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


def test_an_unknown_format_version_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, config, *_checkpointed(tmp_path))[0] == 0
    for path in checkpoint_paths(tmp_path / "ck"):
        path.write_bytes(
            path.read_bytes().replace(b"FEATURIZER-CHECKPOINT 1", b"FEATURIZER-CHECKPOINT 9", 1)
        )
    code, err = _run(capsys, config, *_checkpointed(tmp_path))
    assert code == 1
    assert "has format version '9'; this featurizer reads version 1" in err.strip().splitlines()[-1]


def test_the_same_from_python(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    options = RunOptions(emitter="synthetic", max_events=2_000)
    settings = CheckpointSettings.from_every(tmp_path / "ck", 500)
    summary, checkpointer = run_checkpointed(config, options, tmp_path / "out.jsonl", settings)
    assert summary.events_in == 2_000 and checkpointer.metrics.checkpoints == 5
    assert checkpointer.sink.rows == len((tmp_path / "out.jsonl").read_bytes().splitlines())
    with pytest.raises(CheckpointMismatchError, match="option seed was 0, now 1"):
        run_checkpointed(
            config,
            RunOptions(emitter="synthetic", max_events=2_000, seed=1),
            tmp_path / "out.jsonl",
            settings,
        )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"every": "5s"}, "checkpoint.dir: needs 'dir'"),
        ({"dir": "x", "often": 1}, "checkpoint: unknown field(s) 'often'"),
        ({"dir": "x", "every": "soon"}, "checkpoint.every: expected a duration such as '10s'"),
        ({"dir": "x", "every": 0}, "checkpoint.every: expected a positive number of events"),
        ({"dir": "x", "log_input": False}, "checkpoint.log_input: expected true (always log"),
        ([1, 2], "checkpoint: expected a directory or a mapping"),
    ],
)
def test_a_bad_checkpoint_section_is_an_error_naming_the_field(
    section: object, message: str, tmp_path: Path
) -> None:
    from featurizer import ConfigError

    path = write_config(tmp_path, {**CONFIG, "checkpoint": section})
    with pytest.raises(ConfigError) as error:
        FeaturizerConfig.from_yaml(path)
    assert str(error.value).startswith(f"{path}: {message}"), str(error.value)


def test_one_run_per_directory(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from featurizer.checkpoint._lock import DirectoryLock

    held = DirectoryLock(tmp_path / "ck")
    held.acquire()  # another run holds the directory
    try:
        code, err = _run(capsys, config, *_checkpointed(tmp_path))
    finally:
        held.release()
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "is in use by another run (pid " in line and "one run per directory" in line
    assert not (tmp_path / "out.jsonl").exists()
    assert _run(capsys, config, *_checkpointed(tmp_path))[0] == 0  # released: it runs
