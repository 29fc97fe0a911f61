"""Live metrics of scaled-out runs: per-edge transport stats and per-worker counters reach the
driver's Prometheus endpoint while the run goes, and add up at its end."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from featurizer import (
    DataSourceEventEmitter,
    EmitterSpec,
    Event,
    EventCallback,
    Feature,
    FeaturizerConfig,
    Plugins,
    construct_features_from_configs,
    hookimpl,
    make_plugin_manager,
)
from featurizer._plugins import reset_plugins
from featurizer._runner import RunOptions
from featurizer.cli import main
from featurizer.metrics import SCALED_METRIC_NAMES, RunMetrics
from featurizer.scaling import build_plan, plan_channels, run_scaled
from featurizer.testing import CollectingSink

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _config(exchange: str) -> dict[str, Any]:
    """Split over two workers: worker 0 ingests the ticker and ships ``mid`` to worker 1,
    which ingests the trades."""

    def source() -> dict[str, str]:
        return {"exchange": exchange, "symbol": "BTC-USDT"}

    return {
        "feature_configs": [
            {"name": "mid", "feature_definition": "mid_price", "params": {"data_source": source()}},
            {
                "name": "vol",
                "feature_definition": "volatility",
                "params": {"window": "10s", "data_source": source()},
            },
            {
                "name": "vol5",
                "feature_definition": "volatility",
                "params": {"window": "5s", "data_source": source()},
            },
            {
                "name": "tvi",
                "feature_definition": "trade_volume_imbalance",
                "params": {"window": "10s", "data_source": source()},
            },
        ]
    }


CONFIG = _config("BINANCE")
TICKERS, TRADES = 2_500, 1_500
CHECKPOINTS = (300, 1_200)


# -- a scripted emitter pausing at checkpoints, and the hooks of the test ------------------------


def _script() -> list[tuple[str, Event]]:
    """``(definition, event)``: five tickers then three trades, again and again, 10 ms apart."""
    script: list[tuple[str, Event]] = []
    for i in range(TICKERS + TRADES):
        ts = 1_700_000_000.0 + i * 0.01
        base = {"timestamp": ts, "receipt_timestamp": ts + 0.001}
        if i % 8 < 5:
            mid = 100.0 + (i % 7) * 0.5
            script.append(("ticker", {**base, "bid": mid - 0.5, "ask": mid + 0.5}))
        else:
            side = "buy" if i % 3 else "sell"
            trade = {"price": 100.0 + i % 5, "amount": 0.1 + (i % 4) * 0.05, "side": side}
            script.append(("trades", {**base, **trade, "trade_id": str(i)}))
    return script


SCRIPT = _script()
assert sum(1 for definition, _ in SCRIPT if definition == "ticker") == TICKERS


class CheckpointEmitter(DataSourceEventEmitter):
    """Emits :data:`SCRIPT` for the data sources registered with it, on its own thread, and
    calls ``checkpoint(definitions, emitted)`` after the events numbered in
    :data:`CHECKPOINTS` (the worker has ingested exactly that many events then)."""

    checkpoint: ClassVar[Callable[[frozenset[str], int], None] | None] = None
    #: called on the emitter's thread before its first event (waits until the run observes)
    before_first: ClassVar[Callable[[], None] | None] = None

    def __init__(self) -> None:
        self._callbacks: dict[str, EventCallback] = {}
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        self._callbacks[feature.definition_name] = callback

    def _run(self) -> None:
        emitted = 0
        try:
            before_first = type(self).before_first
            if before_first is not None:
                before_first()
            for definition, event in SCRIPT:
                if self._stop.is_set():
                    return
                callback = self._callbacks.get(definition)
                if callback is None:
                    continue
                callback(dict(event))
                emitted += 1
                checkpoint = type(self).checkpoint
                if emitted in CHECKPOINTS and checkpoint is not None:
                    checkpoint(frozenset(self._callbacks), emitted)
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checkpoint-emitter")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        return self._error


class Hooks:
    """The ``checkpoints`` emitter, and a scrape of the endpoint when the run has ended (the
    endpoint is still up then: the CLI closes it after the run returns)."""

    def __init__(self, at_end: Callable[[Any], None]) -> None:
        self.at_end = at_end

    @hookimpl
    def featurizer_register_emitters(self) -> list[EmitterSpec]:
        return [
            EmitterSpec(
                name="checkpoints",
                emitter_class=CheckpointEmitter,
                data_sources=("ticker", "trades"),
                description="test emitter pausing at checkpoints",
            )
        ]

    @hookimpl
    def featurizer_after_run(self, context: Any, summary: Any) -> None:
        self.at_end(summary)


# -- scraping ------------------------------------------------------------------------------------

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def _edges(samples: Samples, name: str) -> dict[tuple[str, str], float]:
    """``(sender, receiver) -> value`` of one transport metric."""
    found = {}
    for labels, value in samples.get(name, {}).items():
        label = dict(labels)
        assert label["edge"] == (
            f"worker {label['sender']} -> "
            + ("driver" if label["receiver"] == "driver" else f"worker {label['receiver']}")
        )
        found[label["sender"], label["receiver"]] = value
    return found


def _workers(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["worker"]: value for labels, value in samples.get(name, {}).items()}


def _check_consistent(samples: Samples, *, with_bytes: bool) -> None:
    """What every scrape shows, during the run or after it."""
    sent = _edges(samples, "featurizer_transport_batches_total")
    received = _edges(samples, "featurizer_transport_batches_received_total")
    depth = _edges(samples, "featurizer_transport_queue_depth_batches")
    assert set(sent) == set(received) == set(depth)
    for edge in sent:
        assert received[edge] <= sent[edge], edge
        assert depth[edge] == sent[edge] - received[edge], edge
    records = _edges(samples, "featurizer_transport_records_total")
    records_received = _edges(samples, "featurizer_transport_records_received_total")
    assert all(records_received[e] <= records[e] for e in records)
    if with_bytes:
        nbytes = _edges(samples, "featurizer_transport_bytes_total")
        nbytes_received = _edges(samples, "featurizer_transport_bytes_received_total")
        assert set(nbytes) == set(nbytes_received) == set(sent)
        assert all(nbytes_received[e] <= nbytes[e] for e in nbytes)


def _check_final(samples: Samples, channels: set[tuple[str, str]]) -> None:
    """At the end every edge delivered everything it sent."""
    _check_consistent(samples, with_bytes=True)
    sent = _edges(samples, "featurizer_transport_batches_total")
    assert set(sent) == channels
    assert sent == _edges(samples, "featurizer_transport_batches_received_total")
    assert all(value > 0 for value in sent.values())
    assert set(_edges(samples, "featurizer_transport_queue_depth_batches").values()) == {0.0}
    records = _edges(samples, "featurizer_transport_records_total")
    assert records == _edges(samples, "featurizer_transport_records_received_total")
    nbytes = _edges(samples, "featurizer_transport_bytes_total")
    assert nbytes == _edges(samples, "featurizer_transport_bytes_received_total")
    assert all(value > 0 for value in nbytes.values())


def _channels(config: dict[str, Any], strategy: str, workers: int) -> set[tuple[str, str]]:
    from featurizer import get_plugins

    features = construct_features_from_configs(FeaturizerConfig.from_dict(config))
    plan = build_plan(features, strategy, workers, get_plugins())
    return {(str(s), "driver" if r == -1 else str(r)) for s, r in plan_channels(plan)}


@pytest.fixture
def scripted_run(tmp_path: Path) -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"during": [], "end": []}
    hooks = Hooks(lambda summary: state["end"].append((summary, _scrape(state["url"]))))
    reset_plugins(Plugins(make_plugin_manager(extra_plugins=[hooks])))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    state["config"] = config
    try:
        yield state
    finally:
        CheckpointEmitter.checkpoint = None
        CheckpointEmitter.before_first = None
        reset_plugins(None)


# -- the local scaler, through the command line --------------------------------------------------


def test_local_scaler_serves_live_edge_and_worker_metrics(
    scripted_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    state = scripted_run
    state["url"] = f"http://127.0.0.1:{port}/metrics"
    ingests = {"ticker": "0", "trades": "1"}

    def during(definitions: frozenset[str], emitted: int) -> None:
        (definition,) = definitions
        state["during"].append((ingests[definition], emitted, _scrape(state["url"])))

    def observed() -> None:
        """The scaler starts the emitters before the driver binds its metrics to the run: wait
        (bounded) until the endpoint shows the transport edges, which exist only once the run
        is bound (workers are listed, with zeros, before that), so that counts taken at a
        checkpoint are live counts and not the zeros of a run not yet observed."""
        channels = _channels(CONFIG, "split", 2)
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            try:
                samples = _scrape(state["url"])
            except OSError:
                samples = {}
            edges = set(_edges(samples, "featurizer_transport_batches_total"))
            if {(s, "driver" if r == "driver" else r) for s, r in edges} == channels:
                return
            time.sleep(0.01)  # polling a condition, bounded by the deadline
        raise AssertionError("the run was not observed within 60 s")

    CheckpointEmitter.checkpoint = during
    CheckpointEmitter.before_first = observed
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "run",
            str(state["config"]),
            "--emitter",
            "checkpoints",
            "--scaler",
            "local",
            "--workers",
            "2",
            "--strategy",
            "split",
            "--transport",
            "zmq",
            "--metrics-port",
            str(port),
            "--no-combine",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"serving metrics at {state['url']}" in err

    # During the run: scraped from each worker's emitter thread, right after its N-th event.
    assert sorted((worker, emitted) for worker, emitted, _ in state["during"]) == [
        (worker, emitted) for worker in ("0", "1") for emitted in CHECKPOINTS
    ]
    previous: dict[str, dict[Any, float]] = {}
    for worker, emitted, samples in state["during"]:
        _check_consistent(samples, with_bytes=True)
        events_in = _workers(samples, "featurizer_worker_events_in_total")
        assert events_in[worker] == emitted, "a worker's ingest is counted as it happens"
        if worker == "1" and emitted == CHECKPOINTS[-1]:
            previous = samples
    # Counters only grow: the trades worker's last checkpoint against the end.
    (summary, end), *_ = state["end"]
    for name in ("featurizer_transport_batches_total", "featurizer_worker_events_in_total"):
        assert all(end[name][labels] >= value for labels, value in previous[name].items())

    # At the end: everything sent was received, and the counts are the run's.
    assert len(state["end"]) == 1
    _check_final(end, _channels(CONFIG, "split", 2))
    events_in = _workers(end, "featurizer_worker_events_in_total")
    assert events_in == {"0": float(TICKERS), "1": float(TRADES)}
    assert sum(events_in.values()) == summary.events_in == len(SCRIPT)
    assert _workers(end, "featurizer_worker_errors_total") == {"0": 0.0, "1": 0.0}
    assert _workers(end, "featurizer_worker_late_events_total") == {"0": 0.0, "1": 0.0}
    records = _edges(end, "featurizer_transport_records_received_total")
    assert records["0", "1"] == TICKERS, "one mid per ticker event is shipped to worker 1"
    rows = out.read_text(encoding="utf-8").splitlines()
    assert records["0", "driver"] + records["1", "driver"] == len(rows) == summary.outputs_out
    assert {json.loads(row)["feature"] for row in rows} == {"mid", "vol", "vol5", "tvi"}
    with pytest.raises(OSError):  # the endpoint is gone after the command
        urllib.request.urlopen(state["url"], timeout=2)


@pytest.mark.parametrize(
    ("transport", "options", "serialised"),
    [("inproc", {}, False), ("inproc", {"serialise": True}, True), ("zmq", {"hwm": 2}, True)],
)
def test_run_scaled_reports_every_channel(
    transport: str, options: dict[str, Any], serialised: bool
) -> None:
    reset_plugins(Plugins(make_plugin_manager(extra_plugins=[Hooks(lambda _: None)])))
    try:
        run_metrics = RunMetrics()
        before = run_metrics.snapshot()
        assert before.edges == () and before.workers == ()
        summary = run_scaled(
            FeaturizerConfig.from_dict(CONFIG),
            RunOptions(emitter="checkpoints"),
            CollectingSink(),
            scaler="local",
            workers=2,
            strategy="split",
            transport=transport,
            transport_options={**options, "batch_size": 128},
            metrics=run_metrics,
        )
    finally:
        reset_plugins(None)
    snapshot = run_metrics.snapshot()
    assert {(e.sender, e.receiver) for e in snapshot.edges} == _channels(CONFIG, "split", 2)
    for edge in snapshot.edges:
        assert edge.transport == transport
        assert edge.batches == edge.batches_received and edge.batches and edge.batches > 1
        assert edge.records == edge.records_received and edge.queue_depth == 0
        if serialised:
            assert edge.bytes == edge.bytes_received and edge.bytes and edge.bytes > 0
        else:  # objects are passed: no bytes to count
            assert edge.bytes is None and edge.bytes_received is None
    workers = {w.name: w for w in snapshot.workers}
    assert workers["0"].events_in == TICKERS and workers["1"].events_in == TRADES
    assert snapshot.events_in == summary.events_in == len(SCRIPT)
    assert all(w.finished for w in workers.values())
    assert {w.name: w.batches_out for w in workers.values()} == {
        str(index): metrics["batches_out"] for index, metrics in summary.workers.items()
    }


def test_scaled_metric_names_are_documented() -> None:
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for name in SCALED_METRIC_NAMES:
        assert f"`{name}`" in text, name


# -- Ray actors and ZeroMQ ----------------------------------------------------------------------


def test_ray_scaler_polls_worker_actors_for_metrics(
    ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config("synthetic")
    state: dict[str, Any] = {"end": [], "during": []}
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    hooks = Hooks(lambda summary: state["end"].append((summary, _scrape(url))))
    reset_plugins(Plugins(make_plugin_manager(extra_plugins=[hooks])))
    stop = threading.Event()

    def scrape_while_running() -> None:  # bounded: at most 600 scrapes, 60 s
        for _ in range(600):
            if stop.wait(0.1):
                return
            try:
                state["during"].append(_scrape(url))
            except OSError:
                continue  # not serving yet, or already closed

    scraper = threading.Thread(target=scrape_while_running, daemon=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    started = time.monotonic()
    try:
        scraper.start()
        code = main(
            [
                "run",
                str(path),
                "--scaler",
                "ray",
                "--workers",
                "2",
                "--strategy",
                "split",
                "--max-events",
                "3000",
                "--pace",
                "20",  # 3,000 ticker events span about 45 s: about 2.3 s at 20x
                "--metrics-port",
                str(port),
                "--out",
                str(tmp_path / "out.jsonl"),
            ]
        )
    finally:
        stop.set()
        scraper.join(timeout=15)
        reset_plugins(None)
    err = capsys.readouterr().err
    assert code == 0, err
    assert time.monotonic() - started < 60
    (summary, end), *_ = state["end"]
    _check_final(end, _channels(config, "split", 2))
    events_in = _workers(end, "featurizer_worker_events_in_total")
    assert events_in == {
        str(index): float(metrics["events_in"]) for index, metrics in summary.workers.items()
    }
    assert sum(events_in.values()) == summary.events_in > 0
    totals = []
    for samples in state["during"]:
        _check_consistent(samples, with_bytes=True)
        totals.append(sum(_workers(samples, "featurizer_worker_events_in_total").values()))
    assert totals == sorted(totals), "polled counts only grow"
    assert any(0 < total < summary.events_in for total in totals), (
        "the actors were polled while the run was going",
        totals,
    )
    transports = {
        dict(labels)["transport"] for labels in end["featurizer_transport_queue_depth_batches"]
    }
    assert transports == {"zmq"}
