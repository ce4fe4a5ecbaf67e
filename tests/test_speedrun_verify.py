"""The GPU proof (python -m speedrun.verify): its dry run on the CPU end to end, its statistics against scipy's
own tests, the seed's table format against the seed's printing code, and the seed's preparation."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from speedrun.conformance.seed_load import SeedError
from speedrun.conformance.verify.arms import prepare_seed
from speedrun.conformance.verify.seedtable import parse_seed_table, seed_close, seed_header, seed_row
from speedrun.conformance.verify.stats import MARGIN, arm_summary, tost, welch
from tests.conftest import ROOT
from tests.test_seed_diff import SEED_MAIN

HAVE_SEED = os.path.isfile(SEED_MAIN)
NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # what comes back from a GPU machine's output folder


def run_verify(out, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "speedrun.verify", "--dry-run", "--out", str(out),
                           *(["--seed-main", SEED_MAIN] if HAVE_SEED else []), *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    proc = run_verify(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text())


def test_dry_run_runs_every_stage(dry_run):
    out, summary = dry_run
    stages = summary["stages"]
    expected = ["environment", "seed_diff", "whitening", "bench w8 eager", "bench w8 compile"]
    assert list(stages) == expected
    assert all(stages[s]["status"] == "ok" for s in expected if s != "seed_diff" or HAVE_SEED), stages
    if HAVE_SEED:
        assert summary["seed_diff"]["ok"] and all(summary["seed_diff"]["checks"].values())
    else:
        assert stages["seed_diff"]["status"].startswith("skipped: the seed's main.py is absent")
    assert list(summary["arms"]) == ["seed-1", "ours-eager", "ours-fast", "seed-2"], "interleaved, in order"
    assert summary["arms"]["seed-1"]["kind"] == ("seed-cpu" if HAVE_SEED else "standin")
    assert summary["arms"]["ours-fast"]["mode"] == "compile" and summary["arms"]["ours-fast"]["compile_s"][0] > 0
    assert summary["finished"] and summary["dry_run"]


def test_dry_run_reports_the_side_by_side(dry_run):
    out, summary = dry_run
    sbs = summary["side_by_side"]
    assert sbs["seed"]["n"] == 4 and sbs["seed"]["n_timed"] == 2, "two seed processes, their first runs untimed"
    for arm in ("ours-eager", "ours-fast"):
        s = sbs[arm]
        assert s["n"] == 2 and s["n_timed"] == 1
        assert 0 <= s["ema_val_acc_mean"] <= 1 and s["time_ratio_vs_seed"] > 0
        assert s["welch_vs_seed"]["p"] is not None and s["tost_vs_seed"]["p"] is not None
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["arm"] for r in records] == ["ours-eager:eager"] * 2 + ["ours-fast:compile"] * 2
    assert len({r["seed"] for r in (r["config"] for r in records)}) == 4, "no seed shared between arms"
    readme = (out / "README.md").read_text()
    assert "DRY RUN" in readme and "| ours-fast (compile) | 2 |" in readme


def test_dry_run_output_fits_the_gpu_machines_return_path(dry_run):
    """At most 8 files, none in a folder, names of letters, digits, '.', '_' and '-' only."""
    out, _ = dry_run
    files = sorted(p.name for p in out.iterdir())
    assert all((out / f).is_file() for f in files) and len(files) <= 8, files
    assert all(NAME.match(f) for f in files), files
    expected = {"summary.json", "README.md", "verify.log", "seed.log", "runs.jsonl", "whitening.json", "bench.json"}
    assert expected | ({"seed_diff.json"} if HAVE_SEED else set()) == set(files)


def test_a_short_budget_skips_later_stages_and_keeps_what_ran(tmp_path):
    """With 12 s for everything, the stages after the budget is spent are skipped, and every file written
    says what happened."""
    proc = run_verify(tmp_path, "--budget", "12")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["finished"] and summary["stages"]["environment"]["status"] == "ok"
    skipped = [s for s in summary["stages"].values() if s["status"].startswith("skipped")]
    assert skipped and all(a["status"].startswith("skipped") for a in summary["arms"].values())
    assert "skipped" in (tmp_path / "README.md").read_text()


def test_bad_arguments_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "speedrun.verify", "--out", str(tmp_path), "--data-dir",
                           str(tmp_path / "none"), "--seed-main", str(tmp_path / "main.py")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--data-dir" in lines[0] and "--seed-main" in lines[0], proc.stderr


def test_welch_and_tost_agree_with_scipys_tests():
    """Welch: scipy's ttest_ind(equal_var=False). TOST: its two one-sided tests are scipy's one-sided Welch
    tests of the samples shifted by the margin."""
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = list(0.94 + 0.0012 * rng.standard_normal(7)), list(0.9405 + 0.0015 * rng.standard_normal(14))
    w = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert w["p"] == pytest.approx(ref.pvalue, rel=1e-9) and w["t"] == pytest.approx(ref.statistic, rel=1e-9)
    t = tost(a, b)
    low = stats.ttest_ind(np.add(a, MARGIN), b, equal_var=False, alternative="greater").pvalue
    high = stats.ttest_ind(np.subtract(a, MARGIN), b, equal_var=False, alternative="less").pvalue
    assert t["p"] == pytest.approx(max(low, high), rel=1e-9)
    assert t["equivalent"] == (-MARGIN < t["ci90"][0] and t["ci90"][1] < MARGIN)
    far = tost([x + 0.01 for x in a], b)
    assert far["equivalent"] is False and far["p"] > 0.5, "a one-point difference is not equivalent at ±0.2"
    assert welch(a[:1], b)["p"] is None and "2 or more" in tost(a[:1], b)["why"]


def test_arm_summary_leaves_each_process_first_run_out_of_the_time():
    runs = [dict(ema_val_acc=0.94, train_time_s=9.0, first_in_process=True),
            dict(ema_val_acc=0.93, train_time_s=5.0, first_in_process=False),
            dict(ema_val_acc=0.95, train_time_s=6.0, first_in_process=False)]
    s = arm_summary(runs)
    assert s["n"] == 3 and s["ema_val_acc_mean"] == pytest.approx(0.94) and s["ema_val_acc_sd"] == pytest.approx(0.01)
    assert s["n_timed"] == 2 and s["median_train_time_s"] == 5.5


def test_seed_table_parser_keeps_finished_runs_only():
    rows = [dict(epoch=e, train_loss=1.0, val_loss=1.1, train_acc=0.5, val_acc=0.6,
                 ema_val_acc=0.61 if e > 1 else None, train_time_s=float(e)) for e in (1, 2, 3)]
    lines = [seed_header()] + [seed_row(r) for r in rows] + [seed_close(seed_row(rows[-1]))]
    lines += [seed_row(r) for r in rows[:2]]  # a second run, cut off
    runs, partial = parse_seed_table("\n".join(["noise", *lines, "Mean and variance: (0.6, 0.0)"]))
    assert len(runs) == 1 and partial == 2
    assert runs[0].epochs == 3 and runs[0].ema_val_acc == 0.61 and runs[0].train_time_s == 3.0


@pytest.mark.skipif(not HAVE_SEED, reason="needs the seed's main.py (see tests/test_seed_diff.py)")
def test_seed_row_is_the_seeds_own_layout(capsys):
    """Our stand-in's rows against the seed's print_training_details for the same values."""
    import torch

    from speedrun.conformance.seed_load import load_seed

    ns = load_seed(SEED_MAIN, data={"train": {"images": torch.zeros(1, 3, 32, 32)}, "eval": {}}, width=8)
    values = dict(epoch=3, train_loss=1.23456, val_loss=0.5, train_acc=0.75, val_acc=0.8, ema_val_acc=None,
                  total_time_seconds=12.3456)
    fmt = lambda name: (f"{values[name]}".rjust(len(name)) if type(values[name]) == int
                        else "{:0.4f}".format(values[name]).rjust(len(name)) if values[name] is not None
                        else " " * len(name))  # the seed's format_for_table, as main() defines it
    capsys.readouterr()
    ns["print_training_details"]([fmt(c) for c in ns["logging_columns_list"]], is_final_entry=True)
    theirs = capsys.readouterr().out.splitlines()
    ours = seed_row(dict(values, epoch=4, train_time_s=12.3456))
    assert theirs == [ours, seed_close(ours)]


def test_prepare_seed_changes_the_run_count_only(tmp_path):
    data = tmp_path / "cifar" / "cifar-10-batches-py"
    data.mkdir(parents=True)
    (data / "data_batch_1").write_bytes(b"")
    if not HAVE_SEED:
        fake = tmp_path / "main.py"
        fake.write_text("for run_num in range(25):\n    pass\n")
        with pytest.raises(SeedError, match="is not hlb-CIFAR10 main.py at 8959293"):
            prepare_seed(fake, tmp_path / "seed", tmp_path / "cifar", 7)
        return
    copy = prepare_seed(SEED_MAIN, tmp_path / "seed", tmp_path / "cifar", 7)
    original = open(SEED_MAIN).read().splitlines()
    changed = [(a, b) for a, b in zip(original, copy.read_text().splitlines()) if a != b]
    assert changed == [("    for run_num in range(25):", "    for run_num in range(7):")]
    assert (tmp_path / "seed" / "cifar10" / "cifar-10-batches-py").resolve() == data.resolve()


def test_seed_data_cache_is_the_seeds_format(tmp_path, cifar_dir):
    """data.pt as the seed's loading block saves it: ToTensor's x/255, normalised with its mean and std, in fp16,
    int64 labels; checked on raw pixels read straight from the files."""
    import pickle

    import torch

    from speedrun.data import resolve_data_dir

    out = tmp_path / "data.pt"
    proc = subprocess.run([sys.executable, "-m", "speedrun.conformance.verify.arms", "seed-data",
                           "--data-dir", cifar_dir, "--out", str(out), "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = torch.load(out)
    assert data["train"]["images"].shape == (50_000, 3, 32, 32) and data["eval"]["images"].shape == (10_000, 3, 32, 32)
    assert data["train"]["images"].dtype == torch.float16 and data["eval"]["targets"].dtype == torch.int64
    with open(resolve_data_dir(cifar_dir) / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    pixels = torch.tensor(raw[b"data"][:5], dtype=torch.uint8).view(5, 3, 32, 32)
    mean = torch.tensor([0.4913997551666284, 0.48215855929893703, 0.4465309133731618]).view(1, 3, 1, 1)
    std = torch.tensor([0.24703225141799082, 0.24348516474564, 0.26158783926049628]).view(1, 3, 1, 1)
    expected = ((pixels.float() / 255 - mean) / std).half()  # the seed: ToTensor, then (x - mean) / std, .half()
    assert torch.equal(data["eval"]["images"][:5], expected)
    assert data["eval"]["targets"][:5].tolist() == list(raw[b"labels"][:5])


def test_a_broken_stage_is_recorded_and_the_rest_runs(tmp_path, monkeypatch):
    """An exception inside one arm (here the seed's preparation) lands in the summary; the proof goes on."""
    from speedrun.conformance.verify import __main__ as proof_main
    from speedrun.conformance.verify.plan import dry_plan
    from speedrun.conformance.verify.stages import Clock

    plan = dry_plan(None, tmp_path)
    proof = proof_main.Proof(plan, tmp_path, tmp_path / "work", Clock(60), None, None)

    def broken(*args, **kwargs):
        raise SeedError("the seed broke")

    monkeypatch.setattr(proof, "_seed_arm", broken)
    monkeypatch.setattr(proof, "_our_arm",
                        lambda arm, runs, limit: proof.summary["arms"].update({arm: {"status": "ok"}}))
    proof.side_by_side()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["errors"] == ["seed-1: SeedError: the seed broke", "seed-2: SeedError: the seed broke"]
    assert summary["arms"]["ours-eager"]["status"] == "ok" and "ERROR: seed-1" in (tmp_path / "README.md").read_text()
