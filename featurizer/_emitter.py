"""Emitters: what pushes data-source events into a graph."""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from featurizer._errors import ConfigError, EmitterError
from featurizer._events import Event, validate_event
from featurizer._feature import Feature
from featurizer._params import parse_duration, parse_pace

__all__ = [
    "DataSourceEventEmitter",
    "EmitterLimits",
    "EmitterOption",
    "EventCallback",
    "GeneratorEmitter",
]

EventCallback = Callable[[Event], None]
_E = TypeVar("_E", bound="DataSourceEventEmitter")


@attrs.frozen(kw_only=True)
class EmitterOption:
    """An option an emitter declares (``--emitter-option NAME=VALUE`` on the command line).

    :param name: the option's name, a Python identifier.
    :param parse: turns a value (a string from the command line, or a YAML value) into the
        option's value; raises ``ValueError`` or ``TypeError`` with a message for a bad value.
    :param help: one line for ``featurizer plugins --verbose`` and error messages.
    :param default: the value when the option is not given.
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[a-z_][a-z0-9_]*$"))
    parse: Callable[[Any], Any] = str
    help: str = ""
    default: Any = None

    def value(self, raw: Any, *, emitter: str) -> Any:
        """Parse ``raw``.

        :raises ConfigError: naming the emitter, the option, what was expected and received.
        """
        try:
            return self.parse(raw)
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"emitter {emitter!r} option {self.name!r}: {error} (received {raw!r})"
            ) from error


class DataSourceEventEmitter(abc.ABC):
    """Pushes events of registered data-source features to their callbacks.

    Lifecycle: build (``instance()`` or ``from_options()``), ``register_callback`` for each data
    source, ``start()`` (never blocks: work happens on the emitter's own thread), then either
    ``wait()`` for a bounded emitter to finish or ``stop()``. ``stop()`` is idempotent.
    Callbacks of one emitter are called from one thread, one event at a time.

    Most emitters are easier to write as a :class:`GeneratorEmitter`, which does the threads,
    bounds, pacing, stopping and errors.

    :cvar declared_options: the options the emitter accepts beyond the run options every
        emitter receives (``seed``, ``max_events``, ``duration``, ``pace``): ``--emitter-option
        NAME=VALUE`` is checked against them.
    :cvar replays_input: the emitter, started again with the same options, delivers the same
        events of each data source in the same order (a seeded generator, a stored
        recording). A checkpointed run all of whose emitters replay their input keeps no
        input log: when it resumes, the emitters send their events again and the run skips
        the ones it had consumed. Leave it ``False`` for anything live (a feed, a socket).
    """

    declared_options: ClassVar[tuple[EmitterOption, ...]] = ()
    replays_input: ClassVar[bool] = False

    _instances: ClassVar[dict[type, DataSourceEventEmitter]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def instance(cls: type[_E]) -> _E:
        """The process-wide shared emitter of this class, built with default options.

        An emitter that already finished or was stopped cannot start again: the next call
        returns a new one.
        """
        with DataSourceEventEmitter._instances_lock:
            existing = DataSourceEventEmitter._instances.get(cls)
            if existing is None or existing.wait(0):
                existing = cls.from_options({})
                DataSourceEventEmitter._instances[cls] = existing
            return existing  # type: ignore[return-value]

    @classmethod
    def from_options(cls: type[_E], options: Mapping[str, Any]) -> _E:
        """Build an emitter from run options (``seed``, ``max_events``, ``duration``, ...).

        Emitters ignore options they do not know. The default calls ``cls()``.
        """
        return cls()

    def check_source(self, feature: Feature) -> None:
        """Check, without connecting or reading anything big, that ``feature`` can be served.

        ``featurizer validate`` calls it for every data source (a missing file, an unknown
        symbol); the default accepts everything.

        :raises EmitterError: naming the data source and what is wrong.
        """
        return

    @abc.abstractmethod
    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every event of data source ``feature`` to ``callback(event)``.

        :param feature: a data-source feature this emitter serves.
        :param callback: called with each event, from the emitter's thread.
        :raises EmitterError: if the emitter cannot serve this feature (before starting).
        """

    def register_warmup_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send the warm-up events of data source ``feature`` to ``callback(event)``.

        An optional capability: an emitter that replays from before the run's start (a book
        rebuilt from its last snapshot before the start) sends those events here instead of to
        the :meth:`register_callback` callback, from the same thread, in the same order. The
        runner registers one for every data source: warm-up events reach the graph (its state
        is right at the start) but no output row of theirs reaches the sink and they do not
        count toward ``max_events``. The default ignores it (an emitter without warm-up).

        :param feature: a data-source feature registered with :meth:`register_callback`.
        :param callback: called with each warm-up event, from the emitter's thread.
        """
        return

    @abc.abstractmethod
    def start(self) -> None:
        """Start emitting on the emitter's own thread; returns immediately."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop emitting and release threads and sockets; safe to call twice."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the emitter finished on its own (bounded emitters) or ``timeout``.

        :returns: ``True`` if it finished, ``False`` on timeout. Unbounded (live) emitters
            never finish by themselves.
        """
        finished = threading.Event()
        return finished.wait(timeout)

    def failure(self) -> BaseException | None:
        """The exception that ended the emitter's thread, if any (checked by the runner)."""
        return None


def _positive_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, received {value!r}")
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, received {value!r}")
    return value


_RUN_OPTIONS = (
    EmitterOption(name="max_events", parse=_positive_int, help="stop after N events"),
    EmitterOption(
        name="duration",
        parse=lambda v: None if v is None else parse_duration(v),
        help="stop after S wall-clock seconds",
    ),
    EmitterOption(name="pace", parse=parse_pace, default="max", help="'max' or a speed factor"),
    EmitterOption(
        name="validate", parse=_flag, default=False, help="check every event against its schema"
    ),
)


@attrs.frozen(kw_only=True)
class EmitterLimits:
    """When a :class:`GeneratorEmitter` stops, how fast it goes, whether it validates."""

    max_events: int | None = None
    duration: float | None = None
    pace: str | float = "max"
    validate: bool = False


class GeneratorEmitter(DataSourceEventEmitter):
    """An emitter written as a generator: the author yields events, the framework runs it.

    Subclasses implement :meth:`events`, yielding ``(source, event)`` pairs in emission order
    for the registered data sources (``self.sources``). The framework runs the generator on
    its own thread and does everything else: the ``max_events`` and ``duration`` bounds,
    pacing (``pace`` as a speed factor follows the events' timestamps; ``"max"`` does not
    wait), :meth:`stop` (checked between events; a paced wait is interrupted at once),
    errors (an exception in :meth:`events` or in a callback ends the emitter and is reported
    by :meth:`failure`), optional validation of every event against its data source's schema
    (``validate``), and :meth:`wait`.

    Options: ``self.settings`` holds the run options (``seed``, ``max_events``, ``duration``,
    ``pace``, ``validate``) and the subclass's :attr:`declared_options`, parsed, with their
    defaults; :meth:`limits` reads the bounds from it. Override :meth:`check_source` to refuse
    a data source before anything starts (``featurizer validate`` calls it too) and
    :meth:`source_key` when several data sources share one stream (the synthetic market
    yields each ticker event once for every exchange).

    >>> from featurizer.testing import ExampleTicker
    >>> class Counting(GeneratorEmitter):
    ...     def events(self):
    ...         for i in range(10):
    ...             for source in self.sources:
    ...                 yield source, {"timestamp": float(i), "receipt_timestamp": float(i),
    ...                                "bid": 1.0, "ask": 2.0}
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> emitter = Counting.from_options({"max_events": 3})
    >>> received = []
    >>> emitter.register_callback(ticker, received.append)
    >>> emitter.start(); emitter.wait(10)
    True
    >>> [event["timestamp"] for event in received], emitter.emitted
    ([0.0, 1.0, 2.0], 3)
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        name = type(self).__name__
        known = {o.name: o for o in (*_RUN_OPTIONS, *type(self).declared_options)}
        given = dict(options or {})
        parsed: dict[str, Any] = {"seed": given.get("seed") or 0}
        for option in known.values():
            raw = given.get(option.name)
            parsed[option.name] = option.default if raw is None else option.value(raw, emitter=name)
        self.settings: Mapping[str, Any] = parsed
        self._callbacks: dict[Feature, EventCallback] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._started = False
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._emitted = 0

    @classmethod
    def from_options(cls: type[_E], options: Mapping[str, Any]) -> _E:
        """Build from run options; options the emitter does not declare are ignored.

        :raises ConfigError: for an invalid value of a declared option.
        """
        return cls(options)  # type: ignore[call-arg]

    @property
    def sources(self) -> list[Feature]:
        """The registered data sources, in registration order."""
        return list(self._callbacks)

    @property
    def emitted(self) -> int:
        """Events emitted so far."""
        return self._emitted

    def limits(self) -> EmitterLimits:
        """The bounds, pace and validation :meth:`run` applies (from :attr:`settings`)."""
        settings = self.settings
        return EmitterLimits(
            max_events=settings["max_events"],
            duration=settings["duration"],
            pace=settings["pace"],
            validate=settings["validate"],
        )

    def source_key(self, source: Feature) -> Hashable:
        """What :meth:`events` yields to address ``source`` (the feature itself by default).

        Data sources with equal keys receive the same events.
        """
        return source

    @abc.abstractmethod
    def events(self) -> Iterable[tuple[Hashable, Event]]:
        """Yield ``(key, event)`` for the registered sources, in emission order.

        ``key`` is a source (or its :meth:`source_key`). Runs on the emitter's thread; stop
        by returning. Never sleep to pace: the framework does.
        """

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every event of data source ``feature`` to ``callback(event)``.

        :raises EmitterError: after :meth:`start`, or when :meth:`check_source` refuses it.
        """
        if self._started:
            raise EmitterError(
                f"{type(self).__name__}: cannot register {feature.name!r} after start()"
            )
        self.check_source(feature)
        self._callbacks[feature] = callback

    def _dispatch_table(self) -> dict[Hashable, EventCallback]:
        by_key: dict[Hashable, list[EventCallback]] = {}
        validate = self.limits().validate
        for feature, callback in self._callbacks.items():
            target = _validating(feature, callback, type(self).__name__) if validate else callback
            by_key.setdefault(self.source_key(feature), []).append(target)
        return {key: _fan_out(callbacks) for key, callbacks in by_key.items()}

    def run(self) -> int:
        """Emit on the calling thread until the events end, a bound or :meth:`stop`.

        :meth:`start` runs this on a background thread; tests and benchmarks may call it
        directly. Exceptions propagate.

        :returns: the number of events emitted by this call.
        """
        dispatch = self._dispatch_table()
        if not dispatch:
            return 0
        limits = self.limits()
        remaining = limits.max_events or -1
        duration = limits.duration
        deadline = time.monotonic() + duration if duration is not None else None
        pace = limits.pace
        events = iter(self.events())
        try:
            if pace == "max":
                return self._run_max(events, dispatch, remaining, deadline)
            return self._run_paced(events, dispatch, remaining, deadline, float(pace))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _deliver(
        self, dispatch: dict[Hashable, EventCallback], key: Hashable, event: Event
    ) -> None:
        try:
            callback = dispatch[key]
        except KeyError:
            raise EmitterError(
                f"{type(self).__name__}.events() yielded an event for {key!r}, which is not "
                f"a registered source (or its source_key)"
            ) from None
        callback(event)
        self._emitted += 1

    def _run_max(
        self,
        events: Iterator[tuple[Hashable, Event]],
        dispatch: dict[Hashable, EventCallback],
        remaining: int,
        deadline: float | None,
    ) -> int:
        count = 0
        monotonic = time.monotonic
        stopping = self._stopping
        for key, event in events:
            if stopping.is_set() or (deadline is not None and monotonic() >= deadline):
                break
            self._deliver(dispatch, key, event)
            count += 1
            if count == remaining:
                break
        return count

    def _run_paced(
        self,
        events: Iterator[tuple[Hashable, Event]],
        dispatch: dict[Hashable, EventCallback],
        remaining: int,
        deadline: float | None,
        pace: float,
    ) -> int:
        count = 0
        monotonic = time.monotonic
        wall_start = monotonic()
        first: float | None = None
        stopping = self._stopping
        for key, event in events:
            now = monotonic()
            if stopping.is_set() or (deadline is not None and now >= deadline):
                break
            if first is None:
                first = event["timestamp"]
            due = wall_start + (event["timestamp"] - first) / pace
            if due > now:
                if deadline is not None and due >= deadline:
                    stopping.wait(deadline - now)
                    break
                if stopping.wait(due - now):
                    break
            self._deliver(dispatch, key, event)
            count += 1
            if count == remaining:
                break
        return count

    def prepare(self) -> None:
        """Open and check what :meth:`events` needs, before the thread starts (default: nothing).

        Called by :meth:`start` on the caller's thread, so a missing file or a damaged store
        is raised by ``start()`` itself; :meth:`release` is called if it fails.
        """
        return

    def release(self) -> None:
        """Close what :meth:`prepare` opened; called when the emitter finished or stopped (it
        may be called more than once)."""
        return

    def _target(self) -> None:
        try:
            self.run()
        except BaseException as error:
            self._error = error
        finally:
            try:
                self.release()
            finally:
                self._done.set()

    def start(self) -> None:
        """Start emitting on a background thread; returns immediately.

        After :meth:`stop`, starting does nothing (the emitter counts as finished).

        :raises EmitterError: if called twice.
        :raises Exception: what :meth:`prepare` raises.
        """
        with self._lock:
            if self._started:
                raise EmitterError(f"{type(self).__name__}: start() called twice")
            self._started = True
            if self._stopping.is_set():
                self._done.set()
                return
            try:
                self.prepare()
            except BaseException:
                try:
                    self.release()
                finally:
                    self._done.set()
                raise
            self._thread = threading.Thread(
                target=self._target, name=f"featurizer-{type(self).__name__}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop emitting and join the thread; safe to call twice and before :meth:`start`.

        Called from a callback (the emitter's own thread), it only asks the thread to stop.
        """
        with self._lock:
            self._stopping.set()
            thread = self._thread
            if not self._started:
                self._done.set()
        if thread is None:
            self.release()
        elif thread is not threading.current_thread():
            thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the emitter finished (end of events, a bound, :meth:`stop`, a failure).

        :returns: ``True`` if it finished, ``False`` on timeout.
        """
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        """The exception raised by :meth:`events` or a callback on the emitter's thread."""
        return self._error


def _fan_out(callbacks: list[EventCallback]) -> EventCallback:
    if len(callbacks) == 1:
        return callbacks[0]

    def call_all(event: Event) -> None:
        for callback in callbacks:
            callback(event)

    return call_all


def _validating(feature: Feature, callback: EventCallback, emitter: str) -> EventCallback:
    schema = feature.definition.event_schema()
    origin = f"{emitter}, data source {feature.name!r}"

    def checked(event: Event) -> None:
        callback(validate_event(event, schema, origin=origin))

    return checked
