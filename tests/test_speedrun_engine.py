"""The fast step (speedrun.engine): the same recipe as the eager step, built once per process and reused.

Compiled runs here use torch.compile's aot_eager backend (Dynamo and AOTAutograd as on a GPU, without inductor's
minutes of C++ code generation on a CPU); results/compile-check/ holds real inductor runs against eager ones."""
import dataclasses
import math
import warnings

import pytest
import torch

from speedrun import TrainConfig, train
from speedrun import engine
from speedrun.engine import PROGRAM_FIELDS, RUN_FIELDS, sgd_step
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def runs():
    """An eager run, then the same run compiled twice in this process (the second reuses the program), then
    with another seed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPEEDRUN_COMPILE_BACKEND", "aot_eager")
        engine.clear_programs()
        eager = train(tiny_config())
        first = train(tiny_config(compile=True))
        again = train(tiny_config(compile=True))
        other = train(tiny_config(compile=True, seed=1))
        held = len(engine._PROGRAMS)
        engine.clear_programs()
    return dict(eager=eager, first=first, again=again, other=other, held=held)


def test_compiled_run_trains_the_eager_recipe(runs):
    """Same init, batches, schedule and EMA: per-epoch losses agree to float rounding (the optimiser's tensor lr
    rounds lr·g once more than torch.optim.SGD's float lr; nothing else differs)."""
    eager, first = runs["eager"], runs["first"]
    for a, b in zip(eager["history"], first["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5), a["epoch"]
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4), a["epoch"]
    assert first["ema_updates"] == eager["ema_updates"] and first["steps"] == eager["steps"]
    assert first["config"]["compile"] and first["run_id"] == eager["run_id"], "compile is execution-only"


def test_program_is_built_once_and_reused_in_place(runs):
    first, again, other = runs["first"], runs["again"], runs["other"]
    assert first["compile_s"] > 0 and again["compile_s"] == 0.0 and other["compile_s"] == 0.0
    assert runs["held"] == 1, "one program for one (width, precision, batch shape)"
    assert again["history"] == [dict(r, train_time_s=a["train_time_s"]) for r, a in
                                zip(first["history"], again["history"])], "re-initialised in place: same run"
    assert other["history"][0]["train_loss"] != first["history"][0]["train_loss"], "the seed still matters"
    assert runs["eager"]["compile_s"] == 0.0
    assert 0 < first["train_time_s"] < first["wall_time_s"] - first["compile_s"], "compilation is not training"


def test_every_config_field_is_placed():
    """A program is keyed by the fields it is built from; every other field belongs to the run. A new
    TrainConfig field must be put in one of the two lists."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(PROGRAM_FIELDS) | set(RUN_FIELDS) == fields
    assert not set(PROGRAM_FIELDS) & set(RUN_FIELDS)


def test_sgd_step_is_torch_sgd():
    """Our foreach Nesterov SGD with a tensor lr against torch.optim.SGD (one tensor at a time, float lr) over
    five steps with changing lrs: equal to float rounding in fp32."""
    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen)]
    ref = [p.clone().requires_grad_(True) for p in ours]
    opt = torch.optim.SGD(ref, lr=0.0, momentum=0.85, nesterov=True, weight_decay=0.2, foreach=False)
    bufs = [torch.zeros_like(p) for p in ours]
    for lr in (1e-16, 0.05, 0.1, 0.03, 0.0135):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        opt.param_groups[0]["lr"] = lr
        opt.step()
        sgd_step(ours, grads, bufs, torch.tensor(lr), 0.2, 0.85)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)


def test_recompile_limit_is_loud_and_recovers(monkeypatch, capsys):
    """With room for one program's graphs per function (the evaluation needs two: live and EMA network), a
    second width hits Dynamo's limit: a RuntimeWarning and a line on stderr say so, every graph is dropped, the
    program is compiled again and the run trains compiled."""
    monkeypatch.setenv("SPEEDRUN_COMPILE_BACKEND", "eager")
    monkeypatch.setattr(engine, "_RECOMPILE_LIMIT", 2)
    engine.clear_programs()
    try:
        train(tiny_config(compile=True, epochs=1, width=4))
        with pytest.warns(RuntimeWarning, match="recompile limit was hit while compiling width 8"):
            record = train(tiny_config(compile=True, epochs=1, width=8))
        assert record["status"] == "ok" and record["compile_s"] > 0
        assert len(engine._PROGRAMS) == 1, "the width-4 program went with the reset"
        assert "WARNING: speedrun: Dynamo's recompile limit was hit" in capsys.readouterr().err
    finally:
        engine.clear_programs()


def test_compiled_eval_pads_to_one_shape(monkeypatch):
    """A test set that is not a multiple of the eval batch: the compiled evaluation sees full batches only and
    scores exactly as the eager one on the same network."""
    from speedrun.data import get_dataset
    from speedrun.runtime import PRECISIONS
    from speedrun.train import evaluate

    monkeypatch.setenv("SPEEDRUN_COMPILE_BACKEND", "eager")
    cfg = tiny_config(compile=True, test_subset=250, eval_batch_size=100)
    device, precision = torch.device("cpu"), PRECISIONS["fp32"]
    data = get_dataset("synthetic", None, 512, 250, device, precision.storage)
    engine.clear_programs()
    try:
        program, _ = engine.get_program(cfg, device, precision, 512)
        shapes = []
        real = program._eval

        def spy(net, x, tta):
            shapes.append(tuple(x.shape))
            return real(net, x, tta)

        program._eval = spy
        compiled = evaluate(program.net, data, cfg, precision.autocast_context(device), program.evaluate_logits)
        eager = evaluate(program.net, data, cfg, precision.autocast_context(device))
    finally:
        engine.clear_programs()
    assert set(shapes) == {(100, 3, 32, 32)} and len(shapes) == 3
    assert compiled == pytest.approx(eager, rel=1e-6)


def test_cuda_graph_needs_cuda():
    with pytest.raises(RuntimeError, match="cuda_graph needs a CUDA device, not cpu"):
        train(tiny_config(cuda_graph=True))


def test_ema_foreach_matches_entry_by_entry_in_fp32():
    """The foreach EMA (CUDA's) and the seed's entry-by-entry loop give the same fp32 numbers; in fp16 only CUDA
    keeps them equal, which seed_diff's ema_arithmetic check measures there."""
    from speedrun.ema import EMA
    from speedrun.model import Net

    torch.manual_seed(0)
    live = Net(TrainConfig(width=4))
    a, b = EMA(live, foreach=True), EMA(live, foreach=False)
    with torch.no_grad():
        for p in live.parameters():
            p.add_(torch.randn_like(p))
    for _ in range(3):
        a.update(0.9722)
        b.update(0.9722)
    for (name, x), y in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(x, y), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replays_the_compiled_step():
    """On a GPU: the graphed step (eager kernels) and the compiled step train the same run to float rounding."""
    engine.clear_programs()
    try:
        cfg = tiny_config(device="cuda", width=16, epochs=2, train_subset=2048, test_subset=1000, batch_size=512)
        eager = train(cfg)
        graphed = train(cfg.replace(cuda_graph=True))
        both = train(cfg.replace(cuda_graph=True, compile=True))
    finally:
        engine.clear_programs()
    for record in (graphed, both):
        assert record["status"] == "ok" and record["compile_s"] > 0
        assert record["train_loss"] == pytest.approx(eager["train_loss"], rel=2e-2)


def test_fp16_program_steps(monkeypatch):
    """The GPU's precision through the program, on the CPU (train() refuses fp16 there; the kernels exist): fp16
    weights, data and logits, fp32 lr and sums, a few steps that learn something and stay fp16."""
    from speedrun.augment import draw_augmentation, epoch_plan
    from speedrun.data import get_dataset
    from speedrun.runtime import PRECISIONS
    from speedrun.train import init_state

    monkeypatch.setenv("SPEEDRUN_COMPILE_BACKEND", "eager")
    cfg, precision, device = tiny_config(compile=True), PRECISIONS["fp16"], torch.device("cpu")
    data = get_dataset("synthetic", None, 512, 256, device, precision.storage)
    engine.clear_programs()
    try:
        program, _ = engine.get_program(cfg, device, precision, 512)
        torch.manual_seed(0)
        program.start_run(init_state(cfg, data, precision), data.padded(cfg.pad), data.train_y)
        start = program.net.head.weight.detach().clone()
        plan = epoch_plan(*draw_augmentation(512, cfg, torch.Generator().manual_seed(0)))
        for i in range(4):
            program.step(plan[:, i * 128:(i + 1) * 128], 0.5)
        loss, correct = program.take_sums()
    finally:
        engine.clear_programs()
    assert all(p.dtype == torch.float16 for p in program.net.parameters())
    assert math.isfinite(loss) and 0 < loss / 512 < 5 and 0 <= correct <= 512
    assert not torch.equal(program.net.head.weight, start), "the steps moved the weights"
