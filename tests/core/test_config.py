"""Config loading and feature construction: sharing, naming, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurizer import ConfigError, FeaturizerConfig, construct_features_from_configs


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
start_date: 2024-01-01
end_date: '2024-01-02T00:00:00Z'
feature_configs:
  - name: mid_btc
    feature_definition: mid_price
    params:
      data_source: {exchange: synthetic, symbol: BTC-USDT}
  - name: vol_btc
    feature_definition: volatility
    params:
      window: 1m
      data_source: {exchange: synthetic, symbol: BTC-USDT}
  - name: vol_btc_30
    feature_definition: volatility
    params:
      window: 30
    deps: {mid: mid_btc}
"""


def test_features_share_equal_sub_features_and_take_names(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_yaml(_write(tmp_path, GOOD))
    mid, vol, vol30 = construct_features_from_configs(config)
    assert [f.name for f in (mid, vol, vol30)] == ["mid_btc", "vol_btc", "vol_btc_30"]
    assert vol.children["mid"] is mid
    assert vol30.children["mid"] is mid
    assert vol.params == {"window": 60.0} and vol30.params == {"window": 30.0}
    assert config.start_date is not None and config.start_date.tzinfo is not None
    assert config.end_date is not None and config.start_date < config.end_date


def test_duration_spellings_give_the_same_key(tmp_path: Path) -> None:
    one = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "feature_definition": "volatility",
                    "params": {"window": "1m", "data_source": {"exchange": "e", "symbol": "s"}},
                }
            ]
        }
    )
    two = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "feature_definition": "volatility",
                    "params": {"window": 60, "data_source": {"exchange": "e", "symbol": "s"}},
                }
            ]
        }
    )
    assert (
        construct_features_from_configs(one)[0].key == construct_features_from_configs(two)[0].key
    )


def test_per_dependency_params_and_class_references() -> None:
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "feature_definition": "featurizer_features.volatility:Volatility",
                    "params": {
                        "data_source": {"exchange": "e", "symbol": "BTC"},
                        "feature": {"mid": {"data_source": {"exchange": "e", "symbol": "ETH"}}},
                    },
                }
            ]
        }
    )
    (vol,) = construct_features_from_configs(config)
    assert vol.children["mid"].children["ticker"].params == {"exchange": "e", "symbol": "ETH"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "feature_configs:\n  - feature_definition: mid_prize\n    params: {data_source: {exchange: e, symbol: s}}\n",
            r"config.yaml: feature_configs\[0\]: feature_definition: unknown definition 'mid_prize'; registered definitions: .*mid_price.*volatility",
        ),
        (
            "feature_configs:\n  - name: v\n    feature_definition: volatility\n    params: {windw: 3, data_source: {exchange: e, symbol: s}}\n",
            r"feature_configs\[0 \(name 'v'\)\]: params.windw: 'volatility' has no parameter 'windw' \(valid: window\)",
        ),
        (
            "feature_configs:\n  - feature_definition: volatility\n    params: {window: -3, data_source: {exchange: e, symbol: s}}\n",
            r"params.window: .*expected a positive duration, received -3",
        ),
        (
            "feature_configs:\n  - feature_definition: volatility\n    params: {data_source: {exchange: e}}\n",
            r"params.feature.mid.feature.ticker.data_source.symbol: 'ticker': symbol is required",
        ),
        (
            "feature_configs:\n  - feature_definition: volatility\n    params: {data_source: [{exchange: e, symbol: s}]}\n",
            r"params.data_source: expected a mapping such as",
        ),
        (
            "feature_configs:\n  - feature_definition: volatility\n    deps: {mid: nowhere}\n    params: {}\n",
            r"deps.mid: no entry is named 'nowhere'",
        ),
        (
            "feature_configs:\n  - feature_definition: volatility\n    params: {feature: {mod: {}}, data_source: {exchange: e, symbol: s}}\n",
            r"params.feature.mod: 'volatility' has no dependency 'mod' \(its dependencies: mid\)",
        ),
        (
            "feature_configs:\n  - {name: a, feature_definition: volatility, deps: {mid: b}}\n  - {name: b, feature_definition: volatility, deps: {mid: a}}\n",
            r"deps: dependency cycle through entries 0 \(name 'a'\) -> 1 \(name 'b'\)",
        ),
        (
            "feature_configs:\n  - {name: a, feature_definition: trade_volume_imbalance, params: {data_source: {exchange: e, symbol: s}}}\n  - {name: b, feature_definition: volatility, deps: {mid: a}}\n",
            r"deps.mid: entry 'a' \(trade_volume_imbalance\) does not provide field 'mid_price' of type float",
        ),
        ("feature_configs: []\n", r"feature_configs: expected a non-empty list"),
        (
            "feature_configs:\n  - {name: a, feature_definition: mid_price, params: {data_source: {exchange: e, symbol: s}}}\n  - {name: b, feature_definition: mid_price, params: {data_source: {symbol: s, exchange: e}}}\n",
            r"feature_configs\[1 \(name 'b'\)\]: defines the same feature as entry 0 \(name 'a'\)",
        ),
        (
            "feature_configs:\n  - {name: a, feature_definition: mid_price, params: {data_source: {exchange: e, symbol: s}}}\n  - {name: b, feature_definition: volatility, deps: {mid: a}, params: {feature: {mid: {}}}}\n",
            r"deps.mid: dependency 'mid' is given both by deps.mid and by params.feature.mid",
        ),
        (
            "feature_config: []\n",
            r"unknown top-level field 'feature_config' \(valid: feature_configs",
        ),
        (
            "feature_configs:\n  - feature_definition: mid_price\n    paramz: {}\n",
            r"feature_configs\[0\]: paramz: unknown field",
        ),
        (
            "start_date: yesterday\nfeature_configs:\n  - {feature_definition: mid_price}\n",
            r"start_date: expected an ISO date",
        ),
        ("feature_configs: [\n", r"config.yaml: invalid YAML"),
    ],
)
def test_config_errors_name_file_entry_field_and_choices(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        construct_features_from_configs(FeaturizerConfig.from_yaml(path))
    assert str(path) in str(info.value)


def test_unimportable_class_reference_is_a_config_error() -> None:
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {"name": "a", "feature_definition": "mid_price_cycle_probe:Nope"},
            ]
        }
    )
    with pytest.raises(ConfigError, match="cannot import 'mid_price_cycle_probe:Nope'"):
        construct_features_from_configs(config)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        FeaturizerConfig.from_yaml(tmp_path / "missing.yaml")
