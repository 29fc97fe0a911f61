"""Helpers of the checkpoint tests: a config over every source kind, the real CLI in a
subprocess (killed by the fault hook), and the output of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from featurizer.checkpoint import FAULT_ENV


def entry(name: str, definition: str, symbol: str, **params: Any) -> dict[str, Any]:
    """A config entry over the synthetic exchange."""
    return {
        "name": name,
        "feature_definition": definition,
        "params": {**params, "data_source": {"exchange": "synthetic", "symbol": symbol}},
    }


CONFIG = {
    "feature_configs": [
        entry("mid", "mid_price", "BTC-USDT"),
        entry("vol", "volatility", "BTC-USDT", window="3s"),
        entry("tvi", "trade_volume_imbalance", "ETH-USDT", window="2s"),
        entry("bars", "ohlcv", "BTC-USDT", interval="1s"),
        entry("book", "l2_snapshot", "ETH-USDT", depth=3),
        entry("obi", "order_book_imbalance", "ETH-USDT", depth=2),
    ]
}
"""Ticker, trades and L2 book sources of two instruments: windows, bars, a book, tie order."""

LOGGED = {**CONFIG, "checkpoint": {"dir": "ignored", "log_input": True}}
"""The same, with ``log_input: true``: the synthetic input is logged although the emitter
replays it (``--checkpoint DIR`` replaces the section's directory)."""

EVENTS = 6_000
EVERY = 1_000
TIMEOUT = 120.0


def write_config(
    directory: Path, config: dict[str, Any] | None = None, name: str = "config.yaml"
) -> Path:
    """Write ``config`` (default :data:`CONFIG`) as ``directory/NAME``."""
    path = directory / name
    path.write_text(yaml.safe_dump(config or CONFIG), encoding="utf-8")
    return path


def featurizer(
    *args: str, fault: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m featurizer.cli``) in a subprocess, bounded in time.

    :param fault: arm the fault hook (``POINT[:N]``): the process SIGKILLs itself there.
    """
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from featurizer.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=cwd,
        check=False,
    )


def checkpointed_run(
    config: Path,
    directory: Path,
    out: Path,
    *,
    fault: str | None = None,
    events: int = EVENTS,
    every: int | str = EVERY,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``featurizer run CONFIG --checkpoint DIR --out OUT`` over the synthetic market."""
    return featurizer(
        "run",
        str(config),
        "--max-events",
        str(events),
        "--out",
        str(out),
        "--checkpoint",
        str(directory),
        "--checkpoint-every",
        str(every),
        *extra,
        fault=fault,
    )


def assert_killed(result: subprocess.CompletedProcess[str]) -> None:
    """The process died of SIGKILL (the fault hook fired)."""
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-2000:])


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    """The process exited 0."""
    assert result.returncode == 0, result.stderr[-3000:]
