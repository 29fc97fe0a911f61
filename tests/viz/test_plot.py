"""`featurizer plot` and plot_features: panels, time range, files written all at once, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from featurizer.cli import main
from featurizer.viz import (
    PlotError,
    load_rows,
    parse_time,
    plot_features,
    save_figure,
    series_from_rows,
)

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def _rows(count: int = 50) -> list[dict[str, object]]:
    return [
        {
            "timestamp": T0 + i,
            "mid.mid_price": 100.0 + i,
            "vol.volatility": None if i == 0 else 0.1 * i,
            "bar.open": 1.0,
            "bar.close": 2.0 + i,
            "bar.bucket_start": T0,
            "book.bids": [[1.0, 2.0]],
            "tag.side": "buy",
        }
        for i in range(count)
    ]


def _write_parquet(path: Path, rows: list[dict[str, object]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_series_keep_numeric_fields_only() -> None:
    series = series_from_rows(_rows(3))
    assert [(s.feature, s.field) for s in series] == [
        ("mid", "mid_price"),
        ("vol", "volatility"),
        ("bar", "open"),
        ("bar", "close"),
        ("bar", "bucket_start"),
    ]
    vol = series[1]
    assert vol.values[0] != vol.values[0] and vol.values[1:] == (0.1, 0.2), "None becomes nan"
    long_rows = [
        {"feature": "mid", "timestamp": T0, "mid_price": 1.0},
        {"feature": "tvi", "timestamp": T0 + 1, "tvi": 0.5},
    ]
    assert [(s.feature, s.field, s.times) for s in series_from_rows(long_rows)] == [
        ("mid", "mid_price", (T0,)),
        ("tvi", "tvi", (T0 + 1,)),
    ]
    with pytest.raises(PlotError, match="row 0 has no numeric 'timestamp'"):
        series_from_rows([{"mid.x": 1.0}])


def test_one_panel_per_feature_with_a_shared_time_axis() -> None:
    figure = plot_features(series_from_rows(_rows()))
    axes = figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["mid", "vol", "bar"]
    assert all(ax.get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    bar_lines = [line.get_label() for line in axes[2].get_lines()]
    assert bar_lines == ["open", "close"], "time fields are not drawn by default"
    chosen = plot_features(series_from_rows(_rows()), features=["vol", "bar.bucket_start"])
    assert [ax.get_ylabel() for ax in chosen.axes] == ["vol", "bar.bucket_start"]


def test_time_range_filters_points() -> None:
    figure = plot_features(series_from_rows(_rows()), features=["mid"], start=T0 + 10, end=T0 + 19)
    (line,) = figure.axes[0].get_lines()
    assert list(line.get_ydata()) == [100.0 + i for i in range(10, 20)]
    with pytest.raises(PlotError, match="no rows between 2024-01-02"):
        plot_features(series_from_rows(_rows()), start=T0 + 86_400)
    with pytest.raises(PlotError, match="must be before"):
        plot_features(series_from_rows(_rows()), start=T0 + 5, end=T0 + 5)


def test_parse_time() -> None:
    assert parse_time("2024-01-01") == T0
    assert parse_time("2024-01-01T01:00:00+01:00") == T0
    assert parse_time(str(T0 + 0.5)) == T0 + 0.5
    with pytest.raises(PlotError, match="expected a time such as"):
        parse_time("yesterday")


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_cli_plots_a_run_output_file(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / f"features.{suffix}"
    if suffix == "parquet":
        _write_parquet(source, _rows())
    else:
        source.write_text("".join(json.dumps(row) + "\n" for row in _rows()), encoding="utf-8")
    out = tmp_path / "plot.png"
    argv = [
        "plot",
        str(source),
        "-o",
        str(out),
        "--start",
        "2024-01-01T00:00:05",
        "--end",
        str(T0 + 40),
    ]
    assert main(argv) == 0
    assert f"wrote {out}: 3 panels" in capsys.readouterr().err
    three = _png_size(out)
    assert main([*argv[:4], "--feature", "mid", "-o", str(tmp_path / "one.png")]) == 0
    assert "1 panel" in capsys.readouterr().err
    one = _png_size(tmp_path / "one.png")
    assert three[0] == one[0] and three[1] > 2 * one[1], "height grows with the panels"
    assert sorted(os.listdir(tmp_path)) == sorted([source.name, "plot.png", "one.png"])


def test_cli_plots_a_config_by_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "quick.svg"
    assert (
        main(
            [
                "plot",
                str(QUICKSTART),
                "-o",
                str(out),
                "--max-events",
                "3000",
                "--feature",
                "mid_btc",
                "--feature",
                "vol_btc",
            ]
        )
        == 0
    )
    assert "2 panels" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8").count('<g id="axes_') == 2


@pytest.mark.parametrize(
    ("make_input", "extra", "message"),
    [
        (
            "parquet",
            ["--feature", "nope"],
            "no numeric column for feature 'nope'; available: 'mid', 'vol', 'bar'",
        ),
        ("parquet", ["--feature", "book"], "no numeric column for feature 'book'"),
        ("parquet", ["--start", "2030-01-01"], "no rows between 2030-01-01"),
        ("parquet", ["--start", "2024-01-02", "--end", "2024-01-01"], "must be before --end"),
        ("parquet", ["--start", "soon"], "expected a time such as"),
        ("bad_config", [], "no_such_definition"),
        ("missing", [], "no such file"),
        ("csv", [], "expected a feature file"),
        ("not_parquet", [], "cannot read"),
    ],
)
def test_bad_input_writes_nothing(
    make_input: str,
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inputs = {
        "parquet": tmp_path / "f.parquet",
        "bad_config": tmp_path / "c.yaml",
        "missing": tmp_path / "absent.parquet",
        "csv": tmp_path / "f.csv",
        "not_parquet": tmp_path / "g.parquet",
    }
    _write_parquet(inputs["parquet"], _rows())
    inputs["bad_config"].write_text(
        "feature_configs:\n  - feature_definition: no_such_definition\n", encoding="utf-8"
    )
    inputs["csv"].write_text("timestamp,x\n1,2\n", encoding="utf-8")
    inputs["not_parquet"].write_text("not parquet", encoding="utf-8")
    before = set(os.listdir(tmp_path))
    out = tmp_path / "plot.png"
    assert main(["plot", str(inputs[make_input]), "-o", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert "featurizer: error:" in err and message in err, err
    assert set(os.listdir(tmp_path)) == before, "no output, not even a temporary file"


def test_unwritable_output_is_checked_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", str(QUICKSTART), "-o", str(tmp_path / "missing" / "p.png")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["plot", str(QUICKSTART), "-o", str(tmp_path / "p.gif")]) == 1
    assert "use a .png, .svg or .pdf" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_save_figure_failure_leaves_nothing(tmp_path: Path) -> None:
    figure = plot_features(series_from_rows(_rows()))

    def explode(*args: object, **kwargs: object) -> None:
        Path(args[0]).write_bytes(b"half")  # type: ignore[arg-type]
        raise RuntimeError("disk full")

    figure.savefig = explode  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(figure, tmp_path / "p.png")
    assert os.listdir(tmp_path) == []


def test_load_rows_reports_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"timestamp": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(PlotError, match=r"f\.jsonl:2: not a JSON line"):
        load_rows(path)
