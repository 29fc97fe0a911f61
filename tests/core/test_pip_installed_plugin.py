"""A third-party plugin built and installed by pip is discovered and used with no core change."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from featurizer import (
    FeatureStreamGraph,
    FeaturizerConfig,
    Plugins,
    construct_features_from_configs,
    make_plugin_manager,
)

PYPROJECT = textwrap.dedent(
    """
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "featurizer-pipdemo"
    version = "0.3.0"
    dependencies = []

    [project.entry-points.featurizer]
    pipdemo = "featurizer_pipdemo"
    """
)

MODULE = textwrap.dedent(
    '''
    """A third-party feature: the ticker's bid-ask spread in ticks."""
    import featurizer
    from featurizer_features import TickerSource


    class SpreadTicks(featurizer.FeatureDefinition):
        name = "spread_ticks"
        params = {"tick": featurizer.Param(kind="float", default=0.5)}

        @classmethod
        def event_schema(cls):
            return {"ticks": float}

        @classmethod
        def dep_upstream_schema(cls, dep_schema=None):
            return {"ticker": TickerSource}

        @classmethod
        def stream(cls, upstreams, params):
            tick = params["tick"]
            return upstreams["ticker"].map(
                lambda e: {"timestamp": e["timestamp"], "receipt_timestamp": e["receipt_timestamp"],
                           "ticks": (e["ask"] - e["bid"]) / tick}
            )


    @featurizer.hookimpl
    def featurizer_register_feature_definitions():
        return [SpreadTicks]
    '''
)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    (project / "featurizer_pipdemo").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "featurizer_pipdemo" / "__init__.py").write_text(MODULE, encoding="utf-8")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("featurizer_pipdemo", None)


def test_pip_installed_plugin_is_discovered_and_used(installed: Path) -> None:
    assert any(installed.glob("featurizer_pipdemo-0.3.0.dist-info"))
    plugins = Plugins(make_plugin_manager(environ={}))
    info = {i.name: i for i in plugins.describe()}["pipdemo"]
    assert (info.distribution, info.version) == ("featurizer-pipdemo", "0.3.0")
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "feature_definition": "spread_ticks",
                    "params": {
                        "tick": 0.25,
                        "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
                    },
                }
            ]
        }
    )
    (feature,) = construct_features_from_configs(config, plugins)
    graph = FeatureStreamGraph([feature])
    seen: list[float] = []
    graph.set_callback(feature, lambda f, e: seen.append(e["ticks"]))
    (ticker,) = graph.get_ins()
    graph.emit_named_data_event(
        (
            ticker,
            {
                "timestamp": 1.0,
                "receipt_timestamp": 1.0,
                "bid": 10.0,
                "ask": 11.0,
                "bid_size": 1.0,
                "ask_size": 1.0,
            },
        )
    )
    assert seen == [4.0]
