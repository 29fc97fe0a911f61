"""A test plugin for parallel backfills (``FEATURIZER_PLUGINS=tests.batch.parallel_support``):
a feature that fails at a chosen time.

``tripwire`` passes ticker events through as ``bid``; at and after ``at`` it raises, or (with
``action: die``) kills its own process with SIGKILL when that process is not the test's, or
(``action: hang``) sleeps there for a minute. Before
raising or dying in a worker it writes its pid to ``marker`` (if given).

With ``hold_at`` (and ``marker``) the failure comes at a known point of the caller's part: the
test's own process, at its first event at or after ``hold_at``, says so in ``<marker>.holding``
and waits there until the process named in ``marker`` has exited; a worker fails only once that
file exists. So the caller's part is still running when the worker fails, and every check the
caller made before the hold found the worker alive.

"Exited" is what the worker's parent (the test's process) can wait for, not what ``/proc`` shows:
the killed worker's main thread is a zombie (``Z``) as soon as it has gone, while its other
threads (a storage reading thread) are still being torn down and still hold the worker's files,
among them the pipe whose end tells the caller that the worker died. The process is waitable only
once its last thread has gone, its files closed (on a busy machine that came a tenth of a second
and more after ``Z``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from featurizer_features import TickerSource
from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema, hookimpl

CALLER_ENV = "FEATURIZER_TEST_CALLER_PID"
os.environ.setdefault(CALLER_ENV, str(os.getpid()))  # workers (forked or spawned) inherit it
TEST_PID = int(os.environ[CALLER_ENV])
SEEN_BY_CALLER: list[float] = []
"""Timestamps the test's own process computed (the caller's part)."""


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _exited(child: int) -> bool:
    """Whether this process's child ``child`` has exited, every thread of it gone (it is left
    to be reaped by its owner)."""
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    return os.waitid(os.P_PID, child, flags) is not None


def _wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60.0
    for _ in range(60_000):  # bounded in count and time
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within 60 s")
        time.sleep(0.001)


def _holding(marker: Path) -> Path:
    return marker.with_name(f"{marker.name}.holding")


def _hold(marker: Path) -> None:
    """In the caller: let the worker fail, and wait until it has exited."""
    _holding(marker).touch()
    _wait(
        lambda: marker.exists() and _exited(int(marker.read_text())),
        f"the worker named in {marker} did not exit",
    )


def _write_pid(marker: Path) -> None:
    """Name this process in ``marker``, whole or not at all for a reader."""
    partial = marker.with_name(f"{marker.name}.{os.getpid()}")
    partial.write_text(str(os.getpid()))
    os.replace(partial, marker)


class Tripwire(FeatureDefinition):
    """``bid`` of a ticker, failing at and after ``at``."""

    name = "tripwire"
    params: ClassVar[Mapping[str, Param]] = {
        "at": Param(kind="float", doc="first timestamp that fails"),
        "action": Param(kind="str", default="raise", choices=("raise", "die", "hang")),
        "marker": Param(kind="str", default=""),
        "hold_at": Param(kind="float", default=-1.0),
    }

    @classmethod
    def event_schema(cls) -> Schema:
        return {"bid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        at, action, marker = params["at"], params["action"], params["marker"]
        hold_at = params["hold_at"]
        held: list[bool] = []

        def trip(event: Event) -> Event:
            ts = event["timestamp"]
            caller = os.getpid() == TEST_PID
            if caller:
                SEEN_BY_CALLER.append(ts)
                if 0 <= hold_at <= ts and not held:
                    held.append(True)
                    _hold(Path(marker))
            if ts >= at:
                if marker and not caller:
                    if hold_at >= 0:
                        holding = _holding(Path(marker))
                        _wait(holding.exists, "the caller did not reach hold_at")
                    _write_pid(Path(marker))
                if action == "die" and not caller:
                    os.kill(os.getpid(), signal.SIGKILL)
                if action == "hang" and not caller:
                    time.sleep(60.0)  # until killed: a test kills the caller meanwhile
                raise ValueError(f"tripped at {ts!r}")
            return {
                "timestamp": ts,
                "receipt_timestamp": event["receipt_timestamp"],
                "bid": event["bid"],
            }

        return upstreams["ticker"].map(trip)


@hookimpl
def featurizer_register_feature_definitions() -> list[type[FeatureDefinition]]:
    """This module is a plugin (named in ``FEATURIZER_PLUGINS``, so spawned workers load it
    too)."""
    return [Tripwire]
