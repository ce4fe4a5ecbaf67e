"""What a run record and a study's report.json become in any tracker: one `RunView` per record and one
`ReportView` per study, so every tracker module maps the same things the same way (the table in studies/README.md).

Trackers only render these views; none of them reads a record itself."""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

__all__ = ["RunView", "ReportView", "run_view", "report_view", "HISTORY_METRICS", "SUMMARY_METRICS", "metric_name"]

# Per-epoch columns of a record's `history` (results/README.md), logged with step = epoch.
HISTORY_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "ema_val_acc", "train_time_s")
# The record's final results: the tracker's summary (W&B summary, MLflow's latest value, TensorBoard's
# `summary/` scalars at the last epoch). The first four are the issue's; the rest cost nothing and are asked for.
SUMMARY_METRICS = ("ema_val_acc", "val_acc", "train_time_s", "train_flops", "val_loss", "wall_time_s", "num_params")
# Provenance that becomes tags: who ran what, where (strings in every tracker).
PROVENANCE = ("git_commit", "git_dirty", "device", "device_name", "precision", "host", "threads", "started_at",
              "finished_at", "attempts", "data_source", "schema_version")
FAILED_STATUSES = ("failed", "diverged")  # the tracker's failed state; the record's `error` says why


@dataclass(frozen=True)
class RunView:
    study: str
    run_id: str
    name: str  # short and readable in a tracker's run list: w16-e20-s2
    cell: str  # the grid cell, seeds collapsed: w16xe20
    status: str  # the record's: ok, failed, diverged
    params: dict  # config field -> text (JSON spelling for null and booleans)
    hparams: dict  # config field -> int, float, bool or str (TensorBoard's hparams keep types)
    history: list  # [(epoch, {metric: value})], finite values only
    summary: dict  # SUMMARY_METRICS present in the record, finite
    tags: dict  # str -> str: run_id, study, cell, status, error, provenance, versions.*
    fingerprint: str  # hash of the whole record: unchanged means nothing to update
    start_ms: int | None = None
    end_ms: int | None = None
    epochs: int = 0  # the step the summary sits at

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    def epoch_ms(self, epoch: int) -> int | None:
        """When the epoch ended: the start plus its cumulative train_time_s (else the end), for time axes."""
        row = dict(self.history).get(epoch, {})
        if self.start_ms is not None and "train_time_s" in row:
            return self.start_ms + int(1000 * row["train_time_s"])
        return self.end_ms


@dataclass(frozen=True)
class ReportView:
    study: str
    study_dir: Path
    files: list  # report.md, report.json and figures/*.png that exist, as paths
    law: str | None  # the chosen law
    metrics: dict = field(default_factory=dict)  # law.<param> estimates and bounds, cv, lack of fit: numbers
    params: dict = field(default_factory=dict)  # chosen_law, formula, n_runs: text
    report_md: str = ""
    fingerprint: str = ""  # hash of every file: unchanged means nothing to update


def run_view(record: dict, study: str) -> RunView:
    config = record.get("config") or {}
    width, epochs, seed = config.get("width"), config.get("epochs"), config.get("seed")
    history = []
    for row in record.get("history") or []:
        values = {k: float(row[k]) for k in HISTORY_METRICS if _finite(row.get(k))}
        if isinstance(row.get("epoch"), int) and values:
            history.append((row["epoch"], values))
    summary = {k: float(record[k]) for k in SUMMARY_METRICS if _finite(record.get(k))}
    cell = f"w{width}xe{epochs}"
    tags = {"run_id": str(record.get("run_id")), "study": study, "cell": cell, "status": str(record.get("status"))}
    if record.get("error"):
        tags["error"] = str(record["error"])[:4000]  # trackers cap tag values (MLflow: 8000 characters)
    tags.update({k: _text(record[k]) for k in PROVENANCE if record.get(k) is not None})
    tags.update({f"versions.{k}": str(v) for k, v in (record.get("versions") or {}).items()})
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return RunView(
        study=study, run_id=str(record.get("run_id")), name=f"w{width}-e{epochs}-s{seed}", cell=cell,
        status=str(record.get("status")),
        params={k: _text(v) for k, v in config.items()},
        hparams={k: v if isinstance(v, (bool, int, float, str)) else _text(v) for k, v in config.items()},
        history=history, summary=summary, tags=tags,
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        start_ms=_ms(record.get("started_at")), end_ms=_ms(record.get("finished_at")),
        epochs=max([e for e, _ in history], default=int(epochs) if isinstance(epochs, int) else 0))


def report_view(study_dir: Path, study: str) -> ReportView | None:
    """The study's report files and the chosen law's numbers from report.json; None without report.md or .json."""
    md, js = study_dir / "report.md", study_dir / "report.json"
    if not md.is_file() and not js.is_file():
        return None
    files = [p for p in (md, js) if p.is_file()] + sorted((study_dir / "figures").glob("*.png"))
    metrics: dict = {}
    params: dict = {}
    law = None
    if js.is_file():
        data = json.loads(js.read_text(encoding="utf-8"))
        law = data.get("chosen_law")
        chosen = next((x for x in data.get("laws", []) if x.get("chosen")), None)
        if chosen is not None:
            params = {"chosen_law": law, "formula": chosen.get("formula", ""), "n_runs": str(chosen.get("n_runs"))}
            for name, p in chosen.get("parameters", {}).items():
                key = metric_name(f"law.{name}")
                low, high = p.get("ci95") or (None, None)
                for suffix, value in (("", p.get("estimate")), (".ci95_low", low), (".ci95_high", high)):
                    if _finite(value):
                        metrics[key + suffix] = float(value)
            fit = chosen.get("lack_of_fit") or {}
            cv = chosen.get("cv") or {}
            for key, value in (("cv_rmse_points", cv.get("rmse_points")), ("chi2_per_dof", fit.get("chi2_per_dof")),
                               ("lack_of_fit_p", fit.get("p"))):
                if _finite(value):
                    metrics[key] = float(value)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return ReportView(study, study_dir, files, law, metrics, params,
                      md.read_text(encoding="utf-8") if md.is_file() else "", digest.hexdigest()[:16])


def metric_name(name: str) -> str:
    """A name every tracker accepts (MLflow: letters, digits, _ - . / and space): `c[w=8]` becomes `c_w_8`."""
    return re.sub(r"_+$", "", re.sub(r"[^A-Za-z0-9_.\-/ ]+", "_", name))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _ms(stamp) -> int | None:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None
