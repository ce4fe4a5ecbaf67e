"""`studies run --export TRACKER`: the scheduler's process exports each record as it lands.

A tracker never stops a study and never changes its exit code: if it cannot be opened, or an export fails, a
warning names what was skipped and the study goes on. After the first failure the tracker is not tried again in
this study (an unreachable server would otherwise stall the scheduler on every record); `studies export` catches
up later from the records."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TextIO

from . import ExportError, ExportTally, _one_line, open_exporter
from .mapping import run_view

__all__ = ["LiveExport"]


class LiveExport:
    def __init__(self, tracker: str, options: dict, err: TextIO):
        self.tracker, self.options, self.err = tracker, options, err
        self.skipped: list[str] = []  # run ids not exported
        self.problem: str | None = None  # why the tracker was given up
        self.tally = ExportTally(tracker)
        self._exporter = None
        self._study_dir: Path | None = None
        try:
            self._exporter = open_exporter(tracker, **options)
            self.tally.where = self._exporter.where
        except ExportError as exc:
            self._give_up(str(exc))

    def on_record(self, study_dir: Path, run_id: str) -> None:
        """Called by the scheduler once `study_dir/runs/<run_id>.json` is written (ok, failed or diverged)."""
        self._study_dir = Path(study_dir)
        if self._exporter is None:
            self.skipped.append(run_id)
            return
        path = self._study_dir / "runs" / f"{run_id}.json"
        if not path.is_file():  # a run that failed without a record (its lock was held elsewhere): nothing to export
            return
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            self.tally.count(self._exporter.export_run(run_view(record, self._study_dir.name)), run_id)
        except Exception as exc:  # noqa: BLE001 — whatever the tracker raises, the study goes on
            self.skipped.append(run_id)
            self._give_up(f"{self.tracker}: exporting {run_id} failed: {_one_line(exc)}")

    def finish(self) -> list[str]:
        """Close the tracker; the lines to print (a summary, or the warning naming what was skipped)."""
        if self._exporter is not None:
            try:
                self._exporter.close()
            except Exception as exc:  # noqa: BLE001
                self.problem = self.problem or f"{self.tracker}: closing failed: {_one_line(exc)}"
        lines = []
        if self.tally.created or self.tally.updated or self.tally.skipped:
            lines.append(f"export: {self.tally.line()}")
        if self.skipped:
            where = str(self._study_dir) if self._study_dir else "results/<study>"
            catch_up = shlex.join(["python", "-m", "studies", "export", where, "--to", self.tracker,
                                   *[a for k, v in self.options.items() if v is not None
                                     for a in (f"--{k.replace('_', '-')}", str(v))]])
            lines.append(f"warning: {len(self.skipped)} record(s) not exported to {self.tracker} "
                         f"({', '.join(self.skipped)}): {self.problem}; the records are kept — export them later "
                         f"with: {catch_up}")
        return lines

    def _give_up(self, why: str) -> None:
        if self.problem is None:
            print(f"warning: {why}; the study goes on without exporting", file=self.err)
        self.problem = self.problem or why
        self._exporter = None
