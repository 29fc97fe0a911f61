"""What a newcomer hits first: outputs checked before work, progress, throttled warnings, ..."""

from __future__ import annotations

import importlib.metadata
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from featurizer.cli import main
from featurizer.cli._common import ProgressLine

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "examples" / "quickstart.yaml")


def _must_not_run(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the run started although its output cannot be written")


@pytest.mark.parametrize(
    ("out", "extra"),
    [("existing", []), ("existing", ["--format", "parquet"]), ("nodir/", ["--format", "parquet"])],
)
def test_an_output_that_is_a_directory_fails_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    out: str,
    extra: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    monkeypatch.setattr("featurizer.cli._run_cmd.run", _must_not_run)
    code = main(["run", QUICKSTART, "--max-events", "200000", "--out", out, *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"featurizer: error: cannot write {out!r}: it is a directory")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["existing"], "no file, no .partial left"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_on(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setattr(sys, "stderr", stream)
    argv = ["run", QUICKSTART, "--max-events", "3000", "--no-combine", "--out", "out.jsonl"]
    return main([*argv, *extra])


def test_run_shows_a_progress_line_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    terminal = _Terminal()
    assert _run_on(terminal, monkeypatch) == 0
    shown = terminal.getvalue()
    assert "running" in shown and "rows out:" in shown and "events/s:" in shown
    assert "events in: 3,000  outputs out:" in shown, "the summary follows the progress line"
    pipe = io.StringIO()
    assert _run_on(pipe, monkeypatch) == 0
    assert "rows out:" not in pipe.getvalue() and "\x1b" not in pipe.getvalue()
    assert pipe.getvalue().startswith("events in: 3,000")
    quiet = _Terminal()
    assert _run_on(quiet, monkeypatch, "--quiet") == 0
    assert quiet.getvalue() == ""
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) > 0


def test_progress_line_is_throttled_and_cleared() -> None:
    now = [0.0]
    terminal = _Terminal()
    line = ProgressLine(terminal, total=100, interval=1.0, clock=lambda: now[0])
    line.update(1, 0)
    drawn = len(terminal.getvalue())
    for step in range(1, 50):
        now[0] = step / 100
        line.update(step, step)
    assert len(terminal.getvalue()) == drawn, "no redraw within the interval"
    now[0] = 1.5
    line.update(60, 30)
    assert "events in: 60  rows out: 30  events/s: 40" in terminal.getvalue()
    line.close()
    line.close()
    assert not ProgressLine(io.StringIO(), total=None).enabled
    assert not ProgressLine(_Terminal(), total=None, enabled=False).enabled


def test_an_interrupted_run_exits_130_and_keeps_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    def interrupted(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("featurizer._runner._wait", interrupted)
    assert main(["run", QUICKSTART, "--out", "out.jsonl"]) == 130
    err = capsys.readouterr().err
    assert "stopped by: interrupted" in err and err.endswith("featurizer: interrupted\n")
    assert (tmp_path / "out.jsonl").is_file()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--workers", "2"), ("--strategy", "split"), ("--transport", "zmq"), ("--address", "a:1")],
)
def test_scale_out_options_without_a_scaler_are_refused(
    option: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("featurizer.cli._run_cmd.run", _must_not_run)
    assert main(["run", QUICKSTART, option, value]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"featurizer: error: {option} {value} needs a scaled run: add --scaler local (or "
        f"--scaler ray); without --scaler the run is one process\n"
    )


def test_a_config_that_is_not_utf8_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes("# caf\xe9\nfeature_configs: []\n".encode("latin-1"))
    for command in ("validate", "run"):
        assert main([command, str(config)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert "not UTF-8 text (byte 5: b'\\xe9'); save the file as UTF-8" in err
        assert str(config) in err


def test_version_and_plugins_short_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"featurizer {importlib.metadata.version('featurizer')}\n"
    assert main(["plugins", "-v"]) == 0
    assert "feature definitions:" in capsys.readouterr().out


def test_zero_rows_come_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # 300 events are a few seconds of market time: the one-minute OHLCV bar never closes.
    assert main(["run", QUICKSTART, "--max-events", "300", "--out", "out.jsonl"]) == 0
    err = capsys.readouterr().err
    assert "outputs out: 0 " in err
    assert "hint: no rows because 1 output(s) never produced a value: ohlcv_btc;" in err
    assert "--no-combine" in err
    assert main(["run", QUICKSTART, "--max-events", "20000", "--out", "out.jsonl"]) == 0
    assert "hint:" not in capsys.readouterr().err


def test_skipped_errors_are_throttled_and_summarised(caplog: pytest.LogCaptureFixture) -> None:
    from featurizer import Feature, FeatureStreamGraph
    from featurizer.testing import ExampleTicker
    from tests.core.definitions import Boom, ticker_event

    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    boom = Feature.create(Boom, {}, {"ticker": ticker}, name="boom")
    graph = FeatureStreamGraph([boom], error_policy="skip")
    feed = graph.input_callback(ticker)
    with caplog.at_level("WARNING", logger="featurizer._graph"):
        for i in range(4002):
            feed(ticker_event(float(i), -1.0 if i % 2 == 0 else 1.0, 2.0))
    assert graph.error_counts[boom] == 2001
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 + 1 + 3, lines  # three in full, the notice, 10, 100 and 1,000
    assert all("negative bid" in line for line in lines[:3])
    assert "further errors are counted" in lines[3]
    assert [line.split(":")[1].strip().split()[0] for line in lines[4:]] == ["10", "100", "1,000"]


def test_the_run_summarises_skipped_errors(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from featurizer import EmitterSpec, FeaturizerConfig, GeneratorEmitter, hookimpl
    from featurizer._plugins import Plugins, make_plugin_manager
    from featurizer._runner import RunOptions, run
    from featurizer.testing import CollectingSink
    from tests.core.definitions import ticker_event

    class Alternating(GeneratorEmitter):
        def events(self) -> Any:
            for i in range(500):
                yield self.sources[0], ticker_event(float(i), -1.0 if i % 2 else 1.0, 2.0)

    plugin = SimpleNamespace(
        featurizer_register_emitters=hookimpl(
            lambda: [
                EmitterSpec(
                    name="alternating",
                    emitter_class=Alternating,
                    data_sources=("example_ticker",),
                    exchanges=("x",),
                )
            ]
        )
    )
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "name": "boom",
                    "feature_definition": "tests.core.definitions:Boom",
                    "params": {"data_source": {"exchange": "x", "symbol": "S"}},
                }
            ]
        }
    )
    plugins = Plugins(make_plugin_manager(environ={}, extra_plugins=[plugin]))
    with caplog.at_level("WARNING"):
        summary = run(config, RunOptions(error_policy="skip"), CollectingSink(), plugins=plugins)
    assert summary.errors == 250
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1] == "feature errors skipped: 'boom': 250"
    assert len(lines) == 3 + 1 + 2 + 1


NO_TIMESTAMP = """
from featurizer import FeatureDefinition
from featurizer_features import TickerSource


class NoTime(FeatureDefinition):
    name = "no_time"

    @classmethod
    def event_schema(cls):
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(cls, dep_schema=None):
        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams, params):
        return upstreams["ticker"].map(lambda e: {"mid": (e["bid"] + e["ask"]) / 2})
"""


@pytest.mark.parametrize("extra", [[], ["--no-combine", "--check"], ["--check"]])
def test_an_output_without_timestamp_names_the_feature(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    Path("notime_defs.py").write_text(NO_TIMESTAMP, encoding="utf-8")
    Path("c.yaml").write_text(
        "feature_configs:\n  - name: mid_no_time\n    feature_definition: notime_defs:NoTime\n"
        "    params: {data_source: {exchange: synthetic, symbol: BTC-USDT}}\n",
        encoding="utf-8",
    )
    assert main(["run", "c.yaml", "--max-events", "10", "--out", "o.jsonl", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "featurizer: error: feature 'mid_no_time' (definition 'no_time') produced an event "
        "without field 'timestamp'; its events need 'timestamp', 'receipt_timestamp', 'mid';"
    )
    assert err.count("\n") == 1 and not Path("o.jsonl").exists()


def test_run_graph_checks_every_node_in_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featurizer import EventValidationError, Feature
    from featurizer.testing import run_graph

    namespace: dict[str, Any] = {}
    exec(compile(NO_TIMESTAMP, "notime", "exec"), namespace)
    from featurizer_features import TickerSource

    ticker = Feature.create(TickerSource, {"exchange": "x", "symbol": "S"})
    bad = Feature.create(namespace["NoTime"], {}, {"ticker": ticker}, name="bad")
    tick = {"timestamp": 1.0, "receipt_timestamp": 1.0, "bid": 1.0, "ask": 3.0}
    with pytest.raises(EventValidationError, match=r"feature 'bad' .* without field 'timestamp'"):
        run_graph([bad], [(ticker, tick)], combine_outputs=False)
    assert run_graph([bad], [(ticker, tick)], combine_outputs=False, check=False).events[bad]


def test_get_stream_of_a_source_feeds_the_graph_and_of_a_feature_refuses() -> None:
    from featurizer import Feature, FeatureStreamGraph, FeaturizerError
    from featurizer.testing import ExampleMid, ExampleTicker
    from tests.core.definitions import ticker_event

    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    mid = Feature.create(ExampleMid, {}, {"ticker": ticker}, name="mid")
    graph = FeatureStreamGraph([mid])
    mids: list[float] = []
    ticks: list[float] = []
    graph.get_stream(mid).sink(lambda e: mids.append(e["mid"]))
    source = graph.get_stream(ticker)
    source.sink(lambda e: ticks.append(e["bid"]))
    source.emit(ticker_event(1.0, 10.0, 12.0))
    assert mids == [11.0] and ticks == [10.0]
    with pytest.raises(FeaturizerError, match=r"'mid' is computed by the graph"):
        graph.get_stream(mid).emit({"timestamp": 1.0, "receipt_timestamp": 1.0, "mid": 1.0})


def test_a_scaled_run_shows_a_progress_line_on_a_terminal_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    argv = ["run", QUICKSTART, "--scaler", "local", "--workers", "2", "--no-combine"]
    live = ["--duration", "0.8", "--pace", "1", "--out", "out.jsonl"]  # lasts >= 0.8 s
    assert main([*argv, *live]) == 0
    shown = sys.stderr.getvalue()
    assert "running" in shown and "events in:" in shown and "rows out:" in shown
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert main([*argv, *live]) == 0
    assert "rows out:" not in pipe.getvalue() and "\x1b" not in pipe.getvalue()
