"""`featurizer plot CONFIG` runs the config's own emitters (never silently synthetic data),
draws panels in config order and no empty panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from featurizer._plugins import Plugins, make_plugin_manager, reset_plugins
from featurizer.cli import main
from featurizer.viz import FeatureSeries, plot_features
from tests.core.test_emitter_options import CONFIG, CSV_PLUGIN

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import featurizer.viz

    captured: list[Any] = []
    real = featurizer.viz.save_figure

    def capture(figure: Any, path: Any) -> Any:
        captured.append(figure)
        return real(figure, path)

    monkeypatch.setattr(featurizer.viz, "save_figure", capture)
    return captured


def test_plot_runs_the_configs_own_emitter(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    figures: list[Any],
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("c.yaml").write_text(CONFIG, encoding="utf-8")
    Path("data").mkdir()
    Path("data/BTC.csv").write_text(
        "timestamp,receipt_timestamp,bid,ask\n1704067200,1704067200,10,12\n"
        "1704067201,1704067201,20,22\n",
        encoding="utf-8",
    )
    reset_plugins(Plugins(make_plugin_manager(environ={}, extra_plugins=[CSV_PLUGIN])))
    argv = ["plot", "c.yaml", "-o", "p.png", "--emitter-option", "directory=data"]
    assert main(argv) == 0
    assert "wrote p.png: 1 panel from c.yaml (20,000 events from csv)" in capsys.readouterr().err
    (axes,) = figures[0].axes
    assert [list(line.get_ydata()) for line in axes.get_lines()] == [[11.0, 21.0]]
    assert main(["plot", "c.yaml", "-o", "p.png"]) == 1
    assert "no file 'BTC.csv'" in capsys.readouterr().err, "the CSV emitter, not synthetic data"


def test_panels_follow_the_config_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: list[Any]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = REPO / "examples" / "quickstart.yaml"
    assert main(["plot", str(config), "-o", "q.png", "--max-events", "20000"]) == 0
    labels = [ax.get_ylabel() for ax in figures[0].axes]
    order = ["mid_btc", "vol_btc", "tvi_btc", "mid_eth", "vol_eth", "spread_btc", "obi_btc"]
    order += ["ohlcv_btc", "vwap_btc"]
    assert labels == [name for name in order if name in labels]
    assert labels.index("ohlcv_btc") > labels.index("mid_eth"), "not first-produced order"


def test_no_empty_panel(caplog: pytest.LogCaptureFixture) -> None:
    early = FeatureSeries(feature="early", field="x", times=(1.0, 2.0), values=(1.0, 2.0))
    late = FeatureSeries(feature="late", field="y", times=(10.0, 11.0), values=(3.0, 4.0))
    figure = plot_features([early, late], start=5.0)
    assert [ax.get_ylabel() for ax in figure.axes] == ["late"]
    assert "not drawn, no value in the time range: early" in caplog.text
