"""Calibration of the checks' joint test on one study, by parametric bootstrap.

The joint test (joint.py) reads χ² = rᵀC⁻¹r against a χ² distribution with one degree of freedom per check.
That reference is exact for a linear law with known noise; here the law is nonlinear, C comes from a finite
bootstrap, and the seed SD is estimated from a few seeds per cell. So, for one study as it stands: were a law
exactly true (the law as fitted to the study's records), how often would its joint test reject at 5%, and how
often would it catch the checks sharing a shortfall of a given size?

Each simulated study keeps the real design:
- every ok run of the study is drawn again at its cell: the law's accuracy there plus Gaussian noise with one
  run's SD there (the fit's relative seed SD times the law's error, as the analysis models it: cells.py);
- every check the law takes in the real report gets as many runs as it has like-for-like runs, from the same
  law, all moved by `shift` accuracy points (0: the law holds at the checks);
- the law is refitted to the simulated runs as the report fits it (bootstrap, lack-of-fit widening) and the
  joint test is run on the simulated checks with `joint_test`, the report's own function.

The real study's χ² is then also read against the simulated ones (shift 0): the share of simulated χ² at least
as large is a p-value that does not lean on the χ² reference.

`python -m analysis calibrate-checks results/cpu-scaling` writes joint-calibration.json and .md to --out.
Synthetic draws; never a measurement of training.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..cells import cell_table
from ..joint import JOINT_ALPHA, JointCheck, joint_test
from ..errors import AnalysisError
from ..fits import fit_cells
from ..records import METRIC
from ..study import StudyAnalysis
from .calibrate import _git_state, _load, _wilson

__all__ = ["JointCalibration", "calibrate_joint", "write_joint_calibration", "DEFAULT_SHIFTS"]

DEFAULT_SHIFTS = (-0.25, -0.5)  # accuracy points: a shared shortfall of a quarter and half a point


@dataclass
class JointCalibration:
    study: str
    law: str
    checks: tuple  # (label, runs) per check the law takes
    observed: JointCheck  # the real report's joint test under this law
    seed_rel_sd: float  # the noise drawn: one run's SD as a fraction of the law's error there
    n_boot: int
    shifts: tuple  # points, 0 first
    chi2: dict = field(default_factory=dict)  # shift → simulated χ² values
    p: dict = field(default_factory=dict)  # shift → nominal p-values
    offset: dict = field(default_factory=dict)  # shift → (offset, low, high) in fractions
    failed: list = field(default_factory=list)  # why a simulated study could not be tested
    seconds: float = 0.0

    @property
    def n_studies(self) -> int:
        return len(self.chi2.get(0.0, ()))

    def summary(self) -> dict:
        k = len(self.checks)
        out = {"study": self.study, "law": self.law, "checks": [{"cell": c, "runs": n} for c, n in self.checks],
               "seed_rel_sd_percent": 100 * self.seed_rel_sd, "n_boot": self.n_boot, "studies": self.n_studies,
               "failed": len(self.failed), "failures": sorted(set(self.failed))[:5], "alpha": JOINT_ALPHA,
               "seconds": round(self.seconds, 1), "shifts": {}}
        for shift in self.shifts:
            chi2, p = np.array(self.chi2[shift]), np.array(self.p[shift])
            offset, low, high = np.array(self.offset[shift]).T
            truth = shift / 100
            rejected = int(np.sum(p < JOINT_ALPHA))
            out["shifts"][f"{shift:+g}"] = {
                "shift_points": shift, "rejected": rejected, "of": len(p), "rate": rejected / len(p),
                "wilson95": _wilson(rejected, len(p)), "mean_chi2": float(chi2.mean()), "dof": k,
                "offset_mean_points": float(100 * offset.mean()),
                "offset_ci_covers_shift": float(np.mean((low <= truth) & (truth <= high)))}
        null = np.array(self.chi2[0.0])
        out["null"] = {"chi2_95th": float(np.percentile(null, 95)), "reference_95th": float(stats.chi2.ppf(0.95, k)),
                       "ks_p_uniform": float(stats.kstest(self.p[0.0], "uniform").pvalue)}
        out["observed"] = {"chi2": self.observed.chi2, "p_nominal": self.observed.p,
                           "p_simulated": float((1 + np.sum(null >= self.observed.chi2)) / (1 + len(null))),
                           "offset_points": 100 * self.observed.offset}
        return out


def calibrate_joint(study: StudyAnalysis, law: str | None = None, *, n_studies: int = 200, n_boot: int = 400,
                    shifts=DEFAULT_SHIFTS, seed: int = 0, progress=None) -> JointCalibration:
    """The benchmark for `law` (default: the study's chosen law) on an analysed study with observed checks."""
    if study.choice is None or study.choice.fit is None:
        raise AnalysisError(f"{study.directory}: no law is fitted ({study.no_fit_reason or 'no ok runs'}); nothing "
                            "to calibrate")
    law = law or study.choice.chosen
    fits = {f.name: f for f in study.choice.fitted()}
    observed = next((j for j in study.joint if j.law == law), None)
    if law not in fits or observed is None:
        have = ", ".join(j.law for j in study.joint) or "none"
        raise AnalysisError(f"{study.directory}: the {law} law takes fewer than two observed checks, so it has no "
                            f"joint test to calibrate (laws that have one: {have}); add checks to checks.toml")
    truth = fits[law]
    results = {r.check: r for r in study.checks}
    counts = np.array([len(results[c].compared()) for c in observed.checks])
    num_params = np.array([results[c].predictions()[law].num_params for c in observed.checks], dtype=float)
    runs = study.runs[["width", "epochs", "seed", "num_params"]].reset_index(drop=True)
    true_runs = 1.0 - truth.predict_error(runs["num_params"].to_numpy(float), runs["epochs"].to_numpy(float),
                                          runs["width"].to_numpy(float))[0]
    widths = np.array([c.width for c in observed.checks], dtype=float)
    epochs = np.array([c.epochs for c in observed.checks], dtype=float)
    true_checks = 1.0 - truth.predict_error(num_params, epochs, widths)[0]
    run_sd, check_sd = truth.seed_sd_at(true_runs), truth.seed_sd_at(true_checks)
    shifts = (0.0,) + tuple(float(s) for s in shifts if float(s) != 0.0)
    result = JointCalibration(study.name, law, tuple((f"{c.width} × {c.epochs}", int(n)) for c, n in
                                                      zip(observed.checks, counts)),
                              observed, float(truth.seed_rel_sd), n_boot, shifts)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for k in range(n_studies):
        frame = runs.assign(status="ok", **{METRIC: true_runs + rng.normal(0.0, 1.0, len(runs)) * run_sd})
        noise = rng.normal(0.0, 1.0, len(counts)) * check_sd / np.sqrt(counts)  # a mean of `counts` runs
        try:
            fit = fit_cells(cell_table(frame), law, n_boot=n_boot, seed=seed + k, loss=study.options.get("loss", "linear"))
        except AnalysisError as exc:
            result.failed.append(str(exc))
            continue
        if len(fit.draws) < 2:
            result.failed.append("fewer than two bootstrap draws")
            continue
        for shift in shifts:
            joint = joint_test(fit, observed.checks, num_params, true_checks + noise + shift / 100, counts)
            result.chi2.setdefault(shift, []).append(joint.chi2)
            result.p.setdefault(shift, []).append(joint.p)
            result.offset.setdefault(shift, []).append((joint.offset, *joint.offset_ci))
        if progress:
            progress(k + 1)
    result.seconds = time.perf_counter() - started
    if not result.n_studies:
        raise AnalysisError(f"no simulated study could be fitted ({'; '.join(sorted(set(result.failed))[:3])})")
    return result


def write_joint_calibration(result: JointCalibration, out_dir, command: str) -> tuple:
    """joint-calibration.json and joint-calibration.md in `out_dir`; returns their paths."""
    from ..writer import write_atomic  # noqa: PLC0415 - as calibrate.py: the benchmark's own writer

    summary = result.summary()
    summary["command"] = command
    summary["code"] = _git_state()
    summary["machine"] = {"cpus": os.cpu_count(), "load_average_at_end": _load()}
    json_path = write_atomic(os.path.join(out_dir, "joint-calibration.json"), json.dumps(summary, indent=1) + "\n")
    md_path = write_atomic(os.path.join(out_dir, "joint-calibration.md"), _markdown(summary))
    return json_path, md_path


def _markdown(s: dict) -> str:
    code, k = s["code"], len(s["checks"])
    cells = ", ".join(f"{c['cell']} ({c['runs']} runs)" for c in s["checks"])
    lines = [f"# The joint test of {s['study']}'s checks under the {s['law']} law: size and power", "",
             f"Command: `{s['command']}` (code: commit {code['commit']}"
             f"{', with uncommitted changes to analysis/' if code['dirty'] else ''}).", "",
             f"Simulated studies (not measurements): {s['studies']} redraws of the study's ok runs and of its {k} "
             f"checks ({cells}) from the {s['law']} law as fitted to its records, with Gaussian seed noise whose SD is "
             f"{s['seed_rel_sd_percent']:.2f}% of the law's error at each cell; each refitted with {s['n_boot']} bootstrap draws and tested at "
             f"α = {s['alpha']:g}. A shift moves every check's runs by that many points off the law."
             + (f" {s['failed']} simulated studies could not be fitted: {'; '.join(s['failures'])}." if s["failed"] else ""),
             "", "| shift (points) | rejected | rate | 95% Wilson interval | mean χ² (dof) | mean offset (points) "
             "| offset's 95% CI covers the shift |", "|---|---|---|---|---|---|---|"]
    for row in s["shifts"].values():
        lo, hi = row["wilson95"]
        lines.append(f"| {row['shift_points']:+g} | {row['rejected']} / {row['of']} | {100 * row['rate']:.1f}% | "
                     f"[{100 * lo:.1f}%, {100 * hi:.1f}%] | {row['mean_chi2']:.2f} ({row['dof']}) | "
                     f"{row['offset_mean_points']:+.3f} | {100 * row['offset_ci_covers_shift']:.1f}% |")
    null, obs = s["null"], s["observed"]
    lines += ["", f"With the law true (shift 0) the test should reject in 5% of studies and the mean χ² should be "
                  f"{k}. The simulated χ²'s 95th percentile is {null['chi2_95th']:.2f}, against "
                  f"{null['reference_95th']:.2f} for χ² on {k} dof; the p-values against a uniform: "
                  f"Kolmogorov–Smirnov p = {null['ks_p_uniform']:.2g}.", "",
              f"The study's own checks: χ² = {obs['chi2']:.2f} on {k} dof, nominal p = {obs['p_nominal']:.2g}; "
              f"read against the simulated χ² instead, p = {obs['p_simulated']:.2g} (the share of simulated "
              f"studies with a χ² at least as large, counting the study itself); common offset "
              f"{obs['offset_points']:+.2f} points.", "",
              f"Time: {s['seconds']:.0f} s on {s['machine']['cpus']} CPUs (load average {s['machine']['load_average_at_end']} "
              "at the end).", ""]
    return "\n".join(lines)

