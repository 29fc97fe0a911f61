"""Feature keys are stable: same in every process, independent of hash seeds and param order."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from featurizer import Feature
from featurizer.testing import ExampleMid, ExampleTicker

_SCRIPT = (
    "from featurizer import Feature\n"
    "from featurizer.testing import ExampleMid, ExampleTicker\n"
    "t = Feature.create(ExampleTicker, {'symbol': 'BTC-USDT', 'exchange': 'BINANCE'})\n"
    "print(Feature.create(ExampleMid, {'w': 1.5, 'k': [1, 'a']}, {'ticker': t}).key)\n"
)


def test_keys_are_equal_across_processes_with_different_hash_seeds() -> None:
    keys = set()
    for seed in ("0", "1", "12345", "random"):
        result = subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        keys.add(result.stdout.strip())
    assert len(keys) == 1
    ticker = Feature.create(ExampleTicker, {"exchange": "BINANCE", "symbol": "BTC-USDT"})
    local = Feature.create(ExampleMid, {"k": [1, "a"], "w": 1.5}, {"ticker": ticker})
    assert keys == {local.key}


_params = st.dictionaries(
    st.text("abcxyz", min_size=1, max_size=4),
    st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.booleans()),
    max_size=4,
)


@given(params=_params)
def test_key_ignores_param_order_and_names_but_not_values(params: dict[str, object]) -> None:
    reordered = dict(reversed(list(params.items())))
    a = Feature.create(ExampleTicker, params)
    b = Feature.create(ExampleTicker, reordered, name="other")
    assert a == b and hash(a) == hash(b) and a.key == b.key
    changed = Feature.create(ExampleTicker, {**params, "extra": 1})
    assert changed != a


def test_int_and_float_params_differ_and_negative_zero_is_distinct() -> None:
    assert Feature.create(ExampleTicker, {"w": 1}) != Feature.create(ExampleTicker, {"w": 1.0})
    assert Feature.create(ExampleTicker, {"w": 0.0}) != Feature.create(ExampleTicker, {"w": -0.0})


def test_repr_and_name_are_readable() -> None:
    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    mid = Feature.create(ExampleMid, {}, {"ticker": ticker})
    assert mid.name == "example_mid(example_ticker.x.S)"
    assert repr(mid).startswith(
        "Feature(name='example_mid(example_ticker.x.S)', definition='example_mid'"
    )
