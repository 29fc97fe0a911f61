"""Fixtures for the cryptofeed emitter: a certificate, the fake exchange, emitters that stop.

Long soak tests are marked ``slow`` and run only with ``FEATURIZER_SLOW=1`` or a ``-m``
expression that selects them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("cryptofeed", reason="the cryptofeed emitter tests need cryptofeed")
pytest.importorskip("cryptography", reason="the fake exchange's certificate needs cryptography")

from featurizer_cryptofeed import CryptofeedEventEmitter

from tests.cryptofeed.fake_binance import FakeBinance, Script
from tests.cryptofeed.tls import SelfSignedCertificate, make_certificate

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this directory's ``slow`` tests unless FEATURIZER_SLOW=1 or ``-m`` selects them."""
    if os.environ.get("FEATURIZER_SLOW") == "1" or config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow soak test; run with FEATURIZER_SLOW=1 or -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None and _HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    """A self-signed certificate for 127.0.0.1 (the fake exchange's wss:// server)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fake_exchange(certificate: SelfSignedCertificate) -> Iterator[Callable[..., FakeBinance]]:
    """Start fake exchanges playing a script; every one is stopped at the end of the test."""
    started: list[FakeBinance] = []

    def start(script: Script, **kwargs: Any) -> FakeBinance:
        fake = FakeBinance(script, certificate, **kwargs).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def make_emitter() -> Iterator[Callable[..., CryptofeedEventEmitter]]:
    """Build emitters from run options; every one is stopped at the end of the test."""
    built: list[CryptofeedEventEmitter] = []

    def make(options: dict[str, Any]) -> CryptofeedEventEmitter:
        emitter = CryptofeedEventEmitter.from_options(options)
        built.append(emitter)
        return emitter

    yield make
    for emitter in built:
        emitter.stop()


@pytest.fixture
def no_thread_left() -> Iterator[Callable[[], set[threading.Thread]]]:
    """Returns the threads started since the test began that are still alive (the fake
    exchange's own thread excepted)."""
    before = set(threading.enumerate())

    def left() -> set[threading.Thread]:
        return {
            thread
            for thread in threading.enumerate()
            if thread not in before and thread.is_alive() and thread.name != "fake-binance"
        }

    yield left
