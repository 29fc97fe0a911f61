"""Strategies: deterministic plans, independent sub-DAGs, cuts, worker-count errors."""

from __future__ import annotations

import pytest

from featurizer import Feature, get_plugins
from featurizer.cli import main
from featurizer.scaling import PlanError, build_plan, plan_by_source, plan_split
from tests.scaling.scaling_support import Pairs, RunningMax, Sum2, mid, ticker

A, B, C = ticker("A"), ticker("B"), ticker("C")
MID_A, MID_B, MID_C = mid(A), mid(B), mid(C)
MAX_A = Feature.create(RunningMax, {}, {"mid": MID_A})
PAIRS_A = Feature.create(Pairs, {}, {"mid": MID_A})
SUM_BC = Feature.create(Sum2, {}, {"a": MID_B, "b": MID_C})
SUM_AA = Feature.create(Sum2, {"scale": 2.0}, {"a": MID_A, "b": MID_A})


def test_by_source_spreads_independent_sub_dags_without_edges() -> None:
    plan = plan_by_source([MID_A, MAX_A, SUM_BC], 2)
    assert [g.sources for g in plan.groups] == [(A,), (B, C)]
    assert plan.edges == ()
    owned = sorted((w.index, tuple(f.name for f in w.outputs)) for w in plan.workers)
    assert owned in (
        [(0, (SUM_BC.name,)), (1, (MID_A.name, MAX_A.name))],
        [(0, (MID_A.name, MAX_A.name)), (1, (SUM_BC.name,))],
    )
    for worker in plan.workers:
        graph = plan.worker_graph(worker.index)
        assert set(graph.get_ins()) == set(worker.sources)
        assert set(graph.nodes()) - set(worker.sources) == set(worker.computes)


def test_plans_are_deterministic_and_fingerprinted() -> None:
    first = plan_split([MID_A, MAX_A, PAIRS_A, SUM_BC], 3)
    again = plan_split([MID_A, MAX_A, PAIRS_A, SUM_BC], 3)
    assert first == again and first.describe() == again.describe()
    assert first.fingerprint == again.fingerprint
    assert plan_split([MID_A, MAX_A, PAIRS_A, SUM_BC], 2).fingerprint != first.fingerprint


def test_split_computes_shared_upstream_once_and_ships_it() -> None:
    plan = plan_split([MAX_A, PAIRS_A, SUM_AA], 3)
    owners = {f: w.index for w in plan.workers for f in w.computes}
    assert sum(MID_A in w.computes for w in plan.workers) == 1
    shipped = {(e.feature, e.source) for e in plan.edges}
    assert (MID_A, owners[MID_A]) in shipped
    for edge in plan.edges:
        assert edge.source < edge.target
        assert edge.feature in plan.workers[edge.target].inputs
        assert edge.feature in plan.workers[edge.source].ships
    for worker in plan.workers:
        graph = plan.worker_graph(worker.index)
        assert set(graph.get_ins()) == set(worker.inputs) | {
            s for s in worker.sources if s in graph.nodes()
        }


def test_split_never_gives_a_worker_two_inputs_from_one_source() -> None:
    # SUM_AA needs MID_A twice over; MAX_A and PAIRS_A share MID_A too
    plan = plan_split([MID_A, SUM_AA, MAX_A, PAIRS_A], 3)
    for worker in plan.workers:
        inputs = list(worker.inputs) + list(worker.sources)
        for i, x in enumerate(inputs):
            for y in inputs[i + 1 :]:
                assert not set(x.data_sources()) & set(y.data_sources()), (worker, x, y)


def test_worker_count_errors_name_the_limit() -> None:
    with pytest.raises(PlanError, match=r"3 workers: this config has 2 independent sub-graph"):
        plan_by_source([MID_A, SUM_BC], 3)
    with pytest.raises(PlanError, match="exactly one worker"):
        build_plan([MID_A], "single", 2, get_plugins())
    with pytest.raises(PlanError, match=r"would have nothing to do.*--workers 1"):
        plan_split([MID_A], 2)
    with pytest.raises(PlanError, match=r"unknown scaling strategy 'diagonal'.*by_source"):
        build_plan([MID_A], "diagonal", 1, get_plugins())
    with pytest.raises(PlanError, match="integer >= 1"):
        plan_by_source([MID_A], 0)


def test_plan_command_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "examples/quickstart.yaml", "--workers", "2", "--strategy", "split"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: strategy 'split', 2 worker(s)")
    assert "worker 1:" in out and "receives:" in out and "ships:" in out
    assert main(["plan", "examples/quickstart.yaml", "--workers", "99"]) == 1
    assert "cannot use 99 workers" in capsys.readouterr().err
    assert main(["plan", "examples/quickstart.yaml", "--workers", "2", "--json"]) == 0
    assert '"strategy": "by_source"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--watermark-delay", "0.5", "--late-out", "l.jsonl"], "--watermark-delay, --late-out"),
        (["--idle-timeout", "1"], "--idle-timeout only apply"),
        (["--scaler", "local", "--address", "127.0.0.1:6379"], "--address only apply to --scaler"),
    ],
)
def test_scale_out_flags_that_would_be_ignored_are_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from featurizer.cli import main

    code = main(["run", "examples/quickstart.yaml", "--max-events", "10", *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert "Traceback" not in err
