"""Which nodes of a graph ``featurizer record`` stores (the config's ``features_to_store``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from featurizer._errors import ConfigError
from featurizer._feature import Feature
from featurizer._graph import topological_order

if TYPE_CHECKING:
    from featurizer._config import FeaturizerConfig

__all__ = ["KEYWORDS", "select_features"]

KEYWORDS = ("data_sources", "outputs")
"""``data_sources``: every data source of the graph; ``outputs``: every config entry."""


def select_features(
    config: FeaturizerConfig,
    outputs: Sequence[Feature],
    selectors: Sequence[str] | None = None,
) -> list[Feature]:
    """Resolve ``features_to_store`` against the graph of ``outputs``.

    Each selector is ``data_sources``, ``outputs``, the ``name`` of a config entry, the name of
    any node of the graph (data sources are named ``<definition>.<exchange>.<symbol>``), or a
    feature key or unique key prefix (at least 6 hex digits). ``None`` (the config has no
    ``features_to_store``) means ``[data_sources, outputs]``.

    :param config: the config (for error messages).
    :param outputs: its output features, in entry order.
    :param selectors: the selectors (default: the config's ``features_to_store``).
    :returns: the selected nodes, once each, in graph (topological) order.
    :raises ConfigError: naming ``features_to_store[i]`` and listing what can be selected.
    """
    chosen = list(selectors) if selectors is not None else config.features_to_store
    if chosen is None:
        chosen = list(KEYWORDS)
    nodes = topological_order(outputs)
    entry_names = {
        entry.name: outputs[i] for i, entry in enumerate(config.feature_configs) if entry.name
    }
    selected: set[Feature] = set()
    for i, selector in enumerate(chosen):
        field = f"features_to_store[{i}]"
        if selector == "data_sources":
            if selector in entry_names:
                raise ConfigError(
                    f"{selector!r} is both a keyword and an entry name; rename the entry",
                    path=config.path,
                    field=field,
                )
            selected.update(node for node in nodes if node.is_data_source)
            continue
        if selector == "outputs":
            if selector in entry_names:
                raise ConfigError(
                    f"{selector!r} is both a keyword and an entry name; rename the entry",
                    path=config.path,
                    field=field,
                )
            selected.update(outputs)
            continue
        if selector in entry_names:
            selected.add(entry_names[selector])
            continue
        by_name = [node for node in nodes if node.name == selector]
        if len(by_name) == 1:
            selected.add(by_name[0])
            continue
        lowered = selector.lower()
        by_key = [
            node
            for node in nodes
            if node.key == lowered or (len(lowered) >= 6 and node.key.startswith(lowered))
        ]
        if len(by_key) == 1:
            selected.add(by_key[0])
            continue
        candidates = sorted({*entry_names, *(node.name for node in nodes)})
        if len(by_name) > 1 or len(by_key) > 1:
            message = (
                f"{selector!r} matches several nodes "
                f"({', '.join(f'{n.name} (key {n.short_key})' for n in by_name or by_key)}); "
                f"use a longer key prefix"
            )
        else:
            message = (
                f"{selector!r} is not an entry name, a node name or a key of this graph; "
                f"choose from {', '.join(map(repr, KEYWORDS))} or: {', '.join(candidates)}"
            )
        raise ConfigError(message, path=config.path, field=field)
    return [node for node in nodes if node in selected]
