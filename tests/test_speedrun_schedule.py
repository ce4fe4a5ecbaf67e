"""Schedule, EMA timing and optimiser groups against the recipe and against the seed's own logic: torch's
OneCycleLR built and stepped as the seed does, and the seed's EMA counter loop transcribed."""
import pytest
import torch

from speedrun import ConfigError, TrainConfig
from speedrun.model import Net
from speedrun.train import make_optimizer


def seed_lrs(cfg: TrainConfig, peak: float) -> list[float]:
    """The lr at every step of the seed's loop: OneCycleLR as main.py builds it (pct_start scaled by T/(T-tail),
    div_factor 1e16, final_div_factor 1/(1e16*0.135)), stepped after each optimiser step while the step
    counter is below ramp - 1, then left alone."""
    d = cfg.derived()
    total, tail = d.total_steps, d.steps_per_epoch * cfg.ema_epochs
    pct_start = cfg.warmup_frac * (total / (total - tail))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peak, pct_start=pct_start, div_factor=1e16, final_div_factor=1.0 / (1e16 * cfg.final_lr_ratio),
        total_steps=total - tail, anneal_strategy="linear", cycle_momentum=False)
    lrs = []
    for current_steps in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if current_steps < total - tail - 1:
            sched.step()
    return lrs


def seed_ema_events(epochs: int, steps_per_epoch: int, every: int = 2, ema_epochs: int = 2):
    """main.py's EMA logic, transcribed: (0-based step after which the copy is taken, steps after which it is
    updated). The counter is incremented after each step; from the first step of the last `ema_epochs` epochs
    on, the EMA acts when the counter is a multiple of `every`, and its first action only copies."""
    copy, updates, current_steps = None, [], 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            current_steps += 1
            if epoch >= epochs - ema_epochs and current_steps % every == 0:
                if copy is None:
                    copy = current_steps - 1
                    continue
                updates.append(current_steps - 1)
    return copy, updates


def test_reference_points_at_10_epochs():
    """The recipe's numbers: 970 steps, peak at 193, tail from 775, lr(0) = peak/1e16, EMA copied after the
    778th optimiser step (0-based 777) and updated 96 times, decay 0.986²."""
    d = TrainConfig().derived()
    assert (d.steps_per_epoch, d.total_steps, d.tail_steps) == (97, 970, 194)
    lr = [d.lr_factor(s) for s in range(d.total_steps)]
    assert max(range(970), key=lambda s: lr[s]) == 193, "peak must be at step 193 of 970"
    assert lr[0] == pytest.approx(1e-16, rel=1e-12), "OneCycleLR with div_factor 1e16 starts at peak/1e16"
    assert all(v == pytest.approx(0.135) for v in lr[775:]), "constant 0.135x tail from step 775"
    assert lr[774] > 0.135
    assert d.ema_copy_step == 777 and d.ema_updates == 96
    assert [s for s in range(970) if d.is_ema_copy(s)] == [777]
    assert [s for s in range(970) if d.is_ema_update(s)] == list(range(779, 970, 2))
    assert d.ema_update_decay == pytest.approx(0.986 ** 2) == pytest.approx(0.9722, abs=1e-4)


@pytest.mark.parametrize("epochs", [3, 5, 10, 20, 80])
def test_lr_matches_the_seeds_onecyclelr_every_step(epochs):
    """Both groups, every step (0 included, tail included), to a relative 1e-12."""
    cfg = TrainConfig(epochs=epochs, width=8)
    d = cfg.derived()
    for group in make_optimizer(Net(cfg), cfg).param_groups:
        expected = seed_lrs(cfg, group["peak_lr"])
        ours = [group["peak_lr"] * d.lr_factor(s) for s in range(d.total_steps)]
        assert ours == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("epochs", [3, 4, 5, 10, 20])
@pytest.mark.parametrize("images", [50_000, 4 * 512, 7 * 512])
def test_ema_clock_matches_the_seeds_loop(epochs, images):
    """Even and odd tail starts (97 steps per epoch makes the parity alternate with the epoch count)."""
    d = TrainConfig(epochs=epochs, train_subset=images).derived()
    copy, updates = seed_ema_events(epochs, d.steps_per_epoch)
    assert d.ema_copy_step == copy
    assert [s for s in range(d.total_steps) if d.is_ema_update(s)] == updates
    assert d.ema_updates == len(updates)


@pytest.mark.parametrize("epochs", [1, 2])
def test_short_runs_defined(epochs):
    """The reference breaks for epochs <= 2; ours uses the second half of the run as the EMA tail, with the
    seed's EMA clock inside it."""
    d = TrainConfig(epochs=epochs).derived()
    assert d.tail_steps == d.total_steps // 2
    assert 0 < d.warmup_steps < d.decay_end_step < d.total_steps
    lr = [d.lr_factor(s) for s in range(d.total_steps)]
    assert max(lr) <= 1.0 and min(lr) > 0.0 and d.ema_updates > 0
    assert d.total_steps - d.tail_steps <= d.ema_copy_step < d.total_steps - d.tail_steps + d.ema_every


def test_three_epochs_follow_reference():
    d = TrainConfig(epochs=3).derived()
    assert d.tail_steps == 194 and d.ema_copy_step == 97, "tail starts at step 97; counter 98 is even: copy"


def test_tail_without_an_ema_step_is_a_clear_error():
    with pytest.raises(ConfigError, match="EMA tail of 1 step.*ema_every"):
        TrainConfig(epochs=1, train_subset=512, batch_size=512).derived()


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


def test_training_loop_follows_the_clock():
    """train() copies and updates the EMA where the seed's loop would (tiny synthetic run, 3 × 4 steps)."""
    from speedrun import train
    from tests.conftest import tiny_config

    cfg = tiny_config(epochs=3)
    record = train(cfg)
    copy, updates = seed_ema_events(3, cfg.derived().steps_per_epoch)
    assert (copy, len(updates)) == (5, 3), "tail starts at step 4: counter 6 copies, 8, 10, 12 update"
    assert record["ema_updates"] == len(updates) and record["ema_val_acc"] is not None
