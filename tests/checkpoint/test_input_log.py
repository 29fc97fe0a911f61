"""Which checkpointed runs keep an input log: none when every emitter replays its input
(synthetic; offline, also killed and resumed here), all of it as soon as one source is live
(the log's tail must keep the original interleaving), and all of it with ``log_input=True``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from featurizer import EmitterSpec, FeaturizerConfig, GeneratorEmitter, hookimpl
from featurizer._plugins import Plugins, make_plugin_manager
from featurizer._runner import RunOptions
from featurizer.checkpoint import CheckpointSettings, inspect_directory, run_checkpointed
from featurizer.checkpoint._log import InputLog, log_roots
from tests.checkpoint.checkpoint_support import (
    CONFIG,
    assert_killed,
    assert_ok,
    checkpointed_run,
    featurizer,
    write_config,
)

pytest.importorskip("featurizer_synthetic")

LIVE_EVENTS = 40
START = 1_700_000_000.0  # the synthetic market's default start time is earlier: any will do


class LiveTickerEmitter(GeneratorEmitter):
    """A ticker feed that does not replay its input (``replays_input`` left ``False``)."""

    def events(self) -> Iterator[tuple[Any, dict[str, float]]]:
        for source in self.sources:
            for i in range(LIVE_EVENTS):
                ts = START + i
                yield (
                    source,
                    {
                        "timestamp": ts,
                        "receipt_timestamp": ts,
                        "bid": 100.0 + i,
                        "ask": 101.0 + i,
                        "bid_size": 1.0,
                        "ask_size": 1.0,
                    },
                )


LIVE_PLUGIN = SimpleNamespace(
    featurizer_register_emitters=hookimpl(
        lambda: [
            EmitterSpec(
                name="live_test",
                emitter_class=LiveTickerEmitter,
                data_sources=("ticker",),
                exchanges=("livex",),
                description="a live-like ticker feed",
            )
        ]
    )
)


def _plugins() -> Plugins:
    return Plugins(make_plugin_manager(environ={}, extra_plugins=[LIVE_PLUGIN]))


def _logged_events(directory: Path, config: FeaturizerConfig, plugins: Plugins) -> int:
    from featurizer import FeatureStreamGraph, construct_features_from_configs

    graph = FeatureStreamGraph(construct_features_from_configs(config, plugins))
    log = InputLog(directory / "log", graph.get_ins())
    return sum(1 for _ in log.tail({}))


def test_a_run_over_replaying_emitters_keeps_no_log(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    options = RunOptions(max_events=1_500)
    settings = CheckpointSettings.from_every(tmp_path / "ck", 500)
    summary, checkpointer = run_checkpointed(config, options, tmp_path / "out.jsonl", settings)
    assert summary.events_in == 1_500 and not checkpointer.logs_input
    assert not (tmp_path / "ck" / "log").exists()
    latest = inspect_directory(tmp_path / "ck").latest
    assert latest is not None and not latest.input_logged


def test_always_logging_logs_a_replaying_emitter(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    options = RunOptions(max_events=1_500)
    settings = CheckpointSettings.from_every(tmp_path / "ck", 500, log_input=True)
    _, checkpointer = run_checkpointed(config, options, tmp_path / "out.jsonl", settings)
    assert checkpointer.logs_input
    assert _logged_events(tmp_path / "ck", config, _plugins()) == 1_500


def test_a_run_mixing_a_live_and_a_replaying_emitter_logs_every_source(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                *CONFIG["feature_configs"][:2],
                {
                    "name": "live_mid",
                    "feature_definition": "mid_price",
                    "params": {"data_source": {"exchange": "livex", "symbol": "BTC-USDT"}},
                },
            ]
        }
    )
    plugins = _plugins()
    options = RunOptions(max_events=1_000)
    settings = CheckpointSettings.from_every(tmp_path / "ck", 300)
    summary, checkpointer = run_checkpointed(
        config, options, tmp_path / "out.jsonl", settings, plugins=plugins
    )
    assert checkpointer.logs_input
    latest = inspect_directory(tmp_path / "ck").latest
    assert latest is not None and latest.input_logged and latest.final
    assert any("livex" in position.name for position in latest.sources.values())
    assert log_roots(tmp_path / "ck" / "log")
    assert _logged_events(tmp_path / "ck", config, plugins) == summary.events_in


def test_log_input_false_is_not_offered(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log_input"):
        CheckpointSettings(directory=tmp_path, log_input=False)


def test_an_offline_run_keeps_no_log_and_a_kill_changes_nothing(tmp_path: Path) -> None:
    """The offline emitter replays a recording (storage is the log): killed twice and
    resumed, a checkpointed run over it publishes what an uninterrupted one writes."""
    config = write_config(tmp_path)
    storage = tmp_path / "recording"
    recorded = featurizer(
        "record",
        str(config),
        "--max-events",
        "4000",
        "--seed",
        "3",
        "--storage",
        str(storage),
        "--store",
        "data_sources",
    )
    assert_ok(recorded)
    offline = ("--emitter", "offline", "--emitter-option", f"storage={storage}")
    plain = tmp_path / "plain.jsonl"
    assert_ok(featurizer("run", str(config), *offline, "--out", str(plain)))
    expected = plain.read_bytes()
    assert expected.count(b"\n") > 1_000
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    for fault in ("event:1700", "snapshot:2"):
        assert_killed(
            checkpointed_run(
                config, directory, out, fault=fault, events=10_000, every=600, extra=offline
            )
        )
        assert expected.startswith(out.read_bytes() if out.exists() else b"")
    assert_ok(checkpointed_run(config, directory, out, events=10_000, every=600, extra=offline))
    assert out.read_bytes() == expected
    assert not (directory / "log").exists()
    latest = inspect_directory(directory).latest
    assert latest is not None and latest.final and not latest.input_logged
