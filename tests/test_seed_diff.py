"""Ours against the seed's own code (hlb-CIFAR10 main.py at 8959293), on CPU in fp32.

The seed file is never committed. These tests read it, in this order, from $HLB_SEED_MAIN, from the git-ignored
.seed/main.py, or from the unmodified copy that CI keeps beside the checkout
(../shared/reference/hlb-CIFAR10-8959293/main.py); where none exists they are skipped, saying how to get it."""
import os

import pytest
import torch

from speedrun import TrainConfig
from speedrun.conformance.seed_load import load_seed
from tests.conftest import ROOT

BESIDE = ROOT.parent / "shared" / "reference" / "hlb-CIFAR10-8959293" / "main.py"


def _seed_main() -> str:
    """$HLB_SEED_MAIN if set, else .seed/main.py if present, else the copy beside the checkout."""
    if os.environ.get("HLB_SEED_MAIN"):
        return os.environ["HLB_SEED_MAIN"]
    local = ROOT / ".seed" / "main.py"
    return str(local if local.is_file() or not BESIDE.is_file() else BESIDE)


SEED_MAIN = _seed_main()
pytestmark = pytest.mark.skipif(
    not os.path.isfile(SEED_MAIN),
    reason=f"the seed's main.py is not at {SEED_MAIN} (never committed): run "
           "`git show 8959293:main.py > .seed/main.py` in a clone of tysam-code/hlb-CIFAR10, or set $HLB_SEED_MAIN")


@pytest.mark.parametrize("epochs", [3, 5, 10, 20])
def test_schedule_and_ema_clock_match_the_seeds_main(epochs):
    """The seed's main() itself (stand-in network, 97 steps per epoch): lr of both groups at every step, and the
    steps after which its EMA copies and updates."""
    from speedrun.conformance.seed_clock import seed_clock
    from speedrun.train import make_optimizer
    from speedrun.model import Net

    clock = seed_clock(SEED_MAIN, epochs=epochs, steps_per_epoch=97)
    cfg = TrainConfig(epochs=epochs, width=8)
    d = cfg.derived(97 * 512)
    assert len(clock.lrs) == d.total_steps
    groups = make_optimizer(Net(cfg), cfg).param_groups
    for i, group in enumerate(groups):
        ours = [group["peak_lr"] * d.lr_factor(s) for s in range(d.total_steps)]
        assert ours == pytest.approx([lr[i] for lr in clock.lrs], rel=1e-12, abs=0), f"group {i}"
    assert d.ema_copy_step == clock.ema_copy_step
    assert tuple(s for s in range(d.total_steps) if d.is_ema_update(s)) == clock.ema_update_steps
    assert d.ema_updates == len(clock.ema_update_steps) == 96


def test_training_matches_the_seed_step_for_step(cifar_dir):
    """Width 8, 640 real images in batches of 128 (3 epochs of 5 steps): same initial weights, whitening and
    batches; states after 1, 10 and 12 steps, the EMA copied and updated at the same steps, the same lrs."""
    from speedrun.conformance.seed_diff import DiffSetup, report_lines, run_diff

    setup = DiffSetup(width=8, epochs=3, train_images=640, batch_size=128, steps=(1, 10, 12), data_dir=cifar_dir)
    result = run_diff(setup, SEED_MAIN)
    print("\n".join(report_lines(result)))
    assert result["checks"] == dict(lr_every_step=True, ema_timing=True, first_step_rounding=True,
                                    ema_arithmetic=True)
    assert result["ema_arithmetic"]["entries"] > 0 and not result["ema_arithmetic"]["foreach"], "CPU: entry by entry"
    assert (result["ema"]["seed_copy_step"], result["ema"]["seed_updates"]) == (5, 3), \
        "tail from step 5: counter 6 copies, 8, 10, 12 update (after 0-based steps 7, 9, 11)"
    assert isinstance(result["steps"][12]["ema"], dict), "both sides hold an EMA at step 12"


def test_seed_whitening_code_equals_our_chunk_average(cifar_dir):
    """The seed's init_whitening_conv on 1,200 real images in a fixed order, chunks of 500 (the last one short),
    against ours with the same order: bit for bit."""
    from speedrun.data import get_dataset
    from speedrun.whiten import chunk_average_filters

    data = get_dataset("cifar10", cifar_dir, 1200, 1000, torch.device("cpu"), torch.float32)
    x = data.train_x
    ns = load_seed(SEED_MAIN, data={"train": {"images": x, "targets": data.train_y}, "eval": {}}, width=8)
    layer = torch.nn.Conv2d(3, 12, kernel_size=2, padding=0, bias=False)
    with torch.no_grad():
        ns["init_whitening_conv"](layer, ns["data"]["train"]["images"], num_examples=1200, pad_amount=3,
                                  whiten_splits=500)
    ours = chunk_average_filters(x, eps=1e-2, chunk=500)
    torch.testing.assert_close(ours, layer.weight.detach(), rtol=0, atol=0)
    assert not layer.weight.requires_grad


def test_seed_crops_are_our_quirk():
    """The seed's batch_crop: offsets 0..5 in both directions from 38×38 padded images (translations -3..+2),
    and each crop equals our augment_batch at that offset."""
    from speedrun.train import augment_batch

    ns = load_seed(SEED_MAIN, data={"train": {"images": torch.zeros(1, 3, 32, 32)}, "eval": {}}, width=8)
    torch.manual_seed(0)
    n = 400
    padded = torch.arange(38 * 38, dtype=torch.float32).view(1, 1, 38, 38).expand(n, 3, 38, 38).contiguous()
    crops = ns["batch_crop"](padded, 32)
    dy = (crops[:, 0, 0, 0] // 38).long()
    dx = (crops[:, 0, 0, 0] % 38).long()
    assert set(dy.tolist()) == set(range(6)) and set(dx.tolist()) == set(range(6))
    ours = augment_batch(padded, torch.arange(n), dy, dx, torch.zeros(n, dtype=torch.bool))
    torch.testing.assert_close(ours, crops, rtol=0, atol=0)


def test_the_comparison_sees_our_former_ema(cifar_dir, monkeypatch):
    """The harness is not blind: with our former EMA (copied 2 steps early, updated by one lerp) it reports the
    timing apart and the EMA values apart, while the live networks still agree."""
    from speedrun.config import Derived
    from speedrun.ema import EMA
    from speedrun.conformance.seed_diff import DiffSetup, run_diff

    monkeypatch.setattr(Derived, "is_ema_copy", lambda self, step: step == self.ema_copy_step - 2)
    monkeypatch.setattr(Derived, "is_ema_update",
                        lambda self, step: step > self.ema_copy_step - 2 and (step + 1) % self.ema_every == 0)

    def lerp_update(self, decay):
        torch._foreach_lerp_([e for e, _ in self._pairs], [l for _, l in self._pairs], 1.0 - decay)
        self.updates += 1

    monkeypatch.setattr(EMA, "update", lerp_update)
    setup = DiffSetup(width=8, epochs=3, train_images=640, batch_size=128, steps=(1, 12), data_dir=cifar_dir)
    result = run_diff(setup, SEED_MAIN)
    assert not result["checks"]["ema_timing"] and result["checks"]["first_step_rounding"]
    assert not result["checks"]["ema_arithmetic"] and result["ema_arithmetic"]["differing"], "a lerp rounds apart"
    assert result["ema"]["ours_updates"] == result["ema"]["seed_updates"] + 1
    assert result["steps"][12]["ema"]["params"]["max_rel"] > 1e-3
    assert result["steps"][12]["net"]["params"]["max_abs"] == 0
