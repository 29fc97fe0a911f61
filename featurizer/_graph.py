"""FeatureStreamGraph: the feature DAG compiled into a fused, glitch-free execution plan."""

from __future__ import annotations

import collections
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from streamz import Stream
from streamz.core import no_default

from featurizer._definitions import FeatureDefinition
from featurizer._errors import EventValidationError, FeatureComputationError, FeaturizerError
from featurizer._events import Event, GroupedNamedDataEvent, NamedDataEvent, full_schema
from featurizer._feature import Feature
from featurizer._fusion import FusedChain, StreamzKernel, call_with, fuse
from featurizer._inline import inlinable

if TYPE_CHECKING:
    from featurizer.metrics import NodeMetrics

__all__ = ["ERROR_POLICIES", "FeatureStreamGraph", "check_output_event", "topological_order"]

logger = logging.getLogger(__name__)

ERROR_POLICIES = ("raise", "skip")
"""``raise``: a feature error propagates out of ``emit``. ``skip``: it is counted, reported to
the error callback and that feature (and what depends on it) produces nothing for the event."""

_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")

FeatureCallback = Callable[[Feature, Event], None]
CombinedCallback = Callable[[GroupedNamedDataEvent], None]
ErrorCallback = Callable[[FeatureComputationError], None]


def _ignore(grouped: GroupedNamedDataEvent) -> None:
    """The combined callback when none was given."""


def topological_order(
    outputs: Iterable[Feature], leaves: Collection[Feature] = ()
) -> list[Feature]:
    """Every node under ``outputs``, once, children before parents, in a deterministic order.

    :param outputs: the output features.
    :param leaves: features whose children are not visited (external inputs).
    :returns: post-order of a depth-first walk over the outputs in order, dependencies in
        declaration order. The first object seen for each key is the one returned, outputs
        first, so names given to outputs are kept.
    """
    order: list[Feature] = []
    seen: set[Feature] = set()
    canonical = {feature: feature for feature in outputs}
    for output in outputs:
        stack: list[tuple[Feature, bool]] = [(output, False)]
        while stack:
            node, expanded = stack.pop()
            node = canonical.get(node, node)
            if node in seen:
                continue
            if expanded or node in leaves or not node.children:
                seen.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(list(node.children.values())))
    return order


@attrs.define(kw_only=True)
class _Node:
    feature: Feature
    index: int
    upstreams: list[int]
    chain: FusedChain | None = None
    kernel: StreamzKernel | None = None
    state: Any = None
    output: Stream | None = None
    multi: bool = False
    sources: list[Stream] = attrs.field(factory=list)


def graph_schedule(graph: FeatureStreamGraph) -> dict[int, list[int]]:
    """Input index to the indexes of the nodes its dispatch computes."""
    return {graph._index[source]: list(graph._schedule[source]) for source in graph._ins}


class _Codegen:
    """Writes the per-source dispatch functions of a graph as Python source.

    Two variants are generated per source: *warming* (some output has no value yet, so the
    combined output is held back while counting the outputs still missing) and *ready* (every
    output has a value: no counting). The graph swaps to the ready variant once, when the last
    output receives its first value.

    With metrics (``FeatureStreamGraph(metrics=NodeMetrics(...))``) both variants also count
    input events, list-valued nodes' events and single-valued nodes' empty visits, and remember
    each input's latest event; one input event in ``sample_every`` goes to a third, *timed*
    variant that measures every node with ``perf_counter_ns``. Without metrics none of that
    code is generated: the dispatch functions are exactly the uninstrumented ones.
    """

    def __init__(self, graph: FeatureStreamGraph) -> None:
        self.graph = graph
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"_NO_DEFAULT": no_default}
        self.multi: dict[int, bool] = {}
        self.maybe_none: dict[int, bool] = {}
        self.warming = True
        self.metrics = graph._metrics
        self.metrics_modes: dict[int, str] = {}
        self.fail_extra = ""
        self.timed = False
        if self.metrics is not None:
            self.namespace.update(
                _o=self.metrics.out_counts,
                _cd=self.metrics.countdowns,
                _tc=self.metrics.rounds,
                _z=self.metrics.empty_visits,
                _last=self.metrics.last_events,
                _clock=time.perf_counter_ns,
                _sn=self.metrics.sample_counts,
                _ss=self.metrics.sample_sums,
            )

    def const(self, name: str, value: Any) -> str:
        self.namespace[name] = value
        return name

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def build(
        self,
    ) -> tuple[dict[Feature, Callable[[Event], None]], dict[Feature, Callable[[Event], None]]]:
        graph = self.graph
        names: dict[bool, dict[Feature, str]] = {True: {}, False: {}}
        if self.metrics is not None:
            self.timed = self.warming = True
            for source in graph._ins:
                self.source_function(source, f"_on_{graph._index[source]}_timed")
            self.timed = False
        for warming in (True, False):
            self.warming = warming
            for source in graph._ins:
                fn = f"_on_{graph._index[source]}_{'warming' if warming else 'ready'}"
                names[warming][source] = fn
                self.source_function(source, fn)
        if self.metrics is not None:
            self.metrics.set_counting(self.metrics_modes, graph_schedule(graph))
        source_text = "\n".join(self.lines)
        code = compile(source_text, f"<featurizer graph {id(graph):x}>", "exec")
        exec(code, self.namespace)
        graph._generated_source = source_text
        warming_fns = {f: self.namespace[fn] for f, fn in names[True].items()}
        ready_fns = {f: self.namespace[fn] for f, fn in names[False].items()}
        return warming_fns, ready_fns

    def source_function(self, source: Feature, fn: str) -> None:
        """Emit the dispatch function ``fn`` of one input, in the current variant."""
        graph = self.graph
        idx = graph._index[source]
        # With metrics, errors name the input whose dispatch they interrupt.
        self.fail_extra = f", {idx}" if self.metrics is not None else ""
        self.multi = {idx: False}
        self.maybe_none = {idx: False}
        header = len(self.lines)
        self.emit(0, f"def {fn}(v{idx}):")
        if self.metrics is not None:
            # Inputs count down from sample_every (small ints: no allocation per event); the
            # timed variant restarts the countdown and counts the rounds. NodeMetrics derives
            # the input's events from both.
            if self.timed:
                self.emit(1, f"_cd[{idx}] = {self.metrics.sample_every}")
                self.emit(1, f"_tc[{idx}] += 1")
                self.emit(1, f"_last[{idx}] = v{idx}")
                self.emit(1, "t0 = _clock()")
            else:
                self.emit(1, f"c = _cd[{idx}] - 1")
                self.emit(1, "if not c:")
                self.emit(2, f"return _on_{idx}_timed(v{idx})")
                self.emit(1, f"_cd[{idx}] = c")
                self.emit(1, f"_last[{idx}] = v{idx}")
        if graph._combine_outputs:
            self.emit(1, "dirty = False")
        self.finish_node(idx, 1)
        for node_idx in graph._schedule[source]:
            self.compute(graph._nodes[node_idx], 1)
        if graph._combine_outputs:
            if self.timed:
                # Never swaps variants: the next warming call sees every output set and does.
                self.emit(1, "if dirty and _missing[0] == 0:")
                self.emit(2, "_combined(tuple(_latest))")
            elif self.warming:
                self.emit(1, "if dirty and _missing[0] == 0:")
                self.emit(2, "_become_ready()")
                self.emit(2, "_combined(tuple(_latest))")
            else:
                self.emit(1, "if dirty:")
                self.emit(2, "_combined(tuple(_latest))")
        if self.timed:
            self.record_time(idx, 1, "t0")
        self.emit(1, "return None")
        self.emit(0, "")
        self.bind_globals_as_locals(header)

    def bind_globals_as_locals(self, header: int) -> None:
        """Pass the names a function uses as keyword defaults: locals are faster than globals."""
        body = "\n".join(self.lines[header + 1 :])
        used = sorted(set(_IDENTIFIER.findall(body)) & self.namespace.keys())
        signature = self.lines[header][: -len("):")]
        bound = "".join(f", {name}={name}" for name in used)
        self.lines[header] = f"{signature}{bound}):"

    def record_output(self, out_slot: int, fname: str, value: str, indent: int) -> None:
        self.emit(indent, "dirty = True")
        if self.warming:
            self.emit(indent, f"if _latest[{out_slot}] is None:")
            self.emit(indent + 1, "_missing[0] -= 1")
        self.emit(indent, f"_latest[{out_slot}] = ({fname}, {value})")

    def finish_node(self, idx: int, indent: int) -> None:
        """Callbacks and output bookkeeping for node ``idx`` once ``v{idx}`` is computed."""
        graph = self.graph
        feature = graph._nodes[idx].feature
        callbacks = graph._callbacks.get(feature, [])
        out_slot = graph._out_slot.get(feature) if graph._combine_outputs else None
        # Metrics: a list-valued node counts its events; a single-valued one counts the visits
        # that produced nothing (in the ``else`` of a branch that exists anyway), from which
        # NodeMetrics derives its events exactly, at no cost on the common path.
        metered = self.metrics is not None and feature not in graph._ins
        if metered:
            self.metrics_modes[idx] = "list" if self.multi[idx] else "visits"
            if self.multi[idx]:
                self.emit(indent, f"_o[{idx}] += len(v{idx})")
        if not callbacks and out_slot is None:
            if metered and not self.multi[idx]:
                self.emit(indent, f"if v{idx} is None:")
                self.emit(indent + 1, f"_z[{idx}] += 1")
            return
        fname = self.const(f"F{idx}", feature)
        if self.multi[idx]:
            self.emit(indent, f"for item in v{idx}:")
            value, body = "item", indent + 1
        elif self.maybe_none[idx]:
            self.emit(indent, f"if v{idx} is not None:")
            value, body = f"v{idx}", indent + 1
        else:
            value, body = f"v{idx}", indent
        for j, callback in enumerate(callbacks):
            self.callback(idx, j, callback, fname, value, body)
        if out_slot is not None:
            self.record_output(out_slot, fname, value, body)
        if metered and not self.multi[idx]:
            self.emit(indent, "else:")
            self.emit(indent + 1, f"_z[{idx}] += 1")

    def callback(
        self, idx: int, j: int, callback: FeatureCallback, fname: str, value: str, indent: int
    ) -> None:
        """Call one callback of node ``idx``, or write its statements in place of the call."""
        source = inlinable(callback)
        code = None if source is None else source.inline(value, f"_cb{idx}_{j}")
        if code is None:
            self.emit(indent, f"{self.const(f'cb{idx}_{j}', callback)}({fname}, {value})")
            return
        self.namespace.update(code.namespace)
        for line in code.lines:
            self.emit(indent, line)

    def compute(self, node: _Node, indent: int) -> None:
        idx = node.index
        fail = self.const("_fail", self.graph._fail)
        if node.chain is not None:
            (up,) = node.upstreams
            self.maybe_none[idx] = True
            if self.multi[up]:
                self.multi[idx] = True
                self.emit(indent, f"v{idx} = []")
                self.start_timer(indent)
                self.emit(indent, f"for x0 in v{up}:")
                self.emit(indent + 1, "try:")
                self.inline_chain(node, indent + 2, "x0", f"v{idx}.append")
                self.emit(indent + 1, "except Exception as exc:")
                self.emit(indent + 2, f"{fail}({idx}, exc, x0{self.fail_extra})")
                self.stop_timer(idx, indent, f"v{up}")
            else:
                self.multi[idx] = False
                self.emit(indent, f"v{idx} = None")
                inner = indent
                if self.maybe_none[up]:
                    self.emit(indent, f"if v{up} is not None:")
                    inner = indent + 1
                self.start_timer(inner)
                self.emit(inner, "try:")
                self.inline_chain(node, inner + 1, f"v{up}", f"v{idx} = ")
                self.emit(inner, "except Exception as exc:")
                self.emit(inner + 1, f"v{idx} = None")
                self.emit(inner + 1, f"{fail}({idx}, exc, v{up}{self.fail_extra})")
                self.stop_timer(idx, inner, "True")
        else:
            self.multi[idx] = True
            self.maybe_none[idx] = False
            kernel = self.const(f"k{idx}", node.kernel)
            self.emit(indent, f"v{idx} = []")
            self.start_timer(indent)
            received = []
            for slot, up in enumerate(node.upstreams):
                if up not in self.multi:
                    continue
                items = f"v{up}" if self.multi[up] else f"(() if v{up} is None else (v{up},))"
                if self.multi[up]:
                    received.append(f"v{up}")
                else:
                    received.append(f"v{up} is not None" if self.maybe_none[up] else "True")
                self.emit(indent, f"for x0 in {items}:")
                self.emit(indent + 1, "try:")
                self.emit(indent + 2, f"v{idx}.extend({kernel}({slot}, x0))")
                self.emit(indent + 1, "except Exception as exc:")
                self.emit(indent + 2, f"{fail}({idx}, exc, x0{self.fail_extra})")
            unique = list(dict.fromkeys(received))
            self.stop_timer(idx, indent, "True" if "True" in unique else " or ".join(unique))
        self.finish_node(idx, indent)

    def start_timer(self, indent: int) -> None:
        """In the timed variant: note the time before a node computes."""
        if self.timed:
            self.emit(indent, "t = _clock()")

    def stop_timer(self, idx: int, indent: int, received: str) -> None:
        """In the timed variant: record node ``idx``'s time if it received anything."""
        if not self.timed:
            return
        if received == "True":
            self.record_time(idx, indent, "t")
        else:
            self.emit(indent, f"if {received}:")
            self.record_time(idx, indent + 1, "t")

    def record_time(self, idx: int, indent: int, start: str) -> None:
        """Store the time since ``start`` as a sample of node ``idx`` (timed variant)."""
        assert self.metrics is not None
        append = self.const(f"_q{idx}", self.metrics.sample_appenders[idx])
        self.emit(indent, f"d = _clock() - {start}")
        self.emit(indent, f"{append}(d)")
        self.emit(indent, f"_sn[{idx}] += 1")
        self.emit(indent, f"_ss[{idx}] += d")

    def inline_chain(self, node: _Node, indent: int, source: str, store: str) -> None:
        """Emit the fused steps reading ``source``; ``store`` receives the final value.

        ``store`` is either an assignment prefix (``"v3 = "``) or a callable name
        (``"v3.append"``). A chain of maps only becomes one nested call expression.
        """
        idx = node.index
        assert node.chain is not None
        steps = node.chain.steps
        if all(step.kind == "map" for step in steps):
            expression = source
            for n, step in enumerate(steps):
                op = step.node
                f = self.const(f"m{idx}_{n}", call_with(op.func, op.args, op.kwargs))
                expression = f"{f}({expression})"
            self.store(indent, store, expression, filter_none=store.endswith(".append"))
            return
        current = source
        for n, step in enumerate(steps):
            op = step.node
            if step.kind == "map":
                f = self.const(f"m{idx}_{n}", call_with(op.func, op.args, op.kwargs))
                self.emit(indent, f"x = {f}({current})")
            elif step.kind == "filter":
                f = self.const(f"p{idx}_{n}", call_with(op.predicate, op.args, op.kwargs))
                self.emit(indent, f"if {f}({current}):")
                indent += 1
                self.emit(indent, f"x = {current}")
            else:
                acc = self.const(f"a{idx}_{n}", op)
                kwargs = dict(op.kwargs)
                func = (
                    op.func if not kwargs else (lambda s, x, _f=op.func, _k=kwargs: _f(s, x, **_k))
                )
                f = self.const(f"af{idx}_{n}", func)
                self.emit(indent, f"if {acc}.state is _NO_DEFAULT:")
                self.emit(indent + 1, f"{acc}.state = {current}")
                self.emit(
                    indent + 1, f"x = ({current}, {current})" if op.with_state else f"x = {current}"
                )
                self.emit(indent, "else:")
                if op.returns_state:
                    self.emit(indent + 1, f"{acc}.state, x = {f}({acc}.state, {current})")
                else:
                    self.emit(indent + 1, f"x = {acc}.state = {f}({acc}.state, {current})")
                if op.with_state:
                    self.emit(indent + 1, f"x = ({acc}.state, x)")
            current = "x"
        self.store(indent, store, current, filter_none=True)

    def store(self, indent: int, store: str, expression: str, *, filter_none: bool) -> None:
        if store.endswith(" = "):
            self.emit(indent, f"{store}{expression}")
            return
        self.emit(indent, f"x = {expression}")
        if filter_none:
            self.emit(indent, "if x is not None:")
            indent += 1
        self.emit(indent, f"{store}(x)")


class FeatureStreamGraph:
    """The feature DAG, compiled into one fused execution plan per input.

    Every node is computed once per input event that reaches it, in topological order, so a
    node with several upstreams sees all of the input's effects at once. With
    ``combine_outputs=True`` the graph calls ``combined_out_callback`` exactly once per input
    event that updated any output, once every output has a value, with the latest event of
    every output in :meth:`get_outs` order: the combined vector is glitch-free.

    The graph is single-threaded: emit from one thread at a time.

    :param features_or_config: the output features, or a :class:`FeaturizerConfig` (its
        features are constructed with the installed plugins).
    :param combine_outputs: deliver a :data:`GroupedNamedDataEvent` per input event.
    :param combined_out_callback: receives the grouped events.
    :param error_policy: ``"raise"`` (default) or ``"skip"`` (count, report, continue).
    :param error_callback: receives each :class:`FeatureComputationError` under ``"skip"``.
    :param external_inputs: features computed elsewhere (e.g. by another worker) whose events
        are emitted into this graph like data sources: their sub-DAGs are not built here.
    :param fuse: compile fusable operator chains into direct calls (``False`` runs every
        feature through streamz itself; results are identical, only slower).
    :param metrics: a :class:`featurizer.metrics.NodeMetrics` to count events, errors and
        sampled processing times per node (see :mod:`featurizer.metrics`). ``None`` (the
        default) compiles no instrumentation at all.

    >>> from featurizer.testing import ExampleTicker, ExampleMid
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> mid = Feature.create(ExampleMid, {}, {"ticker": ticker})
    >>> graph = FeatureStreamGraph([mid])
    >>> got = []
    >>> graph.set_callback(mid, lambda feature, event: got.append(event["mid"]))
    >>> graph.emit_named_data_event((ticker, {"timestamp": 1.0, "receipt_timestamp": 1.0,
    ...                                       "bid": 1.0, "ask": 3.0}))
    >>> got
    [2.0]
    """

    def __init__(
        self,
        features_or_config: Sequence[Feature] | Any,
        combine_outputs: bool = False,
        combined_out_callback: CombinedCallback | None = None,
        *,
        error_policy: str = "raise",
        error_callback: ErrorCallback | None = None,
        fuse: bool = True,
        external_inputs: Iterable[Feature] = (),
        metrics: NodeMetrics | None = None,
    ) -> None:
        if error_policy not in ERROR_POLICIES:
            raise FeaturizerError(
                f"error_policy must be one of {', '.join(map(repr, ERROR_POLICIES))}, "
                f"received {error_policy!r}"
            )
        outputs = self._outputs_from(features_or_config)
        if not outputs:
            raise FeaturizerError("a FeatureStreamGraph needs at least one output feature")
        self._outs: list[Feature] = outputs
        self._combine_outputs = combine_outputs
        self._combined_callback = combined_out_callback
        self._error_policy = error_policy
        self._error_callback = error_callback
        self._fuse = fuse
        self.error_counts: collections.Counter[Feature] = collections.Counter()
        self._external = set(external_inputs)
        self._order = topological_order(outputs, self._external)
        self._index = {feature: i for i, feature in enumerate(self._order)}
        self._ins = [
            feature
            for feature in self._order
            if feature.is_data_source or feature in self._external
        ]
        self._out_slot = {feature: i for i, feature in enumerate(self._outs)}
        self._nodes = [self._build_node(feature) for feature in self._order]
        self._schedule = {source: self._reachable(source) for source in self._ins}
        self._metrics = metrics
        if metrics is not None:
            metrics.bind(
                self,
                self._order,
                [node.upstreams for node in self._nodes],
                [self._index[feature] for feature in self._ins],
                [self._index[feature] for feature in self._outs],
            )
        self._callbacks: dict[Feature, list[FeatureCallback]] = {}
        self._taps: dict[Feature, Stream] = {}
        self._generated_source = ""
        self._latest: list[NamedDataEvent | None] = [None] * len(self._outs)
        self._missing = [len(self._outs)]
        self._dispatch: dict[Feature, Callable[[Event], None]] = {}
        self._dispatch_by_id: dict[int, Callable[[Event], None]] = {}
        self._warming: dict[Feature, Callable[[Event], None]] = {}
        self._ready: dict[Feature, Callable[[Event], None]] = {}
        self._compile()

    @staticmethod
    def _outputs_from(features_or_config: Any) -> list[Feature]:
        if isinstance(features_or_config, Feature):
            features_or_config = [features_or_config]
        if hasattr(features_or_config, "feature_configs"):
            from featurizer._config import construct_features_from_configs

            features_or_config = construct_features_from_configs(features_or_config)
        outputs: list[Feature] = []
        for feature in features_or_config:
            if not isinstance(feature, Feature):
                raise FeaturizerError(
                    f"expected Feature objects or a FeaturizerConfig, received "
                    f"{type(feature).__name__} {feature!r}"
                )
            if feature not in outputs:
                outputs.append(feature)
        return outputs

    def _build_node(self, feature: Feature) -> _Node:
        if feature.is_data_source or feature in self._external:
            return _Node(feature=feature, index=self._index[feature], upstreams=[])
        upstreams = [self._index[child] for child in feature.children.values()]
        node = _Node(feature=feature, index=self._index[feature], upstreams=upstreams)
        definition = feature.definition
        if not issubclass(definition, FeatureDefinition):
            raise FeaturizerError(
                f"feature {feature.name!r} has children but its definition "
                f"{feature.definition_name!r} is not a FeatureDefinition"
            )
        sources = {dep: Stream(stream_name=f"{feature.name}<-{dep}") for dep in feature.children}
        built = definition.stream(sources, feature.params)
        output, state = built if isinstance(built, tuple) else (built, None)
        if not isinstance(output, Stream):
            raise FeaturizerError(
                f"{feature.definition_name}.stream() must return a streamz Stream (or a "
                f"(Stream, state) pair), returned {type(output).__name__} for feature "
                f"{feature.name!r}"
            )
        node.state = state
        node.output = output
        node.sources = list(sources.values())
        node.chain = fuse(sources, output) if self._fuse else None
        if node.chain is None:
            node.kernel = StreamzKernel(list(sources.values()), output)
            node.multi = True
        return node

    def _reachable(self, source: Feature) -> list[int]:
        reached = {self._index[source]}
        schedule = []
        for node in self._nodes:
            if node.index in reached:
                continue
            if any(up in reached for up in node.upstreams):
                reached.add(node.index)
                schedule.append(node.index)
        return schedule

    def _compile(self) -> None:
        codegen = _Codegen(self)
        codegen.namespace.update(
            _latest=self._latest,
            _missing=self._missing,
            _combined=self._combined_callback or _ignore,
            _become_ready=self._become_ready,
        )
        self._warming, self._ready = codegen.build()
        self._install(self._ready if self._missing[0] == 0 else self._warming)

    def _install(self, functions: Mapping[Feature, Callable[[Event], None]]) -> None:
        self._dispatch.clear()
        self._dispatch.update(functions)
        self._dispatch_by_id.clear()
        self._dispatch_by_id.update({id(feature): fn for feature, fn in functions.items()})

    def _become_ready(self) -> None:
        self._install(self._ready)

    def _fail(
        self, node_index: int, cause: Exception, event: Event, input_index: int | None = None
    ) -> None:
        feature = self._nodes[node_index].feature
        error = FeatureComputationError(feature, event, cause)
        if self._metrics is not None:
            self._metrics.count_error(node_index)
            if self._error_policy == "raise" and input_index is not None:
                self._metrics.abandon(input_index, node_index)
        if self._error_policy == "raise":
            raise error from cause
        self.error_counts[feature] += 1
        _log_skipped(feature, error, self.error_counts[feature])
        if self._error_callback is not None:
            self._error_callback(error)

    def emit_named_data_event(self, named_event: NamedDataEvent) -> None:
        """Push one data-source event through the graph.

        :param named_event: ``(data_source_feature, event)``.
        :raises FeaturizerError: if the feature is not an input of this graph.
        :raises FeatureComputationError: under the ``raise`` policy, when a feature raises.
        """
        feature, event = named_event
        dispatch = self._dispatch_by_id.get(id(feature))
        if dispatch is None:
            dispatch = self._dispatch.get(feature)
            if dispatch is None:
                raise FeaturizerError(
                    f"{feature!r} is not an input of this graph (inputs: "
                    f"{', '.join(repr(f.name) for f in self._ins)})"
                )
        dispatch(event)

    def input_callback(self, feature: Feature) -> Callable[[Event], None]:
        """The compiled entry point for one input: call it with events of that data source.

        Emitters use it to skip the lookup of :meth:`emit_named_data_event`. It is recompiled
        when callbacks change, so fetch it again after :meth:`set_callback`.

        :param feature: a data source of this graph.
        """
        if feature not in self._dispatch:
            raise FeaturizerError(
                f"{feature!r} is not an input of this graph (inputs: "
                f"{', '.join(repr(f.name) for f in self._ins)})"
            )
        dispatch = self._dispatch

        def callback(event: Event) -> None:
            dispatch[feature](event)

        return callback

    def set_callback(self, feature: Feature, callback: FeatureCallback) -> None:
        """Call ``callback(feature, event)`` for every event ``feature`` produces.

        Any node of the graph can be observed, not only outputs; several callbacks per
        feature are called in registration order. A callback carrying its statements
        (:mod:`featurizer._inline`, as the storage recorder does) is written into the graph's
        generated code instead of being called.

        :param feature: a node of this graph.
        :param callback: the observer.
        """
        self.set_callbacks({feature: callback})

    def set_callbacks(self, callbacks: Mapping[Feature, FeatureCallback]) -> None:
        """:meth:`set_callback` for several features at once: the graph is compiled once, not
        once per feature (a recorder observes every stored node).

        :param callbacks: per node of this graph, its observer.
        """
        for feature in callbacks:
            self._require_node(feature)
        for feature, callback in callbacks.items():
            self._callbacks.setdefault(feature, []).append(callback)
            source = inlinable(callback)
            if source is not None:
                source.on_change(self._compile)
        self._compile()

    def set_combined_callback(self, callback: CombinedCallback | None) -> None:
        """Replace the callback receiving the combined output (``combine_outputs=True``)."""
        self._combined_callback = callback
        self._compile()

    def get_ins(self) -> list[Feature]:
        """The data-source features feeding this graph, in topological order."""
        return list(self._ins)

    def get_outs(self) -> list[Feature]:
        """The output features, in the order the combined output uses."""
        return list(self._outs)

    def nodes(self) -> list[Feature]:
        """Every node, once, children before parents."""
        return list(self._order)

    def get_stream(self, feature: Feature) -> Stream:
        """A streamz ``Stream`` that emits every event ``feature`` produces.

        Use it to compose further streamz logic on top of a feature (``.map(...).sink(...)``).
        For a data source, ``emit(event)`` on it feeds the event into the graph (like
        :meth:`input_callback`); for any other feature ``emit`` raises, since the stream only
        carries what the feature computes.

        :param feature: a node of this graph.
        """
        self._require_node(feature)
        if feature not in self._taps:
            feed = self.input_callback(feature) if self.is_input(feature) else None
            tap = _FeatureTap(feature, feed)
            self._taps[feature] = tap
            self.set_callback(feature, lambda _feature, event: tap.publish(event))
        return self._taps[feature]

    def get_state(self, feature: Feature) -> Any:
        """The state object the feature's ``stream()`` returned with its stream, if any."""
        self._require_node(feature)
        return self._nodes[self._index[feature]].state

    def operators(self, feature: Feature) -> list[Stream]:
        """The streamz nodes a feature's ``stream()`` built, in a stable order (checkpoints).

        A breadth-first walk from the feature's upstream placeholders (first) along
        ``downstreams``; empty for data sources and external inputs.

        :param feature: a node of this graph.
        """
        self._require_node(feature)
        found: list[Stream] = []
        seen: set[int] = set()
        queue = collections.deque(self._nodes[self._index[feature]].sources)
        while queue:
            op = queue.popleft()
            if id(op) in seen:
                continue
            seen.add(id(op))
            found.append(op)
            queue.extend(op.downstreams)
        return found

    def is_input(self, feature: Feature) -> bool:
        """Whether ``feature`` is fed from outside (a data source or an external input)."""
        self._require_node(feature)
        return feature.is_data_source or feature in self._external

    def latest_outputs(self) -> list[Event | None]:
        """The latest event of every output (``None`` before its first), in :meth:`get_outs`
        order: what the combined output repeats for outputs an input did not update."""
        return [None if item is None else item[1] for item in self._latest]

    def restore_latest_outputs(self, events: Sequence[Event | None]) -> None:
        """Set what :meth:`latest_outputs` returns (restoring a checkpoint).

        :param events: one event or ``None`` per output, in :meth:`get_outs` order.
        """
        if len(events) != len(self._outs):
            raise FeaturizerError(
                f"expected {len(self._outs)} latest outputs, received {len(events)}"
            )
        for slot, event in enumerate(events):
            self._latest[slot] = None if event is None else (self._outs[slot], event)
        self._missing[0] = sum(item is None for item in self._latest)
        self._install(self._ready if self._missing[0] == 0 else self._warming)

    def silent_outputs(self) -> list[Feature]:
        """With combined outputs, the outputs that never produced a value, in output order.

        While any is silent, no combined output is delivered (it needs every output).
        """
        return [f for f, latest in zip(self._outs, self._latest, strict=True) if latest is None]

    def is_fused(self, feature: Feature) -> bool:
        """Whether ``feature`` runs as a fused chain (``False``: through streamz, or a source)."""
        self._require_node(feature)
        return self._nodes[self._index[feature]].chain is not None

    def upstreams_of(self, feature: Feature) -> list[Feature]:
        """The nodes feeding ``feature``, in dependency order."""
        self._require_node(feature)
        return [self._order[i] for i in self._nodes[self._index[feature]].upstreams]

    @property
    def metrics(self) -> NodeMetrics | None:
        """The :class:`~featurizer.metrics.NodeMetrics` instrumenting this graph, if any."""
        return self._metrics

    @property
    def generated_source(self) -> str:
        """The Python source of the compiled dispatch functions (for debugging and profiling)."""
        return self._generated_source

    def _require_node(self, feature: Feature) -> None:
        if feature not in self._index:
            raise FeaturizerError(
                f"{feature!r} is not a node of this graph (nodes: "
                f"{', '.join(repr(f.name) for f in self._order)})"
            )

    def __repr__(self) -> str:
        return (
            f"FeatureStreamGraph(ins={[f.name for f in self._ins]!r}, "
            f"outs={[f.name for f in self._outs]!r}, nodes={len(self._order)})"
        )


def check_output_event(feature: Feature, event: Any) -> None:
    """Check an event a feature produced against its definition's declared schema.

    Every field of ``event_schema()`` and both timestamps must be present with their type (a
    ``float`` field accepts an ``int`` and, unlike at the boundaries, NaN and infinities: a
    feature may have no finite value yet). Extra fields are allowed. ``featurizer run --check``
    and :func:`featurizer.testing.run_graph` call it for every event; the combined output calls
    it when a row cannot be built, to name the feature at fault.

    :raises EventValidationError: naming the feature, its definition and the field.
    """
    schema = full_schema(feature.definition.event_schema())
    problem = None
    if not isinstance(event, Mapping):
        problem = f"a {type(event).__name__}, not an event mapping"
    else:
        for field, expected in schema.items():
            if field not in event:
                problem = f"an event without field {field!r}"
                break
            value = event[field]
            if expected is float:
                ok = type(value) is float or type(value) is int
            else:
                ok = type(value) is int if expected is int else isinstance(value, expected)
            if not ok:
                problem = (
                    f"field {field!r} as {type(value).__name__} {value!r}, not {expected.__name__}"
                )
                break
    if problem is not None:
        raise EventValidationError(
            f"feature {feature.name!r} (definition {feature.definition_name!r}) produced "
            f"{problem}; its events need {', '.join(map(repr, schema))}; received {event!r}",
            event=event,
        )


class _FeatureTap(Stream):
    """What :meth:`FeatureStreamGraph.get_stream` returns: a feature's events, fed by the graph."""

    def __init__(self, feature: Feature, feed: Callable[[Event], None] | None) -> None:
        super().__init__(stream_name=feature.name)
        self._feature_name = feature.name
        self._feed = feed

    def publish(self, event: Event) -> Any:
        """Pass an event the feature produced to the streams built on this one."""
        return Stream.emit(self, event)

    def emit(self, x: Any, asynchronous: bool = False, metadata: Any = None) -> Any:
        """Feed a data source's event into the graph; refused for a computed feature."""
        if self._feed is None:
            raise FeaturizerError(
                f"get_stream({self._feature_name!r}).emit(): {self._feature_name!r} is computed "
                f"by the graph, so its stream cannot be fed; emit events of a data source "
                f"(graph.get_stream(source).emit(event) or graph.input_callback(source)(event))"
            )
        self._feed(x)
        return None


LOGGED_ERRORS_PER_FEATURE = 3
"""Under the ``skip`` policy, the errors of a feature logged one by one; later ones are counted
and logged at every power of ten (10, 100, 1,000, ...)."""


def _log_skipped(feature: Feature, error: FeatureComputationError, count: int) -> None:
    if count <= LOGGED_ERRORS_PER_FEATURE:
        logger.warning("%s", error)
        if count == LOGGED_ERRORS_PER_FEATURE:
            logger.warning(
                "feature %r: further errors are counted, not logged one by one (a count at "
                "every power of ten; the run's summary has the total)",
                feature.name,
            )
    elif count >= 10 and str(count).rstrip("0") == "1":
        logger.warning(
            "feature %r: %s errors skipped so far; latest: %s", feature.name, f"{count:,}", error
        )


def named_outputs(grouped: GroupedNamedDataEvent) -> Mapping[str, Event]:
    """Map a grouped event to ``{feature name: event}`` (a convenience for sinks and tests)."""
    return {feature.name: event for feature, event in grouped}
