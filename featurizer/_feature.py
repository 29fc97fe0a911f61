"""Features: the nodes of the DAG, identified by a stable key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from featurizer._definitions import DataDefinition, definition_name

__all__ = ["Feature", "feature_key"]


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        return {"float": value.hex()}
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"feature params must be plain data, received {type(value).__name__} {value!r}")


def feature_key(definition: str, params: Mapping[str, Any], children: Mapping[str, Feature]) -> str:
    """Compute a feature's stable key.

    The key is the SHA-256 of a canonical JSON document holding the definition's name, the
    canonical params (floats by their exact hex form) and the children's keys by dependency
    name. It never uses ``hash()`` or pickling, so it is the same in every process, on every
    machine and every Python version.

    :param definition: the definition's stable name.
    :param params: resolved params.
    :param children: dependency name to child feature.
    :returns: 64 lowercase hex digits.
    """
    document = {
        "definition": definition,
        "params": _canonical(params),
        "children": {name: child.key for name, child in sorted(children.items())},
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def _default_name(
    definition: str, params: Mapping[str, Any], children: Mapping[str, Feature]
) -> str:
    if not children:
        identity = ".".join(str(params[k]) for k in ("exchange", "symbol") if k in params)
        return f"{definition}.{identity}" if identity else definition
    inner = ", ".join(child.name for child in children.values())
    return f"{definition}({inner})"


@attrs.frozen(kw_only=True, eq=False, repr=False)
class Feature:
    """A node of the feature DAG: a definition, its resolved params and its children.

    Equality and hashing are by :attr:`key` only; the :attr:`name` is a readable label.
    Build features with :meth:`create` (or from a config), which computes the key.

    >>> from featurizer.testing import ExampleTicker
    >>> a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "BTC-USDT"})
    >>> b = Feature.create(ExampleTicker, {"symbol": "BTC-USDT", "exchange": "x"}, name="t")
    >>> a == b, a.name, b.name
    (True, 'example_ticker.x.BTC-USDT', 't')
    """

    definition: type[DataDefinition]
    params: Mapping[str, Any]
    children: Mapping[str, Feature] = attrs.field(factory=dict)
    key: str
    name: str
    _hash: int = attrs.field(alias="_hash")

    @classmethod
    def create(
        cls,
        definition: type[DataDefinition],
        params: Mapping[str, Any],
        children: Mapping[str, Feature] | None = None,
        *,
        name: str | None = None,
    ) -> Feature:
        """Build a feature and compute its stable key.

        :param definition: the definition class.
        :param params: resolved params (plain data).
        :param children: dependency name to child feature (empty for data sources).
        :param name: a readable label; defaults to one derived from the definition and children.
        :returns: the feature.
        """
        kids = dict(children or {})
        definition_id = definition_name(definition)
        key = feature_key(definition_id, params, kids)
        return cls(
            definition=definition,
            params=dict(params),
            children=kids,
            key=key,
            name=name or _default_name(definition_id, params, kids),
            _hash=int(key[:15], 16),
        )

    @property
    def definition_name(self) -> str:
        """The definition's stable name."""
        return definition_name(self.definition)

    @property
    def short_key(self) -> str:
        """The first 10 hex digits of the key, for display."""
        return self.key[:10]

    @property
    def is_data_source(self) -> bool:
        """Whether this node is a leaf fed by an emitter."""
        return self.definition.is_data_source()

    def renamed(self, name: str) -> Feature:
        """A copy with another readable name (same key, so equal to this one).

        :param name: the new label.
        """
        return attrs.evolve(self, name=name)

    def walk(self) -> Iterator[Feature]:
        """Yield this feature's sub-DAG in post-order (children before parents), once each."""
        seen: set[str] = set()
        stack: list[tuple[Feature, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if node.key in seen:
                continue
            if expanded:
                seen.add(node.key)
                yield node
                continue
            stack.append((node, True))
            for child in reversed(list(node.children.values())):
                if child.key not in seen:
                    stack.append((child, False))

    def data_sources(self) -> list[Feature]:
        """The data-source leaves of this feature's sub-DAG, in walk order."""
        return [node for node in self.walk() if node.is_data_source]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Feature):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return (
            f"Feature(name={self.name!r}, definition={self.definition_name!r}, "
            f"key={self.short_key!r}, params={dict(self.params)!r})"
        )
