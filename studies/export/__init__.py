"""Export finished run records (and a study's report) to the trackers researchers already use, from one process.

TRACKERS is the one table of trackers: adding one is an entry here plus its module, a class with
`export_run(RunView)` and `export_report(ReportView)` returning "created", "updated" or "skipped", `close()` and
`where` (one line naming the destination). Trackers are imported only when used, so the core install needs none
of them; a missing one is an ExportError naming the extra to install.

Records are the truth: every export is keyed by run_id, so exporting again updates and never duplicates, and
`python -m studies export` catches up whatever a live export (`run --export`) had to skip."""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .mapping import report_view, run_view

__all__ = ["TRACKERS", "Tracker", "ExportError", "ExportTally", "open_exporter", "export_folder", "study_folders"]


@dataclass(frozen=True)
class Tracker:
    module: str  # studies.export.<module>
    cls: str
    package: str  # what must import
    extra: str  # pip install -e ".[extra]"
    options: tuple  # the keyword arguments its class takes, from the command line's options of the same name


TRACKERS = {
    "mlflow": Tracker("to_mlflow", "MlflowExporter", "mlflow", "mlflow", ("uri", "artifacts")),
    "tensorboard": Tracker("to_tensorboard", "TensorBoardExporter", "tensorboard", "tensorboard", ("logdir",)),
    "wandb": Tracker("to_wandb", "WandbExporter", "wandb", "wandb", ("project", "entity", "wandb_dir")),
}


class ExportError(Exception):
    """The tracker cannot be used (not installed, unreachable, refused); one line saying what to do."""


@dataclass
class ExportTally:
    where: str
    created: list = field(default_factory=list)  # "study/run_id"
    updated: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # unchanged since the last export
    failed: list = field(default_factory=list)  # ("study/run_id", why)

    def count(self, state: str, key: str) -> None:
        getattr(self, state).append(key)

    def line(self) -> str:
        text = (f"{self.where}: {len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.skipped)} skipped (unchanged)")
        return text + (f", {len(self.failed)} failed" if self.failed else "")


def open_exporter(name: str, **options):
    """The tracker's exporter, connected. ExportError when it is not installed or cannot be reached."""
    if name not in TRACKERS:
        raise ExportError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
    tracker = TRACKERS[name]
    try:
        importlib.import_module(tracker.package)
    except ImportError as exc:
        raise ExportError(f"{name} is not installed ({exc}); install it with: pip install -e \".[{tracker.extra}]\"") \
            from None
    cls = getattr(importlib.import_module(f"{__name__}.{tracker.module}"), tracker.cls)
    kwargs = {k: v for k, v in options.items() if k in tracker.options and v is not None}
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 — each tracker has its own errors; the user needs one line
        raise ExportError(f"{name}: cannot use it with {kwargs or 'its defaults'}: {_one_line(exc)}") from None


def study_folders(results_dir: str | Path) -> list[Path]:
    """A study's folder (it has runs/), or every study folder directly under a results root."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder; pass a study's results folder (results/<study>) or a results root")
    if (root / "runs").is_dir():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / "runs").is_dir())
    if not found:
        raise ExportError(f"no study under {root}: neither {root}/runs/ nor <study>/runs/ below it; run a study first "
                          "(python -m studies run ...)")
    return found


def export_folder(exporter, study_dir: Path, tally: ExportTally, *, report: bool = True, say=print) -> None:
    """Export every record of one study folder (the study is the folder's name), then its report."""
    study = study_dir.name
    for path in sorted((study_dir / "runs").glob("*.json")):
        if path.name.startswith("."):
            continue
        key = f"{study}/{path.stem}"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            state = exporter.export_run(run_view(record, study))
        except Exception as exc:  # noqa: BLE001 — one bad record or refused call must not stop the others
            tally.failed.append((key, _one_line(exc)))
            say(f"  failed  {key}: {_one_line(exc)}")
            continue
        tally.count(state, key)
    view = report_view(study_dir, study) if report else None
    if view is not None:
        try:
            state = exporter.export_report(view)
            tally.count(state, f"{study}/report")
            say(f"  report  {study}: {state} ({len(view.files)} files, law {view.law or 'none'})")
        except Exception as exc:  # noqa: BLE001
            tally.failed.append((f"{study}/report", _one_line(exc)))
            say(f"  failed  {study}/report: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"
