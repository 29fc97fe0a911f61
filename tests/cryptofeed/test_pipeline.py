"""The whole pipeline: ``featurizer run examples/binance.yaml`` against the fake exchange."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from featurizer_features import TickerSource, reference
from streamz import Stream

from featurizer import DataDefinition, FeatureDefinition, Schema
from featurizer.cli import main
from tests.cryptofeed.fake_binance import FakeBinance, Step, generate_script, price_text, qty_text
from tests.cryptofeed.support import book_after, expected_ticker, expected_trade

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "binance.yaml"
SYMBOL = "BTC-USDT"
INPUTS = 400
"""Input events the run is stopped after (``--max-events``): the script sends more."""


def _levels(
    changes: tuple[tuple[str, int, int], ...], side: str
) -> tuple[tuple[float, float], ...]:
    return tuple((float(price_text(p)), float(qty_text(q))) for s, p, q in changes if s == side)


def expected_book_events(fake: FakeBinance, steps: list[Step]) -> list[dict[str, Any]]:
    """The ``l2_book`` events of ``steps``: the first update is replaced by the snapshot the
    client fetches right after it (the server waits for it), later ones are deltas."""
    events: list[dict[str, Any]] = []
    for step in steps:
        if step.kind != "depth":
            continue
        if not events:
            book = book_after(fake, SYMBOL, step.index)
            bids = tuple(sorted(book["bids"].items(), reverse=True))
            asks = tuple(sorted(book["asks"].items()))
            snapshot = True
        else:
            bids, asks, snapshot = (
                _levels(step.changes, "bids"),
                _levels(step.changes, "asks"),
                False,
            )
        events.append(
            {
                "timestamp": 0.0,
                "receipt_timestamp": 0.0,
                "bids": bids,
                "asks": asks,
                "is_snapshot": snapshot,
                "gap": False,
                "sequence": len(events) + 1,
            }
        )
    return events


def values(rows: list[dict[str, Any]], *fields: str) -> list[Any]:
    return [tuple(_tuples(row[f]) for f in fields) for row in rows]


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def test_featurizer_run_on_the_example_config_computes_the_expected_features(
    fake_exchange: Callable[..., FakeBinance],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = fake_exchange(generate_script(53, (SYMBOL, "ETH-USDT"), 1200))
    for key, value in fake.environ().items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "binance.yaml"
    shutil.copy(EXAMPLE, config)
    out = tmp_path / "features.jsonl"

    code = main(
        ["run", str(config), "--no-combine", "--max-events", str(INPUTS), "--out", str(out)]
    )

    stderr = capsys.readouterr().err
    assert code == 0, stderr
    assert f"events in: {INPUTS}" in stderr and "stopped by: max_events" in stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_feature.setdefault(row.pop("feature"), []).append(row)

    market = [
        s
        for s in fake.script.steps
        if s.symbol == SYMBOL and s.kind in ("ticker", "trade", "depth")
    ]
    used = market[:INPUTS]
    assert len(market) > INPUTS, "the script must outlast the run"
    sent = {s.step.index: s for s in fake.sent}
    tickers = [expected_ticker(sent[s.index]) for s in used if s.kind == "ticker"]
    trades = [
        {**expected_trade(sent[s.index]), "receipt_timestamp": 0.0}
        for s in used
        if s.kind == "trade"
    ]

    # ticker features: one output per ticker; Binance's ticker time is the receipt time, read
    # back from the outputs to recompute the time-windowed volatility
    mids = by_feature["mid_btc"]
    ticks = [
        {**t, "timestamp": m["timestamp"], "receipt_timestamp": m["receipt_timestamp"]}
        for t, m in zip(tickers, mids, strict=True)
    ]
    assert values(mids, "mid_price") == values(reference.mid_price(ticks), "mid_price")
    assert values(by_feature["spread_btc"], "relative_spread") == values(
        reference.relative_spread(ticks), "relative_spread"
    )
    assert values(by_feature["vol_btc"], "volatility") == values(
        reference.volatility(reference.mid_price(ticks), window=60.0), "volatility"
    )
    # trade features: exchange times, so everything is known up front
    assert values(by_feature["tvi_btc"], "timestamp", "tvi") == values(
        reference.trade_volume_imbalance(trades, window=60.0), "timestamp", "tvi"
    )
    assert values(by_feature["vwap_btc"], "timestamp", "vwap") == values(
        reference.vwap(trades, window=60.0), "timestamp", "vwap"
    )
    # book features: rebuilt from the snapshot and the deltas the server sent
    books = reference.l2_snapshot(expected_book_events(fake, used), depth=10)
    assert values(by_feature["book_btc"], "bids", "asks") == values(books, "bids", "asks")
    assert values(by_feature["obi_btc"], "obi") == values(
        reference.order_book_imbalance(books, depth=5), "obi"
    )
    assert len(books) == sum(1 for s in used if s.kind == "depth") > 10
    last_depth = [s for s in used if s.kind == "depth"][-1]
    final = book_after(fake, SYMBOL, last_depth.index)
    assert by_feature["book_btc"][-1]["bids"] == [
        [p, q] for p, q in sorted(final["bids"].items(), reverse=True)[:10]
    ]
    assert fake.lockstep_timeouts == []


def test_featurizer_run_reports_an_unknown_symbol_before_starting(
    fake_exchange: Callable[..., FakeBinance],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = fake_exchange(generate_script(59, (SYMBOL,), 50))
    for key, value in fake.environ().items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "bad.yaml"
    config.write_text(
        "feature_configs:\n"
        "  - {name: mid, feature_definition: mid_price, params: {data_source: {exchange: BINANCE, symbol: BTC-USDX}}}\n"
        "  - {name: tvi, feature_definition: trade_volume_imbalance, params: {data_source: {exchange: BINANCE, symbol: BTC-USDT}}}\n"
    )

    code = main(["run", str(config), "--duration", "5"])

    stderr = capsys.readouterr().err
    assert code == 1
    assert "symbol 'BTC-USDX', which BINANCE does not list (did you mean 'BTC-USDT'?)" in stderr
    assert "valid symbols: BTC-USDT" in stderr
    assert fake.connections == 0, "nothing started"


class Exploding(FeatureDefinition):
    """A feature with a bug: it raises on every third ticker."""

    name = "exploding_test_feature"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"n": int}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        seen = [0]

        def count(event: dict[str, Any]) -> dict[str, Any]:
            seen[0] += 1
            if seen[0] % 3 == 0:
                raise ValueError(f"bug on ticker {seen[0]}")
            return {
                "timestamp": event["timestamp"],
                "receipt_timestamp": event["receipt_timestamp"],
                "n": seen[0],
            }

        return upstreams["ticker"].map(count)


EXPLODING_CONFIG = """
feature_configs:
  - {name: mid, feature_definition: mid_price, params: {data_source: {exchange: BINANCE, symbol: BTC-USDT}}}
  - {name: boom, feature_definition: "tests.cryptofeed.test_pipeline:Exploding", params: {data_source: {exchange: BINANCE, symbol: BTC-USDT}}}
  - {name: tvi, feature_definition: trade_volume_imbalance, params: {data_source: {exchange: BINANCE, symbol: BTC-USDT}}}
"""


def test_feature_errors_follow_the_error_policy_and_the_feed_stays_up(
    fake_exchange: Callable[..., FakeBinance],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "exploding.yaml"
    config.write_text(EXPLODING_CONFIG)
    out = tmp_path / "out.jsonl"

    fake = fake_exchange(generate_script(67, (SYMBOL,), 600))
    for key, value in fake.environ().items():
        monkeypatch.setenv(key, value)
    code = main(
        [
            "run",
            str(config),
            "--no-combine",
            "--on-error",
            "skip",
            "--max-events",
            "300",
            "--out",
            str(out),
        ]
    )
    stderr = capsys.readouterr().err
    assert code == 0, stderr
    # no book feature: the emitter subscribes to tickers and trades only
    used = [s for s in fake.script.steps if s.kind in ("ticker", "trade")][:300]
    tickers = sum(1 for s in used if s.kind == "ticker")
    assert f"errors: {tickers // 3}" in stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(1 for r in rows if r["feature"] == "mid") == tickers
    assert sum(1 for r in rows if r["feature"] == "boom") == tickers - tickers // 3
    assert sum(1 for r in rows if r["feature"] == "tvi") == sum(
        1 for s in used if s.kind == "trade"
    )
    assert fake.connections == 1, "the connection stayed up"

    fake = fake_exchange(generate_script(67, (SYMBOL,), 600))
    for key, value in fake.environ().items():
        monkeypatch.setenv(key, value)
    code = main(["run", str(config), "--no-combine", "--max-events", "300", "--out", str(out)])
    stderr = capsys.readouterr().err
    assert code == 1
    assert (
        "feature 'boom' (definition 'exploding_test_feature'" in stderr
        and "bug on ticker 3" in stderr
    )
    assert fake.connections == 1
