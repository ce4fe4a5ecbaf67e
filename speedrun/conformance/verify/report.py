"""The proof's README.md: its summary.json as tables a reader can commit under results/gpu/<date>-<gpu>/."""
from __future__ import annotations

__all__ = ["report_markdown"]


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _num(x, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _arm_row(label: str, s: dict) -> str:
    sd = s.get("ema_val_acc_sd")
    mean = s.get("ema_val_acc_mean")
    acc = "–" if mean is None else f"{_pct(mean)} ± {_num(sd and 100 * sd, '.2f')}"
    welch, tost = s.get("welch_vs_seed") or {}, s.get("tost_vs_seed") or {}
    welch_text = "–" if welch.get("p") is None else f"{welch['p']:.3f}"
    if tost.get("p") is None:
        tost_text = "–"
    else:
        lo, hi = tost["ci90"]
        verdict = "equivalent" if tost["equivalent"] else "not shown equivalent"
        tost_text = f"p {tost['p']:.3f} ({verdict}; 90% CI {100 * lo:+.2f} to {100 * hi:+.2f} points)"
    return (f"| {label} | {s.get('n', 0)} | {acc} | {s.get('n_timed', 0)} | {_num(s.get('median_train_time_s'))} | "
            f"{_num(s.get('time_ratio_vs_seed'))} | {welch_text} | {tost_text} |")


def report_markdown(summary: dict) -> str:
    env = summary.get("environment", {})
    gpu = env.get("gpu", {})
    lines = [f"# {summary['what']}", "",
             f"Command: `{summary.get('command', '')}`  ",
             f"Started {summary.get('started_at')}, {summary.get('elapsed_s')} s of a "
             f"{summary['budget_s']:.0f} s budget"
             f"{'' if summary.get('finished') else ' (still running, or cut off)'}.  ",
             f"Machine: {gpu.get('name', 'no GPU')} ({gpu.get('memory_gib', '–')} GiB), torch {env.get('torch')}, "
             f"CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}, Python {env.get('python')}, "
             f"git {str(env.get('git_commit'))[:10]}{' (dirty)' if env.get('git_dirty') else ''}.", "",
             "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for name, st in summary.get("stages", {}).items():
        lines.append(f"| {name} | {st.get('status')} | {st.get('seconds', '')} |")
    for error in summary.get("errors") or []:
        lines.append(f"\nERROR: {error}")
    diff = summary.get("seed_diff")
    if diff:
        lines += ["", "## seed_diff (our step against the seed's code, same weights and batches)", "",
                  "checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}"
                                         for k, v in (diff.get("checks") or {}).items()),
                  "(full figures: seed_diff.json)"]
    white = summary.get("whitening")
    if white:
        lines += ["", "## Whitening (ours pooled against the seed's chunk average)", "",
                  f"filters where ours reproduces the seed's (|cos| > 0.999, norms within 0.1%): "
                  f"{white.get('pooled_matches_seed')}; the seed reproduces its own across chunk orders: "
                  f"{white.get('seed_matches_itself')} (whitening.json)"]
    sbs = summary.get("side_by_side")
    if sbs:
        lines += ["", "## Side by side (final EMA test accuracy; training time per run)", "",
                  "Times: median over runs that were not their process's first. Welch and TOST (±0.2 points) "
                  "against the seed's runs pooled over both seed arms."
                  + (f" The seed's data: {summary['seed_data']}." if summary.get("seed_data") else ""), "",
                  "| arm | n | EMA accuracy, mean ± SD (points) | n timed | median train_time_s | ours/seed time | "
                  "Welch p | TOST |", "|---|---|---|---|---|---|---|---|"]
        for name in ("seed", "ours-eager", "ours-fast"):
            if sbs.get(name):
                arm = summary.get("arms", {}).get(name, {})
                label = name if name == "seed" else f"{name} ({arm.get('mode', '')})"
                lines.append(_arm_row(label, sbs[name]))
    arms = summary.get("arms")
    if arms:
        lines += ["", "Arms in the order they ran:", ""]
        for name, arm in arms.items():
            attempts = arm.get("attempts") or []
            lines.append(f"- {name}: {arm.get('status')}, {arm.get('runs_done', 0)} of {arm.get('runs_planned', '?')} "
                         f"runs, {arm.get('seconds', '–')} s"
                         + (f", attempts {attempts}" if len(attempts) > 1 else "")
                         + (f", compile_s {[round(c, 1) for c in arm['compile_s']]}" if arm.get("compile_s") else ""))
    benches = summary.get("bench") or []
    if benches:
        lines += ["", "## speedrun bench", "", "| width | mode | images/s | GFLOP/s | s/step | compile_s |",
                  "|---|---|---|---|---|---|"]
    for b in benches:
        mode = " + ".join(m for m, on in (("compile", b["compile"]), ("graph", b.get("cuda_graph"))) if on) or "eager"
        lines.append(f"| {b['width']} | {mode} | {b['images_per_s']:.0f} | {b['train_gflops_per_s']:.0f} | "
                     f"{b['seconds_per_step']:.4f} | {b.get('compile_s', 0):.1f} |")
    return "\n".join(lines) + "\n"
