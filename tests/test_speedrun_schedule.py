"""Schedule, EMA timing and optimiser groups against the recipe and against torch's own OneCycleLR."""
import pytest
import torch

from speedrun import TrainConfig
from speedrun.model import Net
from speedrun.train import make_optimizer


def test_reference_points_at_10_epochs():
    d = TrainConfig().derived()
    assert (d.steps_per_epoch, d.total_steps, d.tail_steps) == (97, 970, 194)
    lr = [d.lr_factor(s) for s in range(d.total_steps)]
    assert max(range(970), key=lambda s: lr[s]) == 193, "peak must be at step 193 of 970"
    assert lr[0] == 0.0
    assert all(v == pytest.approx(0.135) for v in lr[775:]), "constant 0.135x tail from step 775"
    assert lr[774] > 0.135
    assert d.ema_start_step == 776 and d.ema_updates == 97
    assert d.ema_update_decay == pytest.approx(0.986 ** 2) == pytest.approx(0.9722, abs=1e-4)


@pytest.mark.parametrize("epochs", [3, 10, 80])
def test_matches_onecyclelr(epochs):
    """The reference builds its schedule with OneCycleLR; ours must agree step by step, then hold the tail."""
    cfg = TrainConfig(epochs=epochs)
    d = cfg.derived()
    ramp = d.total_steps - d.tail_steps
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1.0, total_steps=ramp, pct_start=cfg.warmup_frac * d.total_steps / ramp,
        anneal_strategy="linear", div_factor=1e16, final_div_factor=1 / (1e16 * cfg.final_lr_ratio),
        cycle_momentum=False)
    for step in range(ramp):
        assert d.lr_factor(step) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-9), f"step {step}"
        opt.step()
        sched.step()
    for step in range(ramp, d.total_steps):
        assert d.lr_factor(step) == pytest.approx(cfg.final_lr_ratio)


@pytest.mark.parametrize("epochs", [1, 2])
def test_short_runs_defined(epochs):
    """The reference breaks for epochs <= 2; ours uses the second half of the run as the EMA tail."""
    d = TrainConfig(epochs=epochs).derived()
    assert d.tail_steps == d.total_steps // 2
    assert 0 < d.warmup_steps < d.decay_end_step < d.total_steps
    lr = [d.lr_factor(s) for s in range(d.total_steps)]
    assert max(lr) <= 1.0 and min(lr) >= 0.0 and d.ema_updates > 0


def test_three_epochs_follow_reference():
    d = TrainConfig(epochs=3).derived()
    assert d.tail_steps == 194 and d.ema_start_step == 97


def test_optimizer_groups():
    cfg = TrainConfig(width=8)
    net = Net(cfg)
    opt = make_optimizer(net, cfg)
    weights, biases = opt.param_groups
    names = {id(p): n for n, p in net.named_parameters()}
    assert all(names[id(p)].endswith("bias") for p in biases["params"])
    assert not any(names[id(p)].endswith("bias") for p in weights["params"])
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(weights["params"]) + len(biases["params"]) == len(trainable)
    assert weights["peak_lr"] == pytest.approx(0.0030322, rel=1e-4)
    assert biases["peak_lr"] == pytest.approx(0.097031, rel=1e-4)
    assert weights["weight_decay"] == pytest.approx(0.208896, rel=1e-6)
    assert biases["weight_decay"] == pytest.approx(0.006528, rel=1e-6)
    assert weights["momentum"] == 0.85 and weights["nesterov"]
