"""``featurizer plan CONFIG --workers N``: print how a config is spread over workers.

Also the scale-out options of ``featurizer run`` (``--scaler``, ``--workers``, ...), kept here
so that the ``run`` command only adds them and dispatches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from featurizer._config import construct_features_from_configs
from featurizer._plugins import Plugins, get_plugins
from featurizer._runner import RunOptions
from featurizer._sinks import Sink
from featurizer.cli._common import add_config_argument, load, positive_int, write
from featurizer.cli._reaper import fate_shared

__all__ = [
    "add_scaling_arguments",
    "check_scaling_arguments",
    "register",
    "run_scaled_from_args",
    "worker_outputs_from_args",
]


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds such as 0.5, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value!r}")
    return number


def _port(value: str) -> int:
    number = positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {value!r}")
    return number


def register(commands: Any) -> None:
    """Add the ``plan`` subcommand."""
    parser = commands.add_parser(
        "plan",
        help="print how a config is spread over N workers (which worker computes what)",
        description="Plan CONFIG with a scaling strategy and print, per worker, the data "
        "sources it ingests, the features it receives, computes, outputs and ships.",
    )
    add_config_argument(parser)
    parser.add_argument("--workers", type=positive_int, default=1, help="number of workers")
    parser.add_argument(
        "--strategy",
        help="single, by_source or split (default: single for 1 worker, else by_source)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the plan."""
    from featurizer.scaling import build_plan

    config = load(args)
    plugins = get_plugins()
    features = construct_features_from_configs(config, plugins)
    strategy = args.strategy or ("single" if args.workers == 1 else "by_source")
    plan = build_plan(features, strategy, args.workers, plugins)
    if args.json:
        write(json.dumps(_as_json(plan), indent=2))
    else:
        write(plan.describe())
    return 0


def _as_json(plan: Any) -> dict[str, Any]:
    def names(features: Any) -> list[dict[str, str]]:
        return [{"name": f.name, "key": f.key} for f in features]

    return {
        "strategy": plan.strategy,
        "fingerprint": plan.fingerprint,
        "groups": [
            {"rank": g.rank, "worker": g.worker, "sources": names(g.sources)} for g in plan.groups
        ],
        "workers": [
            {
                "index": w.index,
                "groups": list(w.groups),
                "sources": names(w.sources),
                "inputs": names(w.inputs),
                "computes": names(w.computes),
                "outputs": names(w.outputs),
                "ships": names(w.ships),
            }
            for w in plan.workers
        ],
        "edges": [
            {"feature": e.feature.name, "key": e.feature.key, "from": e.source, "to": e.target}
            for e in plan.edges
        ],
    }


def add_scaling_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scaler``, ``--workers``, ``--strategy``, ``--address`` and friends to ``run``."""
    group = parser.add_argument_group("scale out (see docs/scaling.md)")
    group.add_argument("--scaler", help="run scaled out with this scaler: ray, local")
    group.add_argument("--workers", type=positive_int, default=1, help="number of workers")
    group.add_argument("--strategy", help="single, by_source or split")
    group.add_argument("--address", help="address of a running Ray cluster (default: start one)")
    group.add_argument("--transport", help="zmq or inproc (default: the scaler's)")
    group.add_argument("--port", type=_port, help="port of the driver's inbox (default: any)")
    group.add_argument(
        "--watermark-delay",
        type=_seconds,
        help="live input: hold events S seconds for event-time order; later ones are late",
    )
    group.add_argument("--late-out", help="JSON Lines file receiving late input events")
    group.add_argument(
        "--idle-timeout",
        type=_seconds,
        help="a source silent for S seconds is idle and stops holding the others back; its "
        "events behind the watermark when it emits again are late",
    )
    group.add_argument(
        "--heartbeat-timeout",
        type=_seconds,
        help="a worker silent for S seconds is hung: the run fails naming it (default 10)",
    )
    group.add_argument(
        "--drain-timeout",
        type=_seconds,
        help="seconds a stop (duration, Ctrl-C, SIGTERM) may take to drain before the run "
        "fails unpublished (default 10)",
    )
    group.add_argument(
        "--worker-cpus", type=_seconds, help="ray: CPUs each worker actor reserves (default 1)"
    )
    group.add_argument(
        "--worker-processes",
        action="store_true",
        help="local: run each worker in a process of its own (over zmq), which kill -9 can "
        "reach; their PIDs are logged at start (-v)",
    )
    group.add_argument(
        "--outputs",
        choices=("driver", "workers"),
        default="driver",
        help="driver: workers send outputs to the driver, which merges them into --out "
        "(default); workers: each worker writes its own file (--out DIR, FILE or a pattern "
        "with {worker}; FILE gives FILE-stem.worker-N.suffix) and sends only its metrics",
    )


def worker_outputs_from_args(args: argparse.Namespace, plugins: Plugins) -> Any:
    """The :class:`~featurizer.scaling.WorkerOutputs` of ``--outputs workers`` (``None`` for
    ``--outputs driver``), checked before anything starts.

    :raises ScalingError: for ``--outputs workers`` without ``--scaler`` or ``--out``, with
        ``--late-out``, or for an unknown format or an unwritable directory.
    """
    check_scaling_arguments(args)  # every scale-out flag, before anything starts
    if getattr(args, "outputs", "driver") != "workers":
        return None
    from featurizer.scaling import ScalingError, WorkerOutputs

    if not args.scaler:
        raise ScalingError("--outputs workers needs a scaled run: add --scaler local or ray")
    if not args.out:
        raise ScalingError(
            "--outputs workers needs --out: a directory, a file name (out.jsonl gives "
            "out.worker-0.jsonl, ...) or a pattern containing {worker}"
        )
    if args.late_out:
        raise ScalingError(
            "--late-out is not supported with --outputs workers (late events are counted per "
            "worker in the summary); use --outputs driver"
        )
    outputs = WorkerOutputs(target=args.out, format_name=args.format_name)
    outputs.check(plugins, args.workers)
    return outputs


_SCALED_ONLY = (
    "address",
    "port",
    "watermark_delay",
    "late_out",
    "idle_timeout",
    "heartbeat_timeout",
    "drain_timeout",
    "worker_cpus",
    "worker_processes",
)


def check_scaling_arguments(args: argparse.Namespace) -> None:
    """Refuse scale-out flags that would be silently ignored (``run`` checks ``--workers``,
    ``--strategy``, ``--address`` and ``--transport`` itself, first).

    :raises ScalingError: for a scale-out flag without ``--scaler``, a Ray-only flag
        (``--address``, ``--worker-cpus``) with another scaler, or ``--worker-processes``
        with another scaler than ``local`` or another transport than ``zmq``.
    """
    from featurizer.scaling import ScalingError

    given = ["--" + name.replace("_", "-") for name in _SCALED_ONLY if getattr(args, name, None)]
    if given and not getattr(args, "scaler", None):
        raise ScalingError(
            f"{', '.join(given)} only apply to a scaled-out run: add --scaler local or ray "
            f"(or drop them)"
        )
    scaler = getattr(args, "scaler", None)
    ray_only = [f for f in ("--address", "--worker-cpus") if f in given]
    if scaler and scaler != "ray" and ray_only:
        raise ScalingError(
            f"{', '.join(ray_only)} only apply to --scaler ray (received --scaler {scaler})"
        )
    if scaler and "--worker-processes" in given:
        if scaler != "local":
            raise ScalingError(
                f"--worker-processes runs the local scaler's workers as processes: use "
                f"--scaler local (the {scaler} scaler's workers are not threads of the driver)"
            )
        if getattr(args, "transport", None) not in (None, "zmq"):
            raise ScalingError(
                f"--worker-processes needs a transport between processes: --transport zmq (its "
                f"default), not --transport {args.transport}"
            )


def run_scaled_from_args(
    args: argparse.Namespace,
    config: Any,
    options: RunOptions,
    sink: Sink | None,
    plugins: Plugins,
    outputs: Any = None,
    progress: Callable[[int | None, int], None] | None = None,
    checkpoint: Any = None,
) -> Any:
    """Dispatch ``featurizer run --scaler ...`` to :func:`featurizer.scaling.run_scaled`.

    :param outputs: :func:`worker_outputs_from_args`'s result (``sink`` is then ``None``).
    :param progress: receives the counts while the run goes (a progress line).
    :param checkpoint: a :class:`~featurizer.checkpoint.ScaledCheckpointer` (``--checkpoint``).
    """
    from featurizer.scaling import run_scaled

    late_file = open(args.late_out, "w", encoding="utf-8") if args.late_out else None  # noqa: SIM115

    def on_late(feature: Any, event: Any) -> None:
        if late_file is not None:
            late_file.write(json.dumps({"source": feature.name, **event}, default=str) + "\n")

    scaler_options: dict[str, Any] = {}
    if args.address:
        scaler_options["address"] = args.address
    if args.worker_cpus:
        scaler_options["worker_cpus"] = args.worker_cpus
    transport = args.transport
    if args.worker_processes:
        scaler_options["processes"] = True
        transport = transport or "zmq"
    timeouts = {
        name: getattr(args, name)
        for name in ("heartbeat_timeout", "drain_timeout")
        if getattr(args, name) is not None
    }
    transport_options: dict[str, Any] = {}
    if args.port:
        transport_options["port"] = args.port
    # a Ray this run starts itself must not outlive it, even when it is killed
    own_ray = args.scaler == "ray" and not args.address and not os.environ.get("RAY_ADDRESS")
    try:
        with fate_shared() if own_ray else contextlib.nullcontext():
            summary = run_scaled(
                config,
                options,
                sink,
                scaler=args.scaler,
                workers=args.workers,
                strategy=args.strategy,
                transport=transport,
                transport_options=transport_options,
                scaler_options=scaler_options,
                watermark_delay=args.watermark_delay,
                idle_timeout=args.idle_timeout,
                plugins=plugins,
                on_late=on_late,
                outputs=outputs,
                progress=progress,
                checkpoint=checkpoint,
                **timeouts,
            )
    finally:
        if late_file is not None:
            late_file.close()
    if summary.late_events:
        write(f"late input events: {summary.late_events:,}", stream=sys.stderr)
    return summary
