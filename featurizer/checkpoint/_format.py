"""The checkpoint file format (version 1) and the layout of a checkpoint directory.

A checkpoint directory holds::

    checkpoints/<id:08d>.ckpt    committed checkpoints (the newest complete one is resumed)
    log/                         Featurizer Storage roots: the data-source events the run
                                 consumed (absent when every emitter replays its input)
    segments/<id:08d>.jsonl      output rows of a checkpoint, until they are published
    workers/<n>/segments/        scaled runs writing worker outputs: worker n's segments
    workers/<n>/log/             scaled runs: worker n's input log (a live source's events)

A checkpoint of a scaled-out run has the same manifest, with ``workers`` (each worker's
events, whether it had ended, and in worker-output mode where its file stands); its state
is ``{"collector": bytes, "workers": {index: acknowledgement bytes}}`` (the driver's
collector and each worker's acknowledgement, see ``featurizer.scaling._barriers``).

A ``.ckpt`` file is the magic line ``FEATURIZER-CHECKPOINT 1``, one line of JSON (the
:class:`CheckpointInfo` manifest: what the run computes, where every source and the output
stood, the SHA-256 and size of the state), then the state: a pickle of
``{"graph": {"nodes": {feature key: bytes}, "outputs": bytes}}``. It is written to a temporary
name, fsynced, renamed into place and the directory fsynced: a checkpoint exists completely or
not at all. The state is keyed by feature keys (the SHA-256 of a feature's definition, params
and children), never by names.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from featurizer.checkpoint._errors import CheckpointError, CorruptCheckpointError
from featurizer.storage._files import fsync_dir

__all__ = [
    "FORMAT_VERSION",
    "CheckpointInfo",
    "SourcePosition",
    "checkpoint_paths",
    "read_checkpoint",
    "read_info",
    "write_checkpoint",
]

FORMAT_VERSION = 1
"""The version of the ``.ckpt`` format written; other versions are refused when resuming."""

_MAGIC = b"FEATURIZER-CHECKPOINT "
_SUFFIX = ".ckpt"


@attrs.frozen(kw_only=True)
class SourcePosition:
    """Where one data source stood at a checkpoint's cut.

    :param name: the data source's name.
    :param consumed: its events the graph had consumed (the first ``consumed`` events of its
        series in the log).
    :param max_receipt: the largest ``receipt_timestamp`` among them (``None`` before any):
        a restarted emitter's events up to it are the ones already consumed.
    """

    name: str
    consumed: int
    max_receipt: float | None


@attrs.frozen(kw_only=True)
class CheckpointInfo:
    """The manifest of one checkpoint.

    :param id: increasing from 1 within a directory.
    :param created: Unix time of the commit.
    :param fingerprint: what the run computes (see :class:`~featurizer.checkpoint.RunIdentity`).
    :param events_in: input events consumed at the cut (all sources).
    :param sources: feature key of every data source to its position.
    :param rows: output rows published up to and including this checkpoint.
    :param output_bytes: length of the published output file when this checkpoint commits.
    :param segment_bytes: bytes of this checkpoint's own output segment.
    :param state_bytes: size of the pickled state.
    :param state_sha256: its SHA-256.
    :param duration_seconds: time taken to snapshot, sync the log and commit.
    :param restarts: times the run was resumed before this checkpoint.
    :param final: written when the run ended cleanly.
    :param input_logged: the run's input log holds its events up to this cut (``False``: every
        emitter of the run replays its input itself, so the run keeps no log; scaled runs
        never log). Manifests written before the field existed were logged.
    :param workers: a scaled run's workers by index (as text): ``events_in``, ``finished``,
        and in worker-output mode ``output`` (its file), ``output_bytes``, ``segment_bytes``
        and ``rows`` published with this checkpoint; empty for a single-process run.
    :param path: the file (not stored in it).
    """

    id: int
    created: float
    fingerprint: Mapping[str, Any]
    events_in: int
    sources: Mapping[str, SourcePosition]
    rows: int
    output_bytes: int
    segment_bytes: int
    state_bytes: int = 0
    state_sha256: str = ""
    duration_seconds: float = 0.0
    restarts: int = 0
    final: bool = False
    input_logged: bool = True
    workers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON values (without ``path``)."""
        data = attrs.asdict(self, recurse=True)
        data.pop("path")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str) -> CheckpointInfo:
        """Read a manifest written by :meth:`to_json`."""
        fields = dict(data)
        fields["sources"] = {
            key: SourcePosition(**value) for key, value in fields["sources"].items()
        }
        return cls(**fields, path=path)

    def describe(self) -> str:
        """One line for ``featurizer checkpoint ls``."""
        return (
            f"{self.id:>6}  events {self.events_in:>12,}  rows {self.rows:>12,}  state "
            f"{self.state_bytes:>10,} B  {self.duration_seconds * 1000:8.1f} ms"
            f"{'  final' if self.final else ''}"
            f"{f'  scaled ({len(self.workers)} workers)' if self.workers else ''}"
        )

    def details(self) -> list[str]:
        """The lines of ``featurizer checkpoint info``."""
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        lines = [
            f"checkpoint {self.id}{' (final)' if self.final else ''}: {self.path}",
            f"  committed: {created}  duration: {self.duration_seconds * 1000:.1f} ms  "
            f"restarts before it: {self.restarts}",
            f"  events in: {self.events_in:,}  state: {self.state_bytes:,} bytes (sha256 "
            f"{self.state_sha256[:16]})",
            f"  output: {self.fingerprint.get('output')}: {self.rows:,} rows, "
            f"{self.output_bytes:,} bytes published",
            "  input log: "
            + (
                "yes (the events after the cut are replayed from it)"
                if self.input_logged
                else "no (every emitter replays its input; a resumed run skips what was consumed)"
            ),
            "  sources:",
        ]
        for key, position in self.sources.items():
            receipt = "-" if position.max_receipt is None else f"{position.max_receipt:.6f}"
            lines.append(
                f"    {position.name} ({key[:12]}): {position.consumed:,} events consumed, "
                f"last receipt {receipt}"
            )
        for index, worker in sorted(self.workers.items(), key=lambda item: int(item[0])):
            where = (
                f", {worker.get('rows', 0):,} rows, {worker.get('output_bytes', 0):,} bytes "
                f"published to {worker['output']}"
                if worker.get("output")
                else ""
            )
            logged = worker.get("input_logged")
            lines.append(
                f"  worker {index}: {worker.get('events_in', 0):,} events in"
                f"{' (ended)' if worker.get('finished') else ''}{where}"
                + ("" if logged is None else f", input log: {'yes' if logged else 'no'}")
            )
        lines.append("  features:")
        for key, name in self.fingerprint.get("features", {}).items():
            lines.append(f"    {name} ({key[:12]})")
        return lines


def checkpoint_paths(directory: Path) -> list[Path]:
    """The committed checkpoint files of a checkpoint directory, oldest first."""
    folder = directory / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == _SUFFIX and p.stem.isdigit())


def write_checkpoint(directory: Path, info: CheckpointInfo, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint atomically; returns its path. The rename is the commit.

    :param info: the manifest (``state_bytes`` and ``state_sha256`` are filled in here).
    :param state: the snapshot.
    """
    folder = directory / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(dict(state), protocol=pickle.HIGHEST_PROTOCOL)
    info = attrs.evolve(
        info, state_bytes=len(payload), state_sha256=hashlib.sha256(payload).hexdigest()
    )
    path = folder / f"{info.id:08d}{_SUFFIX}"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    with tmp.open("wb") as handle:
        handle.write(_MAGIC + str(FORMAT_VERSION).encode() + b"\n")
        handle.write(json.dumps(info.to_json(), sort_keys=True).encode() + b"\n")
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    from featurizer.checkpoint._faults import fault_point

    fault_point("checkpoint-commit")
    os.replace(tmp, path)
    fsync_dir(folder)
    return path


def _read(path: Path, *, with_state: bool) -> tuple[CheckpointInfo, bytes]:
    try:
        with path.open("rb") as handle:
            magic = handle.readline()
            manifest = handle.readline()
            payload = handle.read() if with_state else b""
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {error}") from error
    if not magic.startswith(_MAGIC):
        raise CorruptCheckpointError(f"{str(path)!r} is not a featurizer checkpoint")
    version = magic[len(_MAGIC) :].strip()
    if version != str(FORMAT_VERSION).encode():
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} has format version {version.decode(errors='replace')!r}; "
            f"this featurizer reads version {FORMAT_VERSION} (use the featurizer that wrote it, "
            f"or start over with --fresh)"
        )
    try:
        info = CheckpointInfo.from_json(json.loads(manifest), str(path))
    except (ValueError, TypeError, KeyError) as error:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} has a damaged manifest: {error}"
        ) from error
    return info, payload


def read_info(path: Path) -> CheckpointInfo:
    """The manifest of a checkpoint file (the state is not read)."""
    return _read(path, with_state=False)[0]


def read_checkpoint(path: Path) -> tuple[CheckpointInfo, dict[str, Any]]:
    """A checkpoint's manifest and state, after checking the state's size and SHA-256.

    :raises CorruptCheckpointError: naming the file and what does not match.
    """
    info, payload = _read(path, with_state=True)
    if len(payload) != info.state_bytes:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} is truncated: state of {len(payload):,} bytes, manifest "
            f"says {info.state_bytes:,}"
        )
    if hashlib.sha256(payload).hexdigest() != info.state_sha256:
        raise CorruptCheckpointError(f"checkpoint {str(path)!r}: state checksum mismatch")
    try:
        state = pickle.loads(payload)
    except Exception as error:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r}: state cannot be read: {type(error).__name__}: {error}"
        ) from error
    return info, state
