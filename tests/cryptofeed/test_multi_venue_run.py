"""``featurizer run examples/multi_venue.yaml`` against fakes of Binance, Kraken and Gemini.

The example's own config, run through the CLI: the three venues' mids and spreads equal the
values computed from what each fake sent, and every ``basis`` row is the latest venue mid
over the latest Binance mid, in the order the graph saw them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from featurizer.cli import main
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.fake_venue import FakeVenue, generate, price_text
from tests.cryptofeed.tls import SelfSignedCertificate
from tests.cryptofeed.venues import Gemini, Kraken

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "multi_venue.yaml"


def quote(bid: float, ask: float) -> tuple[float, float]:
    """(mid, relative spread) as the standard features compute them."""
    mid = (bid + ask) / 2.0
    return mid, (ask - bid) / mid


def test_the_multi_venue_example_runs_against_three_fake_venues(
    fake_exchange: Callable[..., FakeBinance],
    certificate: SelfSignedCertificate,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    binance = fake_exchange(generate_script(5, ("BTC-USDT",), 150))
    kraken_books, kraken_actions = generate(6, tuple(Kraken.symbols), 150)
    gemini_books, gemini_actions = generate(7, tuple(Gemini.symbols), 150)
    kraken = FakeVenue(
        Kraken(), kraken_books, kraken_actions, certificate, subscribe_messages=1
    ).start()
    gemini = FakeVenue(Gemini(), gemini_books, gemini_actions, certificate).start()
    try:
        for key, value in binance.environ().items():
            monkeypatch.setenv(key, value)
        # the run stops at the first input beyond --max-events: once the fakes are done, the
        # Gemini connection goes quiet, is renewed after 1 s, and its book's gap marker is it
        monkeypatch.setenv("FEATURIZER_CRYPTOFEED_TIMEOUT", "1")
        for fake in (kraken, gemini):
            name = fake.venue.exchange
            monkeypatch.setenv(
                f"FEATURIZER_CRYPTOFEED_{name}_WEBSOCKET", f"wss://127.0.0.1:{fake.ws_port}"
            )
            monkeypatch.setenv(
                f"FEATURIZER_CRYPTOFEED_{name}_REST", f"http://127.0.0.1:{fake.http_port}"
            )
        binance_tickers = [s.data for s in binance.script.steps if s.kind == "ticker"]
        kraken_tickers = [a for a in kraken_actions if a.kind == "ticker" and a.symbol == "BTC-USD"]
        gemini_deltas = [a for a in gemini_actions if a.kind == "delta" and a.symbol == "BTC-USD"]
        inputs = len(binance_tickers) + len(kraken_tickers) + 1 + len(gemini_deltas)
        config = tmp_path / "multi_venue.yaml"
        shutil.copy(EXAMPLE, config)
        out = tmp_path / "venues.jsonl"

        code = main(
            ["run", str(config), "--no-combine", "--max-events", str(inputs), "--out", str(out)]
        )
        stderr = capsys.readouterr().err
        assert code == 0, stderr
        assert f"events in: {inputs}" in stderr and "stopped by: max_events" in stderr, stderr
    finally:
        kraken.stop()
        gemini.stop()

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    values: dict[str, list[Any]] = {}
    for row in rows:
        values.setdefault(row["feature"], []).append(row)

    expected_binance = [quote(float(t["b"]), float(t["a"])) for t in binance_tickers]
    assert [r["mid_price"] for r in values["mid_binance"]] == [m for m, _ in expected_binance]
    assert [r["relative_spread"] for r in values["spread_binance"]] == [
        s for _, s in expected_binance
    ]
    expected_kraken = [
        quote(float(price_text(a.values[0])), float(price_text(a.values[1])))
        for a in kraken_tickers
    ]
    assert [r["mid_price"] for r in values["mid_kraken"]] == [m for m, _ in expected_kraken]
    assert [r["relative_spread"] for r in values["spread_kraken"]] == [
        s for _, s in expected_kraken
    ]
    book = {side: dict(levels) for side, levels in gemini_books["BTC-USD"].items()}
    expected_gemini = []
    for action in [None, *gemini_deltas]:
        for side, price, units in action.changes if action else ():
            if units:
                book[side][price] = units
            else:
                book[side].pop(price, None)
        expected_gemini.append(
            quote(float(price_text(max(book["bids"]))), float(price_text(min(book["asks"]))))
        )
    assert [r["mid_price"] for r in values["mid_gemini"]] == [m for m, _ in expected_gemini]
    assert [r["relative_spread"] for r in values["spread_gemini"]] == [
        s for _, s in expected_gemini
    ]

    latest: dict[str, float] = {}
    checked = 0
    for row in rows:
        if row["feature"].startswith("mid_"):
            latest[row["feature"]] = row["mid_price"]
        elif row["feature"].startswith("basis_"):
            venue = "mid_" + row["feature"].removeprefix("basis_")
            assert row["basis"] == latest[venue] / latest["mid_binance"] - 1.0
            checked += 1
    assert checked == len(values["basis_kraken"]) + len(values["basis_gemini"]) > 0
