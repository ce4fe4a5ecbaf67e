"""MLflow: the study is an experiment, each record one run found again by its `run_id` tag, the report one more run
(tag `kind = report`) holding report.md, report.json and figures/ as artifacts and the law's numbers as metrics.

MLflow never overwrites a param or a metric point, so a record that changed since it was exported (a failed run
that later succeeded) replaces its tracker run: the old one is deleted (MLflow's soft delete; `mlflow gc` purges
it) and a new one made, so the experiment keeps exactly one live run per run_id."""
from __future__ import annotations

import time
from pathlib import Path

from .mapping import ReportView, RunView, metric_name

__all__ = ["MlflowExporter", "DEFAULT_URI"]

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow's own default store, in the working folder
_BATCH = 100  # MLflow takes at most 100 params (and 100 tags, 1000 metrics) per log_batch
_REPORT_KEY = "report"  # the report run's `run_id` tag: no record has it (run ids are 12 hex digits)


class MlflowExporter:
    def __init__(self, uri: str | None = None, artifacts: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or DEFAULT_URI
        self.where = f"MLflow at {self.uri}"
        self._artifacts = artifacts
        self._client = MlflowClient(tracking_uri=self.uri)
        self._experiments: dict[str, str] = {}  # study -> experiment id
        self._known: dict[str, dict[str, tuple]] = {}  # study -> run_id tag -> (MLflow run id, fingerprint)
        self._client.search_experiments(max_results=1)  # reach the store now: an unusable URI fails here, once

    def export_run(self, view: RunView) -> str:
        known = self._runs_of(view.study)
        old = known.get(view.run_id)
        if old is not None and old[1] == view.fingerprint:
            return "skipped"
        tags = {**view.tags, "fingerprint": view.fingerprint, "kind": "record"}
        run = self._client.create_run(self._experiments[view.study], start_time=view.start_ms, tags=tags,
                                      run_name=view.name)
        rid = run.info.run_id
        self._log(rid, params=view.params, metrics=self._metrics(view))
        self._client.set_terminated(rid, status="FAILED" if view.failed else "FINISHED", end_time=view.end_ms)
        if old is not None:
            self._client.delete_run(old[0])
        known[view.run_id] = (rid, view.fingerprint)
        return "updated" if old is not None else "created"

    def export_report(self, view: ReportView) -> str:
        known = self._runs_of(view.study)
        old = known.get(_REPORT_KEY)
        if old is not None and old[1] == view.fingerprint:
            return "skipped"
        run = self._client.create_run(self._experiments[view.study], run_name=f"{view.study} report",
                                      tags={"run_id": _REPORT_KEY, "kind": "report", "study": view.study,
                                            "fingerprint": view.fingerprint})
        rid = run.info.run_id
        now = int(time.time() * 1000)
        from mlflow.entities import Metric

        self._log(rid, params=view.params, metrics=[Metric(k, v, now, 0) for k, v in view.metrics.items()])
        for path in view.files:
            self._client.log_artifact(rid, str(path), "figures" if path.parent.name == "figures" else None)
        self._client.set_terminated(rid, status="FINISHED")
        if old is not None:
            self._client.delete_run(old[0])
        known[_REPORT_KEY] = (rid, view.fingerprint)
        return "updated" if old is not None else "created"

    def close(self) -> None:
        pass

    # -- helpers

    def _runs_of(self, study: str) -> dict:
        """The study's live runs by their run_id tag, read once per study (then kept up to date here)."""
        if study in self._known:
            return self._known[study]
        exp = self._client.get_experiment_by_name(study)
        if exp is None:
            location = self._artifact_location(study)
            self._experiments[study] = self._client.create_experiment(study, artifact_location=location)
            self._known[study] = {}
            return self._known[study]
        if exp.lifecycle_stage == "deleted":
            raise RuntimeError(f"MLflow experiment {study!r} is deleted at {self.uri}; restore it "
                               f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or purge it (mlflow gc)")
        self._experiments[study] = exp.experiment_id
        found: dict = {}
        token = None
        while True:
            page = self._client.search_runs([exp.experiment_id], filter_string="", max_results=1000, page_token=token)
            for run in page:
                tag = run.data.tags.get("run_id")
                if tag is not None:
                    if tag in found:  # left over by an export killed between creating and deleting: keep one
                        self._client.delete_run(found[tag][0])
                    found[tag] = (run.info.run_id, run.data.tags.get("fingerprint", ""))
            token = page.token
            if not token:
                break
        self._known[study] = found
        return found

    def _artifact_location(self, study: str) -> str | None:
        """--artifacts, else beside a sqlite store's file (MLflow's default would be ./mlruns in the working folder)."""
        if self._artifacts:
            return (Path(self._artifacts).resolve() / study).as_uri()
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri.removeprefix("sqlite:///"))
            return (db.resolve().parent / "mlartifacts" / study).as_uri()
        return None  # a server: its own artifact root

    def _metrics(self, view: RunView) -> list:
        from mlflow.entities import Metric

        points = {(k, epoch): v for epoch, row in view.history for k, v in row.items()}
        points.update({(k, view.epochs): v for k, v in view.summary.items()})  # the final value is the latest
        return [Metric(k, v, view.epoch_ms(step) or int(time.time() * 1000), step) for (k, step), v in points.items()]

    def _log(self, rid: str, *, params: dict, metrics: list) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self._client.log_batch(rid, params=items[i:i + _BATCH])
        for i in range(0, len(metrics), 1000):
            self._client.log_batch(rid, metrics=metrics[i:i + 1000])
