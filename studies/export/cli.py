"""The command line of the export: `python -m studies export DIR --to TRACKER [options]`, and the same options as
`python -m studies run STUDY --export TRACKER` (studies/cli.py registers both through this module).

Exit codes of `export`: 0 everything exported (or unchanged), 1 some record or the report failed, 2 the tracker or
the folder cannot be used."""
from __future__ import annotations

import argparse
import sys

from . import TRACKERS, ExportError, ExportTally, export_folder, open_exporter, study_folders

__all__ = ["add_export_parser", "add_tracker_options", "tracker_options", "export_main"]

_OPTIONS = {  # option -> (metavar, help); each tracker takes those named in its TRACKERS entry
    "uri": ("URI", "mlflow: the tracking URI (default sqlite:///mlflow.db in the working folder, MLflow's own default)"),
    "artifacts": ("DIR", "mlflow: where new experiments keep artifacts (default: beside a sqlite store's file, "
                         "else the server's own root)"),
    "logdir": ("DIR", "tensorboard: the log folder (default runs); each study is a folder in it"),
    "project": ("NAME", "wandb: the project (default hlb-scaling); each study is a group in it"),
    "entity": ("NAME", "wandb: the entity (default: your default entity); WANDB_MODE=offline is honoured"),
    "wandb_dir": ("DIR", "wandb: the folder W&B writes its wandb/ folder in (default: the working folder)"),
}


def add_tracker_options(parser: argparse.ArgumentParser) -> None:
    for name, (metavar, help_text) in _OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=metavar, help=help_text)


def tracker_options(args) -> dict:
    return {name: getattr(args, name, None) for name in _OPTIONS}


def add_export_parser(sub) -> argparse.ArgumentParser:
    export = sub.add_parser("export", help="send finished records (and the report) to W&B, MLflow or TensorBoard",
                            description="Export run records to a tracker, keyed by run_id: exporting again updates "
                                        "what changed and never duplicates.")
    export.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="a study's results folder (results/<study>) or a results root (every study in it)")
    export.add_argument("--to", required=True, choices=tuple(TRACKERS), help="the tracker")
    export.add_argument("--no-report", action="store_true", help="records only: leave report.md/report.json out")
    add_tracker_options(export)
    return export


def export_main(args) -> int:
    try:
        folders = study_folders(args.results_dir)
        exporter = open_exporter(args.to, **tracker_options(args))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tally = ExportTally(exporter.where)
    try:
        for folder in folders:
            before = (len(tally.created), len(tally.updated), len(tally.skipped), len(tally.failed))
            export_folder(exporter, folder, tally, report=not args.no_report)
            c, u, s, f = (len(tally.created) - before[0], len(tally.updated) - before[1],
                          len(tally.skipped) - before[2], len(tally.failed) - before[3])
            print(f"{folder.name}: {c} created, {u} updated, {s} skipped (unchanged)" + (f", {f} failed" if f else ""))
    finally:
        exporter.close()
    print(tally.line())
    for key, why in tally.failed:
        print(f"  not exported {key}: {why}", file=sys.stderr)
    return 1 if tally.failed else 0
