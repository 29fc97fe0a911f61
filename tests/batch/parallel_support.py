"""A test plugin for parallel backfills (``FEATURIZER_PLUGINS=tests.batch.parallel_support``):
a feature that fails at a chosen time.

``tripwire`` passes ticker events through as ``bid``; at and after ``at`` it raises, or (with
``action: die``) kills its own process with SIGKILL when that process is not the test's, or
(``action: hang``) sleeps there for a minute. Before
raising or dying in a worker it writes its pid to ``marker`` (if given), and in the test's own
process it waits at ``hold_at`` until the process named in ``marker`` has died, so a test can
have the caller's part still running when a worker has failed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
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


def _wait_for_death(marker: Path) -> None:
    deadline = time.monotonic() + 60.0
    for _ in range(60_000):  # bounded in count and time
        if marker.exists() and marker.read_text() and _dead(int(marker.read_text())):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker named in {marker} did not die within 60 s")
        time.sleep(0.001)


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
                    _wait_for_death(Path(marker))
            if ts >= at:
                if marker and not caller:
                    Path(marker).write_text(str(os.getpid()))
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
