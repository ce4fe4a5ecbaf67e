"""`python -m analysis report|summary|compare|fit DIR` and `seedlog LOG`: bad input gives one line on stderr and
exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .aggregates import aggregate
from .comparison import compare_cell, compare_train_time
from .errors import AnalysisError
from .fits import FitResult, FitSkipped, fit_compute_law, fit_epochs_laws, fit_joint_law
from .records import load
from .reference import load_reference
from .reporting import report
from .seedlog import read_seed_log, seed_reference
from .tables import format_aggregate, markdown_table

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
    path = report(args.dir, n_boot=args.n_boot, n_jobs=args.jobs, seed=args.seed)
    print(f"wrote {path}")
    figures = sorted((path.parent / "figures").glob("*.png"))
    print(f"figures in {path.parent / 'figures'}: {', '.join(p.name for p in figures) or 'none'}")
    return 0


def _summary(args) -> int:
    table = aggregate(_frame(args.dir))
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    else:
        print(markdown_table(format_aggregate(table)))
    return 0


def _compare(args) -> int:
    reference = load_reference(args.reference)
    frame = _frame(args.dir)
    result = compare_cell(frame, reference, width=args.width, epochs=args.epochs)
    print(f"{reference.name} ({reference.source}; {reference.provenance}, {reference.hardware}) at width "
          f"{args.width or reference.width} × {args.epochs or reference.epochs} epochs")
    print(result.summary())
    times = compare_train_time(frame, reference, width=args.width, epochs=args.epochs)
    if times is not None:
        print(f"training time (s): {times.summary(percent=False)}; ours/reference = "
              f"{times.mean / times.reference_mean:.3f}")
    return 0


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
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(ref, indent=1) + "\n", encoding="utf-8")
        tmp.replace(out)
        print(f"wrote {out}; compare ours with: python -m analysis compare results/<study> --reference {out}")
    return 0


def _fit(args) -> int:
    frame = _frame(args.dir)
    kw = {"n_boot": args.n_boot, "n_jobs": args.jobs, "seed": args.seed}
    laws = ["epochs", "joint", "compute"] if args.law == "all" else [args.law]
    for law in laws:
        try:
            if law == "epochs":
                results = list(fit_epochs_laws(frame, **kw).values())
            else:
                results = [(fit_joint_law if law == "joint" else fit_compute_law)(frame, **kw)]
        except AnalysisError as exc:
            if args.law != "all":
                raise
            results = [FitSkipped(law, {}, str(exc))]
        for result in results:
            if isinstance(result, FitResult):
                print(result.summary())
            else:
                where = "".join(f" at {k}={v}" for k, v in result.subset.items())
                print(f"{result.law} law{where}: not fitted: {result.reason}")
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
        sub.add_argument("--n-boot", type=int, default=200, help="bootstrap draws per fit (default 200)")
        sub.add_argument("--jobs", type=int, default=1, help="joblib workers for the bootstrap (default 1)")
        sub.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")

    bootstrap_options(command("report", _report, "write DIR/report.md and DIR/figures/*.png"))
    summary = command("summary", _summary, "print the per-cell aggregate table")
    summary.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    compare = command("compare", _compare, "compare a cell with a sample of the seed's (published, or measured "
                                          "with seedlog): Welch's t-test")
    compare.add_argument("--width", type=int, default=None, help="default: the reference's width (128)")
    compare.add_argument("--epochs", type=int, default=None, help="default: the reference's epochs (80)")
    compare.add_argument("--reference", default=None, help="reference JSON (default: results/reference/...)")
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
    fit.add_argument("--law", choices=("all", "epochs", "joint", "compute"), default="all")
    bootstrap_options(fit)
    return parser
