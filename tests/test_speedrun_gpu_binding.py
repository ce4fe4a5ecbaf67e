"""Each worker trains on its own GPU: the process is bound to its device before anything touches CUDA (CPU mocks
of torch.cuda; the real binding is checked by the GPU proof)."""
from __future__ import annotations

import importlib

import pytest
import torch

from speedrun.runtime import prepare_device
from tests.conftest import tiny_config

train_module = importlib.import_module("speedrun.train")  # `speedrun.train` is the function


def test_prepare_device_binds_the_process_to_its_gpu(monkeypatch):
    """torch.cuda.graph and torch.cuda.synchronize() act on the *current* device: unbound, every worker on
    cuda:1..k would open a context on GPU 0 and sync the wrong card."""
    bound = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: bound.append(torch.device(d)))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    prepare_device(torch.device("cuda:1"))
    assert bound == [torch.device("cuda:1")]
    assert torch.backends.cudnn.benchmark
    prepare_device(torch.device("cpu"))
    assert bound == [torch.device("cuda:1")], "a CPU run binds nothing"


class Bound(Exception):
    pass


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "cuda-graph"])
def test_train_binds_before_it_touches_the_gpu(monkeypatch, cuda_graph):
    """train() on cuda:1 binds first: before the data set goes to the device and before the (graphed) step is
    built. set_device raises here, so reaching either of those first fails the test."""
    def set_device(device):
        raise Bound(str(torch.device(device)))

    def touched(*args, **kwargs):
        raise AssertionError("CUDA was used before the process was bound to its GPU")

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(train_module, "resolve_device", lambda name: torch.device("cuda:1"))
    monkeypatch.setattr(train_module, "get_dataset", touched)
    monkeypatch.setattr(train_module, "get_program", touched)
    with pytest.raises(Bound, match="cuda:1"):
        train_module.train(tiny_config(cuda_graph=cuda_graph))
