"""What ``featurizer checkpoint ls|info|verify`` shows: a checkpoint directory, checked."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import attrs

from featurizer.checkpoint._errors import CheckpointError
from featurizer.checkpoint._format import (
    CheckpointInfo,
    checkpoint_paths,
    read_checkpoint,
    read_info,
)
from featurizer.checkpoint._parquet_sink import is_parquet_output, verify_parquet_output

__all__ = ["DirectoryReport", "inspect_directory", "verify_directory"]


@attrs.frozen(kw_only=True)
class DirectoryReport:
    """A checkpoint directory: its checkpoints (oldest first) and, after a verify, problems.

    :param directory: the directory.
    :param checkpoints: manifests of the committed checkpoints.
    :param problems: one line per problem (each names the file and what is wrong).
    :param notes: facts that are not problems (an interrupted publish that resuming finishes).
    """

    directory: Path
    checkpoints: tuple[CheckpointInfo, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    @property
    def latest(self) -> CheckpointInfo | None:
        """The checkpoint a run resumes from."""
        return self.checkpoints[-1] if self.checkpoints else None

    def describe(self) -> str:
        """The summary line of ``featurizer checkpoint verify``."""
        state = "ok" if self.ok else "DAMAGED"
        latest = self.latest
        where = f", resumes from checkpoint {latest.id}" if latest is not None else ""
        return (
            f"{self.directory}: {state}: {len(self.checkpoints)} checkpoint(s){where}; "
            f"{len(self.problems)} problem(s)" + "".join(f"; {note}" for note in self.notes)
        )


def _require(directory: Path) -> Path:
    if not directory.is_dir():
        raise CheckpointError(
            f"{str(directory)!r} is not a checkpoint directory (it does not exist); it is "
            f"created by `featurizer run CONFIG --checkpoint DIR --out FILE.jsonl`"
        )
    return directory


def inspect_directory(directory: str | Path) -> DirectoryReport:
    """The manifests of a directory's checkpoints (states are not read)."""
    path = _require(Path(directory))
    return DirectoryReport(
        directory=path, checkpoints=tuple(read_info(p) for p in checkpoint_paths(path))
    )


def verify_directory(directory: str | Path) -> DirectoryReport:
    """Check every checkpoint (size, SHA-256, readable state), the published output against
    the newest one, and the input log if the run keeps one (its blocks, and that it holds every
    event up to the newest cut)."""
    path = _require(Path(directory))
    infos: list[CheckpointInfo] = []
    problems: list[str] = []
    notes: list[str] = []
    for file in checkpoint_paths(path):
        try:
            infos.append(read_checkpoint(file)[0])
        except CheckpointError as error:
            problems.append(str(error))
    latest = infos[-1] if infos else None
    if latest is not None and latest.workers:
        _verify_scaled(path, latest, problems, notes)
    elif latest is not None:
        _verify_output(
            Path(str(latest.fingerprint.get("output", ""))),
            path / "segments" / f"{latest.id:08d}.jsonl",
            latest.id,
            latest.output_bytes,
            latest.segment_bytes,
            problems,
            notes,
            rows=latest.rows,
        )
        if latest.input_logged:
            problems.extend(_verify_log(path / "log", latest, notes))
        else:
            notes.append("the run keeps no input log: every emitter replays its input")
    return DirectoryReport(
        directory=path, checkpoints=tuple(infos), problems=tuple(problems), notes=tuple(notes)
    )


def _verify_output(
    output: Path,
    segment: Path,
    checkpoint_id: int,
    published: int,
    segment_bytes: int,
    problems: list[str],
    notes: list[str],
    *,
    rows: int,
) -> None:
    """Compare one published output file with what checkpoint ``checkpoint_id`` says."""
    if is_parquet_output(output):
        verify_parquet_output(output, checkpoint_id, rows, problems, notes)
        return
    size = output.stat().st_size if output.is_file() else -1
    if size == published:
        return
    if 0 <= published - segment_bytes <= size < published and segment.is_file():
        notes.append(
            f"the publish of {output} at checkpoint {checkpoint_id} was interrupted; "
            f"resuming ends it"
        )
    elif size > published:
        notes.append(
            f"{output} holds {size - published:,} bytes after checkpoint {checkpoint_id}: "
            f"uncommitted rows, removed when the run resumes"
        )
    else:
        problems.append(
            f"{output}: {max(size, 0):,} bytes, but checkpoint {checkpoint_id} published "
            f"{published:,}: the published output was truncated or removed"
        )


def _verify_scaled(
    directory: Path, latest: CheckpointInfo, problems: list[str], notes: list[str]
) -> None:
    """A scaled run's input logs (of the workers that keep one) and its outputs: the
    driver's file, or each worker's."""
    logged = [index for index, w in sorted(latest.workers.items()) if w.get("input_logged")]
    for index in logged:
        sources = latest.workers[index].get("sources", latest.sources)
        problems.extend(
            _verify_log(
                directory / "workers" / index / "log", latest, notes, f"worker {index}: ", sources
            )
        )
    if not logged:
        notes.append("the run keeps no input log: every emitter replays its input")
    if latest.fingerprint.get("scaled", {}).get("outputs") == "workers":
        for index, worker in sorted(latest.workers.items()):
            if not worker.get("output"):
                continue
            segments = directory / "workers" / index / "segments"
            _verify_output(
                Path(worker["output"]),
                segments / f"{int(worker['output_id']):08d}.jsonl",
                int(worker["output_id"]),
                int(worker["output_bytes"]),
                int(worker["segment_bytes"]),
                problems,
                notes,
                rows=int(worker["rows"]),
            )
        return
    _verify_output(
        Path(str(latest.fingerprint.get("output", ""))),
        directory / "segments" / f"{latest.id:08d}.jsonl",
        latest.id,
        latest.output_bytes,
        latest.segment_bytes,
        problems,
        notes,
        rows=latest.rows,
    )


def _verify_log(
    directory: Path,
    latest: CheckpointInfo,
    notes: list[str],
    label: str = "",
    sources: Collection[str] | None = None,
) -> list[str]:
    """The problems of one input log (a run's, or a scaled run's worker's: ``label`` names
    it, ``sources`` are the keys of its data sources; default: every source of the run)."""
    from featurizer.checkpoint._log import log_roots, read_pruned
    from featurizer.storage import NoDataError, Storage, StorageError

    positions = {key: p for key, p in latest.sources.items() if sources is None or key in sources}
    roots = log_roots(directory)
    if not roots and not (directory / "pruned.json").exists():
        if any(p.consumed for p in positions.values()):
            return [f"{directory}: the input log is missing"]
        return []
    problems: list[str] = []
    logged: dict[str, int] = dict(read_pruned(directory)[1])  # deleted once consumed
    unrecovered = False
    for root in roots:
        try:
            with Storage.open(root) as storage:
                report = storage.verify()
                for problem in report.problems:
                    if problem.kind == "wal":
                        unrecovered = True
                    else:
                        problems.append(f"{label}input log: {problem.message}")
                for series in storage.series():
                    try:
                        rows = storage.read_table(series).num_rows
                    except NoDataError:
                        rows = 0
                    logged[series.key] = logged.get(series.key, 0) + rows
        except StorageError as error:
            problems.append(f"{label}input log: {error}")
    if unrecovered:
        notes.append(
            f"{label}the input log holds acknowledged events of a crashed run that are not "
            f"yet in blocks; resuming publishes them"
        )
        return problems
    for key, position in positions.items():
        if logged.get(key, 0) < position.consumed:
            problems.append(
                f"{label}input log: {position.name} holds {logged.get(key, 0):,} events, "
                f"fewer than the {position.consumed:,} checkpoint {latest.id} consumed"
            )
    return problems
