"""The restart limit of a scaled run, kept in its checkpoint directory across driver processes.

``--max-restarts N`` bounds the worker restarts **without a checkpoint committed in between**:
a run that makes progress is not stopped by rare failures over weeks, and a worker that fails
before every commit ends the run after ``N`` restarts, even when the driver itself is started
again (by systemd, a crash loop) between them. The streak is kept in
``DIR/worker-restarts.json`` (written to a temporary name, fsynced, renamed, the directory
fsynced), with the last failures for ``featurizer checkpoint info``; a committed checkpoint
sets the streak back to 0 (a file write only when it was not 0).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import attrs

from featurizer.storage._files import fsync_dir

__all__ = ["RESTARTS_FILE", "RestartFailure", "RestartHistory"]

RESTARTS_FILE = "worker-restarts.json"

_KEPT = 5
"""Failures kept in the file (the newest ones)."""


@attrs.frozen(kw_only=True)
class RestartFailure:
    """One worker failure the run restarted its workers for.

    :param at: Unix time the driver detected it.
    :param worker: the worker's index (``None``: not known).
    :param cause: the failure's first line.
    """

    at: float
    worker: int | None
    cause: str


class RestartHistory:
    """The worker restarts of a checkpoint directory since its last commit.

    :param directory: the checkpoint directory.
    """

    def __init__(self, directory: Path) -> None:
        self._path = directory / RESTARTS_FILE
        self.streak = 0
        self.failures: list[RestartFailure] = []
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            self.streak = int(data["since_commit"])
            self.failures = [RestartFailure(**f) for f in data["failures"]]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as error:
            from featurizer.checkpoint._errors import CheckpointError

            raise CheckpointError(
                f"{str(self._path)!r} is damaged ({error}); delete it to count the worker "
                f"restarts from 0 again"
            ) from error

    def record(self, worker: int | None, cause: str) -> int:
        """A worker failed and the workers are restarted: persist it; returns the streak."""
        self.streak += 1
        self.failures = [*self.failures, RestartFailure(at=time.time(), worker=worker, cause=cause)]
        self.failures = self.failures[-_KEPT:]
        self._write()
        return self.streak

    def committed(self) -> None:
        """A checkpoint committed: the run made progress, the streak starts again."""
        if self.streak:
            self.streak = 0
            self._write()

    def reset(self) -> None:
        """Forget every restart (``--fresh``)."""
        self._path.unlink(missing_ok=True)
        self.streak, self.failures = 0, []

    def describe(self) -> list[str]:
        """The lines ``featurizer checkpoint info`` shows."""
        lines = [f"worker restarts since the last commit: {self.streak}"]
        for failure in reversed(self.failures):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(failure.at))
            lines.append(f"  {stamp} UTC  worker {failure.worker}: {failure.cause}")
        return lines

    def _write(self) -> None:
        data: dict[str, Any] = {
            "since_commit": self.streak,
            "failures": [attrs.asdict(f) for f in self.failures],
        }
        tmp = self._path.with_name(f".{self._path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path)
        fsync_dir(self._path.parent)
