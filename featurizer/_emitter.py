"""Emitters: what pushes data-source events into a graph."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from featurizer._events import Event
from featurizer._feature import Feature

__all__ = ["DataSourceEventEmitter", "EventCallback"]

EventCallback = Callable[[Event], None]
_E = TypeVar("_E", bound="DataSourceEventEmitter")


class DataSourceEventEmitter(abc.ABC):
    """Pushes events of registered data-source features to their callbacks.

    Lifecycle: build (``instance()`` or ``from_options()``), ``register_callback`` for each data
    source, ``start()`` (never blocks: work happens on the emitter's own thread), then either
    ``wait()`` for a bounded emitter to finish or ``stop()``. ``stop()`` is idempotent.
    Callbacks of one emitter are called from one thread, one event at a time.
    """

    _instances: ClassVar[dict[type, DataSourceEventEmitter]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def instance(cls: type[_E]) -> _E:
        """The process-wide shared emitter of this class, built with default options."""
        with DataSourceEventEmitter._instances_lock:
            existing = DataSourceEventEmitter._instances.get(cls)
            if existing is None:
                existing = cls.from_options({})
                DataSourceEventEmitter._instances[cls] = existing
            return existing  # type: ignore[return-value]

    @classmethod
    def from_options(cls: type[_E], options: Mapping[str, Any]) -> _E:
        """Build an emitter from run options (``seed``, ``max_events``, ``duration``, ...).

        Emitters ignore options they do not know. The default calls ``cls()``.
        """
        return cls()

    @abc.abstractmethod
    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every event of data source ``feature`` to ``callback(event)``.

        :param feature: a data-source feature this emitter serves.
        :param callback: called with each event, from the emitter's thread.
        :raises EmitterError: if the emitter cannot serve this feature (before starting).
        """

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
