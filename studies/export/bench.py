"""`python -m studies.export.bench results/cpu-scaling [--repeat 3] [--out FILE.json]`: how long a whole
`python -m studies export` takes, as a user waits for it (a fresh process: imports included), to a fresh MLflow
sqlite store and a fresh TensorBoard logdir, then again onto the same (nothing changed: every record skipped).

The targets (issue 23, on two cores): cpu-scaling's 36 records plus its report in at most 30 s to MLflow sqlite
and 10 s to TensorBoard. Prints one line per export and the medians."""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

_TARGETS = {"mlflow": 30.0, "tensorboard": 10.0}


def _export(study: Path, tracker: str, target: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the export process, its last line)."""
    option = ["--uri", f"sqlite:///{target / 'mlflow.db'}"] if tracker == "mlflow" else ["--logdir", str(target / "tb")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "studies", "export", str(study), "--to", tracker, *option],
                          capture_output=True, text=True, cwd=target, env=os.environ.copy())
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"export to {tracker} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds, cpu, proc.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.export.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a study's results folder, e.g. results/cpu-scaling")
    parser.add_argument("--repeat", type=int, default=3, help="fresh exports per tracker (default 3)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not (args.study / "runs").is_dir():
        parser.error(f"{args.study} has no runs/ folder; pass a study's results folder such as results/cpu-scaling")
    study = args.study.resolve()
    result: dict = {"study": str(args.study), "python": sys.version.split()[0], "records": len(list((study / "runs").glob("*.json"))),
                    "cpus": os.cpu_count(), "load_avg_1min_before": os.getloadavg()[0], "trackers": {}}
    for tracker, target_s in _TARGETS.items():
        runs: dict = {"fresh_s": [], "fresh_cpu_s": [], "again_s": [], "again_cpu_s": []}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                for kind in ("fresh", "again"):  # again: onto the same store, every record unchanged
                    seconds, cpu, line = _export(study, tracker, Path(folder))
                    runs[f"{kind}_s"].append(seconds)
                    runs[f"{kind}_cpu_s"].append(cpu)
                    print(f"{tracker}: {kind} export {seconds:.1f} s wall, {cpu:.1f} s CPU — {line}", flush=True)
        medians = {f"median_{k}": statistics.median(v) for k, v in runs.items()}
        median = medians["median_fresh_s"]
        result["trackers"][tracker] = {**runs, **medians, "target_s": target_s, "met": median <= target_s}
        print(f"{tracker}: median {median:.1f} s wall ({medians['median_fresh_cpu_s']:.1f} s CPU) fresh, target "
              f"≤ {target_s:.0f} s: {'met' if median <= target_s else 'MISSED'}; {medians['median_again_s']:.1f} s "
              "again", flush=True)
    result["load_avg_1min_after"] = os.getloadavg()[0]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
