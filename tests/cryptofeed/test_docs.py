"""The examples of docs/cryptofeed.md run as written, against the fake exchange."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from featurizer import FeaturizerConfig, construct_features_from_configs
from tests.cryptofeed.fake_binance import FakeBinance, generate_script

DOC = Path(__file__).resolve().parents[2] / "docs" / "cryptofeed.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_python_example_runs(
    fake_exchange: Callable[..., FakeBinance], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_exchange(generate_script(71, ("BTC-USDT",), 400))
    for key, value in fake.environ().items():
        monkeypatch.setenv(key, value)
    (code,) = blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    assert fake.connections == 1


def test_the_yaml_snippets_are_valid_config_entries() -> None:
    defined = set()
    for snippet in blocks("yaml"):
        config = FeaturizerConfig.from_dict({"feature_configs": yaml.safe_load(snippet)})
        features = construct_features_from_configs(config)
        defined |= {feature.definition_name for feature in features}
    assert {"feed_gaps", "basis", "mid_price_l2", "mid_price"} <= defined
