"""Discovery, registration, startup checks and options of the cryptofeed plugin."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from featurizer_cryptofeed import (
    FAMILIES,
    GENERIC,
    PINNED_EXCHANGES,
    BookTickerSource,
    CryptofeedEventEmitter,
    CryptofeedOptions,
    Endpoints,
    FeedGapsSource,
    family_of,
    supported_exchanges,
)

from featurizer import ConfigError, EmitterError, Feature, get_plugins
from featurizer._runner import assign_emitters
from featurizer.testing import ExampleTicker
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.support import source

ROOT = Path(__file__).resolve().parents[2]
Start = Callable[..., FakeBinance]
Make = Callable[..., CryptofeedEventEmitter]


def test_found_through_its_own_distributions_entry_point() -> None:
    plugins = get_plugins()
    info = {i.name: i for i in plugins.describe()}["cryptofeed"]
    assert info.distribution == "featurizer-cryptofeed"
    assert info.hooks == (
        "featurizer_register_data_source_definitions",
        "featurizer_register_emitters",
    )
    spec = plugins.emitters()["cryptofeed"]
    assert spec.emitter_class is CryptofeedEventEmitter
    assert spec.data_sources == ("ticker", "book_ticker", "trades", "l2_book", "feed_gaps")
    assert spec.is_default_for("l2_book", "binance") and spec.is_default_for("trades", "BINANCE_US")
    for exchange in ("COINBASE", "KRAKEN", "OKX", "BYBIT", "BITMEX", "DERIBIT", "GEMINI"):
        assert spec.is_default_for("trades", exchange), exchange
    assert not spec.is_default_for("ticker", "synthetic")
    assert plugins.data_source_definitions()["feed_gaps"] is FeedGapsSource
    assert plugins.data_source_definitions()["book_ticker"] is BookTickerSource


def test_every_exchange_is_derived_from_cryptofeed() -> None:
    from cryptofeed.exchanges import EXCHANGE_MAP

    assert set(PINNED_EXCHANGES) == set(EXCHANGE_MAP)
    served = supported_exchanges()
    for name, cls in EXCHANGE_MAP.items():
        channels = [c for c in ("ticker", "trades", "l2_book") if c in cls.websocket_channels]
        if not channels:
            assert name not in served
            continue
        support = served[name]
        assert support.load_feed_class() is cls
        assert support.channels == tuple(channels)
        assert ("ticker" in support.data_sources) == ("ticker" in channels)
        assert ("book_ticker" in support.data_sources) == (
            "ticker" in channels and support.family.ticker_sizes is not None
        )
    assert len(served) >= 40
    # every family names real cryptofeed exchanges
    for family in FAMILIES:
        assert set(family.exchanges) <= set(served), family.name
        assert family_of(family.exchanges[0]) is family
    assert family_of("GEMINI") is GENERIC


def test_plugins_verbose_lists_each_exchange_with_its_sources_and_gap_detection() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", "plugins", "--verbose"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for exchange, sources, gaps in (
        ("BINANCE", "ticker, book_ticker, trades, l2_book", "update ids"),
        ("KRAKEN", "ticker, book_ticker, trades, l2_book", "checksums"),
        ("COINBASE", "trades, l2_book", "dropped connections only"),
        ("DERIBIT", "ticker, book_ticker, trades, l2_book", "change ids"),
        ("GEMINI", "trades, l2_book", "dropped connections only"),
    ):
        (line,) = [li for li in lines if li.split()[:1] == [exchange]]
        assert sources in line and gaps in line, line


def test_the_runner_picks_it_by_the_exchange_param() -> None:
    plugins = get_plugins()
    live = source("ticker", "BTC-USDT")
    synthetic = Feature.create(live.definition, {"exchange": "synthetic", "symbol": "BTC-USDT"})
    plan = assign_emitters([live, synthetic], plugins.emitters(), None)
    assert plan == {"cryptofeed": [live], "synthetic": [synthetic]}


def test_discovery_does_not_import_cryptofeed_and_works_without_it() -> None:
    script = (
        "import sys\n"
        "sys.modules['cryptofeed'] = None  # as if it were not installed\n"
        "import featurizer_cryptofeed\n"
        "from featurizer import Feature, EmitterError\n"
        "(spec,) = featurizer_cryptofeed.featurizer_register_emitters()\n"
        "assert spec.name == 'cryptofeed'\n"
        "from featurizer_features import TradesSource\n"
        "emitter = featurizer_cryptofeed.CryptofeedEventEmitter()\n"
        "try:\n"
        "    emitter.register_callback(Feature.create(TradesSource, {'exchange': 'BINANCE', 'symbol': 'BTC-USDT'}), print)\n"
        "except EmitterError as error:\n"
        "    print(error)\n"
        "print(featurizer_cryptofeed.CryptofeedEventEmitter.describe_support())\n"
        "assert spec.exchanges == featurizer_cryptofeed.PINNED_EXCHANGES\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "needs cryptofeed==2.4.1" in result.stdout
        and "pip install featurizer-cryptofeed" in result.stdout
    )
    assert "(cryptofeed is not installed: pip install featurizer-cryptofeed)" in result.stdout
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, featurizer_cryptofeed; print('cryptofeed' in sys.modules)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plain.stdout.strip() == "False", plain.stderr


def test_an_unknown_exchange_lists_the_supported_ones() -> None:
    emitter = CryptofeedEventEmitter()
    with pytest.raises(
        EmitterError,
        match=r"exchange 'KRAKENN' \(did you mean 'KRAKEN'.*\); supported exchanges: ASCENDEX, ",
    ):
        emitter.register_callback(source("ticker", "BTC-USD", exchange="KRAKENN"), print)


@pytest.mark.parametrize(
    ("exchange", "channel", "hint"),
    [
        ("COINBASE", "ticker", "take mid and spread from the book: mid_price_l2"),
        ("BEQUANT", "book_ticker", "its ticker carries no sizes"),
        ("BITHUMB", "l2_book", "it serves trades, feed_gaps"),
    ],
)
def test_a_data_source_the_exchange_does_not_offer_says_what_it_serves(
    exchange: str, channel: str, hint: str
) -> None:
    # checked before any instrument is loaded: nothing connects
    emitter = CryptofeedEventEmitter()
    with pytest.raises(EmitterError, match=f"{exchange} does not serve '{channel}'.*{hint}"):
        emitter.register_callback(source(channel, "BTC-USD", exchange=exchange), print)


def test_an_unknown_data_source_lists_the_served_ones() -> None:
    emitter = CryptofeedEventEmitter()
    feature = Feature.create(ExampleTicker, {"exchange": "BINANCE", "symbol": "BTC-USDT"})
    with pytest.raises(
        EmitterError,
        match="serves data sources 'ticker', 'book_ticker', 'trades', 'l2_book', 'feed_gaps'",
    ):
        emitter.register_callback(feature, print)


def test_an_unknown_symbol_lists_the_valid_ones_and_nothing_connects(
    fake_exchange: Start, make_emitter: Make
) -> None:
    fake = fake_exchange(generate_script(61, ("BTC-USDT", "ETH-USDT"), 20))
    emitter = make_emitter(fake.emitter_options())
    emitter.register_callback(source("ticker", "BTC-USDT"), print)
    with pytest.raises(EmitterError) as raised:
        emitter.register_callback(source("trades", "ETH-USDC"), print)
    message = str(raised.value)
    assert "symbol 'ETH-USDC', which BINANCE does not list (did you mean 'ETH-USDT'" in message
    assert message.endswith("valid symbols: BTC-USDT, ETH-USDT")  # OLDUSDT is not trading
    assert fake.connections == 0


def test_unreachable_exchange_info_is_a_startup_error_naming_the_address(
    make_emitter: Make,
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    emitter = make_emitter(
        {
            "cryptofeed_endpoints": {"BINANCE": {"rest": f"http://127.0.0.1:{port}"}},
            "cryptofeed_http_timeout": 2,
        }
    )
    started = time.monotonic()
    with pytest.raises(
        EmitterError,
        match=rf"cannot load the instruments of BINANCE from http://127.0.0.1:{port}/api/v3/exchangeInfo: ConnectionError",
    ):
        emitter.register_callback(source("ticker", "BTC-USDT"), print)
    assert time.monotonic() - started < 5


def test_options_from_run_options_and_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {
        "FEATURIZER_CRYPTOFEED_BINANCE_WEBSOCKET": "wss://127.0.0.1:1/",
        "FEATURIZER_CRYPTOFEED_BINANCE_REST": "http://127.0.0.1:2",
        "FEATURIZER_CRYPTOFEED_BINANCE_US_REST": "https://127.0.0.1:3",
        "FEATURIZER_CRYPTOFEED_CA_FILE": str(ca),
        "FEATURIZER_CRYPTOFEED_RETRIES": "-1",
    }
    options = CryptofeedOptions.from_mapping(
        {
            "seed": 3,
            "max_events": 10,
            "cryptofeed_endpoints": {"binance": {"rest": "http://127.0.0.1:4"}},
        },
        environ=environ,
    )
    assert options.endpoints == {
        "BINANCE": Endpoints(websocket="wss://127.0.0.1:1", rest="http://127.0.0.1:4"),
        "BINANCE_US": Endpoints(rest="https://127.0.0.1:3"),
    }
    assert (options.ca_file, options.retries) == (str(ca), -1)
    assert options.endpoints_for("kraken") == Endpoints()
    assert CryptofeedOptions.from_mapping({}, environ={}) == CryptofeedOptions()


@pytest.mark.parametrize(
    ("options", "environ", "message"),
    [
        (
            {"cryptofeed_endpoints": {"BINANCE": {"websocket": "ws://x"}}},
            {},
            "expected a wss:// address",
        ),
        (
            {},
            {"FEATURIZER_CRYPTOFEED_BINANCE_REST": "ftp://x"},
            "expected an http:// or https:// address",
        ),
        ({"cryptofeed_retries": -2}, {}, "expected an integer >= 0, or -1 for ever"),
        ({"cryptofeed_ca_file": "/no/such.pem"}, {}, "expected the path of an existing PEM file"),
        ({"cryptofeed_depth_interval": "5ms"}, {}, "expected '100ms' or '1000ms'"),
        ({"cryptofeed_timeout": 0}, {}, "expected a positive, finite number of seconds"),
        (
            {"cryptofeed_endpoint": {}},
            {},
            "unknown cryptofeed emitter option 'cryptofeed_endpoint'",
        ),
        ({"cryptofeed_endpoints": {"BINANCE": {"ws": "wss://x"}}}, {}, "expected {websocket:"),
    ],
)
def test_invalid_options_say_what_was_expected(options: dict, environ: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")):
        CryptofeedOptions.from_mapping(options, environ=environ)


def test_stats_of_an_idle_emitter() -> None:
    stats = CryptofeedEventEmitter().stats()
    assert (stats.running, stats.events, stats.streams, stats.exchanges) == (False, 0, (), ())
    with pytest.raises(KeyError):
        stats.stream("BINANCE", "BTC-USDT", "ticker")


def test_the_gap_detection_each_family_claims_is_what_cryptofeed_does() -> None:
    """The families' tables against cryptofeed's source: an exchange whose feed raises on a
    sequence gap or a bad checksum says so, and only such exchanges claim it."""
    import inspect

    for name, support in supported_exchanges().items():
        source = "".join(
            inspect.getsource(inspect.getmodule(cls))  # type: ignore[arg-type]
            for cls in support.load_feed_class().__mro__
            if cls.__module__.startswith("cryptofeed.exchanges.")
        )
        raises_sequence = "raise MissingSequenceNumber" in source
        raises_checksum = "raise BadChecksum" in source
        text = support.family.gap_detection
        assert ("sequence_gap" in text) == raises_sequence, name
        assert ("checksum_mismatch" in text) == raises_checksum, name
        assert support.family.checksum == raises_checksum, name
