"""Weights & Biases: one W&B run per record, id `<study>-<run_id>` with resume="allow" (a second export resumes the
same run, never a new one); the study is the group, the cell a tag, the config the run's config, the history
logged against an `epoch` step metric, the final results the summary, a failed or diverged record a failed run
(exit code 1). The report is a run of job type `report` with report.md, report.json and figures/ in an artifact,
the figures as images and the law's numbers in its summary. WANDB_MODE=offline writes runs under
`<dir>/wandb/` for `wandb sync` later."""
from __future__ import annotations

import os
from pathlib import Path

from .mapping import ReportView, RunView

__all__ = ["WandbExporter", "DEFAULT_PROJECT"]

DEFAULT_PROJECT = "hlb-scaling"  # the studies of one project share it; each study is a group


class WandbExporter:
    def __init__(self, project: str | None = None, entity: str | None = None, wandb_dir: str | None = None):
        import wandb

        self._wandb = wandb
        self.project, self.entity = project or DEFAULT_PROJECT, entity
        self.dir = Path(wandb_dir or ".")
        self.offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun")
        mode = "offline, in " + str(self.dir / "wandb") if self.offline else "online"
        self.where = f"W&B project {(entity + '/') if entity else ''}{self.project} ({mode})"
        self._api = None if self.offline else wandb.Api()  # online: unreachable or not logged in fails here, once

    def export_run(self, view: RunView) -> str:
        wid = f"{view.study}-{view.run_id}"
        state = self._state(wid, view.fingerprint)
        if state == "skipped":
            return state
        run = self._init(wid, view.name, view.study, "train", [view.cell, view.status],
                         {**view.hparams, "fingerprint": view.fingerprint, "record": view.tags})
        run.define_metric("epoch")
        run.define_metric("*", step_metric="epoch")  # step = epoch, also when a resumed run logs again
        for epoch, row in view.history:
            run.log({"epoch": epoch, **row})
        run.summary.update(view.summary)
        run.finish(exit_code=1 if view.failed else 0)  # W&B's failed state
        return state

    def export_report(self, view: ReportView) -> str:
        wid = f"{view.study}-report"
        state = self._state(wid, view.fingerprint)
        if state == "skipped":
            return state
        run = self._init(wid, f"{view.study} report", view.study, "report", ["report"],
                         {**view.params, "fingerprint": view.fingerprint})
        artifact = self._wandb.Artifact(f"{view.study}-report", type="report")
        for path in view.files:
            artifact.add_file(str(path), name=f"figures/{path.name}" if path.parent.name == "figures" else path.name)
        run.log_artifact(artifact)
        images = {f"figures/{p.stem}": self._wandb.Image(str(p)) for p in view.files if p.suffix == ".png"}
        if images:
            run.log(images)
        run.summary.update(view.metrics)
        run.finish(exit_code=0)
        return state

    def close(self) -> None:
        teardown = getattr(self._wandb, "teardown", None)
        if teardown is not None:  # stop W&B's background service now, not at interpreter exit
            teardown()

    def _init(self, wid, name, group, job_type, tags, config):
        self.dir.mkdir(parents=True, exist_ok=True)
        return self._wandb.init(project=self.project, entity=self.entity, id=wid, resume="allow", name=name,
                                group=group, job_type=job_type, tags=tags, config=config, dir=str(self.dir),
                                reinit="create_new", allow_val_change=True,
                                settings=self._wandb.Settings(console="off", silent=True))

    def _state(self, wid: str, fingerprint: str | None) -> str:
        """created, updated (the id exists: this export resumes it) or skipped (it holds this very record)."""
        if self.offline:  # no server to ask: an offline folder of this id means it was exported before
            return "updated" if any((self.dir / "wandb").glob(f"offline-run-*-{wid}")) else "created"
        path = f"{self.entity or self._api.default_entity}/{self.project}/{wid}"
        try:
            run = self._api.run(path)
        except self._wandb.errors.CommError:  # no such run
            return "created"
        return "skipped" if fingerprint is not None and run.config.get("fingerprint") == fingerprint else "updated"
