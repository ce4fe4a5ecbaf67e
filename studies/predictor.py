"""The law's plug-in point for adaptive seeds: a command that reads a folder of run records and answers, as one
JSON object on stdout, the law's prediction at a named cell. studies never imports analysis (the import rule
runs one way), so the fit runs in a subprocess:

    <predictor...> DIR --width W --epochs E --format json

`predictor` comes from the study's [adaptive] table; its default is `python -m analysis predict`, and a leading
"python" means this interpreter. The answer's keys are analysis's contract: study, width, epochs, law,
predicted_acc, se_pred, ci95 [lo, hi], pi95 [lo, hi], seed_sd, n_runs, n_cells, provisional, not_identified
[...], extrapolated — accuracies as fractions, like ema_val_acc. Exit code 2 with one line on stderr means the
law cannot be fitted from these records. Any command that keeps this contract can stand in (tests use a small
script).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

from .fsutil import atomic_write_text
from .plugins import checkout_env, command_argv

__all__ = ["Predictor", "PredictorError", "ANSWER_KEYS", "PREDICT_TIMEOUT_S"]

ANSWER_KEYS = ("study", "width", "epochs", "law", "predicted_acc", "se_pred", "ci95", "pi95", "seed_sd", "n_runs",
               "n_cells", "provisional", "not_identified", "extrapolated")
PREDICT_TIMEOUT_S = 1800.0  # a bootstrap fit of a large grid takes minutes; a hung one must not hold a study


class PredictorError(RuntimeError):
    """The predictor could not answer (cannot fit, crashed, bad output); the message is one line."""


class Predictor:
    """Calls the command on a set of records; answers are cached in `cache_dir` by the records' hash."""

    def __init__(self, command: tuple[str, ...], at: dict, study: str, cache_dir: Path | None = None,
                 write_cache: bool = True):
        self.command = command_argv(command)
        self.at, self.study = dict(at), study
        self.cache_dir, self.write_cache = cache_dir, write_cache
        self.calls = 0  # subprocesses actually started (answers from the cache do not count)

    def __call__(self, records: list[dict]) -> dict:
        records = sorted(records, key=lambda r: r["run_id"])
        key = hashlib.sha256(json.dumps([list(self.command[1:]), self.at, records], sort_keys=True,
                                        default=str).encode()).hexdigest()[:20]
        cached = self.cache_dir / f"predict-{key}.json" if self.cache_dir is not None else None
        if cached is not None and cached.is_file():
            try:
                return _checked(json.loads(cached.read_text(encoding="utf-8")))
            except (OSError, ValueError, PredictorError):
                pass  # unreadable: ask again
        answer = self._ask(records)
        if cached is not None and self.write_cache:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cached, json.dumps(answer, sort_keys=True) + "\n")
        return answer

    def _ask(self, records: list[dict]) -> dict:
        flags = [arg for k, v in self.at.items() for arg in (f"--{k.replace('_', '-')}", f"{v:g}")]
        with tempfile.TemporaryDirectory(prefix="studies-predict-") as tmp:
            folder = Path(tmp) / self.study
            (folder / "runs").mkdir(parents=True)
            for record in records:
                (folder / "runs" / f"{record['run_id']}.json").write_text(json.dumps(record), encoding="utf-8")
            cmd = [*self.command, str(folder), *flags, "--format", "json"]
            self.calls += 1
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PREDICT_TIMEOUT_S,
                                      env=checkout_env())
            except (OSError, subprocess.SubprocessError) as e:
                raise PredictorError(f"predictor {' '.join(self.command)} could not run: {e}") from None
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        if proc.returncode == 2:
            raise PredictorError(last or "the predictor cannot fit these records (exit 2)")
        if proc.returncode != 0:
            raise PredictorError(f"predictor {' '.join(self.command)} failed (exit {proc.returncode}): {last}")
        try:
            return _checked(json.loads(proc.stdout))
        except ValueError:
            raise PredictorError(f"predictor {' '.join(self.command)} printed no JSON object: "
                                 f"{proc.stdout.strip()[:200]!r}") from None


def _checked(answer) -> dict:
    if not isinstance(answer, dict):
        raise PredictorError(f"predictor answered {type(answer).__name__}, expected a JSON object")
    missing = [k for k in ANSWER_KEYS if k not in answer]
    if missing:
        raise PredictorError(f"predictor answer lacks {', '.join(missing)} (contract: {', '.join(ANSWER_KEYS)})")
    for key in ("ci95", "pi95"):
        pair = answer[key]
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair)):
            raise PredictorError(f"predictor answer {key} is {pair!r}, expected [lo, hi]")
    return answer

