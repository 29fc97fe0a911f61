"""The files ``featurizer new-plugin NAME`` writes: a plugin that passes its own tests."""

from __future__ import annotations

__all__ = ["plugin_files"]

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "featurizer-{name}"
version = "0.1.0"
description = "A Featurizer plugin: the {name}_spread feature and the {name} CSV emitter."
requires-python = ">=3.11"
dependencies = ["featurizer>=0.1.0", "featurizer-features>=0.1.0"]

[project.optional-dependencies]
test = ["pytest", "hypothesis"]

[project.entry-points.featurizer]
{name} = "featurizer_{name}"

[tool.setuptools.packages.find]
include = ["featurizer_{name}*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_INIT = '''\
"""featurizer-{name}: the ``{name}_spread`` feature and the ``{name}`` CSV ticker emitter."""

from __future__ import annotations

from featurizer import EmitterSpec, FeatureDefinition, hookimpl
from featurizer_{name}.emitter import CsvTickerEmitter
from featurizer_{name}.features import Spread

__all__ = ["CsvTickerEmitter", "Spread"]


@hookimpl
def featurizer_register_feature_definitions() -> list[type[FeatureDefinition]]:
    """``{name}_spread``."""
    return [Spread]


@hookimpl
def featurizer_register_emitters() -> list[EmitterSpec]:
    """``{name}``: ticker events from CSV files, the default for exchange ``{name}``."""
    return [
        EmitterSpec(
            name="{name}",
            emitter_class=CsvTickerEmitter,
            data_sources=("ticker",),
            exchanges=("{name}",),
            description="ticker events from DIRECTORY/SYMBOL.csv",
        )
    ]
'''

_FEATURES = '''\
"""The ``{name}_spread`` feature: ask minus bid of a ticker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Schema
from featurizer_features import TickerSource


class Spread(FeatureDefinition):
    """The quoted spread, ``ask - bid``, one output per ticker event."""

    name = "{name}_spread"
    description = "ask minus bid of a ticker"

    @classmethod
    def event_schema(cls) -> Schema:
        """``spread``."""
        return {{"spread": float}}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``ticker``: a ticker data source."""
        return {{"ticker": TickerSource}}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """A ``map`` (fused by the graph compiler)."""

        def spread(event: Event) -> Event:
            return {{
                "timestamp": event["timestamp"],
                "receipt_timestamp": event["receipt_timestamp"],
                "spread": event["ask"] - event["bid"],
            }}

        return upstreams["ticker"].map(spread)
'''

_EMITTER = '''\
"""The ``{name}`` emitter: ticker events from ``DIRECTORY/SYMBOL.csv``."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from featurizer import EmitterError, EmitterOption, Event, Feature, GeneratorEmitter


class CsvTickerEmitter(GeneratorEmitter):
    """Reads ``timestamp,receipt_timestamp,bid,ask[,...]`` rows, one file per symbol.

    The framework (:class:`featurizer.GeneratorEmitter`) runs :meth:`events` on its own
    thread and applies ``--max-events``, ``--duration``, ``--pace`` and stopping.
    """

    declared_options = (
        EmitterOption(name="directory", parse=Path, default=Path("."), help="the CSV folder"),
    )

    def path(self, source: Feature) -> Path:
        """The file of a data source."""
        return Path(self.settings["directory"]) / f"{{source.params['symbol']}}.csv"

    def check_source(self, feature: Feature) -> None:
        """Refuse a data source whose file is missing (``featurizer validate`` calls this)."""
        if not self.path(feature).is_file():
            raise EmitterError(
                f"{name} emitter: no file {{str(self.path(feature))!r}} for {{feature.name!r}}; "
                f"pass --emitter-option directory=FOLDER"
            )

    def events(self) -> Iterator[tuple[Feature, Event]]:
        """Every row of every source's file, one source after the other."""
        for source in self.sources:
            with self.path(source).open(newline="", encoding="utf-8") as rows:
                for row in csv.DictReader(rows):
                    yield source, {{key: float(value) for key, value in row.items()}}
'''

_TESTS = '''\
"""featurizer-{name}: the feature against a reference, the emitter, the registration."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given

import featurizer_{name}
from featurizer import Feature, Plugins, make_plugin_manager
from featurizer.testing import run_graph
from featurizer.testing.strategies import ticker_streams
from featurizer_features import TickerSource
from featurizer_{name} import CsvTickerEmitter, Spread

TICKER = Feature.create(TickerSource, {{"exchange": "{name}", "symbol": "BTC-USDT"}})
SPREAD = Feature.create(Spread, {{}}, {{"ticker": TICKER}})


@given(ticks=ticker_streams(max_size=30))
def test_spread_is_ask_minus_bid(ticks: list[dict[str, float]]) -> None:
    events = run_graph([SPREAD], [(TICKER, tick) for tick in ticks]).events[SPREAD]
    assert [event["spread"] for event in events] == [t["ask"] - t["bid"] for t in ticks]
    assert [event["timestamp"] for event in events] == [t["timestamp"] for t in ticks]


def test_the_emitter_reads_a_csv_file(tmp_path: Path) -> None:
    (tmp_path / "BTC-USDT.csv").write_text(
        "timestamp,receipt_timestamp,bid,ask\\n1,1,10,12\\n2,2,11,12\\n3,3,9,12\\n",
        encoding="utf-8",
    )
    emitter = CsvTickerEmitter({{"directory": str(tmp_path), "max_events": 2}})
    received: list[dict[str, float]] = []
    emitter.register_callback(TICKER, received.append)
    emitter.start()
    assert emitter.wait(30) and emitter.failure() is None
    assert [event["bid"] for event in received] == [10.0, 11.0]


def test_the_plugin_registers_its_feature_and_emitter() -> None:
    plugins = Plugins(make_plugin_manager(environ={{}}, extra_plugins=[featurizer_{name}]))
    assert plugins.feature_definitions()["{name}_spread"] is Spread
    assert plugins.emitters()["{name}"].emitter_class is CsvTickerEmitter
'''

_CONFIG = """\
feature_configs:
  - name: spread
    feature_definition: {name}_spread
    params:
      data_source: {{exchange: {name}, symbol: BTC-USDT}}
"""

_DATA = """\
timestamp,receipt_timestamp,bid,ask
1704067200.0,1704067200.01,42000.0,42001.5
1704067201.0,1704067201.01,42000.5,42001.0
1704067202.0,1704067202.01,41999.0,42002.0
"""

_README = """\
# featurizer-{name}

A Featurizer plugin generated by `featurizer new-plugin {name}`: the `{name}_spread` feature
and the `{name}` emitter (ticker events from CSV files).

Try it from this folder without installing it:

```bash
export PYTHONPATH=. FEATURIZER_PLUGINS=featurizer_{name}
featurizer validate example.yaml --emitter-option directory=data
featurizer run example.yaml --emitter-option directory=data
python -m pytest
```

Install it (then `featurizer plugins` lists it and no environment variable is needed):

```bash
pip install -e '.[test]'
```
"""


def plugin_files(name: str) -> dict[str, str]:
    """Relative path to content of every file of plugin ``name`` (``[a-z][a-z0-9_]*``)."""
    package = f"featurizer_{name}"
    return {
        "pyproject.toml": _PYPROJECT.format(name=name),
        "README.md": _README.format(name=name),
        f"{package}/__init__.py": _INIT.format(name=name),
        f"{package}/features.py": _FEATURES.format(name=name),
        f"{package}/emitter.py": _EMITTER.format(name=name),
        f"{package}/py.typed": "",
        f"tests/test_{name}.py": _TESTS.format(name=name),
        "example.yaml": _CONFIG.format(name=name),
        "data/BTC-USDT.csv": _DATA,
    }
