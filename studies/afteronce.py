"""The study's [after] command, fired exactly once per completed grid, however many schedulers share the study.

Several schedulers on one results folder (an `sbatch --array` of `studies run`, see studies/README.md) each end
when they run out of runs to claim. The one that finishes LAST must fire [after]; the others must not. So every
scheduler, after its own records are written, reads the folder again: only when every run of the grid has an ok
record does it try to fire. That check cannot miss: the scheduler writing the last record reads the folder after
that write, so it sees every record. Two that finish together may both see a complete grid; they then race to
create a marker file `<results>/<study>/after-<grid>.json` atomically (locks.create_once), and only the winner
runs the command. `<grid>` is a hash of the grid's run_ids, so a grid that grows (more seeds) fires again when it
is complete again. A command that fails removes its marker, so the next `studies run` tries again.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path

from .fsutil import host
from .locks import create_once
from .plan import plan_study
from .plugins import after_argv, run_after
from .spec import Study
from .store import StudyPaths

__all__ = ["after_once", "marker_path"]


def marker_path(study: Study, results: str | Path, run_ids: list[str]) -> Path:
    digest = hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:12]
    return StudyPaths.of(results, study.name).root / f"after-{digest}.json"


def after_once(study: Study, results: str | Path, run_ids: list[str] | None = None) -> tuple[int, str | None]:
    """Fire [after] if every run (default: the grid's) has an ok record and no scheduler has fired it for this
    grid yet. Returns (exit code of the command or 0, why it did not fire: None when it fired)."""
    paths = StudyPaths.of(results, study.name)
    if run_ids is None:
        plan = plan_study(study, paths)
        not_ok = len(plan.runs) - plan.count("done")
        if not_ok:
            return 0, (f"not yet: {not_ok} run(s) have no ok record (running elsewhere: the scheduler that finishes "
                       f"last runs it)")
        run_ids = [r.run_id for r in plan.runs]
    marker = marker_path(study, results, run_ids)
    content = json.dumps({"host": host(), "pid": os.getpid(), "runs": len(run_ids),
                          "fired_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
    if not create_once(marker, content):
        try:
            who = json.loads(marker.read_text())
            by = f" by {who['host']}:{who['pid']} at {who['fired_at']}"
        except (OSError, ValueError, KeyError, TypeError):
            by = ""
        return 0, (f"already fired for these {len(run_ids)} runs{by} ({marker.name}); to run it again: "
                   f"{shlex.join(after_argv(study, results))}")
    code = run_after(study, results)
    if code != 0:
        marker.unlink(missing_ok=True)  # not done: the next `studies run` tries again
    return code, None
