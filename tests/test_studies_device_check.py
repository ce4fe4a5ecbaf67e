"""--devices counts GPUs as this process sees them (within CUDA_VISIBLE_DEVICES, as cuda:<i> does): an index past
the visible GPUs is refused before anything starts, in one line that says so."""
from __future__ import annotations

import subprocess

import pytest

from studies.cli import main
from studies.devices import DeviceError, Slot, plan_slots
from tests.test_studies_run import write_study


def test_slurm_style_physical_indices_are_refused(monkeypatch):
    """Slurm gives a job GPUs 2 and 3 as CUDA_VISIBLE_DEVICES=2,3: they are cuda:0 and cuda:1 to the job."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(DeviceError, match=r"--devices 2,3: .*2 GPU\(s\).*CUDA_VISIBLE_DEVICES=2,3.*--devices 0,1"):
        plan_slots({"auto"}, None, [2, 3])
    with pytest.raises(DeviceError, match="--devices 0,2"):
        plan_slots({"auto"}, None, [0, 2])
    assert plan_slots({"auto"}, None, [1, 0]) == [Slot(0, "cuda:1", None), Slot(1, "cuda:0", None)]


def test_no_visible_gpu_refuses_any_index(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceError, match="no GPU is visible"):
        plan_slots({"cuda"}, None, [0])


def test_gpus_counted_by_nvidia_smi(monkeypatch):
    """Without CUDA_VISIBLE_DEVICES the driver's list counts (nvidia-smi, so the scheduler never starts CUDA)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\n"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, listing, ""))
    with pytest.raises(DeviceError, match="--devices 0,1: .*1 GPU"):
        plan_slots({"auto"}, None, [0, 1])
    assert plan_slots({"auto"}, None, [0]) == [Slot(0, "cuda:0", None)]


def test_cli_refuses_in_one_line_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    path = write_study(tmp_path, "slurm", {"seed": [0]}, {"device": "auto"})
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--devices", "2,3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA_VISIBLE_DEVICES" in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "r").exists(), "nothing may start after an option error"
