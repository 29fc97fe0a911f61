"""Checkpointing a scaled-out run: throughput cost on the local scaler with 2 workers.

The reference workload (mid price, 60 s volatility, 60 s trade volume imbalance, combined
vector on every update; see ``reference_workload.py``) for two symbols of the synthetic
market (BTC-USDT and ETH-USDT), so that ``by_source`` gives each of the 2 workers one symbol's
sub-DAG; the driver merges and writes JSON Lines. ``featurizer run --scaler local --workers 2``
without and with ``--checkpoint`` runs back to back in pairs (the same input; the outputs are
checked to be the same file):

* at the default interval (10 s): the steady cost (source positions, the final checkpoint);
* every second (``--checkpoint-every 1s``): barriers through the channels, acknowledgements,
  commits and publishes included.

With ``--log-input`` the checkpointed runs have ``log_input: true``: every worker logs the
events it consumes (what a worker with a live source pays: its input log appended under its
lock, synced before each acknowledgement).

Each figure is the best of ``--repeats`` and the median ratio of the back-to-back pairs
(target: at most 10% slower). The machine may be shared with other work: numbers are noisy.

    python benchmarks/checkpoint_scaled.py --events 300000 [--log-input]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from reference_workload import CONFIG  # the same reference workload, one definition


def _two_symbols() -> dict[str, Any]:
    """The reference workload for BTC-USDT and ETH-USDT (two independent sub-DAGs)."""
    entries = []
    for symbol in ("BTC-USDT", "ETH-USDT"):
        for entry in copy.deepcopy(CONFIG["feature_configs"]):
            entry["name"] = f"{entry['name']}_{symbol.split('-')[0].lower()}"
            entry["params"]["data_source"]["symbol"] = symbol
            entries.append(entry)
    return {"feature_configs": entries}


def featurizer(*args: str) -> tuple[int, str, float]:
    """Run the CLI in a fresh process: exit code, stderr and wall seconds."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    return result.returncode, result.stderr, time.perf_counter() - started


def _rate(stderr: str) -> float:
    match = re.search(r"events/s: ([\d,]+)", stderr)
    assert match is not None, stderr[-2000:]
    return float(match.group(1).replace(",", ""))


def _checkpoints(stderr: str) -> int:
    match = re.search(r"checkpoints: ([\d,]+) committed", stderr)
    return int(match.group(1).replace(",", "")) if match else -1


def throughput(
    workdir: Path,
    configs: tuple[Path, Path],
    events: int,
    repeats: int,
    every: str | None,
) -> dict[str, Any]:
    """events/s of plain and checkpointed scaled runs (of ``configs``: the plain run's, the
    checkpointed run's), in back-to-back pairs."""
    plain: list[float] = []
    checkpointed: list[float] = []
    checkpoints: list[int] = []
    bounds = ["--scaler", "local", "--workers", "2", "--max-events", str(events), "--seed", "7"]
    for attempt in range(repeats):
        code, err, _ = featurizer(
            "run", str(configs[0]), *bounds, "--out", str(workdir / "plain.jsonl")
        )
        assert code == 0, err
        plain.append(_rate(err))
        directory = workdir / f"ck-{every}-{attempt}"
        interval = ["--checkpoint-every", every] if every else []
        code, err, _ = featurizer(
            "run",
            str(configs[1]),
            *bounds,
            "--out",
            str(workdir / "ck.jsonl"),
            "--checkpoint",
            str(directory),
            *interval,
        )
        assert code == 0, err
        checkpointed.append(_rate(err))
        checkpoints.append(_checkpoints(err))
        same = (workdir / "plain.jsonl").read_bytes() == (workdir / "ck.jsonl").read_bytes()
        assert same, "the checkpointed output differs from the plain one"
    ratios = sorted(c / p for p, c in zip(plain, checkpointed, strict=True))
    return {
        "plain": max(plain),
        "checkpointed": max(checkpointed),
        "ratio": max(checkpointed) / max(plain),
        "median_pair_ratio": ratios[len(ratios) // 2],
        "checkpoints": checkpoints,
        "all_plain": plain,
        "all_checkpointed": checkpointed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="input events per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--log-input", action="store_true", help="checkpointed runs log every worker's input"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "reference-2.yaml"
        config.write_text(yaml.safe_dump(_two_symbols()), encoding="utf-8")
        logged = workdir / "reference-2-logged.yaml"
        # --checkpoint DIR replaces the section's directory
        section = {"dir": "ignored", "log_input": True}
        logged.write_text(yaml.safe_dump({**_two_symbols(), "checkpoint": section}))
        configs = (config, logged if args.log_input else config)
        mode = "input logged" if args.log_input else "no input log"
        for every, label in ((None, "default interval (10 s)"), ("1s", "every 1 s")):
            cost = throughput(workdir, configs, args.events, args.repeats, every)
            print(
                f"local scaler, 2 workers, {mode}, {args.events:,} events per worker, {label}, "
                f"best of "
                f"{args.repeats}: plain {cost['plain']:,.0f} events/s, checkpointed "
                f"{cost['checkpointed']:,.0f} events/s: ratio {cost['ratio']:.3f} (cost "
                f"{100 * (1 - cost['ratio']):.1f}%), median ratio of back-to-back pairs "
                f"{cost['median_pair_ratio']:.3f}; checkpoints per run {cost['checkpoints']}; "
                f"all runs: plain {[round(r) for r in cost['all_plain']]}, checkpointed "
                f"{[round(r) for r in cost['all_checkpointed']]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
