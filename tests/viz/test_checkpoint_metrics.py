"""The checkpoint metrics of ``featurizer run --checkpoint DIR --metrics-port P``, scraped from
the Prometheus endpoint while the run goes: before the first checkpoint, after each, and in a
run resumed after a failure (restarts, replayed events, recovery time)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from featurizer import FeaturizerConfig, construct_features_from_configs
from featurizer._plugins import reset_plugins
from featurizer.checkpoint._format import checkpoint_paths
from featurizer.cli import main
from featurizer.metrics import CHECKPOINT_METRIC_NAMES, METRIC_NAMES, serve_metrics
from tests.viz.viz_support import ScriptedEmitter, script_for, scripted_plugins

CONFIG = {
    "feature_configs": [
        {
            "name": "mid",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"}},
        },
        {
            "name": "tvi",
            "feature_definition": "trade_volume_imbalance",
            "params": {
                "window": "10s",
                "data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"},
            },
        },
    ]
}
EVENTS = 3_000
EVERY = 1_000
SCRAPES = (1, 1_500, 2_500)
FAIL_AT = 2_600


def _samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("featurizer_checkpoint_")
    }


@pytest.fixture
def scraping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[list[tuple[int, str, dict[int, int]]]]:
    """The scripted emitter scrapes the run's endpoint at :data:`SCRAPES` (the graph idle),
    noting the size of each checkpoint file then."""
    plugins = scripted_plugins()
    reset_plugins(plugins)
    features = construct_features_from_configs(FeaturizerConfig.from_dict(CONFIG), plugins)
    sources = {s for f in features for s in f.data_sources()}
    ScriptedEmitter.script = script_for(sorted(sources, key=lambda s: s.name), EVENTS)
    ScriptedEmitter.checkpoints = set(SCRAPES)
    servers: list[Any] = []
    scrapes: list[tuple[int, str, dict[int, int]]] = []

    def recording_serve(*args: Any, **kwargs: Any) -> Any:
        server = serve_metrics(*args, **kwargs)
        servers.append(server)
        return server

    def scrape(emitted: int) -> None:
        with urllib.request.urlopen(servers[-1].url, timeout=10) as response:
            text = response.read().decode("utf-8")
        sizes = {int(p.stem): p.stat().st_size for p in checkpoint_paths(tmp_path / "ck")}
        scrapes.append((emitted, text, sizes))

    monkeypatch.setattr("featurizer.metrics._prometheus.serve_metrics", recording_serve)
    ScriptedEmitter.checkpoint = scrape
    yield scrapes
    ScriptedEmitter.checkpoint = None
    ScriptedEmitter.checkpoints = set()
    ScriptedEmitter.script = []


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    code = main(
        [
            "run",
            str(config),
            "--emitter",
            "scripted",
            "--metrics-port",
            "0",
            "--out",
            str(tmp_path / "out.jsonl"),
            "--checkpoint",
            str(tmp_path / "ck"),
            "--checkpoint-every",
            str(EVERY),
        ]
    )
    return code, capsys.readouterr().err


def test_checkpoint_metrics_are_scraped_during_a_checkpointed_run(
    scraping: list[tuple[int, str, dict[int, int]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    began = time.time()
    code, err = _run(tmp_path, capsys)
    assert code == 0, err
    assert [emitted for emitted, _, _ in scraping] == list(SCRAPES)
    first, middle, late = (_samples(text) for _, text, _ in scraping)
    # Before the first checkpoint: nothing committed, no commit time.
    assert first == {
        "featurizer_checkpoint_checkpoints_total": 0.0,
        "featurizer_checkpoint_restarts_total": 0.0,
        "featurizer_checkpoint_replayed_events_total": 0.0,
        "featurizer_checkpoint_gaps_total": 0.0,
        "featurizer_checkpoint_duration_seconds": 0.0,
        "featurizer_checkpoint_size_bytes": 0.0,
        "featurizer_checkpoint_recovery_seconds": first["featurizer_checkpoint_recovery_seconds"],
    }
    assert first["featurizer_checkpoint_recovery_seconds"] >= 0
    # After one and two checkpoints: the committed state's size, its time, its duration.
    assert middle["featurizer_checkpoint_checkpoints_total"] == 1.0
    assert late["featurizer_checkpoint_checkpoints_total"] == 2.0
    assert middle["featurizer_checkpoint_size_bytes"] == scraping[1][2][1]
    assert late["featurizer_checkpoint_size_bytes"] == scraping[2][2][2]
    assert 0 < middle["featurizer_checkpoint_duration_seconds"] < 60
    commits = [s["featurizer_checkpoint_last_commit_timestamp_seconds"] for s in (middle, late)]
    assert began <= commits[0] <= commits[1] <= time.time()
    for samples in (middle, late):
        assert samples["featurizer_checkpoint_restarts_total"] == 0.0
        assert samples["featurizer_checkpoint_replayed_events_total"] == 0.0
    assert set(late) == set(CHECKPOINT_METRIC_NAMES)
    assert not set(CHECKPOINT_METRIC_NAMES) & set(METRIC_NAMES)


def test_a_resumed_run_exports_its_restart_and_replay(
    scraping: list[tuple[int, str, dict[int, int]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first run fails at event 2,600 (after its checkpoint at 2,000): the second resumes
    from that checkpoint, replaying the logged events after it."""

    def fail(emitted: int) -> None:
        if emitted == FAIL_AT:
            raise RuntimeError("the feed broke")

    ScriptedEmitter.checkpoint, scrape = fail, ScriptedEmitter.checkpoint
    ScriptedEmitter.checkpoints = {FAIL_AT}
    code, err = _run(tmp_path, capsys)
    assert code != 0 and "the feed broke" in err
    ScriptedEmitter.checkpoint, ScriptedEmitter.checkpoints = scrape, {EVENTS}
    code, err = _run(tmp_path, capsys)
    assert code == 0, err
    assert [emitted for emitted, _, _ in scraping] == [EVENTS]
    samples = _samples(scraping[0][1])
    assert samples["featurizer_checkpoint_restarts_total"] == 1.0
    replayed = samples["featurizer_checkpoint_replayed_events_total"]
    assert 0 < replayed <= FAIL_AT - 2 * EVERY
    assert f"replayed: {int(replayed):,} events" in err
    assert samples["featurizer_checkpoint_recovery_seconds"] > 0


def test_every_checkpoint_metric_is_documented() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("metrics.md", "fault-tolerance.md"):
        text = (docs / page).read_text(encoding="utf-8")
        missing = [name for name in CHECKPOINT_METRIC_NAMES if f"`{name}`" not in text]
        assert not missing, f"docs/{page} does not document {missing}"
