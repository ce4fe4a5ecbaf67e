"""Compiled programs are not recompiled from a process's second run on: every graph Dynamo builds is built while
a program is built (counted in compile_s), never inside a run's steps or evaluate(), where a recompile costs
training time or, at Dynamo's recompile limit, fails the run. CPU, torch.compile with backend aot_eager (Dynamo
and AOTAutograd as on a GPU, without code generation)."""
from __future__ import annotations

import pytest
from torch._dynamo.utils import counters

from speedrun import engine, train
from tests.conftest import tiny_config


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.fixture()
def graphs_per_run(monkeypatch):
    """train(config) -> (record, graphs built in this run outside program building, graphs built while building)."""
    monkeypatch.setenv("SPEEDRUN_COMPILE_BACKEND", "aot_eager")
    engine.clear_programs()
    real_build, in_build = engine._build, []

    def build(*args, **kwargs):
        before = _graphs()
        try:
            return real_build(*args, **kwargs)
        finally:
            in_build.append(_graphs() - before)

    monkeypatch.setattr(engine, "_build", build)

    def run(config):
        in_build.clear()
        before = _graphs()
        record = train(config)
        built = sum(in_build)
        return record, _graphs() - before - built, built

    yield run
    engine.clear_programs()


def test_no_graph_is_compiled_inside_a_run(graphs_per_run):
    """Three compiled runs with the EMA evaluated by the compiled evaluation, the second without flip TTA (a
    study may vary it): the step and both evaluations (live network, EMA copy) compile while programs are built."""
    runs = [graphs_per_run(tiny_config(compile=True, epochs=3, ema_epochs=2, seed=seed, tta=tta))
            for seed, tta in ((0, True), (1, False), (2, True))]
    for i, (record, outside, _) in enumerate(runs):
        assert record["status"] == "ok" and record["ema_updates"] > 0, i
        assert outside == 0, f"run {i + 1} compiled {outside} graph(s) inside its steps or evaluation"
    assert runs[0][2] >= 3, "the counter sees our graphs: the step's two and the evaluations"
    (third, _, built), first = runs[2], runs[0][0]
    assert built == 0 and third["compile_s"] == 0.0, "the third run reuses the first run's program as it is"
    assert first["compile_s"] > 0
