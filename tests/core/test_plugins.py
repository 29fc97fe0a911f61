"""Plugin discovery over real dist-info folders, loud failures, block list, registry clashes."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import importlib_metadata
import pytest

from featurizer import (
    FeatureStreamGraph,
    FeaturizerConfig,
    PluginLoadError,
    Plugins,
    RegistryError,
    construct_features_from_configs,
    make_plugin_manager,
)
from featurizer._plugins import AUTOLOAD_ENV, DISABLE_ENV, reset_plugins
from featurizer.testing import write_distribution

PLUGIN_SOURCE = textwrap.dedent(
    """
    from __future__ import annotations
    from streamz import Stream
    import featurizer
    from featurizer_features import MidPrice


    class DoubleMid(featurizer.FeatureDefinition):
        name = "double_mid"

        @classmethod
        def event_schema(cls):
            return {"double_mid": float}

        @classmethod
        def dep_upstream_schema(cls, dep_schema=None):
            return {"mid": MidPrice}

        @classmethod
        def stream(cls, upstreams, params):
            return upstreams["mid"].map(
                lambda e: {"timestamp": e["timestamp"], "receipt_timestamp": e["receipt_timestamp"],
                           "double_mid": 2 * e["mid_price"]}
            )


    @featurizer.hookimpl
    def featurizer_register_feature_definitions():
        return [DoubleMid]
    """
)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("featurizer_thirdparty")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_third_party_distribution_is_discovered_and_used_without_core_change(site: Path) -> None:
    write_distribution(
        site,
        "featurizer-thirdparty",
        version="2.3.4",
        entry_points={"thirdparty": "featurizer_thirdparty_ok"},
        modules={"featurizer_thirdparty_ok.py": PLUGIN_SOURCE},
    )
    plugins = Plugins(make_plugin_manager(environ={}))
    info = {i.name: i for i in plugins.describe()}["thirdparty"]
    assert (info.distribution, info.version) == ("featurizer-thirdparty", "2.3.4")
    assert info.hooks == ("featurizer_register_feature_definitions",)
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "feature_definition": "double_mid",
                    "params": {"data_source": {"exchange": "synthetic", "symbol": "X"}},
                }
            ]
        }
    )
    (feature,) = construct_features_from_configs(config, plugins)
    graph = FeatureStreamGraph([feature])
    out: list[float] = []
    graph.set_callback(feature, lambda f, e: out.append(e["double_mid"]))
    (ticker,) = graph.get_ins()
    graph.emit_named_data_event(
        (
            ticker,
            {
                "timestamp": 1.0,
                "receipt_timestamp": 1.0,
                "bid": 1.0,
                "ask": 2.0,
                "bid_size": 1.0,
                "ask_size": 1.0,
            },
        )
    )
    assert out == [3.0]


def test_plugin_that_fails_to_import_is_a_loud_error_naming_it(site: Path) -> None:
    write_distribution(
        site,
        "featurizer-thirdparty-broken",
        entry_points={"broken": "featurizer_thirdparty_broken"},
        modules={"featurizer_thirdparty_broken.py": "raise RuntimeError('kaboom at import')\n"},
    )
    with pytest.raises(PluginLoadError) as info:
        make_plugin_manager(environ={})
    message = str(info.value)
    assert 'featurizer failed to load plugin "featurizer-thirdparty-broken[broken]"' in message
    assert "kaboom at import" in message and f"{DISABLE_ENV}=broken" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    # The block list turns it off; everything else still loads.
    pm = make_plugin_manager(environ={DISABLE_ENV: "broken"})
    assert pm.get_plugin("broken") is None and pm.get_plugin("features") is not None


def test_misspelled_hook_is_an_error(site: Path) -> None:
    write_distribution(
        site,
        "featurizer-thirdparty-typo",
        entry_points={"typo": "featurizer_thirdparty_typo"},
        modules={
            "featurizer_thirdparty_typo.py": "import featurizer\n@featurizer.hookimpl\ndef featurizer_register_featur_definitions():\n    return []\n"
        },
    )
    with pytest.raises(PluginLoadError, match="featurizer_register_featur_definitions") as info:
        make_plugin_manager(environ={})
    assert 'plugin "featurizer-thirdparty-typo[typo]"' in str(info.value)
    assert "featurizer_register_feature_definitions" in str(info.value)


def test_bundled_plugins_come_from_their_own_distributions() -> None:
    plugins = Plugins(make_plugin_manager(environ={}))
    infos = {info.name: info for info in plugins.describe()}
    assert infos["features"].distribution == "featurizer-features"
    assert infos["featurizer._default_plugin"].distribution == "featurizer"
    entry_points = importlib_metadata.distribution("featurizer-features").entry_points
    assert [(ep.group, ep.name, ep.value) for ep in entry_points] == [
        ("featurizer", "features", "featurizer_features")
    ]
    assert {"mid_price", "volatility", "trade_volume_imbalance"} <= set(
        plugins.feature_definitions()
    )
    assert {"ticker", "trades", "l2_book"} <= set(plugins.data_source_definitions())


def test_autoload_switch_and_block_list() -> None:
    pm = make_plugin_manager(environ={AUTOLOAD_ENV: "1"})
    assert pm.get_plugin("features") is None
    assert set(Plugins(pm).sinks()) == {"jsonl", "parquet"}
    pm = make_plugin_manager(environ={DISABLE_ENV: "features, synthetic"})
    assert pm.get_plugin("features") is None and pm.is_blocked("features")


def test_two_plugins_registering_one_name_is_an_error() -> None:
    import featurizer_features

    class Twin:
        @staticmethod
        @__import__("featurizer").hookimpl
        def featurizer_register_feature_definitions() -> list[type]:
            return [featurizer_features.MidPrice]

    plugins = Plugins(make_plugin_manager(environ={}, extra_plugins=[Twin]))
    with pytest.raises(RegistryError, match="'mid_price' is registered by both plugin"):
        plugins.feature_definitions()
    reset_plugins()
