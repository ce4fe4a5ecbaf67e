"""[after] fires exactly once when several schedulers share a study, and an interrupted scheduler frees the locks
of the runs its killed workers held (so that schedulers on other hosts take them over at once)."""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from analysis.testing import make_record
from studies import load_study
from studies.afteronce import after_once, marker_path
from test_studies_resilience import STUDY, check_clean_finish, held_by, start

FIRE = '[after]\ncommand = ["python", "-c", "import sys; open(sys.argv[1] + \'/fired.txt\', \'a\').write(\'x\\\\n\')"]\n'


def fired(results: Path, name: str) -> int:
    path = results / name / "fired.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_three_schedulers_started_together_fire_after_once(tmp_path):
    """The case of issue 24: three schedulers on a small study, started at once; before, each ended with runs
    'running elsewhere' and none fired [after]. Now the last to finish fires it, once."""
    path = tmp_path / "shared.toml"
    path.write_text(STUDY.format(name="shared").replace("width = [2, 4]", "width = [2]") + FIRE)
    results = tmp_path / "results"
    procs = [start(path, results, "--jobs", "1") for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err
    check_clean_finish(path, results, "shared", "\n".join(e for _, e in outputs))
    assert fired(results, "shared") == 1, outputs
    said = "\n".join(out for out, _ in outputs)
    assert said.count("after the runs: python -c") == 1, said


def test_schedulers_finishing_together_race_for_one_firing(tmp_path):
    path = tmp_path / "done.toml"
    path.write_text(STUDY.format(name="done") + FIRE)
    study = load_study(path)
    results = tmp_path / "results"
    runs = results / "done" / "runs"
    runs.mkdir(parents=True)
    for run in study.runs():
        record = make_record(width=run.config.width, epochs=run.config.epochs, seed=run.config.seed, ema_val_acc=0.5,
                             study="done", config=run.config.to_dict(), run_id=run.run_id)
        (runs / f"{run.run_id}.json").write_text(json.dumps(record))
    answers, go = [], threading.Barrier(8)

    def finisher() -> None:
        go.wait()
        answers.append(after_once(study, results))

    threads = [threading.Thread(target=finisher) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fired(results, "done") == 1
    assert sorted(why is None for _, why in answers) == [False] * 7 + [True]
    assert all("already fired for these 8 runs" in why for _, why in answers if why), answers
    assert marker_path(study, results, [r.run_id for r in study.runs()]).exists()
    # A grid that grows is a new grid: it fires again once complete (here it is not: one run has no record).
    bigger = path.read_text().replace("seed = [0, 1]", "seed = [0, 1, 2]")
    path.write_text(bigger)
    code, why = after_once(load_study(path), results)
    assert code == 0 and why.startswith("not yet: 4 run(s) have no ok record"), why


def test_a_failed_after_command_can_fire_again(tmp_path):
    path = tmp_path / "fails.toml"
    path.write_text(STUDY.format(name="fails").replace("width = [2, 4]", "width = [2]").replace(
        "epochs = [1, 2]", "epochs = [1]").replace("seed = [0, 1]", "seed = [0]")
        + '[after]\ncommand = ["python", "-c", "import sys; sys.exit(4)"]\n')
    study = load_study(path)
    run = study.runs()[0]
    (tmp_path / "r" / "fails" / "runs").mkdir(parents=True)
    record = make_record(width=2, epochs=1, seed=0, ema_val_acc=0.5, study="fails", config=run.config.to_dict(),
                         run_id=run.run_id)
    (tmp_path / "r" / "fails" / "runs" / f"{run.run_id}.json").write_text(json.dumps(record))
    assert after_once(study, tmp_path / "r") == (4, None)
    assert after_once(study, tmp_path / "r") == (4, None), "no marker is kept for a command that failed"


def test_sigterm_frees_the_locks_of_its_killed_workers(tmp_path):
    path = tmp_path / "term.toml"
    path.write_text(STUDY.format(name="term").replace("epochs = [1, 2]", "epochs = [3, 4]"))
    results = tmp_path / "results"
    proc = start(path, results, "--jobs", "2")
    locks = results / "term" / "locks"
    deadline = time.monotonic() + 120
    while not held_by(locks, proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held_by(locks, proc.pid), "no run started within 120 s"
    proc.send_signal(signal.SIGTERM)  # what scancel and Slurm preemption send first
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert not [p.name for p in locks.glob("*.lock")], "locks of killed workers must be freed on an orderly stop"
