"""`python -m analysis report|summary|compare|fit|predict|plan|calibrate-checks DIR`, `seedlog LOG` and
`calibrate`: bad input (or a grid no law can be fitted to) gives one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import warnings
from pathlib import Path

from .aggregates import aggregate
from .bench.cli import add_bench_commands
from .cells import cell_table
from .cliargs import numbers, positive
from .comparison import EQUIVALENCE_MARGIN, compare_cell, compare_cells, compare_train_time
from .errors import AnalysisError
from .fits import FitResult, FitSkipped
from .laws import law_names
from .plan import plan_cells, plan_text
from .predict import predict_cell
from .records import load
from .reference import load_reference
from .provenance import checkout_notes
from .report.build import report
from .report.markdown import format_aggregate, markdown_table
from .seedlog import read_seed_log, seed_reference
from .selection import choose_law, fit_all
from .sizes import width_sizes
from .study import DEFAULT_BOOT, analyse, load_study, pool
from .tost_power import runs_needed
from .writer import write_atomic

__all__ = ["main"]

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for bad input, after one line on stderr)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed as one line)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = args.command(args)
        for w in caught:
            print(f"analysis: warning: {w.message}", file=sys.stderr)
        return code
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (AnalysisError, OSError) as exc:
        print(f"analysis: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _report(args) -> int:
    path = report(args.dir, n_boot=args.n_boot, n_jobs=args.jobs, seed=args.seed, loss=args.loss,
                  grid_file=args.grid, margin=args.margin / 100)
    print(f"wrote {path}")
    figures = sorted((path.parent / "figures").glob("*.png"))
    print(f"figures in {path.parent / 'figures'}: {', '.join(p.name for p in figures) or 'none'}")
    with warnings.catch_warnings():  # the report has already warned about any file it skipped
        warnings.simplefilter("ignore")
        frame = _frame(args.dir)
    for note in checkout_notes(frame):  # depends on this checkout, so never written into report.md
        print(f"note: {note}")
    return 0


def _summary(args) -> int:
    table = aggregate(_frame(args.dir))
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    else:
        print(markdown_table(format_aggregate(table)))
    return 0


def _compare(args) -> int:
    if args.against is not None:
        return _compare_folders(args)
    if args.against_precision is not None:
        raise AnalysisError("--against-precision picks the runs of an --against folder; give --against DIR too")
    reference = load_reference(args.reference)
    frame = _frame(args.dir)
    result = compare_cell(frame, reference, width=args.width, epochs=args.epochs, margin=args.margin / 100,
                          precision=args.precision)
    print(f"{reference.name} ({reference.source}; {reference.provenance}, {reference.hardware}) at width "
          f"{args.width or reference.width} × {args.epochs or reference.epochs} epochs")
    print(result.summary())
    _print_runs_needed(result, reference_fixed=True)
    times = compare_train_time(frame, reference, width=args.width, epochs=args.epochs)
    if times is not None:
        print(f"training time (s): {times.summary(percent=False)}; ours/reference = "
              f"{times.mean / times.reference_mean:.3f}")
    return 0


def _compare_folders(args) -> int:
    if args.width is None or args.epochs is None or args.reference is not None:
        raise AnalysisError("compare --against DIR compares one cell of two folders: give --width and --epochs, "
                            "and no --reference")
    result = compare_cells(_frame(args.dir), _frame(args.against), width=args.width, epochs=args.epochs,
                           margin=args.margin / 100, precision=args.precision,
                           other_precision=args.against_precision)
    sides = [f"{d}{f' ({p})' if p else ''}" for d, p in ((args.dir, args.precision),
                                                         (args.against, args.against_precision))]
    print(f"{sides[0]} against {sides[1]} at width {args.width} × {args.epochs} epochs")
    print(dataclasses.replace(result, margin=None).summary())
    print(result.equivalence_verdict)
    _print_runs_needed(result, reference_fixed=False)
    return 0


def _print_runs_needed(result, *, reference_fixed: bool) -> None:
    runs = runs_needed(result, reference_fixed=reference_fixed)
    if runs is not None:
        print(f"to decide it: {runs.text()}")


def _seedlog(args) -> int:
    log = read_seed_log(args.log)
    ref = seed_reference(log, width=args.width, epochs=args.epochs, hardware=args.hardware,
                         command=args.run_command, source=args.source or str(args.log))
    std = f", std {100 * ref['std']:.2f} pp" if ref["std"] is not None else ""
    time_std = f", std {ref['train_time_s_std']:.2f} s" if ref["train_time_s_std"] is not None else ""
    cut = f" ({log.incomplete} cut off, left out)" if log.incomplete else ""
    print(f"{ref['n']} complete runs of the seed's code{cut}, width {args.width} × {args.epochs} epochs on "
          f"{args.hardware}: ema_val_acc mean {100 * ref['mean']:.2f}%{std}; training time mean "
          f"{ref['train_time_s_mean']:.2f} s{time_std}")
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise AnalysisError(f"{out} exists; pass --force to replace it, or another --out")
        write_atomic(out, json.dumps(ref, indent=1) + "\n")
        print(f"wrote {out}; compare ours with: python -m analysis compare results/<study> --reference {out}")
    return 0


def _fit(args) -> int:
    runs, _ = pool(load_study(args.dir), args.pool)
    _pool_note(args, runs)
    cells = cell_table(runs)
    names = list(law_names()) if args.law == "all" else [args.law]
    kw = {"n_boot": args.n_boot, "n_jobs": args.jobs, "seed": args.seed, "loss": args.loss}
    results = fit_all(cells, names, **kw)
    if args.law != "all" and isinstance(results[args.law], FitSkipped):
        raise AnalysisError(results[args.law].reason)
    for result in results.values():
        print(result.summary() if isinstance(result, FitResult) else f"{result.law} law: not fitted: {result.reason}")
    return 0


def _predict(args) -> int:
    records = load_study(args.dir, args.grid)
    runs, name = pool(records, args.pool)
    if runs.empty:
        raise AnalysisError(f"no ok runs under {args.dir}: nothing to predict from")
    if args.format == "text":
        _pool_note(args, runs)
    cells = cell_table(runs)
    kw = {"n_boot": args.n_boot, "n_jobs": args.jobs, "seed": args.seed, "loss": args.loss}
    if args.law:
        fit = fit_all(cells, [args.law], **kw)[args.law]
        if isinstance(fit, FitSkipped):
            raise AnalysisError(f"the {args.law} law cannot be fitted to {args.dir}: {fit.reason}")
    else:  # the report's choice, as its checks make it (a law in N where the chosen one cannot reach this width)
        choice = choose_law(cells, **kw)
        if choice.fit is None:
            raise AnalysisError(f"no law can be fitted to {args.dir}: {choice.reason}")
        fit, why = choice.for_width(args.width, cells.width)
        if why and args.format == "text":
            print(f"note: {why}")
    prediction = predict_cell(fit, width_sizes(runs), args.width, args.epochs, study=name,
                              provisional=records.grid.provisional)
    if args.format == "json":
        if not math.isfinite(prediction.se_pred):  # the contract promises numbers: say why there are none
            raise AnalysisError(f"the {fit.name} law has no interval at this cell ({'; '.join(fit.notes) or 'no draws'})")
        print(json.dumps(prediction.to_json()))
    else:
        print(prediction.text())
    return 0


def _pool_note(args, runs) -> None:
    if args.pool:
        print(f"note: fitted to {len(runs)} runs, {args.dir}'s and those under {', '.join(args.pool)}: the added "
              "folders' cells are in-sample now, so they no longer test the law")


def _plan(args) -> int:
    study = analyse(args.dir, n_boot=args.n_boot, seed=args.seed)
    target = (args.target_width, args.target_epochs)
    candidates = plan_cells(study, args.widths, args.epochs, runs=args.runs, target=target)
    print(plan_text(study, candidates, target))
    return 0


def _frame(directory):
    return load(directory).frame


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m analysis", description="Analyse a study's run records (results/<study>).")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name, function, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("dir", help="folder of run records, e.g. results/<study>")
        sub.set_defaults(command=function)
        return sub

    def bootstrap_options(sub):
        sub.add_argument("--n-boot", type=int, default=DEFAULT_BOOT,
                         help=f"bootstrap draws per fit (default {DEFAULT_BOOT}; see the calibration benchmark)")
        sub.add_argument("--jobs", type=int, default=1, help="joblib workers for the bootstrap (default 1)")
        sub.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
        sub.add_argument("--loss", choices=("linear", "huber"), default="linear",
                         help="weighted least squares (default) or a Huber loss with delta = 1.345 standard errors")

    def grid_option(sub):
        sub.add_argument("--grid", default=None, metavar="STUDY.toml",
                         help="the study file whose [grid] the records come from (default: the built-in study of "
                              "the records' name, else inferred from the records)")

    def pool_option(sub):
        sub.add_argument("--with", dest="pool", action="append", default=[], metavar="DIR",
                         help="also fit the ok runs under DIR (repeatable; same recipe only), e.g. a check's folder "
                              "once it has been used as a check: a final estimate on all the data")

    def margin_option(sub):
        sub.add_argument("--margin", type=float, default=100 * EQUIVALENCE_MARGIN,
                         help=f"equivalence margin in accuracy points for TOST (default {100 * EQUIVALENCE_MARGIN:g})")

    rep = command("report", _report, "write DIR/report.md and DIR/figures/*.png")
    bootstrap_options(rep)
    grid_option(rep)
    margin_option(rep)
    summary = command("summary", _summary, "print the per-cell aggregate table")
    summary.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    compare = command("compare", _compare, "compare a cell with a sample of the seed's (published, or measured "
                                          "with seedlog): Welch's t-test")
    compare.add_argument("--width", type=int, default=None, help="default: the reference's width (128)")
    compare.add_argument("--epochs", type=int, default=None, help="default: the reference's epochs (80)")
    compare.add_argument("--reference", default=None, help="reference JSON (default: results/reference/...)")
    compare.add_argument("--against", default=None, metavar="DIR",
                         help="instead of a reference, the same cell's ok runs in another folder of records (e.g. "
                              "bf16 runs against fp32 runs of one recipe); needs --width and --epochs")
    compare.add_argument("--precision", default=None, help="only the runs that ran in this precision (fp32, bf16, "
                                                           "...); needed where a cell holds more than one")
    compare.add_argument("--against-precision", default=None, metavar="PRECISION",
                         help="the same, for the --against folder's runs")
    margin_option(compare)
    seedlog = commands.add_parser("seedlog", help="read the seed's console output into a reference file",
                                  description="Read what hlb-CIFAR10 v0.3.0's main.py printed for its runs: "
                                              "mean EMA accuracy and training time, optionally as a reference "
                                              "file for `compare --reference`.")
    seedlog.add_argument("log", help="the seed's console output (stdout of its main.py)")
    seedlog.add_argument("--width", type=int, default=64, help="the width the seed ran (default 64, its own)")
    seedlog.add_argument("--epochs", type=int, default=10, help="the epochs it ran (default 10, its own)")
    seedlog.add_argument("--hardware", required=True, help="where it ran, e.g. the GPU's name")
    seedlog.add_argument("--run-command", default="python main.py", help="how it was run, for the record")
    seedlog.add_argument("--source", default=None, help="what the code was (default: the log's path)")
    seedlog.add_argument("--out", default=None, help="write the reference JSON here")
    seedlog.add_argument("--force", action="store_true", help="replace an existing --out")
    seedlog.set_defaults(command=_seedlog)
    fit = command("fit", _fit, "fit the scaling laws with bootstrap intervals")
    fit.add_argument("--law", choices=("all",) + law_names(), default="all")
    bootstrap_options(fit)
    pool_option(fit)
    predict = command("predict", _predict, "predict one cell's mean accuracy and one run's, with intervals")
    predict.add_argument("--width", type=positive, required=True, help="network width (e.g. 64)")
    predict.add_argument("--epochs", type=positive, required=True, help="training epochs (e.g. 10)")
    predict.add_argument("--law", choices=law_names(), default=None,
                         help="default: the report's choice by cross-validation among laws that can predict WIDTH")
    predict.add_argument("--format", choices=("text", "json"), default="text")
    bootstrap_options(predict)
    grid_option(predict)
    pool_option(predict)
    plan = command("plan", _plan, "which cell to train next: cost, every law's prediction, how far apart they "
                                  "would be, and what the runs would tell about a target cell")
    plan.add_argument("--widths", type=numbers, default=None, metavar="W,W,...",
                      help="candidate widths (default: the study's and twice its widest)")
    plan.add_argument("--epochs", type=numbers, default=None, metavar="E,E,...",
                      help="candidate epochs (default: the study's and 2× and 4× its longest)")
    plan.add_argument("--runs", type=positive, default=3, help="runs (seeds) per candidate cell (default 3)")
    plan.add_argument("--target-width", type=positive, default=128, help="the target cell's width (default 128)")
    plan.add_argument("--target-epochs", type=positive, default=80, help="the target cell's epochs (default 80)")
    plan.add_argument("--n-boot", type=positive, default=DEFAULT_BOOT, help=f"draws per fit (default {DEFAULT_BOOT})")
    plan.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    add_bench_commands(commands, command)
    return parser
