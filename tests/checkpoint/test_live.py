"""A checkpointed live run against the fake exchange, killed with SIGKILL and restarted: the
output published before the crash is kept, the downtime is a gap event, and the whole output
is what a replay of the recorded input log computes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("cryptofeed", reason="the live test needs cryptofeed")
pytest.importorskip("cryptography", reason="the fake exchange's certificate needs cryptography")

from featurizer import (
    Event,
    Feature,
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
)
from featurizer._sinks import _json_default
from featurizer.checkpoint import FAULT_ENV, inspect_directory
from featurizer.checkpoint._log import InputLog
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.tls import make_certificate


def _entry(name: str, definition: str, **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "feature_definition": definition,
        "params": {**params, "data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"}},
    }


CONFIG = {
    "feature_configs": [
        _entry("mid", "mid_price"),
        _entry("tvi", "trade_volume_imbalance", window="2s"),
        _entry("book", "l2_snapshot", depth=3),
        _entry("gaps", "feed_gaps"),
    ]
}
STEPS = 3_000
KILL_AT = 700
TIMEOUT = 60.0


def _command(config: Path, tmp_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "featurizer",
        "run",
        str(config),
        "--no-combine",
        "--duration",
        str(TIMEOUT),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--checkpoint",
        str(tmp_path / "ck"),
        "--checkpoint-every",
        "150",
    ]


def _replay_of_the_log(config: FeaturizerConfig, directory: Path) -> bytes:
    """The rows a fresh graph computes from the input log, in the order it was consumed."""
    graph = FeatureStreamGraph(construct_features_from_configs(config))
    encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
    lines: list[str] = []

    def write(feature: Feature, event: Event) -> None:
        lines.append(encode({"feature": feature.name, **event}) + "\n")

    for output in graph.get_outs():
        graph.set_callback(output, write)
    log = InputLog(directory / "log", graph.get_ins())
    try:
        for source, event in log.tail({}):
            graph.emit_named_data_event((source, event))
    finally:
        log.close()
    return "".join(lines).encode()


def test_a_killed_live_run_keeps_its_output_and_reports_the_downtime_as_a_gap(
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "live.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    certificate = make_certificate(tmp_path)
    command = _command(config_path, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    now_ms = int(time.time() * 1000)
    # The exchange goes on while the run is down: what it sends then is lost (the fake even
    # sends it to the dead connection). After the restart the run connects to the exchange
    # as it is then: a second fake with the market's later messages.
    before_crash = generate_script(17, ("BTC-USDT",), STEPS, start_ms=now_ms - 60_000)
    with FakeBinance(before_crash, certificate, rate=2_000.0) as fake:
        killed = subprocess.run(
            command,
            env={**env, **fake.environ(), FAULT_ENV: f"event:{KILL_AT}"},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    out = tmp_path / "out.jsonl"
    before = out.read_bytes()
    assert before, "a checkpoint was published before the kill"
    committed = inspect_directory(tmp_path / "ck").latest
    assert committed is not None and committed.output_bytes == len(before)
    assert committed.input_logged, "a live feed's events exist nowhere else: they are logged"
    after_restart = generate_script(18, ("BTC-USDT",), STEPS, start_ms=now_ms)
    with FakeBinance(after_restart, certificate, rate=2_000.0) as fake:
        resumed = subprocess.Popen(
            command,
            env={**env, **fake.environ()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            progressed = False
            while not progressed and time.monotonic() < deadline and resumed.poll() is None:
                latest = inspect_directory(tmp_path / "ck").latest
                progressed = latest is not None and latest.events_in > committed.events_in + 1_000
                time.sleep(0.05)
            resumed.send_signal(signal.SIGINT)
            _, stderr = resumed.communicate(timeout=TIMEOUT)
            assert progressed, f"the resumed run did not get past the gap: {stderr[-4000:]}"
        finally:
            if resumed.poll() is None:
                resumed.kill()
                resumed.communicate()
    assert resumed.returncode == 130, stderr[-3000:]
    assert "restarts: 1" in stderr and "gaps: " in stderr
    assert "lost data while the run was down" in stderr
    after = out.read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    new_rows = [json.loads(line) for line in after[len(before) :].splitlines()]
    gap_rows = [row for row in new_rows if row["feature"] == "gaps"]
    assert gap_rows and all(row["reason"] == "disconnect" for row in gap_rows)
    assert {row["channel"] for row in gap_rows} <= {"ticker", "trades", "l2_book"}
    config = FeaturizerConfig.from_dict(CONFIG)
    replayed = _replay_of_the_log(config, tmp_path / "ck").splitlines()
    published = after.splitlines()
    first = next(
        (i for i, pair in enumerate(zip(published, replayed, strict=False)) if pair[0] != pair[1]),
        None,
    )
    assert (first, len(published)) == (None, len(replayed)), (
        f"row {first} of {len(published)} published ({len(before.splitlines())} before the "
        f"kill) differs from the replay of the log ({len(replayed)} rows): "
        f"{published[first] if first is not None else ''!r} != "
        f"{replayed[first] if first is not None else ''!r}"
    )
