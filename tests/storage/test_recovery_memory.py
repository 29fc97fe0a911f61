"""Recovery streams the write-ahead log: its peak memory does not grow with the WAL's size."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WRITE = textwrap.dedent(
    """
    import os, sys
    from featurizer import Feature
    from featurizer.storage import Storage, MemoryBasedCompactor
    from featurizer.testing import ExampleTicker

    root, cycles = sys.argv[1], int(sys.argv[2])
    a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    storage = Storage(root)
    writer = storage.writer([a, b], compactor=MemoryBasedCompactor(max_block_bytes=1 << 40),
                            sync_interval=3600.0, max_open_bytes=1 << 40,
                            max_wal_bytes=1 << 40, max_pending=1 << 30, max_block_lag=None)
    record_a, record_b = writer.event_callback(a), writer.event_callback(b)
    t = 0.0
    for _ in range(cycles):
        for _ in range(25_000):
            t += 0.001
            record_a({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t})
            record_b({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t})
        writer.sync(timeout=600)
    os._exit(0)
    """
)

RECOVER = textwrap.dedent(
    """
    import resource, sys
    from featurizer.storage import Storage
    with Storage(sys.argv[1]) as storage:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = storage.recover()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(report.events, before // 1024, after // 1024)
    """
)


def _peak(tmp_path: Path, cycles: int) -> tuple[int, int, int]:
    root = tmp_path / f"root{cycles}"
    subprocess.run([sys.executable, "-c", WRITE, str(root), str(cycles)], check=True, timeout=600)
    wal = sum(p.stat().st_size for p in (root / "wal").glob("*.wal"))
    out = subprocess.run(
        [sys.executable, "-c", RECOVER, str(root)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout.split()
    events, before, after = map(int, out)
    assert events == cycles * 50_000
    return wal, before, after


@pytest.mark.slow
def test_recovery_memory_does_not_grow_with_the_wal(tmp_path: Path) -> None:
    small = _peak(tmp_path, 8)
    large = _peak(tmp_path, 48)
    print(f"WAL {small[0] / 2**20:.0f} MiB: peak RSS {small[2]} MiB (open: {small[1]} MiB)")
    print(f"WAL {large[0] / 2**20:.0f} MiB: peak RSS {large[2]} MiB (open: {large[1]} MiB)")
    assert large[0] > 5 * small[0]
    # six times the WAL, at most a bounded working set more (blocks of 16 MiB per series)
    assert large[2] - small[2] < 96
