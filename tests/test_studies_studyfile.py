"""Study files: the built-ins load, and every kind of mistake gets its own message naming file, key and fix."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studies import StudyError, builtin_studies, load_study

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
name = "ok"
description = "a valid study"
[grid]
width = [2, 4]
seed = [0, 1]
[fixed]
device = "cpu"
data = "synthetic"
train_subset = 128
batch_size = 64
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtins_load_and_have_the_promised_grids():
    assert {"quick", "scaling", "reproduce", "scaling-wide"} <= set(builtin_studies())
    sizes = {name: len(load_study(name).runs()) for name in ("quick", "scaling", "reproduce", "scaling-wide")}
    assert sizes["scaling"] == 5 * 4 * 7 and sizes["scaling-wide"] == 5 * 4 * 7 and sizes["reproduce"] == 7
    scaling = load_study("scaling")
    assert scaling.grid["width"] == (64, 80, 96, 112, 128) and scaling.grid["epochs"] == (10, 20, 40, 80)
    assert load_study("scaling-wide").grid["width"] == (32, 48, 64, 96, 128)
    assert "4x" in load_study("scaling-wide").description, "scaling-wide must say why it spans 4x in width"
    reproduce = {r.run_id for r in load_study("reproduce").runs()}
    corner = {r.run_id for r in scaling.runs() if r.point["width"] == 128 and r.point["epochs"] == 80}
    assert reproduce == corner, "reproduce must be the same runs as the scaling grid's corner"
    baseline = load_study("baseline")
    assert len(baseline.runs()) == 25 and {r.config.width for r in baseline.runs()} == {64}
    cell = {r.run_id for r in scaling.runs() if r.point["width"] == 64 and r.point["epochs"] == 10}
    assert cell < {r.run_id for r in baseline.runs()}, "baseline's seeds 0-6 must be scaling's width-64 cell"
    quick = load_study("quick")
    assert max(quick.grid["width"]) <= 32 and quick.fixed.get("train_subset"), "quick must stay laptop-sized"


def test_cpu_checks_share_cpu_scalings_recipe_and_lie_outside_its_grid():
    """The check studies are like-for-like with cpu-scaling (same [fixed], so analysis compares them) and train
    only cells it never ran: otherwise they would test nothing out of sample."""
    scaling = load_study("cpu-scaling")
    fitted = {(w, e) for w in scaling.grid["width"] for e in scaling.grid["epochs"]}
    for name in ("cpu-check-epochs", "cpu-check-width", "cpu-check-long", "cpu-check-16x40",
                 "cpu-check-48x10"):
        check = load_study(name)
        assert check.fixed == scaling.fixed and check.grid["seed"] == scaling.grid["seed"], name
        cells = {(w, e) for w in check.grid["width"] for e in check.grid["epochs"]}
        assert cells and not cells & fitted, name
        assert (max(check.grid["width"]) > max(scaling.grid["width"])
                or max(check.grid["epochs"]) > max(scaling.grid["epochs"])), f"{name} must extrapolate"
    headline = load_study("cpu-headline")  # adds seeds to the seed-0 runs trained by `speedrun train`
    assert headline.fixed == scaling.fixed and 0 not in headline.grid["seed"]
    assert (headline.grid["width"], headline.grid["epochs"]) == ((64,), (10,))


def test_good_study_expands_in_file_order(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    points = [r.point for r in study.runs()]
    assert points == [{"width": 2, "seed": 0}, {"width": 2, "seed": 1}, {"width": 4, "seed": 0}, {"width": 4, "seed": 1}]
    assert study.cell_fields == ("width",)
    assert study.policy.retries == 1 and study.policy.timeout_s is None and study.policy.kill_grace_s == 300
    assert len({r.run_id for r in study.runs()}) == 4


BAD = [
    ("unknown top-level key", 'colour = "red"\n', ["colour: unknown key", "valid top-level keys"]),
    ("unknown grid field", None, ["grid.widht: unknown TrainConfig field", "valid fields: width"]),
    ("unknown fixed field", None, ["fixed.lr_max: unknown TrainConfig field"]),
    ("not a list", None, ["grid.epochs: is an integer", "must be a list"]),
    ("empty list", None, ["grid.epochs: is an empty list"]),
    ("duplicate value", None, ["grid.width: value 2 appears more than once"]),
    ("grid and fixed", None, ["grid.batch_size: is also set in [fixed]"]),
    ("invalid value", None, ["grid.width: TrainConfig.width=0 is invalid", "2 of 4 runs"]),
    ("wrong type", None, ["grid.width: TrainConfig.width='2' is invalid: expected an integer"]),
    ("execution field in grid", None, ["grid.threads: is execution-only"]),
    ("list in fixed", None, ["fixed.lr: is a list", "move it to [grid]"]),
    ("bad policy", None, ["policy.retries: is -1", "policy.timeout_s: is 'soon'", "policy.kill_grace_s: is 0",
                    "policy.backoff: unknown key"]),
    ("bad name", None, ["name: '../etc' cannot name a results folder"]),
    ("missing keys", None, ["name: missing", "description: missing"]),
    ("empty grid", None, ["grid: is empty"]),
    ("nested value", None, ["grid.width[1]: is a table"]),
    ("bad after", None, ["after.command: is ['python', 3]; expected a list of strings", "after.cmd: unknown key"]),
    ("after without command", None, ["after.command: is missing; expected a list of strings"]),
]

EDITS = {
    "unknown grid field": ("width = [2, 4]", "widht = [2, 4]"),
    "unknown fixed field": ('device = "cpu"', 'device = "cpu"\nlr_max = 0.1'),
    "not a list": ("seed = [0, 1]", "seed = [0, 1]\nepochs = 3"),
    "empty list": ("seed = [0, 1]", "seed = [0, 1]\nepochs = []"),
    "duplicate value": ("width = [2, 4]", "width = [2, 4, 2]"),
    "grid and fixed": ("seed = [0, 1]", "seed = [0, 1]\nbatch_size = [64]"),
    "invalid value": ("width = [2, 4]", "width = [0, 4]\n"),
    "wrong type": ("width = [2, 4]", 'width = ["2", 4]'),
    "execution field in grid": ("seed = [0, 1]", "seed = [0, 1]\nthreads = [1, 2]"),
    "list in fixed": ('device = "cpu"', 'device = "cpu"\nlr = [0.1, 0.2]'),
    "bad policy": ("[fixed]", '[policy]\nretries = -1\ntimeout_s = "soon"\nkill_grace_s = 0\nbackoff = 2\n[fixed]'),
    "bad name": ('name = "ok"', 'name = "../etc"'),
    "missing keys": ('name = "ok"\ndescription = "a valid study"', ""),
    "empty grid": ("width = [2, 4]\nseed = [0, 1]", ""),
    "nested value": ("width = [2, 4]", "width = [2, {a = 1}]"),
    "bad after": ("batch_size = 64", 'batch_size = 64\n[after]\ncommand = ["python", 3]\ncmd = ["x"]'),
    "after without command": ("batch_size = 64", "batch_size = 64\n[after]"),
}


@pytest.mark.parametrize("case, text, expected", BAD, ids=[b[0] for b in BAD])
def test_each_mistake_has_its_own_message(tmp_path, case, text, expected):
    if text is None:
        old, new = EDITS[case]
        assert old in GOOD, f"test setup: {old!r} not in the good study"
        text = GOOD.replace(old, new, 1)
    else:
        text = text + GOOD  # top-level keys must come before the first [table]
    path = write(tmp_path, text)
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, f"{case}: expected {fragment!r} in:\n{message}"
    assert all(line.startswith(str(path)) for line in info.value.problems), "every problem must name the file"


def test_all_problems_reported_at_once(tmp_path):
    text = GOOD.replace("width = [2, 4]", "widht = [2, 2]").replace('name = "ok"', 'name = ""\ncolour = 1')
    with pytest.raises(StudyError) as info:
        load_study(write(tmp_path, text))
    assert len(info.value.problems) >= 4, info.value.problems


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(write(tmp_path, "name = [unclosed"))
    with pytest.raises(StudyError, match="no such study file"):
        load_study(tmp_path / "nope.toml")
    with pytest.raises(StudyError, match="built-ins are .*quick"):
        load_study("no-such-builtin")


def test_cli_reports_problems_exit_2_without_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("width = [2, 4]", "width = [2, 2]\nwidht = [1]"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in ("run", "status"):
        proc = subprocess.run([sys.executable, "-m", "studies", command, str(path), "--results", str(tmp_path / "r")],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "2 problems" in proc.stderr and "grid.widht" in proc.stderr and "appears more than once" in proc.stderr
    assert not (tmp_path / "r").exists(), "nothing may be created for an invalid study"
