"""Killing the scheduler at any moment and racing two schedulers: nothing lost, nothing run twice, no leftovers."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from studies import load_study
from studies.fsutil import pid_alive

ROOT = Path(__file__).resolve().parents[1]

STUDY = """
name = "{name}"
description = "tiny runs for kill and race tests"
[grid]
width = [2, 4]
epochs = [1, 2]
seed = [0, 1]
[fixed]
device = "cpu"
data = "synthetic"
train_subset = 256
test_subset = 64
batch_size = 64
threads = 1
"""


def start(path: Path, results: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A shell without job control starts background jobs with SIGINT ignored, and a Python started so installs no
    # KeyboardInterrupt handler: give the scheduler the default disposition, as a terminal would.
    return subprocess.Popen([sys.executable, "-m", "studies", "run", str(path), "--results", str(results),
                             "--no-progress", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def ours_alive(pid: int) -> bool:
    """pid is alive and still one of our schedulers or loky workers (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)
    return pid_alive(pid) and (b"studies" in cmdline or b"loky" in cmdline)


def check_records_readable(runs: Path) -> int:
    """Every record file a reader can see is complete and ok (a half-written one must never be visible)."""
    n = 0
    for path in runs.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "ok" and record["run_id"] == path.stem, path
        n += 1
    return n


def check_clean_finish(path: Path, results: Path, name: str, err: str = "") -> list[str]:
    study_dir = results / name
    expected = {r.run_id for r in load_study(path).runs()}
    assert check_records_readable(study_dir / "runs") == len(expected), err
    assert {p.stem for p in (study_dir / "runs").glob("*.json")} == expected, err
    leftovers = [str(p) for d in ("runs", "locks", "logs") for p in (study_dir / d).iterdir()
                 if p.suffix not in (".json", ".log")]
    assert not leftovers, f"leftovers after a clean finish: {leftovers}\n{err}"
    logs = {p.stem: p.read_text() for p in (study_dir / "logs").glob("*.log")}
    for rid, text in logs.items():
        assert text.count("# ok") <= 1, f"run {rid} completed more than once:\n{text}"
    return list(logs.values())


def test_sigkill_at_random_moments_then_restart_completes_exactly_once(tmp_path):
    path = tmp_path / "killed.toml"
    path.write_text(STUDY.format(name="killed"))
    results = tmp_path / "results"
    rng = random.Random(20240611)
    for cycle in range(4):
        jobs = "2" if cycle % 2 else "1"  # both the in-process path and loky workers (orphans must stop)
        proc = start(path, results, "--jobs", jobs)
        time.sleep(rng.uniform(2.0, 7.0))  # startup (~2-3 s), mid-run, between runs
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if (results / "killed" / "runs").is_dir():
            check_records_readable(results / "killed" / "runs")
    final = start(path, results, "--jobs", "2")
    out, err = final.communicate(timeout=240)
    assert final.returncode == 0, err
    assert re.search(r"killed: \d+ ok, 0 failed, \d+ skipped \(done\) in", out), out + err
    logs = check_clean_finish(path, results, "killed", err)
    pids = {int(p) for text in logs for p in re.findall(r"# attempt \d+/\d+ on \S+ pid (\d+)", text)}
    deadline = time.monotonic() + 20
    while any(ours_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [p for p in pids if ours_alive(p)]
    assert not alive, f"a worker of a killed scheduler kept running: {alive}\n{err}"


def test_two_schedulers_racing_run_each_run_once(tmp_path):
    path = tmp_path / "raced.toml"
    path.write_text(STUDY.format(name="raced"))
    results = tmp_path / "results"
    procs = [start(path, results, "--jobs", "1"), start(path, results, "--jobs", "2")]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    logs = check_clean_finish(path, results, "raced", "\n".join(e for _, e in outputs))
    assert len(logs) == 8 and all(text.count("# attempt ") == 1 for text in logs), \
        "every run must have been executed exactly once"
    oks = [int(re.search(r"raced: (\d+) ok", out).group(1)) for out, _ in outputs]
    assert sum(oks) == 8, outputs


def held_by(locks: Path, pid: int) -> bool:
    """Whether scheduler `pid` (in-process) or one of its workers holds a lock."""
    for path in locks.glob("*.lock") if locks.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if pid in (data.get("pid"), data.get("supervisor")):
            return True
    return False


def test_an_interrupt_that_landed_inside_an_eval_still_exits_130(tmp_path):
    """Deterministic twin of the race below: Ctrl-C that arrives while an eval() of a string runs (typing's
    annotation strings, say) is caught and handled, yet CPython would then end the process by SIGINT (-2 to a
    parent). speedrun.exit_status, which both `python -m` entry points exit through, makes the documented 130 stick;
    without it this interpreter gives -2."""
    script = ("import sys\nfrom speedrun import exit_status\n"
              "def stop():\n    raise KeyboardInterrupt\n"
              "try:\n    eval('stop()')\nexcept KeyboardInterrupt:\n    pass\n"
              "raise SystemExit(exit_status(130) if sys.argv[1] == 'fixed' else 130)\n")
    (tmp_path / "stopper").mkdir()
    (tmp_path / "stopper" / "__main__.py").write_text(script)  # run as `python -m`, as our commands are
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    code = {how: subprocess.run([sys.executable, "-m", "stopper", how], env=env).returncode
            for how in ("fixed", "bare")}
    assert code["fixed"] == 130
    assert code["bare"] in (130, -signal.SIGINT)  # -2 with `-m` on CPython 3.8-3.13: the mark this guards against


def test_interrupt_stops_cleanly_and_a_restart_finishes(tmp_path):
    """SIGINT (Ctrl-C) and SIGTERM: exit 130 with a summary saying how to continue; the rerun completes."""
    path = tmp_path / "stopped.toml"
    path.write_text(STUDY.format(name="stopped"))
    results = tmp_path / "results"
    for sig, jobs in ((signal.SIGINT, "1"), (signal.SIGTERM, "2")):
        proc = start(path, results, "--jobs", jobs)
        locks = results / "stopped" / "locks"
        deadline = time.monotonic() + 60
        while not held_by(locks, proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until one of this scheduler's runs is under way
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (sig, out, err)
        assert "interrupted; run the same command again to continue" in out and "Traceback" not in err, err
        check_records_readable(results / "stopped" / "runs")
    final = start(path, results)
    out, err = final.communicate(timeout=240)
    assert final.returncode == 0, err
    check_clean_finish(path, results, "stopped", err)
