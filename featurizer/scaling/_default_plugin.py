"""The scaling subsystem's own contributions, registered like any plugin (core defaults)."""

from __future__ import annotations

from featurizer._plugin_types import ScalingStrategySpec, TransportSpec
from featurizer.hookspecs import hookimpl
from featurizer.scaling._driver import LocalScaler
from featurizer.scaling._specs import ScalerSpec
from featurizer.scaling._strategies import STRATEGIES
from featurizer.scaling._transport import InProcessTransport


@hookimpl
def featurizer_register_scaling_strategies() -> list[ScalingStrategySpec]:
    """``single``, ``by_source`` and ``split``."""
    return [
        ScalingStrategySpec(name=name, planner=planner, description=description)
        for name, (planner, description) in STRATEGIES.items()
    ]


@hookimpl
def featurizer_register_transports() -> list[TransportSpec]:
    """``inproc``: bounded queues between threads of one process."""
    return [
        TransportSpec(
            name="inproc",
            factory=InProcessTransport,
            description="bounded in-process queues between worker threads (tests, --scaler local)",
        )
    ]


@hookimpl
def featurizer_register_scalers() -> list[ScalerSpec]:
    """``local``: every worker as threads of the driver process."""
    return [
        ScalerSpec(
            name="local",
            factory=LocalScaler,
            default_transport="inproc",
            description="workers as threads of this process (tests, debugging plans)",
        )
    ]
