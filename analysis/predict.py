"""Predictions of a fitted law at cells that were not run, with 95% intervals from the bootstrap draws."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bootstrap import percentile_interval
from .errors import AnalysisError
from .fits import FitResult
from .laws import LAWS, Law, compute_law, epochs_law, joint_law, log_error

__all__ = ["Prediction", "predict", "num_params_for_width"]


@dataclass(frozen=True)
class Prediction:
    """The law's expected error at `inputs` and its 95% interval (of the mean over seeds, not of one run).

    Fields are floats for scalar inputs and arrays for array inputs."""

    law: str
    inputs: dict  # the law's variables, e.g. {"num_params": 2.6e7, "epochs": 80}
    error: float
    error_low: float
    error_high: float

    @property
    def ema_val_acc(self):
        return 1.0 - self.error

    @property
    def ema_val_acc_low(self):
        return 1.0 - self.error_high

    @property
    def ema_val_acc_high(self):
        return 1.0 - self.error_low


def predict(result: FitResult, **inputs) -> Prediction:
    """Predict `result`'s law at the given values of its variables, e.g. predict(joint, width=160, epochs=80).

    A joint law in `num_params` also accepts `width`: an observed width maps to its recorded num_params, an
    unobserved one to a power law num_params = k·width^p fitted to the observed widths.
    """
    law = _law_of(result)
    values = _resolve(result, inputs)
    arrays = np.broadcast_arrays(*[np.asarray(values[v], dtype=float) for v in result.variables])
    shape = arrays[0].shape
    x = np.column_stack([a.ravel() for a in arrays])
    if not (np.isfinite(x).all() and (x > 0).all()):
        raise AnalysisError(f"{', '.join(result.variables)} must be positive numbers, got {inputs}")
    params = np.array([result.params[p] for p in law.params])
    point = np.exp(log_error(law, params, x))
    if len(result.draws):
        low, high = percentile_interval(np.exp(log_error(law, result.draws, x)))
    else:
        low = high = np.full(len(x), np.nan)

    def shaped(a):
        a = np.reshape(a, shape)
        return float(a) if a.ndim == 0 else a

    return Prediction(result.law, {k: shaped(values[k]) for k in result.variables},
                      shaped(point), shaped(low), shaped(high))


def num_params_for_width(result: FitResult, width):
    """num_params at `width`: the recorded value for an observed width, else k·width^p fitted to them."""
    sizes = result.size_of_width
    if not sizes:
        raise AnalysisError("this fit has no recorded num_params per width; pass num_params=... instead of width")
    width = np.asarray(width, dtype=float)
    known = np.array([sizes.get(w, np.nan) for w in np.atleast_1d(width).ravel().tolist()]).reshape(width.shape)
    if np.isfinite(known).all():
        return known
    if len(sizes) < 2:
        raise AnalysisError(f"num_params is recorded for width {list(sizes)} only; pass num_params=... for "
                            f"other widths")
    w, n = np.log(np.array(list(sizes))), np.log(np.array(list(sizes.values())))
    slope, intercept = np.polyfit(w, n, 1)
    return np.where(np.isfinite(known), known, np.exp(intercept + slope * np.log(width)))


def _resolve(result: FitResult, inputs: dict) -> dict:
    """The law's variables from the caller's keywords (width → num_params where needed)."""
    inputs = dict(inputs)
    for key, fixed in result.subset.items():
        if key in inputs and not np.all(np.asarray(inputs.pop(key)) == fixed):
            raise AnalysisError(f"this {result.law} law was fitted at {key}={fixed}; use the fit for that {key}")
    if "num_params" in result.variables and "num_params" not in inputs and "width" in inputs:
        inputs["num_params"] = num_params_for_width(result, inputs.pop("width"))
    missing = [v for v in result.variables if v not in inputs]
    unknown = [k for k in inputs if k not in result.variables]
    if missing or unknown:
        accepted = list(result.variables) + (["width"] if "num_params" in result.variables else [])
        raise AnalysisError(f"predict() for the {result.law} law takes {', '.join(accepted)}; "
                            f"missing {missing}, unexpected {unknown}")
    return inputs


def _law_of(result: FitResult) -> Law:
    if result.law == "epochs":
        return epochs_law()
    if result.law == "joint":
        return joint_law(result.variables[0])
    if result.law == "compute":
        return compute_law()
    raise AnalysisError(f"unknown law {result.law!r}; valid laws: {', '.join(LAWS)}")
