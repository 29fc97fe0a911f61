"""Live input from the fake Binance exchange (tests/cryptofeed/fake_binance.py) through the
cryptofeed emitter, scaled out with a silent ``feed_gaps`` source in the config (as
docs/cryptofeed.md recommends): nothing is held back or dropped at the stop."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("cryptofeed", reason="needs the cryptofeed emitter")
pytest.importorskip("cryptography", reason="the fake exchange's certificate needs cryptography")

from featurizer.cli import main
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.tls import make_certificate

SYMBOLS = ("BTC-USDT", "ETH-USDT")
CONFIG = {
    "feature_configs": [
        {
            "name": f"mid_{s[:3].lower()}",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "BINANCE", "symbol": s}},
        }
        for s in SYMBOLS
    ]
    + [
        {
            "name": "gaps_btc",
            "feature_definition": "feed_gaps",
            "params": {"data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"}},
        }
    ]
}


def _run(
    tmp_path: Path, name: str, extra: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[str, dict[str, list[float]]]:
    where = tmp_path / name
    where.mkdir()
    fake = FakeBinance(generate_script(29, SYMBOLS, 400), make_certificate(where), rate=400.0)
    fake.start()
    try:
        for key, value in fake.environ().items():
            monkeypatch.setenv(key, value)
        config = where / "live.yaml"
        config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
        out = where / "out.jsonl"
        command = ["run", str(config), "--no-combine", "--duration", "4", *extra]
        code = main([*command, "--out", str(out)])
    finally:
        fake.stop()
    err = capsys.readouterr().err
    assert code == 0, err
    mids: dict[str, list[float]] = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "mid_price" in row:
            mids.setdefault(row["feature"], []).append(row["mid_price"])
    return err, mids


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_scaled_live_run_with_a_silent_source_publishes_every_row(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    workers: str,
) -> None:
    """The issue's run: before, ``records out 2,153`` but ``outputs out: 0``. Each worker has
    its own connection to the exchange, so the feed it sees is not a single process's; what
    is checked is that every row the workers produced is published, in order per feature."""
    scaled_args = ["--scaler", "local", "--workers", workers, "--watermark-delay", "0.5"]
    err, scaled = _run(tmp_path, "scaled", scaled_args, monkeypatch, capsys)
    records = sum(int(n.replace(",", "")) for n in re.findall(r"records out ([\d,]+)", err))
    found = re.search(r"outputs out: ([\d,]+)", err)
    assert found is not None, err
    assert int(found.group(1).replace(",", "")) == records > 0, err
    assert "late: 0" in err
    assert set(scaled) == {"mid_btc", "mid_eth"}
