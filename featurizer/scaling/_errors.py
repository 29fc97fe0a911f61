"""Errors of scaled-out runs: planning, transports and workers."""

from __future__ import annotations

from featurizer._errors import FeaturizerError

__all__ = ["PlanError", "ScalingError", "TransportError", "WorkerError"]


class ScalingError(FeaturizerError):
    """A scaled-out run cannot be set up or failed (root of the errors below)."""


class PlanError(ScalingError):
    """A scaling strategy cannot plan the config: unknown strategy, too many workers, ...

    :param strategy: the strategy's registered name.
    """

    def __init__(self, message: str, *, strategy: str | None = None) -> None:
        self.strategy = strategy
        super().__init__(message)


class TransportError(ScalingError):
    """A transport cannot bind, connect, send or receive (port in use, peer gone, ...).

    :param address: the endpoint concerned, when there is one.
    """

    def __init__(self, message: str, *, address: str | None = None) -> None:
        self.address = address
        super().__init__(message)


class WorkerError(ScalingError):
    """A worker of a scaled-out run failed; the message carries the worker's own error.

    :param worker: the worker's index in the plan.
    :param detail: the worker's error, formatted where it happened (type, message, feature).
    """

    def __init__(self, message: str, *, worker: int | None = None, detail: str = "") -> None:
        self.worker = worker
        self.detail = detail
        super().__init__(message)
