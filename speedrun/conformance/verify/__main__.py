"""python -m speedrun.verify (short for speedrun.conformance.verify): the ten-minute GPU proof, one command.

    PYTHONPATH=. python -m speedrun.verify --data-dir ~/cifar10 --seed-main .gpudata/main.py --out "$OUT"

In order, each stage with a time limit and the whole within --budget seconds (9 minutes by default):
1. the environment (GPU, clocks, torch, CUDA, cuDNN);
2. seed_diff on the GPU in fp16: our step against the seed's own code (and our EMA arithmetic against its);
3. whiten_compare: our whitening against the seed's, per filter;
4. the side-by-side at width 64 × 10 epochs, interleaved: the seed's main.py unmodified but for its run count,
   ours eager, ours compiled and/or CUDA-graphed (in one process each), the seed again; median training time per
   run leaving out each process's first run, mean ± SD EMA accuracy, Welch and TOST (±0.2 points) against the
   seed, ours/seed time ratios;
5. `speedrun bench` at widths 64 and 128, eager and fast, as time allows.
Everything lands in --out as it happens (at most 8 files, no folders): summary.json and README.md rewritten after
every stage, verify.log, seed.log (the seed's own output), runs.jsonl (our records), seed_diff.json,
whitening.json, bench.json. A run cut off at any point leaves what it had.
`--dry-run` runs the same stages on the CPU at toy size (the test suite does; under a minute).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ..seed_load import SEED_BLOB, git_blob_id
from ..toolchain import toolchain, without_compile
from ...writer import atomic_write_text, strict_json, write_json
from .arms import prepare_seed
from .plan import FAST_MODES, Plan, dry_plan, gpu_plan
from .report import report_markdown
from .seedtable import SeedTableError, parse_seed_table
from .stages import Clock, Log, environment, nvidia_smi, run_child
from .stats import arm_summary, time_ratio, tost, welch

ROOT = Path(__file__).resolve().parents[2]  # the checkout: children run with it on PYTHONPATH
ARMS = ("seed-1", "ours-eager", "ours-fast", "seed-2")
SHM_NEEDED = 2 * 2**30  # bytes free in /dev/shm for the seed's own DataLoader (a 600 MB batch), with room


class Proof:
    def __init__(self, plan: Plan, out: Path, work: Path, clock: Clock, data_dir: Path | None, seed_main: Path | None):
        self.plan, self.out, self.work, self.clock = plan, out, work, clock
        self.data_dir, self.seed_main = data_dir, seed_main
        self.log = Log(out / "verify.log", clock)
        self.env = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **plan.child_env}
        self.summary: dict = dict(what="speedrun.verify: the GPU proof" + (" (DRY RUN on CPU: toy sizes, synthetic "
                                  "data; its figures are no results)" if plan.dry_run else ""),
                                  started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  budget_s=clock.budget_s, dry_run=plan.dry_run, stages={}, arms={})
        self.arm_runs: dict[str, list[dict]] = {}

    def save(self) -> None:
        self.summary["elapsed_s"] = round(self.clock.elapsed(), 1)
        clean = strict_json(self.summary)
        write_json(self.out / "summary.json", clean)
        atomic_write_text(self.out / "README.md", report_markdown(clean))

    def stage(self, name: str, cmd: list[str] | None, limit: float, why_skipped: str = "") -> bool:
        """Run one stage's command within min(limit, time left); record its outcome."""
        left = self.clock.left()
        if cmd is None or left < 10:
            reason = why_skipped or f"skipped: {left:.0f} s of the budget left"
            self.summary["stages"][name] = dict(status=reason)
            self.log(f"== {name}: {reason}")
            self.save()
            return False
        self.log(f"== {name}")
        outcome = run_child(cmd, limit_s=min(limit, left), log=self.log, env=self.env, cwd=ROOT)
        self.summary["stages"][name] = dict(status=outcome.status, seconds=round(outcome.seconds, 1))
        self.save()
        return outcome.returncode == 0

    # --- stages
    def environment(self) -> None:
        self.log("== environment")
        self.summary["environment"] = environment()
        self.summary["stages"]["environment"] = dict(status="ok")
        self.log(json.dumps(self.summary["environment"], default=str))
        self.save()

    def seed_diff(self) -> None:
        self.stage("seed_diff", self.plan.diff_args, self.plan.limits["seed_diff"],
                   "skipped: the seed's main.py is absent (dry run)")
        result = self._read_json("seed_diff.json")
        if result is not None:
            self.summary["seed_diff"] = dict(ok=result.get("ok"), checks=result.get("checks"),
                                             ema_arithmetic=result.get("ema_arithmetic"), ema=result.get("ema"))
            self.save()

    def whitening(self) -> None:
        self.stage("whitening", self.plan.whiten_args, self.plan.limits["whitening"])
        result = self._read_json("whitening.json")
        if result is not None:
            self.summary["whitening"] = {k: result.get(k) for k in ("pooled_matches_seed", "seed_matches_itself",
                                                                     "orders", "data_dtype", "device_name")}
            self.save()

    def _read_json(self, name: str) -> dict | None:
        path = self.out / name
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            return None

    def side_by_side(self) -> None:
        weights = dict(zip(ARMS, self.plan.arm_weights))
        for j, arm in enumerate(ARMS):
            budget = self.clock.left() - self.plan.bench_reserve_s
            share = budget * weights[arm] / sum(weights[a] for a in ARMS[j:])
            if share < self.plan.min_arm_s:
                self.summary["arms"][arm] = dict(status=f"skipped: {max(budget, 0):.0f} s left for the side-by-side")
                self.log(f"== {arm}: skipped, too little time left")
                self.save()
                continue
            runs = self._trimmed_runs(arm, share)
            with self.guard(arm):
                if arm.startswith("seed"):
                    self._seed_arm(arm, runs, share)
                else:
                    self._our_arm(arm, runs, share)
            self._statistics()
            self.save()

    @contextlib.contextmanager
    def guard(self, what: str):
        """An error in one stage is recorded and the proof goes on to the next."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - whatever broke, the later stages still run
            message = f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.summary.setdefault("errors", []).append(message)
            self.log(f"ERROR in {message}")
            self.save()

    def _trimmed_runs(self, arm: str, share: float) -> int:
        """The planned runs, fewer when the first seed arm's pace says they will not fit (never below 2)."""
        first = self.summary["arms"].get("seed-1", {})
        if arm != "seed-2" or not first.get("runs_done"):
            return self.plan.runs
        pace = first["seconds"] / first["runs_done"]  # start-up included: errs on the short side
        return max(2, min(self.plan.runs, math.floor(share / pace)))

    def _seed_arm(self, arm: str, runs: int, limit: float) -> None:
        self.log(f"== {arm}: {runs} runs of the seed ({self.plan.seed_arm})")
        if self.plan.seed_arm == "main.py":
            folder = self.work / "seed"
            script = prepare_seed(self.seed_main, folder, self.data_dir, runs)
            self._seed_data(folder)
            cmd, cwd = [sys.executable, script.name], folder
        else:
            flags = list(self.plan.seed_cpu_flags)
            if self.plan.seed_arm == "seed-cpu":
                flags[flags.index("--runs") + 1] = str(runs)
                cmd = [sys.executable, "-m", f"{__package__}.arms", "seed-cpu", *flags]
            else:
                cmd = [sys.executable, "-m", f"{__package__}.arms", "standin", "--runs", str(runs),
                       "--first-seed", "1000" if arm == "seed-2" else "500", *self.plan.train_flags]
            cwd = ROOT
        outcome = run_child(cmd, limit_s=limit, log=self.log, cwd=cwd, env=self.env, tee=self.out / "seed.log")
        try:
            finished, partial_rows = parse_seed_table(outcome.output)
        except SeedTableError as e:  # an unreadable table counts no run, and says why in the summary
            finished, partial_rows = [], 0
            self.log(f"{arm}: {e}")
        self.arm_runs[arm] = [dict(ema_val_acc=r.ema_val_acc, train_time_s=r.train_time_s,
                                   first_in_process=i == 0) for i, r in enumerate(finished)]
        self.summary["arms"][arm] = dict(kind=self.plan.seed_arm, status=outcome.status, runs_planned=runs,
                                         runs_done=len(finished), rows_cut_off=partial_rows,
                                         seconds=round(outcome.seconds, 1))

    def _seed_data(self, folder: Path) -> None:
        """The seed loads CIFAR-10 itself (torchvision, from the linked folder, then a DataLoader whose worker
        hands the whole set over through /dev/shm) and caches it as data.pt; a later seed process reads that.
        Where /dev/shm is too small for that hand-over (600 MB), data.pt is written for it instead."""
        if (folder / "data.pt").exists() or "seed_data" in self.summary:
            return
        free = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else 0
        if free >= SHM_NEEDED:
            self.summary["seed_data"] = f"the seed's own loader (torchvision) from {self.data_dir}"
            return
        self.summary["seed_data"] = (f"data.pt written for the seed from {self.data_dir} (/dev/shm has "
                                     f"{free / 2**30:.2f} GiB free, the seed's DataLoader needs about 0.6)")
        run_child([sys.executable, "-m", f"{__package__}.arms", "seed-data", "--data-dir", str(self.data_dir),
                   "--out", str(folder / "data.pt")], limit_s=min(60.0, self.clock.left()), log=self.log, cwd=ROOT,
                  env=self.env)

    def _our_arm(self, arm: str, runs: int, limit: float) -> None:
        """Our runs in one process; for the fast arm, the next mode when one trains no run (a failed build)."""
        modes = ("eager",) if arm == "ours-eager" else self.plan.fast_modes
        entry = self.summary["arms"].setdefault(arm, dict(attempts=[]))
        for mode in modes:
            left = limit - sum(a["seconds"] for a in entry["attempts"])
            if left < self.plan.min_arm_s:
                break
            label = f"{arm}:{mode}"  # each attempt's records apart in runs.jsonl
            self.log(f"== {arm}: {runs} runs, {mode}")
            first_seed = 0 if arm == "ours-eager" else 100  # independent samples: no seed shared between arms
            cmd = [sys.executable, "-m", f"{__package__}.arms", "ours", "--label", label, "--runs", str(runs),
                   "--first-seed", str(first_seed), "--jsonl", str(self.out / "runs.jsonl"),
                   *self.plan.train_flags, *FAST_MODES.get(mode, [])]
            outcome = run_child(cmd, limit_s=left, log=self.log, cwd=ROOT, env=self.env)
            ok = [r for r in self._records() if r.get("arm") == label and r.get("status") == "ok"]
            entry["attempts"].append(dict(mode=mode, status=outcome.status, seconds=round(outcome.seconds, 1),
                                          runs_done=len(ok)))
            if ok:
                self.arm_runs[arm] = [dict(ema_val_acc=r["ema_val_acc"], train_time_s=r["train_time_s"],
                                           first_in_process=r["run_in_process"] == 0) for r in ok]
                entry.update(mode=mode, status=outcome.status, runs_planned=runs, runs_done=len(ok),
                             seconds=round(outcome.seconds, 1), compile_s=[r["compile_s"] for r in ok])
                return
            self.log(f"   {arm}: no run finished in mode {mode}")

    def _records(self) -> list[dict]:
        """Every record in runs.jsonl (a line cut off by a kill is skipped)."""
        path = self.out / "runs.jsonl"
        out = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def _statistics(self) -> None:
        seed = self.arm_runs.get("seed-1", []) + self.arm_runs.get("seed-2", [])
        seed_stats = arm_summary(seed) if seed else None
        stats = dict(seed=seed_stats, margin_points=0.2)
        for arm in ("ours-eager", "ours-fast"):
            ours = self.arm_runs.get(arm)
            if not ours:
                continue
            s = arm_summary(ours)
            if seed_stats:
                s.update(welch_vs_seed=welch(s["ema_val_acc"], seed_stats["ema_val_acc"]),
                         tost_vs_seed=tost(s["ema_val_acc"], seed_stats["ema_val_acc"]),
                         time_ratio_vs_seed=time_ratio(s, seed_stats))
            stats[arm] = s
        self.summary["side_by_side"] = stats

    def benches(self) -> None:
        fast = self.summary["arms"].get("ours-fast", {}).get("mode")
        modes = [("eager", [])] + ([(fast, FAST_MODES[fast])] if fast else [])
        results = []
        for mode, flags in modes:
            for width in self.plan.bench_widths:
                name = f"bench w{width} {mode}"
                path = self.work / f"bench-{width}-{mode}.json"
                cmd = [sys.executable, "-m", "speedrun", "bench", "--width", str(width), *self.plan.bench_flags,
                       *flags, "--out", str(path)]
                if self.stage(name, cmd, self.clock.left() - 5) and path.exists():
                    results.append(json.loads(path.read_text()))
                    write_json(self.out / "bench.json", results)
                    self.summary["bench"] = results
                    self.save()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m speedrun.verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="the CIFAR-10 folder (holding cifar-10-batches-py); not read by --dry-run")
    p.add_argument("--seed-main", help="the seed's main.py (hlb-CIFAR10 at 8959293)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="output folder (default: $OUT)")
    p.add_argument("--budget", type=float, default=None, help="seconds for everything (default 540; dry run 240)")
    p.add_argument("--runs", type=int, default=7, help="runs per side-by-side arm")
    p.add_argument("--fast", default="compile+graph,compile,graph",
                   help=f"the fast arm's modes, tried in order until one trains ({', '.join(FAST_MODES)})")
    p.add_argument("--work", help="scratch folder (the seed's copy and data cache; default: a temporary one)")
    p.add_argument("--dry-run", action="store_true", help="every stage on the CPU at toy size (tests)")
    args = p.parse_args(argv)
    if not args.out:
        print("error: give --out DIR (or set $OUT)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_main = Path(args.seed_main).expanduser() if args.seed_main else None
    modes = tuple(m.strip() for m in args.fast.split(",") if m.strip())
    unknown = [m for m in modes if m not in FAST_MODES]
    if args.dry_run:
        plan, data_dir = dry_plan(seed_main, out), None
    else:
        problems = [f"unknown --fast mode(s) {unknown}; use {', '.join(FAST_MODES)}"] if unknown else []
        if not args.data_dir or not Path(args.data_dir).expanduser().is_dir():
            problems.append(f"--data-dir {args.data_dir!r} is not a folder; give the CIFAR-10 folder")
        if seed_main is None or not seed_main.is_file():
            problems.append(f"--seed-main {args.seed_main!r} is not a file; give the seed's main.py")
        elif git_blob_id(seed_main.read_bytes()) != SEED_BLOB:
            problems.append(f"--seed-main {seed_main} is not hlb-CIFAR10 main.py at 8959293 (git blob "
                            f"{git_blob_id(seed_main.read_bytes())}, expected {SEED_BLOB})")
        if args.runs < 2:
            problems.append(f"--runs {args.runs}: give 2 or more (each process's first run is left out of the time)")
        if problems:
            print("error: " + "; ".join(problems), file=sys.stderr)
            return 2
        data_dir = Path(args.data_dir).expanduser()
        tools = toolchain()  # without a C compiler and Python.h compiling fails, after minutes: go to the graph
        print(f"toolchain: C compiler {tools['c_compiler'] or 'MISSING'}, Python headers "
              f"{tools['python_headers'] or 'MISSING'}" + ("" if tools["ok"] else f"; torch.compile cannot build GPU "
              f"kernels here, so the fast arm tries {', '.join(without_compile(modes))} only"), flush=True)
        if not tools["ok"]:
            modes = without_compile(modes)
        plan = gpu_plan(data_dir, seed_main, out, args.runs, modes)
    clock = Clock(args.budget if args.budget is not None else (240.0 if args.dry_run else 540.0))
    with tempfile.TemporaryDirectory(prefix="speedrun-verify-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        proof = Proof(plan, out, work, clock, data_dir, seed_main)
        given = argv if argv is not None else sys.argv[1:]
        proof.summary["command"] = " ".join(["python -m speedrun.verify", *given])
        proof.summary["toolchain"] = dict(toolchain(), fast_modes=list(plan.fast_modes))
        for name, stage in (("environment", proof.environment), ("seed_diff", proof.seed_diff),
                            ("whitening", proof.whitening), ("side-by-side", proof.side_by_side),
                            ("bench", proof.benches)):
            with proof.guard(name):
                stage()
        proof.summary["nvidia_smi_at_end"] = nvidia_smi()  # clocks and temperature after the load
        proof.summary["finished"] = True
        proof.save()
        proof.log(f"done in {clock.elapsed():.0f} s; summary in {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
