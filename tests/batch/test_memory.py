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


def _peak(tmp_path: Path, events: int) -> tuple[int, int]:
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
    peak = peak_rss_kib(config, root, out)
    return peak, pq.read_metadata(out).num_rows


def test_peak_rss_is_flat_as_the_range_grows(tmp_path: Path) -> None:
    small, small_rows = _peak(tmp_path, 300_000)
    large, large_rows = _peak(tmp_path, 900_000)
    assert large_rows > 2.9 * small_rows
    # 3x the events, the peak within 24 MiB: memory is bounded by a chunk, not the range
    # (the allocators reach their steady state within the first ~500k events)
    assert large - small < 24 * 1024, (small, large)


@pytest.mark.slow
def test_peak_rss_1m_vs_10m_events(tmp_path: Path) -> None:
    small, _ = _peak(tmp_path, 1_000_000)
    large, large_rows = _peak(tmp_path, 10_000_000)
    assert large_rows > 9_000_000
    assert large < small * 1.15 + 20 * 1024, (small, large)
