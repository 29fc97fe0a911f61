"""--emitter-option KEY=VALUE reaches the emitters, checked against their declared options;
``featurizer validate`` asks the emitters to check their sources."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from featurizer import EmitterError, EmitterOption, EmitterSpec, GeneratorEmitter, hookimpl
from featurizer._plugins import Plugins, make_plugin_manager, reset_plugins
from featurizer.cli import main


class CsvTickerEmitter(GeneratorEmitter):
    """Ticker events from ``DIRECTORY/SYMBOL.csv``."""

    declared_options = (
        EmitterOption(name="directory", parse=Path, default=Path("."), help="where the CSVs are"),
    )

    def path(self, source: Any) -> Path:
        return Path(self.settings["directory"]) / f"{source.params['symbol']}.csv"

    def check_source(self, feature: Any) -> None:
        if not self.path(feature).is_file():
            raise EmitterError(
                f"csv emitter: no file {str(self.path(feature))!r} for {feature.name!r}"
            )

    def events(self) -> Iterator[tuple[Any, dict[str, float]]]:
        for source in self.sources:
            with open(self.path(source), newline="", encoding="utf-8") as rows:
                for row in csv.DictReader(rows):
                    yield source, {key: float(value) for key, value in row.items()}


CSV_PLUGIN = SimpleNamespace(
    featurizer_register_emitters=hookimpl(
        lambda: [
            EmitterSpec(
                name="csv",
                emitter_class=CsvTickerEmitter,
                data_sources=("ticker",),
                exchanges=("csvx",),
                description="ticker events from CSV files",
            )
        ]
    )
)

CONFIG = """\
feature_configs:
  - name: mid
    feature_definition: mid_price
    params:
      data_source: {exchange: csvx, symbol: BTC}
"""


@pytest.fixture
def csv_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "BTC.csv").write_text(
        "timestamp,receipt_timestamp,bid,ask\n1,1,10,12\n2,2,11,13\n", encoding="utf-8"
    )
    reset_plugins(Plugins(make_plugin_manager(environ={}, extra_plugins=[CSV_PLUGIN])))
    return tmp_path


def test_validate_asks_the_emitter_to_check_its_sources(
    csv_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "c.yaml"]) == 1
    assert capsys.readouterr().err == (
        "featurizer: error: csv emitter: no file 'BTC.csv' for 'ticker.csvx.BTC'\n"
    )
    assert main(["validate", "c.yaml", "--emitter-option", "directory=data"]) == 0
    assert "emitter csv: ticker.csvx.BTC" in capsys.readouterr().out


def test_emitter_options_reach_the_emitter(
    csv_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "c.yaml", "--emitter-option", "directory=data", "--out", "o.jsonl"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in Path("o.jsonl").read_text().splitlines()]
    assert [row["mid.mid_price"] for row in rows] == [11.0, 12.0]
    assert main(["run", "c.yaml", "--out", "o.jsonl"]) == 1
    assert "no file 'BTC.csv'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "colour=blue",
            "featurizer: error: emitter option 'colour' is not declared by the emitters of this "
            "run (declared options: csv: directory)\n",
        ),
        ("directory", "argument --emitter-option: expected KEY=VALUE, got 'directory'"),
    ],
)
def test_undeclared_or_malformed_options_are_refused(
    csv_project: Path, capsys: pytest.CaptureFixture[str], option: str, message: str
) -> None:
    for command in ("run", "validate"):
        try:
            code = main([command, "c.yaml", "--emitter-option", option])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        err = capsys.readouterr().err
        assert code in (1, 2) and message in err and "Traceback" not in err


def test_synthetic_options_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
    base = ["run", str(config), "--max-events", "50", "--no-combine"]
    assert main([*base, "--out", "a.jsonl", "--emitter-option", "book_depth=3"]) == 0
    assert main([*base, "--out", "b.jsonl"]) == 0
    books = [
        json.loads(line)
        for line in Path("a.jsonl").read_text().splitlines()
        if json.loads(line)["feature"] == "book_btc"
    ]
    assert books and all(len(row["bids"]) <= 3 for row in books)
    assert main([*base, "--emitter-option", "book_depth=deep"]) == 1
    assert "synthetic" in capsys.readouterr().err
