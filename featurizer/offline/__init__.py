"""Offline features from the online pipeline (Kappa): replay stored data sources through the
very same :class:`~featurizer.FeatureStreamGraph` that runs live.

* :class:`OfflineFeatureStreamGenerator` — combined feature vectors over a stored range, with
  ``has_next()``/``next()`` and the iterator protocol.
* :func:`split` — consecutive sub-ranges for parallel work, each with the warm-up margin that
  makes windowed features exact at its start.

``featurizer run CONFIG --emitter offline`` (the ``featurizer-offline`` plugin) replays through
the live runner instead.
"""

from __future__ import annotations

from featurizer.offline._generator import PER_CHOICES, OfflineFeatureStreamGenerator
from featurizer.offline._split import derived_warmup, effective_warmup, split

__all__ = [
    "PER_CHOICES",
    "OfflineFeatureStreamGenerator",
    "derived_warmup",
    "effective_warmup",
    "split",
]
