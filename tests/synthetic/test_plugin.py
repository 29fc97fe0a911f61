"""The plugin is found through its own distribution's entry point and runs a real config."""

from __future__ import annotations

import featurizer_synthetic
import importlib_metadata
from featurizer_synthetic import SyntheticEventEmitter

import featurizer
from featurizer._runner import RunOptions, run
from featurizer.testing import CollectingSink


def test_found_through_its_own_distribution_entry_point() -> None:
    (entry_point,) = [
        ep
        for ep in importlib_metadata.distribution("featurizer-synthetic").entry_points
        if ep.group == "featurizer"
    ]
    assert (entry_point.name, entry_point.value) == ("synthetic", "featurizer_synthetic")
    pm = featurizer.make_plugin_manager(environ={})
    assert pm.get_plugin("synthetic") is featurizer_synthetic
    assert pm.featurizer_origins["synthetic"][0] == "featurizer-synthetic"  # type: ignore[attr-defined]
    spec = featurizer.Plugins(pm).emitters()["synthetic"]
    assert spec.emitter_class is SyntheticEventEmitter
    assert spec.data_sources == ("ticker", "trades", "l2_book")
    assert spec.is_default_for("l2_book", "SYNTHETIC")
    assert not spec.is_default_for("ticker", "binance")


def test_public_names_are_exported() -> None:
    for name in featurizer_synthetic.__all__:
        assert hasattr(featurizer_synthetic, name), name


def test_runs_a_config_end_to_end_with_a_bound() -> None:
    config = featurizer.FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "name": "mid_btc",
                    "feature_definition": "mid_price",
                    "params": {"data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}},
                }
            ]
        }
    )
    plugins = featurizer.Plugins(featurizer.make_plugin_manager(environ={}))
    sinks = [CollectingSink(), CollectingSink()]
    summaries = [
        run(config, RunOptions(max_events=500, seed=3), sink, plugins=plugins) for sink in sinks
    ]
    assert [summary.events_in for summary in summaries] == [500, 500]
    assert sinks[0].rows == sinks[1].rows
    assert len(sinks[0].rows) == 500
