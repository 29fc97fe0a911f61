"""Turn the streamz operators a feature declares into something cheap to execute.

A feature's :meth:`~featurizer.FeatureDefinition.stream` builds a streamz graph. When that graph
is a straight chain of ``map``, ``filter`` and ``accumulate`` over one upstream (the common
case), it is *fused*: the chain becomes a list of :class:`Step` values that the graph compiler
inlines into generated Python, calling the user's functions directly with exactly streamz's
semantics but none of its per-hop machinery. Anything else (several upstreams, ``zip``,
``combine_latest``, ``flatten``, timers, ...) runs through streamz itself behind a
:class:`StreamzKernel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from streamz import Stream
from streamz import core as streamz_core

__all__ = ["FusedChain", "Step", "StreamzKernel", "fuse"]

_FUSABLE = (streamz_core.map, streamz_core.filter, streamz_core.accumulate)


@attrs.frozen(kw_only=True)
class Step:
    """One fused operator: the streamz node it came from and its kind.

    :param kind: ``"map"``, ``"filter"`` or ``"accumulate"``.
    :param node: the streamz node; ``accumulate`` keeps its state on it, as streamz does.
    """

    kind: str
    node: Stream


@attrs.frozen(kw_only=True)
class FusedChain:
    """A straight chain of fusable operators from one upstream to the output."""

    steps: tuple[Step, ...]


class StreamzKernel:
    """Runs a feature's streamz graph as streamz does, collecting what reaches the output.

    :param sources: the placeholder stream of each upstream, in dependency order.
    :param output: the feature's output stream.
    """

    def __init__(self, sources: Sequence[Stream], output: Stream) -> None:
        self._sources = list(sources)
        self._collected: list[Any] = []
        self._sink = output.sink(self._collected.append)

    def __call__(self, slot: int, event: Any) -> list[Any]:
        """Push ``event`` into upstream ``slot``; return the non-``None`` outputs it caused."""
        try:
            self._sources[slot].emit(event)
            return [item for item in self._collected if item is not None]
        finally:
            self._collected.clear()


def _single_downstream(node: Stream) -> Stream | None:
    downstreams = list(node.downstreams)
    return downstreams[0] if len(downstreams) == 1 else None


def fuse(sources: Mapping[str, Stream], output: Stream) -> FusedChain | None:
    """Return the fused form of the streamz graph from ``sources`` to ``output``, if it has one.

    Fusion applies when there is exactly one source and the path from it to ``output`` is a
    chain of ``map``/``filter``/``accumulate`` nodes (exact streamz classes, so subclasses with
    their own ``update`` are never misread), each with one upstream and one downstream, and
    nothing else hangs off the chain.

    :param sources: placeholder stream per dependency name.
    :param output: the stream the feature returned.
    :returns: the chain, or ``None`` when the graph must run through streamz.
    """
    if len(sources) != 1:
        return None
    (source,) = sources.values()
    if list(output.downstreams):
        return None
    steps: list[Step] = []
    node = output
    while node is not source:
        if type(node) not in _FUSABLE or len(node.upstreams) != 1:
            return None
        (upstream,) = node.upstreams
        if _single_downstream(upstream) is not node:
            return None
        steps.append(Step(kind=type(node).__name__, node=node))
        node = upstream
    steps.reverse()
    return FusedChain(steps=tuple(steps))


def call_with(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Callable[[Any], Any]:
    """Bind a streamz operator's extra ``args``/``kwargs`` so the generated code calls ``f(x)``.

    :returns: ``func`` itself when there is nothing to bind (the fast path).
    """
    if not args and not kwargs:
        return func
    return lambda x: func(x, *args, **kwargs)
