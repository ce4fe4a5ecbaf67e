"""Slurm, for real: a tiny study through both paths on a one-node cluster (scripts/slurm-local.sh start), each
with one job cancelled (scancel) while it trains a run. The study must still end with every run ok exactly once,
nothing lost, [after] fired once, and no job left behind. Also, without a cluster: the dry run's job script, the
one-line errors for a missing extra, and the worker's GPU pinning."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studies.cli import main
from studies.slurmworker import gpu_for

ROOT = Path(__file__).resolve().parents[1]
SBATCH = ROOT / "scripts" / "studies-array.sbatch"
# Four runs of 10-20 s each (the cluster's 2 CPUs are shared with other work): long enough to cancel a job
# mid-run, short enough for the whole test to take a few minutes.
STUDY = """
name = "{name}"
description = "a tiny study on a real Slurm cluster"
[grid]
seed = [0, 1, 2, 3]
[fixed]
width = 4
epochs = 4
device = "cpu"
data = "{data}"
train_subset = 2048
test_subset = 256
batch_size = 128
threads = 1
[policy]
retries = 1
[after]
command = ["python", "-c", "import sys; open(sys.argv[1] + '/fired.txt', 'a').write('fired\\\\n')"]
"""


def slurm_answers() -> str | None:
    """Why Slurm cannot be used here (None: it can)."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no sbatch/sinfo on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo failed: {e}"
    if proc.returncode != 0 or not re.search(r"idle|mixed|alloc", proc.stdout):
        return f"sinfo shows no usable node ({(proc.stdout + proc.stderr).strip()[:200]})"
    return None


@pytest.fixture
def slurm():
    why = slurm_answers()
    if why:
        message = f"no Slurm cluster: {why}; start one with `sudo scripts/slurm-local.sh start`"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run starts it: under CI its absence is a failure)")
        pytest.skip(message)


def write(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    data_dir = os.environ.get("CIFAR10_DIR")
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, data="cifar10" if data_dir else "synthetic"))
    return path, (["--data-dir", data_dir] if data_dir else [])


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTHON": sys.executable}


def job_of(pid: int) -> str | None:
    """The id of the job on this node whose processes include `pid` (scontrol listpids: PID JOBID STEPID ...)."""
    out = subprocess.run(["scontrol", "listpids"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        fields = line.split()
        if fields[:1] == [str(pid)]:
            return fields[1]
    return None


def ours(name: str) -> dict[str, str]:
    """Jobs named `name`: their unique id (what listpids shows) -> the id scancel takes (8_1 for array task 1)."""
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%A %i"], capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def queued(name: str) -> list[str]:
    return subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True).stdout.split()


def cancel_one_mid_run(study_dir: Path, job_name: str, timeout: float = 300) -> tuple[str, str]:
    """Wait until a run is training in a job of `job_name`, then scancel that job. Returns (job, run_id)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for lock in (study_dir / "locks").glob("*.lock") if (study_dir / "locks").is_dir() else []:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                continue
            log = study_dir / "logs" / f"{lock.stem}.log"
            if not re.search(r"^\s+1 \|", log.read_text() if log.exists() else "", re.M):
                continue  # not training yet: wait for its first epoch row, to cancel it mid-run
            job = ours(job_name).get(job_of(holder["pid"]) or "")
            if job:
                subprocess.run(["scancel", job], check=True)
                return job, lock.stem
        time.sleep(0.5)
    raise AssertionError(f"no run of {study_dir} started training in a {job_name} job within {timeout:.0f}s")


def check_exactly_once(study_dir: Path, killed_run: str) -> dict:
    records = {p.stem: json.loads(p.read_text()) for p in (study_dir / "runs").glob("*.json")}
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values()), records
    logs = {p.stem: p.read_text() for p in (study_dir / "logs").glob("*.log")}
    for run_id, text in logs.items():
        assert text.count("# ok") == 1, f"run {run_id} completed {text.count('# ok')} times:\n{text}"
    print(f"--- log of the cancelled run {killed_run}\n{logs[killed_run]}")
    assert logs[killed_run].count("# attempt ") >= 2, "the cancelled run must have been started again elsewhere"
    assert (study_dir / "fired.txt").read_text() == "fired\n", "[after] must fire exactly once"
    assert not list((study_dir / "locks").glob("*.lock")), "no lock may be left"
    return records


def wait_gone(name: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while queued(name) and time.monotonic() < deadline:
        time.sleep(1)
    return queued(name)


@pytest.mark.slurm
def test_sbatch_array_of_schedulers_survives_a_cancelled_task(tmp_path, slurm):
    path, data = write(tmp_path, "slurm-array")
    results = tmp_path / "results"
    name = f"studies-test-{os.getpid()}"
    submit = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={name}", "--array=0-2", "--gres=none", "--cpus-per-task=1",
         "--mem=1G", "--time=00:20:00", f"--output={tmp_path}/task-%a.out",
         f"--export=ALL,STUDY={path},RESULTS={results},STUDIES_ARGS={' '.join(data)}", str(SBATCH)],
        capture_output=True, text=True, cwd=ROOT, env=env())
    assert submit.returncode == 0, submit.stderr
    array = submit.stdout.strip().split(";")[0]
    try:
        job, run_id = cancel_one_mid_run(results / "slurm-array", name)
        left = wait_gone(name, timeout=600)
        assert not left, f"array tasks still queued after 10 min: {left}"
    finally:
        subprocess.run(["scancel", array])
    outputs = {p.name: p.read_text() for p in sorted(tmp_path.glob("task-*.out"))}
    shown = "\n".join(f"--- {k}\n{v}" for k, v in outputs.items())
    print(f"array job {array}; cancelled {job} while it trained run {run_id}\n{shown}")
    records = check_exactly_once(results / "slurm-array", run_id)
    summaries = [line for text in outputs.values() for line in text.splitlines() if line.startswith("slurm-array:")]
    assert sum(int(re.search(r": (\d+) ok", s).group(1)) for s in summaries if " ok" in s) == len(records), shown
    assert "interrupted" in shown, "the cancelled task must have stopped in order (SIGTERM), saying so"


@pytest.mark.slurm
def test_backend_slurm_through_dask_jobqueue_survives_a_cancelled_job(tmp_path, slurm):
    pytest.importorskip("dask_jobqueue")
    path, data = write(tmp_path, "slurm-dask")
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "studies", "run", str(path), "--results", str(results),
                             "--backend", "slurm", "--max-jobs", "2", "--memory", "2GB", "--time", "00:20:00",
                             "--no-progress", *data], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # cwd: the jobs' slurm-<id>.out files land in the submitting folder, as with any sbatch; keep them out of the checkout
    try:
        job, run_id = cancel_one_mid_run(results / "slurm-dask", "studies-slurm-dask")
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"cancelled job {job} while it trained run {run_id}\n--- stdout\n{out}\n--- stderr (tail)\n{err[-3000:]}")
    assert proc.returncode == 0, out + err
    check_exactly_once(results / "slurm-dask", run_id)
    assert re.search(r"slurm-dask: 4 ok, 0 failed", out), out
    assert not wait_gone("studies-slurm-dask"), "every job must end when the study ends"


def test_dry_run_prints_the_job_script(tmp_path, capsys):
    pytest.importorskip("dask_jobqueue")
    path, _ = write(tmp_path, "script")
    path.write_text(path.read_text() + '[slurm]\npartition = "gpu"\ntime = "02:00:00"\n')
    code = main(["run", str(path), "--results", str(tmp_path / "r"), "--dry-run", "--no-bench", "--backend", "slurm",
                 "--gpus-per-job", "4", "--account", "lab", "--sbatch=--qos=normal", "--sbatch=--constraint=a100"])
    out = capsys.readouterr().out
    assert code == 0, out
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:4",
                 "#SBATCH --qos=normal", "#SBATCH --constraint=a100", "--nworkers 4", "--nthreads 1",
                 "--preload studies.slurmworker", "up to 4 job(s) of 4 worker(s)"):
        assert line in out, f"{line!r} missing from:\n{out}"
    assert not (tmp_path / "r").exists()


def test_bad_slurm_settings_are_one_line_each(tmp_path, capsys):
    pytest.importorskip("dask_jobqueue")
    path, _ = write(tmp_path, "bad")
    path.write_text(path.read_text() + '[slurm]\ngpus = 4\ntime = "two hours"\n')
    assert main(["run", str(path), "--dry-run", "--backend", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "slurm.gpus: unknown key; valid: partition, gpus_per_job" in err
    assert "slurm.time: is 'two hours'; expected a time limit per job" in err
    path2, _ = write(tmp_path, "good")
    assert main(["run", str(path2), "--dry-run", "--backend", "slurm", "--max-jobs", "0"]) == 2
    assert "error: --max-jobs: is 0; expected an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("backend, module, extra", [("dask", "distributed", "dask"),
                                                    ("slurm", "dask_jobqueue", "slurm")])
def test_a_backend_without_its_extra_names_the_extra(tmp_path, capsys, monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    path, _ = write(tmp_path, "noextra")
    args = ["--address", "tcp://127.0.0.1:9"] if backend == "dask" else []
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--backend", backend, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install 'hlb-scaling[{extra}]'" in err[0], err


def test_plain_install_needs_no_dask():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith(("dask", "distributed"))]
    extras = project["optional-dependencies"]
    assert any(d.startswith("dask[distributed]") for d in extras["dask"])
    assert {d.split(">")[0] for d in extras["slurm"]} >= {"dask[distributed]", "dask-jobqueue"}


def test_each_worker_of_a_job_gets_its_own_gpu():
    assert [gpu_for(f"studies-x-3-{i}", "4,5,6,7") for i in range(4)] == ["4", "5", "6", "7"]
    assert gpu_for("studies-x-3", "0") is None, "one GPU: nothing to split"
    assert gpu_for("studies-x-3-1", None) is None and gpu_for("worker", "0,1") is None


def test_without_sbatch_the_slurm_backend_says_where_to_run(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    path, _ = write(tmp_path, "nosbatch")
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--backend", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch, which is not on PATH here; run the command on a Slurm login node" in err[0], err
