"""The cost of storing order-book snapshots while recording: feeding stored ``l2_book`` blocks
through the book's state keeper, run by run (``apply_table``, what a recorder does) against
event by event (``apply`` on every decoded event, the reference).

Records the quickstart's BTC-USDT book on the synthetic market once, then feeds its blocks
to a fresh snapshot track each way, alternating, and prints the CPU time per stored event
(all of it holds the GIL the recording's run needs).

    python benchmarks/book_snapshots.py --events 200000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

from featurizer_features.sources import BookKeeper

from featurizer._config import load_config
from featurizer._runner import RunOptions
from featurizer.storage import Storage, record
from featurizer.storage._reader import SeriesPlan, read_tables
from featurizer.storage._snapshots import SnapshotTrack
from featurizer.testing import EventByEventKeeper

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="input events recorded")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Storage(Path(tmp) / "root") as storage:
        options = RunOptions(emitter="synthetic", max_events=args.events, seed=7)
        record(
            load_config(QUICKSTART), options, storage, writer_options={"snapshot_interval": None}
        )
        (info,) = [s for s in storage.series() if s.name == "l2_book.synthetic.BTC-USDT"]
        blocks = tuple(storage.catalog.blocks(info.key))
        plan = SeriesPlan(series=info, start=None, end=None, blocks=blocks, holes=())
        tables = list(read_tables(storage.root, plan, raw_range=False))
        events = sum(table.num_rows for table in tables)
        seconds: dict[str, list[float]] = {"event by event": [], "runs": []}
        taken = {}
        for _ in range(args.repeats):
            keepers = (
                ("event by event", lambda: EventByEventKeeper(BookKeeper())),
                ("runs", BookKeeper),
            )
            for name, keeper in keepers:
                track = SnapshotTrack(
                    storage, info, keeper(), "s", 60.0, full_state_field="is_snapshot"
                )
                gc.collect()
                started = time.thread_time()
                for table in tables:
                    track.feed(table)
                seconds[name].append(time.thread_time() - started)
                taken[name] = track._seqs
    assert taken["runs"] == taken["event by event"], "the two ways took other snapshots"
    per_event = {name: statistics.median(s) / events * 1e9 for name, s in seconds.items()}
    print(
        f"{events:,} l2_book events in {len(blocks)} blocks, {len(taken['runs'])} snapshots "
        f"(every 60 s of event time): event by event {per_event['event by event']:,.0f} ns, "
        f"runs {per_event['runs']:,.0f} ns of CPU per event (medians of {args.repeats}); "
        f"{per_event['event by event'] / per_event['runs']:.2f}x less"
    )


if __name__ == "__main__":
    main()
