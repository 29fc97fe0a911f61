"""The Ray scaler checks a run before Ray starts (no Ray session in this module)."""

from __future__ import annotations

import time

import pytest

from featurizer import FeaturizerConfig, FeaturizerError
from featurizer._runner import RunOptions
from featurizer.scaling import run_scaled
from featurizer.testing import CollectingSink
from tests.scaling.test_ray import CONFIG


@pytest.mark.parametrize(
    ("options", "transport", "error"),
    [
        (RunOptions(emitter="nowhere"), None, r"unknown emitter 'nowhere'"),
        (RunOptions(), "inproc", r"inproc transport connects threads of one process"),
    ],
)
def test_ray_bad_emitter_or_transport_fails_before_ray_starts(
    options: RunOptions, transport: str | None, error: str
) -> None:
    import ray

    assert not ray.is_initialized()
    started = time.monotonic()
    with pytest.raises(FeaturizerError, match=error):
        run_scaled(
            FeaturizerConfig.from_dict(CONFIG),
            options,
            CollectingSink(),
            scaler="ray",
            workers=2,
            transport=transport,
        )
    assert not ray.is_initialized(), "Ray was started before the check"
    assert time.monotonic() - started < 5.0
