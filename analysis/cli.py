"""`python -m analysis report|summary|compare|fit DIR`: bad input gives one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from .aggregates import aggregate
from .comparison import compare_cell
from .errors import AnalysisError
from .fits import FitResult, FitSkipped, fit_compute_law, fit_epochs_laws, fit_joint_law
from .records import load
from .reference import load_reference
from .reporting import report
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
    result = compare_cell(_frame(args.dir), reference, width=args.width, epochs=args.epochs)
    print(f"{reference.name} ({reference.source}; published, {reference.hardware}) at width "
          f"{args.width or reference.width} × {args.epochs or reference.epochs} epochs")
    print(result.summary())
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
    compare = command("compare", _compare, "compare a cell with the seed's published numbers (Welch)")
    compare.add_argument("--width", type=int, default=None, help="default: the reference's width (128)")
    compare.add_argument("--epochs", type=int, default=None, help="default: the reference's epochs (80)")
    compare.add_argument("--reference", default=None, help="reference JSON (default: results/reference/...)")
    fit = command("fit", _fit, "fit the scaling laws with bootstrap intervals")
    fit.add_argument("--law", choices=("all", "epochs", "joint", "compute"), default="all")
    bootstrap_options(fit)
    return parser
