"""Batch fixtures: stored synthetic markets, shared by the tests of this package."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurizer import FeaturizerConfig, load_config
from tests.batch.batch_support import WINDOWED, features_of, market_events, store_events

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeaturizerConfig]:
    """The quickstart's data sources (two symbols, ticker, trades, L2 book), ~25k events."""
    root = tmp_path_factory.mktemp("quickstart")
    cfg = load_config(REPO / "examples" / "quickstart.yaml")
    store_events(root, market_events(features_of(cfg), 25_000, seed=3), block_bytes=150_000)
    return root, cfg


@pytest.fixture(scope="session")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeaturizerConfig]:
    """One symbol's ticker and trades (~40k events) for the windowed features."""
    root = tmp_path_factory.mktemp("windowed")
    store_events(root, market_events(features_of(WINDOWED), 40_000, seed=5), block_bytes=200_000)
    return root, WINDOWED
