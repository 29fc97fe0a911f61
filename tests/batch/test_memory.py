"""Bounded memory: the peak RSS of a backfill does not grow with the stored range."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.batch.batch_support import REFERENCE_ENTRIES, config_dict, peak_rss_kib

REPO = Path(__file__).resolve().parents[2]


def _peak(tmp_path: Path, events: int, *options: str) -> tuple[int, int]:
    root = tmp_path / f"root-{events}"
    # stored by another process, as a recording is: none of its files stay open here
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from tests.batch.batch_support import store_reference; "
            f"store_reference({str(root)!r}, {events})",
        ],
        check=True,
        timeout=600,
        cwd=REPO,
    )
    config = tmp_path / "reference.yaml"
    config.write_text(yaml.safe_dump(config_dict(*REFERENCE_ENTRIES)))
    out = tmp_path / f"out-{events}.parquet"
    peak = peak_rss_kib(config, root, out, *options)
    return peak, pq.read_metadata(out).num_rows


def test_memory_stays_flat_while_the_range_goes_on(tmp_path: Path) -> None:
    """Over 800k stored events in chunks of 4096 rows per source, the memory held (Arrow
    buffers plus every Python and numpy allocation, traced exactly) in the second half never
    exceeds the first half's peak by more than 4 MiB: nothing accumulates per chunk (keeping
    just the output rows would add about 13 MiB over the second half). Resident memory is not
    used here: the allocators make it noisy by several MiB."""
    import tracemalloc

    import pyarrow as pa

    from featurizer.batch import Backfill
    from featurizer.batch._write import write_tables
    from tests.batch.batch_support import REFERENCE

    root = tmp_path / "root"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from tests.batch.batch_support import store_reference; "
            f"store_reference({str(root)!r}, 800_000)",
        ],
        check=True,
        timeout=600,
        cwd=REPO,
    )
    samples: list[tuple[int, int]] = []
    tracemalloc.start()
    try:
        with Backfill(REFERENCE, root, chunk_rows=4096) as job:

            def sample(_table: pa.Table) -> None:
                held = pa.total_allocated_bytes() + tracemalloc.get_traced_memory()[0]
                samples.append((job.events_in, held))

            rows = write_tables(job, tmp_path / "out.parquet", on_table=sample)
    finally:
        tracemalloc.stop()
    assert rows > 790_000 and len(samples) > 100
    first = max(held for done, held in samples if done <= 400_000)
    second = max(held for done, held in samples if done > 400_000)
    assert second - first < 4 * 2**20, (first, second)


@pytest.mark.slow
def test_peak_rss_1m_vs_10m_events(tmp_path: Path) -> None:
    small, _ = _peak(tmp_path, 1_000_000)
    large, large_rows = _peak(tmp_path, 10_000_000)
    assert large_rows > 9_000_000
    assert large < small * 1.15, (small, large)
