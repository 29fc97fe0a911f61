"""A config maps a dependency's fields: volatility over a microprice feature."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurizer import ConfigError, FeaturizerConfig, construct_features_from_configs
from featurizer.cli import main
from featurizer.testing import run_graph
from featurizer.testing.strategies import ticker_streams

MICRO = '''
from featurizer import FeatureDefinition
from featurizer_features import TickerSource


class MicroPrice(FeatureDefinition):
    """Size-weighted mid: (bid * ask_size + ask * bid_size) / (bid_size + ask_size)."""

    name = "test_microprice"

    @classmethod
    def event_schema(cls):
        return {"microprice": float}

    @classmethod
    def dep_upstream_schema(cls, dep_schema=None):
        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams, params):
        def micro(e):
            sizes = e["bid_size"] + e["ask_size"]
            value = (e["bid"] * e["ask_size"] + e["ask"] * e["bid_size"]) / sizes if sizes else (
                (e["bid"] + e["ask"]) / 2
            )
            return {"timestamp": e["timestamp"], "receipt_timestamp": e["receipt_timestamp"],
                    "microprice": value}
        return upstreams["ticker"].map(micro)
'''


def _config(fields: object) -> dict[str, object]:
    source = {"data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}}
    return {
        "feature_configs": [
            {"name": "micro", "feature_definition": "alias_defs:MicroPrice", "params": source},
            {"name": "mid", "feature_definition": "mid_price", "params": source},
            {
                "name": "vol_micro",
                "feature_definition": "volatility",
                "params": {"window": "1m", **source},
                "deps": {"mid": {"entry": "micro", "fields": fields}},
            },
            {
                "name": "vol_mid",
                "feature_definition": "volatility",
                "params": {"window": "1m", **source},
                "deps": {"mid": "mid"},
            },
        ]
    }


@pytest.fixture(autouse=True)
def _defs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "alias_defs.py").write_text(MICRO, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)


def test_without_a_mapping_the_field_names_do_not_match() -> None:
    config = _config({})
    config["feature_configs"][2]["deps"] = {"mid": "micro"}  # type: ignore[index]
    with pytest.raises(ConfigError, match="does not provide field 'mid_price'"):
        construct_features_from_configs(FeaturizerConfig.from_dict(config))


@given(ticks=ticker_streams(min_size=1, max_size=25, sizes=st.just(1.0)))
def test_volatility_over_microprice_equals_volatility_over_a_renamed_mid(
    ticks: list[dict[str, float]],
) -> None:
    # With equal sizes the microprice is the mid: both volatilities must agree exactly.
    micro, _, vol_micro, vol_mid = construct_features_from_configs(
        FeaturizerConfig.from_dict(_config({"mid_price": "microprice"}))
    )
    (ticker,) = {s for f in (vol_micro, vol_mid) for s in f.data_sources()}
    sink = run_graph([vol_micro, vol_mid], [(ticker, t) for t in ticks], combine_outputs=False)
    got = [e["volatility"] for e in sink.events[vol_micro]]
    want = [e["volatility"] for e in sink.events[vol_mid]]
    assert len(got) == len(want) == len(ticks)
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(got, want, strict=True))
    alias = vol_micro.children["mid"]
    assert alias.definition_name == "field_alias" and alias.children["source"] is micro


def test_the_alias_runs_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    Path("c.yaml").write_text(yaml.safe_dump(_config({"mid_price": "microprice"})))
    assert main(["validate", "c.yaml"]) == 0
    assert "micro[mid_price=microprice]  [field_alias] fields='mid_price=microprice'" in (
        capsys.readouterr().out
    )
    assert main(["run", "c.yaml", "--max-events", "3000", "--check", "--out", "o.jsonl"]) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"mid_price": "nope"},
            "deps.mid.fields: entry 'micro' (test_microprice) has no field 'nope' (its fields: "
            "microprice)",
        ),
        ({"mid_price": 3}, "deps.mid: expected a mapping of dependency name"),
    ],
)
def test_bad_mappings_are_one_clear_error(fields: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        construct_features_from_configs(FeaturizerConfig.from_dict(_config(fields)))
    assert message in str(raised.value) and str(raised.value).count("\n") == 0
