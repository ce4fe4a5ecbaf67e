"""The eager path's first-step costs (cuDNN autotuning, lazy kernel loading) are paid before the timer, on a
throwaway copy of the network, and recorded apart as `warmup_s`; the run itself is bit for bit the same."""
from __future__ import annotations

import importlib

import torch

from tests.conftest import tiny_config

train_module = importlib.import_module("speedrun.train")  # `speedrun.train` is the function
RESULTS = ("ema_val_acc", "val_acc", "val_loss", "train_loss", "train_acc", "steps", "ema_updates")


def _counted_steps(monkeypatch) -> list:
    calls = []
    real = train_module.train_step

    def counted(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", counted)
    return calls


def test_forced_warm_up_on_cpu_changes_nothing_but_warmup_s(monkeypatch):
    """Same seed, with and without the warm-up: identical results, history and RNG state afterwards; the
    warm-up's one step ran on another network object, and its time is in warmup_s, not in train_time_s."""
    cfg = tiny_config(epochs=3, ema_epochs=2)
    calls = _counted_steps(monkeypatch)
    rng = torch.get_rng_state()
    plain = train_module.train(cfg, warm_up=False)
    plain_nets = {id(m) for m in calls}
    calls.clear()
    warmed = train_module.train(cfg, warm_up=True)
    assert torch.equal(torch.get_rng_state(), rng), "the caller's RNG state is untouched"
    assert len(calls) == plain["steps"] + 1, "exactly one extra step: the warm-up"
    assert calls[0] is not calls[1], "the warm-up steps a throwaway copy, never the run's network"
    assert plain["warmup_s"] == 0.0 and warmed["warmup_s"] > 0
    assert plain["ema_val_acc"] is not None and plain["ema_updates"] > 0, "the EMA must be part of the check"
    for key in RESULTS:
        assert warmed[key] == plain[key], key
    strip = [{k: v for k, v in row.items() if k != "train_time_s"} for row in plain["history"]]
    assert [{k: v for k, v in row.items() if k != "train_time_s"} for row in warmed["history"]] == strip
    assert len(plain_nets) == 1


def test_warm_up_is_for_gpus_only_by_default(monkeypatch):
    """On the CPU the first step costs about what the others do: no warm-up unless forced."""
    calls = _counted_steps(monkeypatch)
    record = train_module.train(tiny_config(epochs=1))
    assert record["warmup_s"] == 0.0 and len(calls) == record["steps"]
    assert train_module.needs_warm_up(torch.device("cuda:0")) and not train_module.needs_warm_up(torch.device("cpu"))


def test_failed_record_has_warmup_s_as_null():
    from speedrun import failed_record

    assert failed_record(tiny_config(), "boom")["warmup_s"] is None
