"""The Prometheus endpoint scraped during a run, the dashboard, and `featurizer run` options."""

from __future__ import annotations

import io
import os
import re
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from featurizer import FeaturizerConfig, construct_features_from_configs
from featurizer._plugins import reset_plugins
from featurizer._runner import RunOptions, run
from featurizer.cli import main
from featurizer.metrics import (
    METRIC_NAMES,
    Dashboard,
    MetricsError,
    RunMetrics,
    exposition,
    render_dashboard,
    serve_metrics,
)
from featurizer.metrics import _cli as metrics_cli
from featurizer.testing import CollectingSink
from tests.viz.viz_support import ScriptedEmitter, script_for, scripted_plugins

CONFIG = {
    "feature_configs": [
        {
            "name": "mid",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"}},
        },
        {
            "name": "vol",
            "feature_definition": "volatility",
            "params": {
                "window": "10s",
                "data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"},
            },
        },
        {
            "name": "tvi",
            "feature_definition": "trade_volume_imbalance",
            "params": {
                "window": "10s",
                "data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"},
            },
        },
    ]
}
EVENTS = 3_000
CHECKPOINTS = (1, 700, 1_501, EVENTS)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _by(samples: dict[Any, float], name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (n, labels), value in samples.items() if n == name}


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[Any, list[Any]]]:
    plugins = scripted_plugins()
    reset_plugins(plugins)
    features = construct_features_from_configs(FeaturizerConfig.from_dict(CONFIG), plugins)
    sources = {s for f in features for s in f.data_sources()}
    ScriptedEmitter.script = script_for(sorted(sources, key=lambda s: s.name), EVENTS)
    ScriptedEmitter.checkpoints = set(CHECKPOINTS)
    scrapes: list[Any] = []
    yield plugins, scrapes
    ScriptedEmitter.checkpoint = None
    ScriptedEmitter.checkpoints = set()
    ScriptedEmitter.script = []


def _expected_per_source(emitted: int) -> dict[str, int]:
    keys = {key for key, _ in ScriptedEmitter.script}
    names = {
        s.key: s.name
        for f in construct_features_from_configs(FeaturizerConfig.from_dict(CONFIG))
        for s in f.data_sources()
    }
    counts = dict.fromkeys(names.values(), 0)
    for key, _ in ScriptedEmitter.script[:emitted]:
        counts[names[key]] += 1
    assert set(names) == keys
    return counts


def _check_scrape(emitted: int, text: str) -> None:
    samples = _samples(text)
    per_source = _by(samples, "featurizer_source_events_total", "source")
    # A single-process run holds the events of the latest timestamp until a later one arrives
    # (or max_hold passes: featurizer._ties), so the event just emitted may not be counted yet.
    assert per_source in [
        {k: float(v) for k, v in _expected_per_source(n).items()} for n in (emitted, emitted - 1)
    ]
    node_in = _by(samples, "featurizer_node_events_in_total", "node")
    node_out = _by(samples, "featurizer_node_events_out_total", "node")
    ticker, trades = "ticker.BINANCE.BTC-USDT", "trades.BINANCE.BTC-USDT"
    assert node_in["mid"] == node_out["mid"] == per_source[ticker]
    assert node_in["vol"] == node_out["mid"] and node_in["tvi"] == per_source[trades]
    assert _by(samples, "featurizer_node_errors_total", "node") == dict.fromkeys(node_in, 0.0)
    gaps = _by(samples, "featurizer_source_gaps_total", "source")
    assert gaps == {ticker: 3.0}, "the emitter's per-stream gaps reach the matching source"
    assert _by(samples, "featurizer_source_reconnects_total", "source") == {
        ticker: 2.0,
        trades: 2.0,
    }
    assert _by(samples, "featurizer_emitter_reconnects_total", "emitter") == {"scripted": 2.0}
    lag = _by(samples, "featurizer_source_lag_seconds", "source")
    assert set(lag) == {name for name, count in per_source.items() if count}
    assert all(value > 0 for value in lag.values())
    counts = _by(samples, "featurizer_node_processing_seconds_count", "node")
    assert counts["mid"] == per_source[ticker] // 64


def test_prometheus_endpoint_scraped_during_a_run(scripted: tuple[Any, list[Any]]) -> None:
    plugins, scrapes = scripted
    run_metrics = RunMetrics()
    with serve_metrics(run_metrics, 0) as server:
        assert server.host == "127.0.0.1" and server.port > 0

        def scrape(emitted: int) -> None:
            with urllib.request.urlopen(server.url, timeout=10) as response:
                assert response.status == 200
                scrapes.append((emitted, response.read().decode("utf-8")))

        ScriptedEmitter.checkpoint = scrape
        sink = CollectingSink()
        summary = run(
            FeaturizerConfig.from_dict(CONFIG),
            RunOptions(emitter="scripted"),
            sink,
            plugins=plugins,
            metrics=run_metrics,
        )
    assert summary.events_in == EVENTS
    assert [emitted for emitted, _ in scrapes] == list(CHECKPOINTS)
    for emitted, text in scrapes:
        _check_scrape(emitted, text)
    with pytest.raises(OSError):  # the endpoint is gone after the run
        urllib.request.urlopen(server.url, timeout=2)


def test_the_endpoint_serves_metrics_only_at_metrics() -> None:
    run_metrics = RunMetrics()
    with serve_metrics(run_metrics, 0) as server:
        base = server.url.removesuffix("/metrics")
        for path in ("/metrics", "/metrics/"):
            with urllib.request.urlopen(base + path, timeout=10) as response:
                assert response.status == 200
                text = response.read().decode("utf-8")
                assert "featurizer_uptime_seconds" in text
                assert "featurizer_source_events_per_second" not in text
        for path in ("/", "/metric", "/favicon.ico", "/metrics/x"):
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(base + path, timeout=10)
            assert raised.value.code == 404
            assert b"featurizer serves its metrics at /metrics" in raised.value.read()


def test_cli_run_serves_metrics_and_draws_the_dashboard(
    scripted: tuple[Any, list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, scrapes = scripted
    servers: list[Any] = []
    real_serve = serve_metrics

    def recording_serve(*args: Any, **kwargs: Any) -> Any:
        server = real_serve(*args, **kwargs)
        servers.append(server)
        return server

    monkeypatch.setattr("featurizer.metrics._prometheus.serve_metrics", recording_serve)

    def scrape(emitted: int) -> None:
        with urllib.request.urlopen(servers[0].url, timeout=10) as response:
            scrapes.append((emitted, response.read().decode("utf-8")))

    ScriptedEmitter.checkpoint = scrape
    config = tmp_path / "c.yaml"
    config.write_text(_yaml(), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "run",
            str(config),
            "--emitter",
            "scripted",
            "--metrics-port",
            "0",
            "--dashboard",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"serving metrics at {servers[0].url}" in captured.err
    assert [emitted for emitted, _ in scrapes] == list(CHECKPOINTS)
    for emitted, text in scrapes:
        _check_scrape(emitted, text)
    # The dashboard's final view (standard error is not a terminal here).
    assert "nodes" in captured.err and "data sources" in captured.err
    assert "mid" in captured.err and f"{EVENTS:,}" in captured.err
    assert out.is_file()


def _yaml() -> str:
    import yaml

    return yaml.safe_dump(CONFIG)


def test_metrics_port_in_use_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(_yaml(), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(
            [
                "run",
                str(config),
                "--emitter",
                "synthetic",
                "--max-events",
                "100",
                "--metrics-port",
                str(port),
                "--out",
                str(out),
            ]
        )
    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: the port is already in use" in err
    assert "--metrics-port" in err
    assert os.listdir(tmp_path) == ["c.yaml"], "no output (not even a partial file) was written"


def test_dashboard_with_a_scaler_shows_workers_and_edges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Scaled-out runs used to refuse the metrics options; tests/scaling/test_transport_metrics.py
    # checks their numbers, this only that the view is drawn.
    config = tmp_path / "c.yaml"
    config.write_text(_yaml(), encoding="utf-8")
    argv = ["run", str(config), "--emitter", "synthetic", "--max-events", "200", "--dashboard"]
    code = main([*argv, "--scaler", "local", "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "featurizer run --scaler local --workers 1" in err
    assert "workers" in err and "transport edges (inproc)" in err
    assert "worker 0 -> driver" in err


def test_invalid_metrics_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "c.yaml", "--metrics-port", "70000"])
    assert exit_info.value.code == 2
    assert "expected a port 0-65535" in capsys.readouterr().err


def test_exposition_names_follow_the_conventions(scripted: tuple[Any, list[Any]]) -> None:
    plugins, _ = scripted
    run_metrics = RunMetrics()
    run(
        FeaturizerConfig.from_dict(CONFIG),
        RunOptions(emitter="scripted"),
        CollectingSink(),
        plugins=plugins,
        metrics=run_metrics,
    )
    run_metrics.add_transport_edge(
        "w0 -> w1", "zmq", lambda: {"queue_depth": 2, "batches": 5, "bytes": 4096}
    )
    text = exposition(run_metrics).decode("utf-8")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exposed = set()
    for family in families.values():
        assert family.name.startswith("featurizer_")
        for sample in family.samples:
            exposed.add(sample.name)
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created"))
    assert families["featurizer_node_processing_seconds"].type == "summary"
    quantiles = {
        s.labels["quantile"]
        for s in families["featurizer_node_processing_seconds"].samples
        if "quantile" in s.labels
    }
    assert quantiles == {"0.5", "0.99"}
    assert set(METRIC_NAMES) <= exposed | {"featurizer_node_processing_seconds"}


def test_dashboard_renders_in_a_non_interactive_terminal(scripted: tuple[Any, list[Any]]) -> None:
    plugins, _ = scripted
    run_metrics = RunMetrics()
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=False, width=100)
    assert not console.is_terminal
    empty = io.StringIO()
    Console(file=empty, force_terminal=False, width=100).print(
        render_dashboard(run_metrics.snapshot())
    )
    assert "events in 0" in empty.getvalue()
    with Dashboard(run_metrics, console=console, refresh_per_second=20):
        run(
            FeaturizerConfig.from_dict(CONFIG),
            RunOptions(emitter="scripted"),
            CollectingSink(),
            plugins=plugins,
            metrics=run_metrics,
        )
    text = stream.getvalue()
    assert "\x1b[" not in text, "no escape codes on a non-terminal"
    assert text.count("featurizer run") == 1, "only the final view is printed"
    for expected in (
        "mid",
        "vol",
        "tvi",
        "ticker.BINANCE.BTC-USDT",
        "trades.BINANCE.BTC-USDT",
        f"events in {EVENTS:,}",
        "p50",
        "p99",
        "lag",
        "scripted",
    ):
        assert expected in text, expected
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    half = f"{EVENTS // 2:,}"
    assert rows["mid"][1] == "mid_price" and rows["mid"][4] == half, rows["mid"]
    assert rows["tvi"][4] == half and rows["tvi"][5] == "0", rows["tvi"]
    assert rows["ticker.BINANCE.BTC-USDT"][1:3] == ["scripted", half]
    assert rows["ticker.BINANCE.BTC-USDT"][-2:] == ["3", "2"], "gaps and reconnects"


def test_serve_metrics_errors() -> None:
    with pytest.raises(MetricsError, match="between 0 and 65535"):
        serve_metrics(RunMetrics(), 70_000)
    with pytest.raises(MetricsError, match=r"cannot serve metrics on 192\.0\.2\.1"):
        serve_metrics(RunMetrics(), 0, host="192.0.2.1")


def test_missing_libraries_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def blocked(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".", maxsplit=1)[0] in ("prometheus_client", "rich"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    with pytest.raises(MetricsError, match=r"pip install 'featurizer\[metrics\]'"):
        exposition(RunMetrics())
    with pytest.raises(MetricsError, match="rich"):
        Dashboard(RunMetrics())


def test_observing_without_options_yields_none() -> None:
    import argparse

    with metrics_cli.observing(argparse.Namespace(metrics_port=None, dashboard=False)) as metrics:
        assert metrics is None


@pytest.mark.parametrize("width", [40, 60, 80])
def test_dashboard_numbers_are_never_cut(scripted: tuple[Any, list[Any]], width: int) -> None:
    plugins, _ = scripted
    run_metrics = RunMetrics()
    run(
        FeaturizerConfig.from_dict(CONFIG),
        RunOptions(emitter="scripted"),
        CollectingSink(),
        plugins=plugins,
        metrics=run_metrics,
    )
    snapshot = run_metrics.snapshot()
    stream = io.StringIO()
    Console(file=stream, force_terminal=False, width=width).print(render_dashboard(snapshot))
    text = stream.getvalue()
    numbers = [f"{node.events_out:,}" for node in snapshot.nodes if node.events_out >= 1000]
    assert numbers
    for number in numbers:
        assert number in text, f"{number} cut at width {width}:\n{text}"
    cut = re.findall(r"\d…", text)
    assert not cut, f"a number was cut at width {width}:\n{text}"


def test_the_dashboard_final_view_in_a_file_is_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    dashboard = Dashboard(RunMetrics())
    assert not dashboard.console.is_terminal and dashboard.console.width == 200
