"""Ray scaler for Featurizer: ``featurizer run CONFIG --scaler ray --workers N``.

Registers the ``ray`` scaler. :class:`FeaturizerStreamManagerActor` rebuilds the plan from the
config, starts one :class:`FeaturizerStreamWorkerActor` per worker, wires their ZeroMQ
channels, starts the emitters, watches the workers and stops them; outputs flow from the
workers to the driver, which merges them in event-time order. ``ray`` is imported only when
a run starts, so discovery works without it.
"""

from __future__ import annotations

from featurizer import hookimpl
from featurizer.scaling import ScalerSpec
from featurizer_ray.actors import FeaturizerStreamManagerActor, FeaturizerStreamWorkerActor
from featurizer_ray.scaler import RayScaler

__all__ = ["FeaturizerStreamManagerActor", "FeaturizerStreamWorkerActor", "RayScaler"]


@hookimpl
def featurizer_register_scalers() -> list[ScalerSpec]:
    """The ``ray`` scaler (ZeroMQ between actors by default)."""
    return [
        ScalerSpec(
            name="ray",
            factory=RayScaler,
            default_transport="zmq",
            separate_processes=True,
            description="Ray actors (local ray.init() or --address of a running cluster)",
        )
    ]
