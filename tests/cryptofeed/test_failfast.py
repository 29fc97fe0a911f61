"""An exchange that is never reachable is an error, reported in one line, in bounded time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from featurizer_cryptofeed import CryptofeedEventEmitter

from featurizer import EmitterError
from tests.cryptofeed.fake_binance import FakeBinance, generate_script, wait_until
from tests.cryptofeed.support import subscribe

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "binance.yaml"


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_websocket_is_a_failure_within_the_connect_timeout(
    fake_exchange: Callable[..., FakeBinance],
    make_emitter: Callable[..., CryptofeedEventEmitter],
) -> None:
    fake = fake_exchange(generate_script(1, ("BTC-USDT",), 10))
    address = f"wss://127.0.0.1:{closed_port()}"
    options = fake.emitter_options(cryptofeed_connect_timeout=1.0)
    options["cryptofeed_endpoints"]["BINANCE"]["websocket"] = address
    emitter = make_emitter(options)
    received = subscribe(emitter, ("trades", "l2_book"), ("BTC-USDT",))
    started = time.monotonic()
    emitter.start()
    assert wait_until(lambda: emitter.failure() is not None, 10)
    elapsed = time.monotonic() - started
    failure = emitter.failure()
    assert isinstance(failure, EmitterError)
    assert f"could not connect to BINANCE at {address}/stream within 1 s" in str(failure)
    assert "ConnectionRefusedError" in str(failure) or "Connect call failed" in str(failure)
    assert 0.9 <= elapsed < 5.0
    assert emitter.stats().exchange("BINANCE").connect_failures >= 1
    assert all(events == [] for events in received.values())


def test_featurizer_run_against_an_unreachable_exchange_exits_1_with_one_line(
    fake_exchange: Callable[..., FakeBinance], tmp_path: Path
) -> None:
    fake = fake_exchange(generate_script(1, ("BTC-USDT",), 10))
    env = dict(os.environ)
    env.update(fake.environ())
    port = closed_port()
    env["FEATURIZER_CRYPTOFEED_BINANCE_WEBSOCKET"] = f"wss://127.0.0.1:{port}"
    env["FEATURIZER_CRYPTOFEED_CONNECT_TIMEOUT"] = "2"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", "run", str(EXAMPLE), "--duration", "20"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"featurizer: error: cryptofeed emitter: could not connect to BINANCE at "
        f"wss://127.0.0.1:{port}/stream within 2 s"
    ), lines[0]
    assert "Traceback" not in result.stderr
    assert elapsed < 15, elapsed


def test_a_run_shorter_than_the_connect_timeout_still_fails_when_nothing_connected(
    fake_exchange: Callable[..., FakeBinance], tmp_path: Path
) -> None:
    fake = fake_exchange(generate_script(1, ("BTC-USDT",), 10))
    env = dict(os.environ)
    env.update(fake.environ())
    port = closed_port()
    env["FEATURIZER_CRYPTOFEED_BINANCE_WEBSOCKET"] = f"wss://127.0.0.1:{port}"
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", "run", str(EXAMPLE), "--duration", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"featurizer: error: cryptofeed emitter: could not connect to BINANCE at "
        f"wss://127.0.0.1:{port}/stream before the emitter was stopped"
    ), lines[0]


def test_stopping_before_any_attempt_failed_is_not_a_failure(
    fake_exchange: Callable[..., FakeBinance],
    make_emitter: Callable[..., CryptofeedEventEmitter],
) -> None:
    fake = fake_exchange(generate_script(1, ("BTC-USDT",), 10))
    emitter = make_emitter(fake.emitter_options())
    subscribe(emitter, ("trades",), ("BTC-USDT",))
    emitter.start()
    assert wait_until(lambda: emitter.stats().exchange("BINANCE").connects == 1, 10)
    emitter.stop()
    assert emitter.failure() is None


def test_the_connect_timeout_can_be_given_on_the_command_line(
    fake_exchange: Callable[..., FakeBinance], tmp_path: Path
) -> None:
    fake = fake_exchange(generate_script(1, ("BTC-USDT",), 10))
    env = dict(os.environ)
    env.update(fake.environ())
    port = closed_port()
    env["FEATURIZER_CRYPTOFEED_BINANCE_WEBSOCKET"] = f"wss://127.0.0.1:{port}"
    command = [sys.executable, "-m", "featurizer", "run", str(EXAMPLE), "--duration", "20"]
    result = subprocess.run(
        [*command, "--emitter-option", "cryptofeed_connect_timeout=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1
    assert f"wss://127.0.0.1:{port}/stream within 1 s" in result.stderr
