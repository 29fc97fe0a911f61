"""The multi-venue example and the features for venues side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from featurizer_cryptofeed import supported_exchanges
from featurizer_features import Basis, MidPrice, RelativeSpreadL2, TickerSource
from featurizer_features.venues import spread_from_snapshot
from hypothesis import given
from hypothesis import strategies as st

from featurizer import Feature, FeatureStreamGraph
from featurizer.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "multi_venue.yaml"
DATA_SOURCE_OF = {
    "mid_price": "ticker",
    "relative_spread": "ticker",
    "mid_price_l2": "l2_book",
    "relative_spread_l2": "l2_book",
}


def test_the_multi_venue_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ok: 8 outputs" in out
    assert "emitter cryptofeed:" in out


def test_every_data_source_of_the_example_is_served_by_its_exchange() -> None:
    entries = yaml.safe_load(EXAMPLE.read_text())["feature_configs"]
    venues = set()
    for entry in entries:
        source = entry.get("params", {}).get("data_source")
        if source is None:
            continue
        support = supported_exchanges()[source["exchange"]]
        assert DATA_SOURCE_OF[entry["feature_definition"]] in support.data_sources, entry
        venues.add(source["exchange"])
    assert len(venues) == 3
    assert "ticker" not in supported_exchanges()["GEMINI"].data_sources


def ticker(t: float, bid: float, ask: float, exchange: str) -> dict[str, float]:
    return {"timestamp": t, "receipt_timestamp": t, "bid": bid, "ask": ask}


prices = st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), prices, prices), max_size=30))
def test_basis_is_the_latest_venue_mid_over_the_latest_reference_mid(
    steps: list[tuple[str, float, float]],
) -> None:

    sources = {
        name: Feature.create(TickerSource, {"exchange": name, "symbol": "BTC-USD"})
        for name in ("a", "b")
    }
    mids = {name: Feature.create(MidPrice, {}, {"ticker": s}) for name, s in sources.items()}
    basis = Feature.create(Basis, {}, {"venue": mids["a"], "reference": mids["b"]})
    graph = FeatureStreamGraph([basis])
    out: list[float] = []
    graph.set_callback(basis, lambda feature, event: out.append(event["basis"]))
    latest: dict[str, float] = {}
    expected = []
    for t, (name, bid, ask) in enumerate(steps):
        graph.input_callback(sources[name])(ticker(float(t), bid, ask, name))
        latest[name] = (bid + ask) / 2.0
        if len(latest) == 2:
            expected.append(latest["a"] / latest["b"] - 1.0)
    assert out == expected


def test_relative_spread_l2_reads_the_top_of_the_book() -> None:
    event = {"timestamp": 1.0, "receipt_timestamp": 1.0}
    assert spread_from_snapshot({**event, "bids": (), "asks": ((1.0, 1.0),)}) is None
    top = spread_from_snapshot(
        {**event, "bids": ((99.0, 1.0), (98.0, 5.0)), "asks": ((101.0, 1.0),)}
    )
    assert top is not None and top["relative_spread"] == 2.0 / 100.0
    assert RelativeSpreadL2.event_schema() == {"relative_spread": float}


@pytest.mark.parametrize(
    ("exchange", "source", "message"),
    [
        (
            "COINBASE",
            "ticker",
            "COINBASE does not serve 'ticker' (take mid and spread from the book",
        ),
        ("GEMINI", "book_ticker", "GEMINI does not serve 'book_ticker'"),
        ("DERIBIT", "l2_book", "set FEATURIZER_CRYPTOFEED_DERIBIT_KEY_ID"),
        ("KRAKENN", "ticker", "no emitter serves data source 'ticker.KRAKENN.BTC-USD'"),
    ],
)
def test_validate_refuses_what_an_exchange_cannot_serve_without_connecting(
    exchange: str,
    source: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("KEY_ID", "KEY_SECRET"):
        monkeypatch.delenv(f"FEATURIZER_CRYPTOFEED_DERIBIT_{key}", raising=False)
    definition = {"ticker": "mid_price", "book_ticker": "mid_price", "l2_book": "mid_price_l2"}
    entry = {
        "name": "mid",
        "feature_definition": definition[source],
        "params": {"data_source": {"exchange": exchange, "symbol": "BTC-USD"}},
    }
    if source == "book_ticker":
        entry = {
            "name": "quotes",
            "feature_definition": "book_ticker",
            "params": {"exchange": exchange, "symbol": "BTC-USD"},
        }
    config = tmp_path / "venue.yaml"
    config.write_text(yaml.safe_dump({"feature_configs": [entry]}))
    assert main(["validate", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
